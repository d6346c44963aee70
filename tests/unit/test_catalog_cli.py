"""`drydock catalog generate|crds` end to end through click (no cluster needed)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml
from catalog_helpers import image
from click.testing import CliRunner

from pipeline.cli import main


def write_published(path: Path) -> Path:
    imgs = [image(15, n=1), image(16, n=2), image(16, "standard", n=3)]
    path.write_text(json.dumps([dataclasses.asdict(i) for i in imgs]))
    return path


def test_generate_writes_catalogs_and_kustomization(tmp_path: Path) -> None:
    pub = write_published(tmp_path / "published.json")
    out = tmp_path / "out"
    args = ["catalog", "generate", "--published", str(pub), "--output", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "catalog-minimal-bookworm.yaml",
        "catalog-standard-bookworm.yaml",
        "kustomization.yaml",
    ]
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    doc = yaml.safe_load(first["catalog-minimal-bookworm.yaml"])
    assert [e["major"] for e in doc["spec"]["images"]] == [15, 16]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_generate_with_group_and_namespace(tmp_path: Path) -> None:
    pub = write_published(tmp_path / "published.json")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "catalog",
            "generate",
            "--published",
            str(pub),
            "--output",
            str(out),
            "--api-group",
            "postgresql.k8s.enterprisedb.io",
            "--namespaced",
            "team-a",
        ],
    )
    assert result.exit_code == 0, result.output
    ns = yaml.safe_load((out / "imagecatalog-team-a-minimal-bookworm.yaml").read_text())
    assert ns["apiVersion"] == "postgresql.k8s.enterprisedb.io/v1"
    assert (ns["kind"], ns["metadata"]["namespace"]) == ("ImageCatalog", "team-a")


def test_bad_published_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    pub = tmp_path / "published.json"
    record = dataclasses.asdict(image())
    record["digest"] = "sha256:nope"
    pub.write_text(json.dumps([record]))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["catalog", "generate", "--published", str(pub), "--output", str(out)]
    )
    assert result.exit_code == 2
    assert "[0].digest" in result.output
    assert not out.exists()


def test_crds_command_matches_committed_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["catalog", "crds", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    committed = Path(__file__).parents[2] / "operator" / "manifests" / "crds"
    for path in tmp_path.iterdir():
        if path.name != "kustomization.yaml":
            assert path.read_text() == (committed / path.name).read_text()
    (tmp_path / "cluster.yaml").write_text("kind: CustomResourceDefinition\n")
    result = CliRunner().invoke(main, ["catalog", "crds", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    resources = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())["resources"]
    assert resources == [
        "cluster.yaml",
        "postgresql.cnpg.io_clusterimagecatalogs.yaml",
        "postgresql.cnpg.io_imagecatalogs.yaml",
    ]


def test_dev_cluster_status_without_state(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["dev", "cluster", "status", "--state-dir", str(tmp_path / "none")]
    )
    assert result.exit_code == 3
    assert "not running" in result.output
