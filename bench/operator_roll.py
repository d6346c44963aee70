"""Benchmark: from a catalog change to every referencing Cluster on the new image.

One private control plane (etcd + kube-apiserver in a temporary state dir), the shipped
CRDs and RBAC, and the included operator started exactly as `drydock dev operator up`
starts it: a separate `kopf run` process holding only its ServiceAccount's token. For each
scenario (1 Cluster, 100 Clusters, and 1 Cluster of 3 instances):

  1. a ClusterImageCatalog names digest A for major 17; N Clusters reference it;
  2. the stand-in kubelet (`pipeline.devloop.kubelet`, in a thread of this process, no
     pull check) reports pods Ready as soon as it sees them; wait until every Cluster is
     healthy on A;
  3. t0: the catalog is changed to digest B (one server-side apply, as `drydock catalog
     apply` does);
  4. `status` = t0 until every Cluster's `status.image` is B (the operator noticed);
     `rolled` = t0 until every instance pod was re-created on B and is Ready.

There is no container runtime behind the kubelet, so "Ready" comes right after the pod
exists: the figures are the operator's and the API server's share of a roll; a real
PostgreSQL restart adds its own seconds per instance. Figures go to
bench/results/operator_roll.json and .md. Not a test: `python bench/operator_roll.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.cli.dev_loop import install_operator  # noqa: E402
from pipeline.devloop import kubelet  # noqa: E402
from pipeline.tools import controlplane, devoperator  # noqa: E402
from pipeline.tools.git import revision  # noqa: E402
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig, resource_path  # noqa: E402

RESULTS = ROOT / "bench" / "results"
GV = "postgresql.cnpg.io/v1"
HEALTHY = "Cluster in healthy state"
RESTRICTED = "pod-security.kubernetes.io/enforce"
OLD = "registry.invalid/postgresql@sha256:" + "a" * 64
NEW = "registry.invalid/postgresql@sha256:" + "b" * 64


@dataclass
class Scenario:
    clusters: int
    instances: int
    setup_seconds: float = 0.0
    status_seconds: float = 0.0
    rolled_seconds: float = 0.0
    pods_recreated: int = 0


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait(what: str, probe: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    start = time.monotonic()
    while not probe():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - start


class Kubelet(threading.Thread):
    """The stand-in kubelet, polling as fast as the API answers."""

    def __init__(self, api: KubeAPI) -> None:
        super().__init__(daemon=True)
        self.api = api
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            kubelet.sync_once(self.api, kubelet.always_pullable)
            time.sleep(0.05)


def catalog(name: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": GV,
        "kind": "ClusterImageCatalog",
        "metadata": {"name": name},
        "spec": {"images": [{"major": 17, "image": image}]},
    }


def clusters_of(api: KubeAPI, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.request(
        "GET", resource_path(GV, "clusters", namespace=ns)
    ).json()["items"]
    return items


def pods_of(api: KubeAPI, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.request(
        "GET", resource_path("v1", "pods", namespace=ns), params={"labelSelector": kubelet.MANAGED}
    ).json()["items"]
    return items


def all_on(api: KubeAPI, ns: str, image: str, count: int, pods: int) -> bool:
    cs = clusters_of(api, ns)
    if len(cs) != count or any(
        c.get("status", {}).get("image") != image or c["status"].get("phase") != HEALTHY for c in cs
    ):
        return False
    ps = pods_of(api, ns)
    return len(ps) == pods and all(
        kubelet.is_ready(p) and p["spec"]["containers"][0]["image"] == image for p in ps
    )


def run_scenario(api: KubeAPI, sc: Scenario, index: int, timeout: float) -> Scenario:
    ns, cat = f"bench-{index}", f"bench-{index}"
    api.apply(
        resource_path("v1", "namespaces", ns),
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": {RESTRICTED: "restricted"}},
        },
    )
    cat_path = resource_path(GV, "clusterimagecatalogs", cat)
    api.apply(cat_path, catalog(cat, OLD))
    start = time.monotonic()
    for i in range(sc.clusters):
        api.create(
            resource_path(GV, "clusters", namespace=ns),
            {
                "apiVersion": GV,
                "kind": "Cluster",
                "metadata": {"name": f"pg-{i:03d}", "namespace": ns},
                "spec": {
                    "instances": sc.instances,
                    "imageCatalogRef": {
                        "apiGroup": "postgresql.cnpg.io",
                        "kind": "ClusterImageCatalog",
                        "name": cat,
                        "major": 17,
                    },
                },
            },
        )
    total_pods = sc.clusters * sc.instances
    wait(
        f"{sc.clusters} Clusters healthy on A",
        lambda: all_on(api, ns, OLD, sc.clusters, total_pods),
        timeout,
        step=0.25,
    )
    sc.setup_seconds = round(time.monotonic() - start, 2)
    before = {p["metadata"]["uid"] for p in pods_of(api, ns)}
    time.sleep(1.0)  # let the last status writes settle before t0

    t0 = time.monotonic()
    api.apply(cat_path, catalog(cat, NEW))
    wait(
        "every status.image = B",
        lambda: all(c.get("status", {}).get("image") == NEW for c in clusters_of(api, ns)),
        timeout,
    )
    sc.status_seconds = round(time.monotonic() - t0, 2)
    wait("every pod on B", lambda: all_on(api, ns, NEW, sc.clusters, total_pods), timeout)
    sc.rolled_seconds = round(time.monotonic() - t0, 2)
    sc.pods_recreated = len({p["metadata"]["uid"] for p in pods_of(api, ns)} - before)
    api.delete(resource_path("v1", "namespaces", ns))  # no controller-manager: stays Terminating
    return sc


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# operator_roll",
        "",
        f"{result['date']}, revision {result['revision']}, {result['machine']}, "
        f"load average {result['load_start']} at start, {result['load_end']} at end; "
        f"operator workers {result['operator_workers']}, resync {result['resync_seconds']:g} s.",
        "",
        "Catalog entry changed at t0 (one server-side apply); the operator runs as a separate "
        "`kopf run` process with its ServiceAccount token; the stand-in kubelet reports pods "
        "Ready as soon as it sees them (no container runtime).",
        "",
        "| Clusters | instances each | setup (create -> all healthy) "
        "| t0 -> every status.image new | t0 -> every pod re-created on it and Ready "
        "| pods re-created |",
        "|---|---|---|---|---|---|",
    ]
    for sc in result["scenarios"]:
        lines.append(
            f"| {sc['clusters']} | {sc['instances']} | {sc['setup_seconds']:.2f} s "
            f"| {sc['status_seconds']:.2f} s | {sc['rolled_seconds']:.2f} s "
            f"| {sc['pods_recreated']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--many", type=int, default=100, help="Clusters in the large scenario")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--workers", type=int, default=4, help="DRYDOCK_OPERATOR_WORKERS")
    args = parser.parse_args()
    scenarios = [Scenario(1, 1), Scenario(args.many, 1), Scenario(1, 3)]
    load_start = loadavg()
    with tempfile.TemporaryDirectory(prefix="drydock-bench-roll-") as tmp:
        settings = controlplane.ControlPlaneSettings(state_dir=Path(tmp) / "plane")
        cp = controlplane.up(settings)
        proc = devoperator.OperatorProcessSettings(
            state_dir=Path(tmp) / "operator", operator_dir=ROOT / "operator", workers=args.workers
        )
        try:
            install_operator(cp.kubeconfig)
            devoperator.up(cp.kubeconfig, proc)
            with KubeAPI(load_kubeconfig(cp.kubeconfig)) as api:
                kube = Kubelet(api)
                kube.start()
                for index, sc in enumerate(scenarios):
                    run_scenario(api, sc, index, args.timeout)
                    print(json.dumps(asdict(sc)), flush=True)
                kube.stopping.set()
                kube.join(timeout=10)
        finally:
            devoperator.down(proc)
            controlplane.down(settings)
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
