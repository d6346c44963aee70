"""The README's loop, command by command, on the real control plane and registry.

Aspects: `drydock dev operator up` installs the shipped CRDs and RBAC and starts the
operator as a separate process that holds only its ServiceAccount's token; `drydock dev
apply -f` creates a restricted namespace and a Cluster (and refuses a file with a bad
document, applying nothing from it); the stand-in kubelet reports a pod Ready only when
its image is in the registry at that digest; pushing a new digest and `drydock catalog
apply` of it rolls every instance onto it, which `drydock dev get clusters` shows;
`drydock dev operator down` stops the process.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from catalog_support import published, require_registry
from click.testing import CliRunner
from operator_support import wait_until

from pipeline.cli import main
from pipeline.devloop import kubelet
from pipeline.tools import controlplane, daemon
from pipeline.tools.controlplane import ControlPlaneSettings
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig, resource_path

pytestmark = pytest.mark.e2e

NS = "e2e-devloop"
GROUP_VERSION = "postgresql.cnpg.io/v1"
CATALOG = "postgresql-minimal-bookworm"  # what `drydock catalog apply` names it
# Nothing runs pods here (the stand-in kubelet only reports them Ready), so the operator
# image the pods' bootstrap-controller would run need not exist.
OPERATOR_IMAGE = "registry.invalid/postgresql-operator@sha256:" + "0" * 64
CRD_NAMES = (
    "clusters.postgresql.cnpg.io",
    "imagecatalogs.postgresql.cnpg.io",
    "clusterimagecatalogs.postgresql.cnpg.io",
)


def drydock(*args: str, state_dir: Path) -> tuple[int, str]:
    return drydock_plain(*args, "--state-dir", str(state_dir))


def drydock_plain(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def state_dir(control_plane_settings: ControlPlaneSettings) -> Path:
    controlplane.up(control_plane_settings)
    return control_plane_settings.resolved_state_dir()


@pytest.fixture(scope="module")
def admin(state_dir: Path) -> Iterator[KubeAPI]:
    with KubeAPI(load_kubeconfig(state_dir / "kubeconfig")) as api:
        yield api


@pytest.fixture(scope="module")
def operator_up(state_dir: Path, admin: KubeAPI) -> Iterator[str]:
    code, out = drydock(
        "dev", "operator", "up", "--resync", "5", "--operator-image", OPERATOR_IMAGE,
        state_dir=state_dir,
    )  # fmt: skip
    assert code == 0, out
    yield out
    code, out = drydock("dev", "operator", "down", state_dir=state_dir)
    assert code == 0 and "operator stopped" in out, out
    for name in CRD_NAMES:  # leave the plane as other modules expect it
        admin.delete(resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions", name))
    for name in CRD_NAMES:
        admin.wait_gone(
            resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions", name), 120
        )


def manifests(tmp: Path, name: str = "loop", instances: int = 1) -> Path:
    """A restricted namespace and a Cluster on the catalog `drydock catalog apply` writes."""
    path = tmp / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            apiVersion: v1
            kind: Namespace
            metadata:
              name: {NS}
              labels: {{pod-security.kubernetes.io/enforce: restricted}}
            ---
            apiVersion: {GROUP_VERSION}
            kind: Cluster
            metadata: {{name: {name}, namespace: {NS}}}
            spec:
              instances: {instances}
              imageCatalogRef:
                apiGroup: postgresql.cnpg.io
                kind: ClusterImageCatalog
                name: {CATALOG}
                major: 17
            """),
        encoding="utf-8",
    )
    return path


def pods(admin: KubeAPI, cluster: str) -> dict[str, dict[str, Any]]:
    listing = admin.request(
        "GET",
        resource_path("v1", "pods", namespace=NS),
        params={"labelSelector": f"cnpg.io/cluster={cluster}"},
    ).json()
    return {p["metadata"]["name"]: p for p in listing["items"]}


def all_ready_on(found: dict[str, dict[str, Any]], image: str, count: int = 1) -> bool:
    return len(found) == count and all(
        kubelet.is_ready(p) and p["spec"]["containers"][0]["image"] == image for p in found.values()
    )


def play_kubelet_until(admin: KubeAPI, what: str, done: Any) -> dict[str, dict[str, Any]]:
    """Run the stand-in kubelet (registry check on) until the pods satisfy `done`."""
    check = kubelet.registry_check()

    def probe() -> dict[str, dict[str, Any]]:
        kubelet.sync_once(admin, check)
        return pods(admin, "loop")

    return wait_until(what, probe, done, timeout=120)


