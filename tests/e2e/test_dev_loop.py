"""The README's loop, command by command, on the real local cluster (control plane + node).

Aspects: `drydock dev operator up` installs the shipped CRDs and RBAC and starts the
operator as a separate process that holds only its ServiceAccount's token and names the
operator image the instance pods copy their manager from; `drydock dev apply -f` creates
a restricted namespace and a Cluster (and refuses a file with a bad document, applying
nothing from it); `drydock catalog apply` of a published operand makes the Cluster run
PostgreSQL on the node; a new digest published and applied the same way rolls it (its
replica, a switchover, the old primary), which `drydock dev get clusters` shows;
`drydock dev operator down` stops the process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from catalog_support import require_registry
from click.testing import CliRunner
from operator_support import wait_until
from pg_support import Images, new_digest, published_record, push

from pipeline.cli import main
from pipeline.cli.dev_loop import ADMISSION, WEBHOOK_CONFIGURATIONS
from pipeline.devloop.status import is_ready
from pipeline.tools import daemon, node
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig, resource_path
from pipeline.tools.node import NodeSettings

pytestmark = pytest.mark.e2e

NS = "e2e-devloop"
GROUP_VERSION = "postgresql.cnpg.io/v1"
CATALOG = "postgresql-minimal-bookworm"  # what `drydock catalog apply` names it
CRD_NAMES = (
    "clusters.postgresql.cnpg.io",
    "imagecatalogs.postgresql.cnpg.io",
    "clusterimagecatalogs.postgresql.cnpg.io",
)
ROLL_TIMEOUT = 420.0


def drydock(*args: str, state_dir: Path) -> tuple[int, str]:
    return drydock_plain(*args, "--state-dir", str(state_dir))


def drydock_plain(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def state_dir(node_settings: NodeSettings) -> Path:
    """The state dir of the e2e tier's cluster with a node, as `--state-dir` takes it."""
    node.up(node_settings)
    return node_settings.control_plane.resolved_state_dir()


@pytest.fixture(scope="module")
def admin(state_dir: Path) -> Iterator[KubeAPI]:
    with KubeAPI(load_kubeconfig(state_dir / "kubeconfig")) as api:
        yield api


