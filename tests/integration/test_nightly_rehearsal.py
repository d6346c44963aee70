"""The nightly workflow's jobs, in order, on this machine (`scripts/nightly.sh rehearse`).

The same make targets the workflow's steps call (plan, each shard with --stage-only,
promote, catalogs, publish) hand their artifacts through folders exactly as the workflow's
upload/download-artifact steps do, against a registry given as host/namespace
(`127.0.0.1:<port>/acme`, a private registry started empty). A change that breaks the
nightly's sequence, the namespace handling or the catalog signatures fails here.

A second night with nothing changed stages nothing, and every shard still writes an empty
SARIF run (so code scanning closes the alerts of images that are fine now).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipeline.tools.registry import RegistryClient
from pipeline.tools.registry_server import RegistryServer
from pipeline.tools.runner import run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TARGETS = "postgresql-15-minimal-bookworm postgresql-17-minimal-trixie"
NIGHT_TIMEOUT = 2400.0


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path_factory.mktemp("nightly-registry"))
    server.start()
    yield server
    server.stop()


def _night(out: Path, location: str) -> str:
    env = {
        **os.environ,
        "DRYDOCK_REGISTRY": location,
        "TARGETS": TARGETS,
        "SHARDS": "2",
        "RUN_FLAGS": "",
    }
    env.pop("DRYDOCK_KEYLESS", None)
    done = run(
        ["bash", str(ROOT / "scripts" / "nightly.sh"), "rehearse", str(out)],
        timeout=NIGHT_TIMEOUT,
        env=env,
        cwd=ROOT,
    )
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def first_night(
    registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    location = f"{registry.address}/acme"
    out = tmp_path_factory.mktemp("night-1") / "nightly"
    _night(out, location)
    return out, location


def _sarif_results(path: Path) -> list[object]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["version"] == "2.1.0"
    (only,) = doc["runs"]
    return list(only.get("results") or [])


def test_the_plan_shards_the_chosen_targets(first_night: tuple[Path, str]) -> None:
    out, _ = first_night
    matrix = json.loads((out / "plan" / "matrix.json").read_text())
    assert [i["shard"] for i in matrix["include"]] == ["1/2", "2/2"]


def test_each_shard_stages_into_the_namespace_and_writes_its_sarif(
    first_night: tuple[Path, str],
) -> None:
    out, location = first_night
    staged = []
    for index in (1, 2):
        shard = out / f"shard-{index}"
        records = json.loads((shard / "staged.json").read_text())
        assert len(records) == 1
        staged.append(records[0])
        assert (shard / "reports" / "gate.sarif").is_file()
        assert (shard / records[0]["sbom"]).is_file()
    for record in staged:
        assert record["image"]["registry"] == location
        assert record["image"]["repository"] == "staging/drydock/postgresql"


def test_promotion_publishes_under_the_namespace_by_digest(first_night: tuple[Path, str]) -> None:
    out, location = first_night
    published = json.loads((out / "promote" / "published.json").read_text())
    assert {p["target"] for p in published} == set(TARGETS.split())
    client = RegistryClient(location, attempts=2)
    for image in published:
        assert image["registry"] == location
        # The registry itself serves the immutable tag at that digest, under acme/.
        assert client.digest(image["repository"], image["tag"]) == image["digest"]
    host, _, namespace = location.partition("/")
    assert namespace == "acme"
    bare = RegistryClient(host, attempts=2)
    assert bare.digest(f"acme/{published[0]['repository']}", published[0]["tag"])


def test_catalogs_name_the_namespace_and_are_signed_and_committed(
    first_night: tuple[Path, str],
) -> None:
    out, location = first_night
    files = sorted((out / "catalogs").glob("*.yaml"))
    catalogs = [f for f in files if f.name != "kustomization.yaml"]
    assert catalogs
    images = []
    for path in catalogs:
        assert path.with_name(path.name + ".sig").is_file()
        doc = yaml.safe_load(path.read_text())
        images += [entry["image"] for entry in doc["spec"]["images"]]
    assert images and all(i.startswith(f"{location}/drydock/postgresql:") for i in images)
    assert all("@sha256:" in i for i in images)
    listed = run(
        ["git", "--git-dir", str(out / "catalog-remote.git"), "ls-tree", "--name-only", "catalogs"],
        timeout=30,
    ).stdout.split()
    assert {p.name for p in catalogs} <= set(listed)
    assert {p.name + ".sig" for p in catalogs} <= set(listed)


def test_a_night_with_nothing_new_stages_nothing_but_still_reports(
    first_night: tuple[Path, str], tmp_path: Path
) -> None:
    _, location = first_night
    out = tmp_path / "nightly"
    _night(out, location)
    for index in (1, 2):
        shard = out / f"shard-{index}"
        summary = (shard / "summary.md").read_text()
        decisions = json.loads((shard / "run.json").read_text())["targets"]
        assert [t["decision"] for t in decisions.values()] == ["unchanged"], summary
        assert json.loads((shard / "staged.json").read_text()) == []
        assert _sarif_results(shard / "reports" / "gate.sarif") == []
    # Promotion found nothing new, and the catalogs still name last night's digests.
    assert (out / "catalogs").is_dir()