def test_operator_runs_as_its_service_account_in_its_own_process(
    operator_up: str, state_dir: Path
) -> None:
    assert "postgresql-operator-system/postgresql-operator-manager" in operator_up
    code, out = drydock("dev", "operator", "status", state_dir=state_dir)
    assert code == 0 and "live: yes" in out, out
    pid = int(out.split("pid ", 1)[1].split()[0])
    assert not daemon.gone(pid)
    own = (state_dir / "operator" / "kubeconfig").read_text()
    admin_token = load_kubeconfig(state_dir / "kubeconfig").token
    assert admin_token and admin_token not in own
    assert (state_dir / "operator" / "kubeconfig").stat().st_mode & 0o077 == 0


def test_bad_manifest_file_applies_nothing(
    operator_up: str, state_dir: Path, admin: KubeAPI, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: should-not-exist}\n---\n"
        "apiVersion: v1\nmetadata: {name: no-kind}\n",
        encoding="utf-8",
    )
    code, out = drydock("dev", "apply", "-f", str(bad), state_dir=state_dir)
    assert code == 2, out
    assert f"{bad}#1: kind: required" in out
    assert admin.get(resource_path("v1", "configmaps", "should-not-exist", "default")) is None


def publish(tmp: Path, stamp: str) -> tuple[Path, str]:
    """Push a real image and describe it as `drydock run` records a promoted image."""
    (image,) = published(tmp, stamp, majors=(17,), flavours=("minimal",))
    record = tmp / f"published-{stamp}.json"
    record.write_text(json.dumps([dataclasses.asdict(image)]), encoding="utf-8")
    return record, image.reference


def test_new_digest_through_catalog_apply_rolls_the_cluster(
    operator_up: str, state_dir: Path, admin: KubeAPI, tmp_path: Path
) -> None:
    require_registry()
    kubeconfig = str(state_dir / "kubeconfig")
    first, old = publish(tmp_path, "202611270100")
    code, out = drydock_plain(
        "catalog", "apply", "--published", str(first), "--kubeconfig", kubeconfig
    )
    assert code == 0, out
    code, out = drydock("dev", "apply", "-f", str(manifests(tmp_path)), state_dir=state_dir)
    assert code == 0, out
    assert f"Cluster/loop in {NS}" in out

    # One instance: with replicas, the roll's switchover waits for an instance manager
    # to promote, and no PostgreSQL runs without a node.
    before = play_kubelet_until(
        admin, "1 Ready pod on the old image", lambda p: all_ready_on(p, old)
    )
    uids = {n: p["metadata"]["uid"] for n, p in before.items()}

    second, new = publish(tmp_path, "202611270200")
    code, out = drydock_plain(
        "catalog", "apply", "--published", str(second), "--kubeconfig", kubeconfig
    )
    assert code == 0, out
    rolled = play_kubelet_until(
        admin, "the pod re-created on the new image and Ready", lambda p: all_ready_on(p, new)
    )
    assert all(rolled[n]["metadata"]["uid"] != uids[n] for n in uids)

    def shown() -> str:
        return drydock("dev", "get", "clusters", "-n", NS, state_dir=state_dir)[1]

    # pods turn Ready first; the operator's next reconcile then reports the phase
    table = wait_until(
        "the table to show the roll done",
        shown,
        lambda t: "1/1 ready  Cluster in healthy state" in t,
    )
    assert new.split("@")[1][:19] in table
    code, out = drydock("dev", "get", "catalogs", state_dir=state_dir)
    assert code == 0 and f"17: {new}" in out


def test_kubelet_keeps_a_pod_whose_image_is_not_in_the_registry_pending(
    operator_up: str, state_dir: Path, admin: KubeAPI
) -> None:
    require_registry()
    missing = f"127.0.0.1:5000/drydock-e2e/postgresql@sha256:{'0' * 64}"
    cluster = {
        "apiVersion": GROUP_VERSION,
        "kind": "Cluster",
        "metadata": {"name": "ghost", "namespace": NS},
        "spec": {"instances": 1, "imageName": missing},
    }
    admin.create(resource_path(GROUP_VERSION, "clusters", namespace=NS), cluster)
    check = kubelet.registry_check()
    pending = wait_until(
        "the ghost pod to be seen and refused",
        lambda: [t for t in kubelet.sync_once(admin, check) if t.pod == "ghost-1"],
        bool,
        timeout=60,
    )
    assert not pending[0].ready and "not found" in pending[0].reason
    pod = admin.get(resource_path("v1", "pods", "ghost-1", NS)) or {}
    assert not kubelet.is_ready(pod)
