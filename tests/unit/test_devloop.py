"""The dev loop's pure parts: manifest checks and the tables.

Aspects: every bad document in every file is reported as `file#index: field: reason`
before anything could be written; the Cluster table pairs pods with their Cluster by
label and marks instances still on an old image; the operator process gets a minimal
environment with its own kubeconfig and the operator image its pods copy from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from loopback_http import Script, serve

from pipeline.devloop import manifests, status
from pipeline.devloop.operator_image import published_operator_image
from pipeline.errors import CatalogError, InputError
from pipeline.tools import devoperator

ROOT = Path(__file__).resolve().parents[2]

OLD = "127.0.0.1:5000/postgresql@sha256:" + "a" * 64
NEW = "127.0.0.1:5000/postgresql@sha256:" + "b" * 64


def pod(name: str, image: str, ready: bool, cluster: str = "pg", **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "demo", "labels": {"cnpg.io/cluster": cluster}}
        | meta,
        "spec": {"containers": [{"name": "postgres", "image": image}]},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_load_documents_reports_every_problem_with_file_and_index(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n", "utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: ConfigMap\nmetadata: {}\n---\n- a list\n", "utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [unclosed\n", "utf-8")
    with pytest.raises(InputError) as err:
        manifests.load_documents([good, bad, broken])
    problems = [str(p) for p in err.value.problems]
    assert problems[:3] == [
        f"{bad}#0: apiVersion: required",
        f"{bad}#0: metadata.name: required",
        f"{bad}#1: -: a document must be a mapping",
    ]
    assert problems[3].startswith(f"{broken}: -: not YAML")
    assert len(problems) == 4
    [doc] = manifests.load_documents([good])
    assert (doc.api_version, doc.kind, doc.name) == ("v1", "ConfigMap", "a")


def test_cluster_rows_pair_pods_by_label_and_show_the_roll() -> None:
    clusters = [
        {
            "metadata": {"name": "pg", "namespace": "demo"},
            "spec": {"instances": 3},
            "status": {"phase": "Upgrading cluster", "image": NEW, "currentPrimary": "pg-1"},
        }
    ]
    pods = [
        pod("pg-10", NEW, ready=True),
        pod("pg-1", OLD, ready=True),
        pod("pg-2", NEW, ready=False),
        pod("other-1", OLD, ready=True, cluster="other"),
    ]
    [row] = status.rows(clusters, pods)
    assert [i.name for i in row.instances] == ["pg-1", "pg-2", "pg-10"]
    assert (row.ready, row.wanted) == (2, 3)
    text = status.render([row])
    assert text.splitlines()[0] == "demo/pg  2/3 ready  Upgrading cluster"
    assert f"image: 127.0.0.1:5000/postgresql@sha256:{'b' * 12}" in text
    lines = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert "primary" in lines["pg-1"] and f"(still sha256:{'a' * 12})" in lines["pg-1"]
    assert "not ready" in lines["pg-2"] and "(still" not in lines["pg-2"]
    assert status.render([]) == "no Clusters"


def test_catalog_table_lists_majors_in_order() -> None:
    text = status.render_catalogs(
        [
            {
                "kind": "ClusterImageCatalog",
                "metadata": {"name": "postgresql-minimal-bookworm"},
                "spec": {"images": [{"major": 17, "image": NEW}, {"major": 15, "image": OLD}]},
            }
        ]
    )
    assert text.splitlines() == [
        "ClusterImageCatalog/postgresql-minimal-bookworm",
        f"  15: {OLD}",
        f"  17: {NEW}",
    ]


def test_operator_process_gets_its_own_kubeconfig_and_little_else(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/admin/kubeconfig")
    monkeypatch.setenv("REGISTRY_PASSWORD", "hunter2")
    settings = devoperator.OperatorProcessSettings(
        state_dir=tmp_path,
        operator_dir=tmp_path / "operator",
        operator_image="127.0.0.1:5000/postgresql-operator@sha256:" + "1" * 64,
        resync_seconds=5,
        workers=2,
    )
    env = devoperator.environment(settings, tmp_path / "kubeconfig")
    assert env["DRYDOCK_OPERATOR_IMAGE"] == settings.operator_image
    assert env["KUBECONFIG"] == str(tmp_path / "kubeconfig")
    assert env["PYTHONPATH"] == str(tmp_path / "operator")
    assert env["DRYDOCK_OPERATOR_RESYNC_SECONDS"] == "5"
    assert env["DRYDOCK_OPERATOR_WORKERS"] == "2"
    # The webhook server on the host, on a free port: checkouts share the machine.
    assert (env["DRYDOCK_OPERATOR_WEBHOOK_HOST"], env["DRYDOCK_OPERATOR_WEBHOOK_PORT"]) == (
        "127.0.0.1",
        "0",
    )
    assert "REGISTRY_PASSWORD" not in env
    assert env["DRYDOCK_OPERATOR_METRICS_BIND_ADDRESS"] == "127.0.0.1:0"
    args = devoperator.argv(8123)
    assert args[1:4] == ["-m", "kopf", "run"] and devoperator.MARKER in args
    assert "--liveness=http://127.0.0.1:8123/healthz" in args


def test_dev_operator_up_finds_the_operator_where_publication_puts_it() -> None:
    """The release repository and rolling tag publication uses, resolved to a digest."""
    digest = "sha256:" + "ab" * 32
    script = Script([(200, {"Docker-Content-Digest": digest}, b"")])
    with serve(script) as registry:
        image = published_operator_image(ROOT, registry)
    assert image == f"{registry}/drydock/postgresql-operator@{digest}"
    assert script.seen[0][:2] == ("HEAD", "/v2/drydock/postgresql-operator/manifests/0.1.0")


def test_dev_operator_up_says_what_to_do_when_the_operator_is_not_published() -> None:
    with serve(Script([(404, {}, b"")])) as registry, pytest.raises(CatalogError) as err:
        published_operator_image(ROOT, registry)
    assert "drydock/postgresql-operator:0.1.0 is not published" in str(err.value)
    assert "--operator-image" in str(err.value)