@pytest.fixture(scope="module")
def operator_up(state_dir: Path, admin: KubeAPI, pg_images: Images) -> Iterator[str]:
    code, out = drydock(
        "dev", "operator", "up", "--resync", "5", "--operator-image", pg_images.operator,
        state_dir=state_dir,
    )  # fmt: skip
    assert code == 0, out
    yield out
    code, out = drydock("dev", "operator", "down", state_dir=state_dir)
    assert code == 0 and "operator stopped" in out, out
    # No webhook (failurePolicy Fail) is left behind to refuse what nobody serves.
    assert "removed validatingwebhookconfigurations/" in out, out
    for plural, name in WEBHOOK_CONFIGURATIONS:
        assert admin.get(resource_path(ADMISSION, plural, name)) is None
    for name in CRD_NAMES:  # leave the plane as other modules expect it
        admin.delete(resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions", name))
    for name in CRD_NAMES:
        admin.wait_gone(
            resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions", name), 120
        )


def manifests(tmp: Path, name: str = "loop", instances: int = 2) -> Path:
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
                major: 15
              storage: {{size: 256Mi}}
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


def all_ready_on(found: dict[str, dict[str, Any]], image: str, count: int = 2) -> bool:
    return len(found) == count and all(
        is_ready(p) and p["spec"]["containers"][0]["image"] == image for p in found.values()
    )


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


def test_operator_up_installs_its_admission_webhooks(
    operator_up: str, state_dir: Path, admin: KubeAPI, tmp_path: Path
) -> None:
    """The shipped webhooks are in place with the operator's CA injected, and a Cluster the
    validating webhook refuses (a name too long for its instances' objects) is reported
    by `dev apply` with exit 2 and the operator's message, and not created."""
    for plural, name in WEBHOOK_CONFIGURATIONS:
        found = admin.get(resource_path(ADMISSION, plural, name)) or {}
        hooks = found.get("webhooks") or []
        assert hooks and all(w["clientConfig"].get("caBundle") for w in hooks), found
    name = "n" * 60
    path = tmp_path / "long.yaml"
    path.write_text(
        f"apiVersion: {GROUP_VERSION}\nkind: Cluster\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        "spec: {instances: 1, imageName: registry.invalid/pg:15, storage: {size: 256Mi}}\n",
        encoding="utf-8",
    )
    code, out = drydock("dev", "apply", "-f", str(path), state_dir=state_dir)
    assert code == 2, out
    assert "metadata.name" in out and "60 characters, at most 50" in out, out
    assert admin.get(resource_path(GROUP_VERSION, "clusters", name, "default")) is None


def publish(tmp: Path, ref: str, tag: str, stamp: str) -> Path:
    """Describe a pushed operand as `drydock run` records a promoted image."""
    record = tmp / f"published-{stamp}.json"
    record.write_text(json.dumps([dataclasses.asdict(published_record(ref, tag, stamp))]))
    return record


def test_new_digest_through_catalog_apply_rolls_the_cluster(
    operator_up: str, state_dir: Path, admin: KubeAPI, tmp_path: Path, pg_images: Images
) -> None:
    require_registry()
    kubeconfig = str(state_dir / "kubeconfig")
    stamp = time.strftime("%Y%m%d%H%M")
    first_tag = f"15.20-{stamp}-minimal-bookworm"
    first = push(pg_images.operand_id, "postgresql", first_tag)
    code, out = drydock_plain(
        "catalog", "apply", "--published", str(publish(tmp_path, first, first_tag, stamp)),
        "--kubeconfig", kubeconfig,
    )  # fmt: skip
    assert code == 0, out
    old = f"{first.split('@')[0]}:{first_tag}@{first.split('@')[1]}"
    code, out = drydock("dev", "apply", "-f", str(manifests(tmp_path)), state_dir=state_dir)
    assert code == 0, out
    assert f"Cluster/loop in {NS}" in out

    def shown() -> str:
        return drydock("dev", "get", "clusters", "-n", NS, state_dir=state_dir)[1]

    wait_until(
        "2/2 ready on the first digest",
        shown,
        lambda t: "2/2 ready  Cluster in healthy state" in t,
        ROLL_TIMEOUT,
    )
    before = pods(admin, "loop")
    assert all_ready_on(before, old), {
        n: p["spec"]["containers"][0]["image"] for n, p in before.items()
    }
    uids = {n: p["metadata"]["uid"] for n, p in before.items()}

    # A minute later as a timestamp (not stamp + 1, which is no time at minute 59).
    later = (dt.datetime.strptime(stamp, "%Y%m%d%H%M") + dt.timedelta(minutes=1)).strftime(
        "%Y%m%d%H%M"
    )
    second_tag = f"15.20-{later}-minimal-bookworm"
    second = new_digest(pg_images, tmp_path, later, second_tag)
    code, out = drydock_plain(
        "catalog", "apply", "--published", str(publish(tmp_path, second, second_tag, later)),
        "--kubeconfig", kubeconfig,
    )  # fmt: skip
    assert code == 0, out
    new = f"{second.split('@')[0]}:{second_tag}@{second.split('@')[1]}"
    table = wait_until(
        "the table to show the roll done",
        shown,
        lambda t: (
            "2/2 ready  Cluster in healthy state" in t
            and new.split("@")[1][:19] in t
            and "(still" not in t
        ),
        timeout=ROLL_TIMEOUT,
    )
    rolled = pods(admin, "loop")
    assert all_ready_on(rolled, new)
    assert all(rolled[n]["metadata"]["uid"] != uids[n] for n in uids)
    assert "loop-2           primary" in table  # the roll switched over to the replica
    code, out = drydock("dev", "get", "catalogs", state_dir=state_dir)
    assert code == 0 and f"15: {new}" in out
