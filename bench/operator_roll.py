"""Benchmark: rolling PostgreSQL Clusters onto a new digest, and recovering a lost primary.

A private control plane and real node (pipeline.tools.node, in a temporary state dir), the
shipped CRDs and RBAC, and the included operator started exactly as `drydock dev operator
up` starts it: a separate `kopf run` process holding only its ServiceAccount's token, with
the operator image its instance pods' bootstrap-controller copies the instance manager
from. The operator and operand (`postgresql-15-minimal-bookworm`) images are built by
Drydock and pushed to the local registry; the node pulls them by digest. Scenarios:

  * 1 Cluster of 3 instances, and 10 Clusters of 1: create them and wait until every one
    is healthy on digest A (`setup`); t0: the catalog names digest B (the same operand
    with one more label, pushed: a new image, as a nightly rebuild publishes); `status` =
    t0 until every `status.image` is B; `rolled` = t0 until every instance was re-created
    on B and every Cluster is healthy again (for 3 instances: the replicas one at a time,
    a switchover, then the old primary, each waiting for the previous one to be Ready,
    which for a standby means streaming again);
  * after the roll of the 3-instance Cluster, its primary pod is deleted: `promoted` =
    until another instance's manager recorded itself as currentPrimary; `recovered` =
    until the Cluster is healthy with 3 instances again (the old pod re-created, rewound
    and streaming).

Figures go to bench/results/operator_roll.json and .md. Not a test:
`python bench/operator_roll.py` (as root: the node needs it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e")]

from pg_support import build_and_push, new_digest  # noqa: E402

from pipeline.cli.dev_loop import install_operator  # noqa: E402
from pipeline.tools import controlplane, devoperator, node  # noqa: E402
from pipeline.tools.git import revision  # noqa: E402
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig, resource_path  # noqa: E402

RESULTS = ROOT / "bench" / "results"
GV = "postgresql.cnpg.io/v1"
HEALTHY = "Cluster in healthy state"
RESTRICTED = "pod-security.kubernetes.io/enforce"
MANAGED = "app.kubernetes.io/managed-by=drydock-operator"


@dataclass
class Scenario:
    clusters: int
    instances: int
    setup_seconds: float = 0.0
    status_seconds: float = 0.0
    rolled_seconds: float = 0.0
    pods_recreated: int = 0
    promoted_seconds: float | None = None
    recovered_seconds: float | None = None


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait(what: str, probe: Callable[[], bool], timeout: float, step: float = 0.25) -> float:
    start = time.monotonic()
    while not probe():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - start


def catalog(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": GV,
        "kind": "ClusterImageCatalog",
        "metadata": {"name": name},
        "spec": {"images": [{"major": 15, "image": image}]},
    }


def clusters_of(api: KubeAPI, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.request(
        "GET", resource_path(GV, "clusters", namespace=ns)
    ).json()["items"]
    return items


def pods_of(api: KubeAPI, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.request(
        "GET", resource_path("v1", "pods", namespace=ns), params={"labelSelector": MANAGED}
    ).json()["items"]
    return items


def all_healthy_on(api: KubeAPI, ns: str, image: str, sc: Scenario) -> bool:
    cs = clusters_of(api, ns)
    return len(cs) == sc.clusters and all(
        c.get("status", {}).get("image") == image
        and c["status"].get("phase") == HEALTHY
        and c["status"].get("readyInstances") == sc.instances
        for c in cs
    )


def all_recreated_on(api: KubeAPI, ns: str, image: str, sc: Scenario, before: set[str]) -> bool:
    ps = pods_of(api, ns)
    return (
        len(ps) == sc.clusters * sc.instances
        and not ({p["metadata"]["uid"] for p in ps} & before)
        and all(p["spec"]["containers"][0]["image"] == image for p in ps)
        and all_healthy_on(api, ns, image, sc)
    )


def create(api: KubeAPI, ns: str, cat: str, sc: Scenario) -> None:
    api.apply(
        resource_path("v1", "namespaces", ns),
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": {RESTRICTED: "restricted"}},
        },
    )
    wait(
        f"{ns}/default ServiceAccount",
        lambda: api.get(resource_path("v1", "serviceaccounts", "default", ns)) is not None,
        60,
    )
    for i in range(sc.clusters):
        api.create(
            resource_path(GV, "clusters", namespace=ns),
            {
                "apiVersion": GV,
                "kind": "Cluster",
                "metadata": {"name": f"pg-{i:02d}", "namespace": ns},
                "spec": {
                    "instances": sc.instances,
                    "storage": {"size": "256Mi"},
                    "imageCatalogRef": {
                        "apiGroup": "postgresql.cnpg.io",
                        "kind": "ClusterImageCatalog",
                        "name": cat,
                        "major": 15,
                    },
                },
            },
        )


def run_scenario(
    api: KubeAPI, sc: Scenario, index: int, old: str, new: str, timeout: float
) -> Scenario:
    ns, cat = f"bench-{index}", f"bench-{index}"
    cat_path = resource_path(GV, "clusterimagecatalogs", cat)
    api.apply(cat_path, catalog(cat, old))
    start = time.monotonic()
    create(api, ns, cat, sc)
    wait(f"{sc.clusters} Clusters healthy on A", lambda: all_healthy_on(api, ns, old, sc), timeout)
    sc.setup_seconds = round(time.monotonic() - start, 2)
    before = {p["metadata"]["uid"] for p in pods_of(api, ns)}
    time.sleep(2.0)  # let the last status writes settle before t0

    t0 = time.monotonic()
    api.apply(cat_path, catalog(cat, new))
    wait(
        "every status.image = B",
        lambda: all(c.get("status", {}).get("image") == new for c in clusters_of(api, ns)),
        timeout,
        step=0.05,
    )
    sc.status_seconds = round(time.monotonic() - t0, 2)
    wait(
        "every instance re-created on B",
        lambda: all_recreated_on(api, ns, new, sc, before),
        timeout,
    )
    sc.rolled_seconds = round(time.monotonic() - t0, 2)
    sc.pods_recreated = len({p["metadata"]["uid"] for p in pods_of(api, ns)} - before)
    if sc.instances > 1:
        failover(api, ns, new, sc, timeout)
    return sc


def failover(api: KubeAPI, ns: str, image: str, sc: Scenario, timeout: float) -> None:
    (cluster,) = clusters_of(api, ns)
    name, old = cluster["metadata"]["name"], cluster["status"]["currentPrimary"]
    path = resource_path(GV, "clusters", name, ns)
    t0 = time.monotonic()
    api.delete(resource_path("v1", "pods", old, ns))
    wait(
        "a new primary",
        lambda: (api.get(path) or {}).get("status", {}).get("currentPrimary") not in (None, old),
        timeout,
        step=0.1,
    )
    sc.promoted_seconds = round(time.monotonic() - t0, 2)
    wait("healthy again", lambda: all_healthy_on(api, ns, image, sc), timeout)
    sc.recovered_seconds = round(time.monotonic() - t0, 2)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# operator_roll",
        "",
        f"{result['date']}, revision {result['revision']}, {result['machine']}, "
        f"load average {result['load_start']} at start, {result['load_end']} at end; "
        f"operator workers {result['operator_workers']}, resync {result['resync_seconds']:g} s.",
        "",
        "Real PostgreSQL 15 (Debian bookworm operand) on the local node; the operator runs as "
        "a separate `kopf run` process with its ServiceAccount token. Catalog entry changed at "
        "t0 (one server-side apply). A standby counts as Ready only while it streams.",
        "",
        "| Clusters | instances each | setup (create -> all healthy) "
        "| t0 -> every status.image new | t0 -> every instance re-created and healthy "
        "| pods re-created | primary deleted -> promoted | -> healthy again |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for sc in result["scenarios"]:
        promoted = sc["promoted_seconds"]
        recovered = sc["recovered_seconds"]
        lines.append(
            f"| {sc['clusters']} | {sc['instances']} | {sc['setup_seconds']:.1f} s "
            f"| {sc['status_seconds']:.2f} s | {sc['rolled_seconds']:.1f} s "
            f"| {sc['pods_recreated']} "
            f"| {f'{promoted:.1f} s' if promoted is not None else '-'} "
            f"| {f'{recovered:.1f} s' if recovered is not None else '-'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--many", type=int, default=10, help="Clusters in the large scenario")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--workers", type=int, default=4, help="DRYDOCK_OPERATOR_WORKERS")
    args = parser.parse_args()
    scenarios = [Scenario(1, 3), Scenario(args.many, 1)]
    load_start = loadavg()
    images = build_and_push()
    with tempfile.TemporaryDirectory(prefix="drydock-bench-roll-") as tmp:
        new = new_digest(images, Path(tmp), "bench")
        plane = controlplane.ControlPlaneSettings(state_dir=Path(tmp) / "plane")
        settings = node.NodeSettings(control_plane=plane)
        proc = devoperator.OperatorProcessSettings(
            state_dir=Path(tmp) / "operator",
            operator_dir=ROOT / "operator",
            operator_image=images.operator,
            workers=args.workers,
        )
        try:
            started = node.up(settings)
            kubeconfig = started.control_plane.kubeconfig
            install_operator(kubeconfig)
            devoperator.up(kubeconfig, proc)
            with KubeAPI(load_kubeconfig(kubeconfig)) as api:
                for index, sc in enumerate(scenarios):
                    run_scenario(api, sc, index, images.operand, new, args.timeout)
                    print(json.dumps(asdict(sc)), flush=True)
        finally:
            devoperator.down(proc)
            node.down(settings)
            controlplane.down(plane)
    result = {
        "benchmark": "operator_roll",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": revision(ROOT)[:12],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_start": load_start,
        "load_end": loadavg(),
        "resync_seconds": proc.resync_seconds,
        "operator_workers": proc.workers,
        "scenarios": [asdict(sc) for sc in scenarios],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "operator_roll" if args.workers == 4 else f"operator_roll_workers{args.workers}"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
