"""`drydock run` end to end on the real engine, scanners, a private registry and cosign.

The scanners are Dockle, Trivy and a private real Clair (tests/integration/clair_support),
which reads each built image from staging, by digest, as `drydock run` stages it first.

One module-scoped story in three runs against a registry of its own:
  1. first run: the clean operand is built, gated, promoted with every documented tag,
     signed and catalogued; a deliberately loose flavour (sudo installed) fails its gate
     and stays in staging only;
  2. the same run again: nothing changed, so the clean operand is not built or pushed, its
     published image is pulled by digest and re-gated against today's DB (it passes), and
     the catalog names the same digest;
  3. the clean flavour gains sudo: its inputs change, it is rebuilt, fails its gate, is
     not promoted, and its catalog entry keeps the previous digest;
  4. sudo is gone again and `--rebuild` asks for the clean flavour only: its inputs equal
     the published image's, yet it is built again, gated and promoted under a new digest
     that the catalog now names (how a roll is rehearsed without waiting for Debian).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from clair_support import PrivateClair, openssl_advisories, start_clair

from pipeline.build.events import Silent
from pipeline.cli.scan_cmd import scan_settings
from pipeline.models.compliance import Policy
from pipeline.publish.sign import ensure_key, verify_image
from pipeline.scan.base import VulnDbSpec
from pipeline.scan.scanners import DEFAULT_SCANNERS, make_scanners
from pipeline.settings import Settings, default_cache
from pipeline.stages.regate_ledger import Ledger
from pipeline.stages.run import RunOptions, RunOutcome, run_pipeline
from pipeline.stages.vulndb import vuln_db_spec
from pipeline.tools.cosign import locate_cosign
from pipeline.tools.registry import RegistryClient
from pipeline.tools.registry_server import RegistryServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLEAN = "postgresql-15-minimal-bookworm"
LOOSE = "postgresql-15-loose-bookworm"
REPO = "drydock/postgresql"
TAGS: list[dict[str, str | None]] = []  # the release repository's tags after each run
RECORDED: list[bool] = []  # whether the first run recorded its pass for the re-gate

OPERAND = """
kind: operand
name: postgresql
repository: postgresql
template: postgresql.Dockerfile.j2
user: {uid: 26, gid: 26, name: postgres}
flavours:
  minimal:
    description: PostgreSQL server only
    packages: [MINIMAL]
  loose:
    description: PostgreSQL server with sudo, which the policy denies
    packages: ["postgresql-{major}", "sudo"]
majors:
  - {major: 15, source: debian}
"""


def archive_db(settings: Settings) -> VulnDbSpec:
    """The Debian-archive DB, as `drydock run` chooses it on machines without Trivy's DB."""
    return vuln_db_spec("debian-archive", settings, Policy())


def write_root(root: Path, minimal_packages: str) -> None:
    """A repository root of the test's own: real templates and scan-config, own images/."""
    if not (root / "dockerfiles").exists():
        shutil.copytree(ROOT / "dockerfiles", root / "dockerfiles")
        shutil.copytree(ROOT / "scan-config", root / "scan-config")
    images = root / "images"
    images.mkdir(exist_ok=True)
    (images / "base.yaml").write_text("kind: base\nreleases: [bookworm]\n", encoding="utf-8")
    operand = textwrap.dedent(OPERAND).replace("[MINIMAL]", minimal_packages)
    (images / "postgresql.yaml").write_text(operand, encoding="utf-8")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("run-registry")) as server:
        yield server


@pytest.fixture(scope="module")
def clair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateClair]:
    # Real advisories fixed long before the operand's libssl3: Clair has fresh data for
    # bookworm, so it can see, and finds nothing to block on.
    instance = start_clair(tmp_path_factory.mktemp("run-clair"), openssl_advisories("1.0.0-1"))
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def story(
    registry: RegistryServer, clair: PrivateClair, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, list[RunOutcome], list[Path]]]:
    root = tmp_path_factory.mktemp("run-root")
    settings = Settings(root=root, cache=default_cache(), registry=registry.address, jobs=2)
    outcomes: list[RunOutcome] = []
    outs: list[Path] = []
    client = RegistryClient(registry.address)

    def run_once(minimal_packages: str, rebuild: bool = False) -> None:
        write_root(root, minimal_packages)
        out = tmp_path_factory.mktemp("run-out")
        scanning = dataclasses.replace(
            scan_settings(settings, archive_db(settings), False),
            clair_url=clair.status.url,
            clair_psk_file=clair.psk_file,
        )
        options = RunOptions(
            out_dir=out,
            scanners=make_scanners((*DEFAULT_SCANNERS, "clair"), scanning),
            targets=(CLEAN,) if rebuild else (),
            rebuild=rebuild,
        )
        outcomes.append(run_pipeline(settings, options, Silent()))
        outs.append(out)
        TAGS.append({t: client.digest(REPO, t) for t in client.list_tags(REPO)})  # after run i

    run_once('["postgresql-{major}"]')
    # The first run recorded its gate pass, so a second night would not scan again; forget
    # it, so that the second run shows a re-gate that scans and the third one that does not.
    ledger = Ledger(settings.cache / "regate")
    RECORDED.append(ledger.recorded(outcomes[0].outcomes[CLEAN].published.split("@")[1]))
    ledger.forget(outcomes[0].outcomes[CLEAN].published.split("@")[1])
    run_once('["postgresql-{major}"]')
    run_once('["postgresql-{major}"]')  # nothing moved since the second run's re-gate
    run_once('["postgresql-{major}", "sudo"]')
    run_once('["postgresql-{major}"]', rebuild=True)
    yield settings, outcomes, outs


def catalog_image(out: Path) -> str:
    doc = yaml.safe_load((out / "catalogs" / "catalog-minimal-bookworm.yaml").read_text())
    [entry] = doc["spec"]["images"]
    assert entry["major"] == 15
    return str(entry["image"])


def test_first_run_publishes_the_gated_image_with_every_tag(
    story: tuple[Settings, list[RunOutcome], list[Path]], registry: RegistryServer
) -> None:
    _, outcomes, outs = story
    first = outcomes[0]
    assert first.exit_code == 1  # the loose flavour failed its gate
    clean = first.outcomes[CLEAN]
    assert clean.decision == "built" and clean.signed, clean.reason
    assert clean.reason == "no image published for it yet"  # the summary's "why"
    client = RegistryClient(registry.address)
    ref = clean.published
    m = re.fullmatch(
        rf"{re.escape(registry.address)}/{REPO}:(15\.\d+)-(\d{{12}})-minimal-bookworm@(sha256:[0-9a-f]{{64}})",
        ref,
    )
    assert m, ref
    minor, stamp, digest = m.groups()
    immutable = f"{minor}-{stamp}-minimal-bookworm"
    for tag in (immutable, f"{minor}-minimal-bookworm", "15-minimal-bookworm"):
        assert TAGS[0][tag] == digest, tag
    assert client.digest(REPO, immutable) == digest  # still, after every later run
    assert catalog_image(outs[0]) == ref
    cosign = locate_cosign(insecure_registry=True)
    verified = verify_image(
        cosign, client, f"{registry.address}/{REPO}:{immutable}", ensure_key(cosign).public
    )
    assert verified.digest == digest


def test_the_gate_report_shows_both_vulnerability_scanners_per_image(
    story: tuple[Settings, list[RunOutcome], list[Path]],
) -> None:
    _, _, outs = story
    gate = json.loads((outs[0] / "reports" / "gate.json").read_text(encoding="utf-8"))
    assert len(gate["images"]) == 2
    for image in gate["images"]:
        scanners = {s["source"]: s for s in image["scanners"]}
        assert set(scanners) == {"dockle", "trivy", "clair"}
        assert not scanners["clair"]["blind"], scanners["clair"]
        assert "debian/updater for Debian GNU/Linux 12 (bookworm)" in scanners["clair"]["database"]
        assert image["crosscheck"]["scanners"] == ["trivy", "clair"]
    sarif = json.loads((outs[0] / "reports" / "gate.sarif").read_text(encoding="utf-8"))
    for result in sarif["runs"][0]["results"]:
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert uri.startswith(("images/", "dockerfiles/")), uri


def test_image_that_fails_its_gate_is_in_staging_only(
    story: tuple[Settings, list[RunOutcome], list[Path]], registry: RegistryServer
) -> None:
    _, outcomes, _ = story
    loose = outcomes[0].outcomes[LOOSE]
    assert loose.decision == "failed-gate"
    assert "sudo" in loose.reason or "CIS-4.3" in loose.reason or "DISA-2.12" in loose.reason
    assert loose.published == "" and "/staging/" in loose.staged
    client = RegistryClient(registry.address)
    assert client.digest(REPO, "15-loose-bookworm") is None
    assert not [t for t in client.list_tags(REPO) if "loose" in t]
    assert [t for t in client.list_tags("staging/" + REPO) if "loose" in t]


def test_second_run_with_nothing_changed_does_nothing(
    story: tuple[Settings, list[RunOutcome], list[Path]], registry: RegistryServer
) -> None:
    _, outcomes, outs = story
    second = outcomes[1].outcomes[CLEAN]
    assert second.decision == "unchanged"
    assert second.published == outcomes[0].outcomes[CLEAN].published
    assert outcomes[1].build is not None
    assert outcomes[1].build.images[CLEAN].published  # not built
    assert catalog_image(outs[1]) == catalog_image(outs[0])
    assert TAGS[1] == TAGS[0]  # one immutable tag and two rolling ones: nothing new
    assert len([t for t in TAGS[1] if "minimal" in t]) == 3
    # ... but its published image was gated again, by digest, against today's DB
    regate = outcomes[1].regate[CLEAN]
    assert regate.outcome == "pass", regate.reasons
    assert regate.reference.endswith(second.published.rsplit("@", 1)[1])
    assert second.regate == "published image re-gated against today's DB: pass"
    record = json.loads((outs[1] / "run.json").read_text(encoding="utf-8"))
    assert record["regate"][CLEAN]["outcome"] == "pass" and record["withdrawn"] == []
    db = record["regate_provenance"]["vulnerability_db"]
    assert db["source"] == "debian-archive" and db["advisories"] > 0
    regate_report = json.loads((outs[1] / "reports" / "regate.json").read_text(encoding="utf-8"))
    assert [i["status"] for i in regate_report["images"]] == ["pass"]


def test_a_published_image_s_gate_pass_is_recorded_for_the_next_night(
    story: tuple[Settings, list[RunOutcome], list[Path]],
) -> None:
    assert RECORDED == [True]


def test_a_third_night_with_nothing_moved_keeps_the_pass_without_scanning(
    story: tuple[Settings, list[RunOutcome], list[Path]],
) -> None:
    _, outcomes, outs = story
    third = outcomes[2]
    regate = third.regate[CLEAN]
    assert regate.outcome == "pass" and regate.standing_since is not None
    assert third.outcomes[CLEAN].regate.startswith(
        f"published image's pass of {regate.standing_since.isoformat()} stands"
    )
    assert third.regate_report is None  # nothing was pulled or scanned
    assert not (outs[2] / "reports" / "regate.json").exists()
    assert catalog_image(outs[2]) == catalog_image(outs[1])


def test_failed_rebuild_keeps_the_previous_catalog_digest(
    story: tuple[Settings, list[RunOutcome], list[Path]], registry: RegistryServer
) -> None:
    _, outcomes, outs = story
    third = outcomes[3].outcomes[CLEAN]
    assert third.decision == "failed-gate"
    assert outcomes[3].build is not None and not outcomes[3].build.images[CLEAN].published
    assert catalog_image(outs[3]) == outcomes[0].outcomes[CLEAN].published
    first_digest = outcomes[0].outcomes[CLEAN].published.rsplit("@", 1)[1]
    assert TAGS[3]["15-minimal-bookworm"] == first_digest
    assert TAGS[3] == TAGS[0]


def test_rebuild_republishes_unchanged_inputs_under_a_new_digest(
    story: tuple[Settings, list[RunOutcome], list[Path]], registry: RegistryServer
) -> None:
    _, outcomes, outs = story
    first, fourth = outcomes[0].outcomes[CLEAN], outcomes[4].outcomes[CLEAN]
    assert list(outcomes[4].outcomes) == [CLEAN]  # only the chosen target
    assert fourth.decision == "built" and fourth.signed
    assert outcomes[4].build is not None and outcomes[0].build is not None
    rebuilt = outcomes[4].build.images[CLEAN]
    assert not rebuilt.published and not rebuilt.reused
    assert rebuilt.fingerprint == outcomes[0].build.images[CLEAN].fingerprint  # same inputs
    new_digest = fourth.published.rsplit("@", 1)[1]
    assert new_digest != first.published.rsplit("@", 1)[1]
    assert catalog_image(outs[4]) == fourth.published
    assert TAGS[4]["15-minimal-bookworm"] == new_digest
    release = [[t for t in tags if not t.startswith("sha256-")] for tags in TAGS]  # no .sig/.att
    assert len(release[4]) == len(release[3]) + 1  # a second immutable tag; the first stays


def test_sharded_stage_only_then_promote(tmp_path_factory: pytest.TempPathFactory) -> None:
    """CI shards stage only; nothing reaches the release repository until `promote`."""
    from pipeline.stages.promote import promote_staged

    root = tmp_path_factory.mktemp("shard-root")
    write_root(root, '["postgresql-{major}"]')
    with RegistryServer(tmp_path_factory.mktemp("shard-registry")) as server:
        settings = Settings(root=root, cache=default_cache(), registry=server.address, jobs=2)
        out = tmp_path_factory.mktemp("shard-out")
        options = RunOptions(
            out_dir=out,
            scanners=make_scanners(
                DEFAULT_SCANNERS, scan_settings(settings, archive_db(settings), False)
            ),
            shard=(2, 2),  # flavours sort loose, minimal: shard 2 of 2 is the minimal one
            stage_only=True,
        )
        run = run_pipeline(settings, options, Silent())
        assert list(run.outcomes) == [CLEAN]
        assert run.outcomes[CLEAN].staged and not run.outcomes[CLEAN].published
        client = RegistryClient(server.address)
        assert client.list_tags(REPO) == ()
        assert (out / "staged.json").is_file() and (out / "sboms" / f"{CLEAN}.cdx.json").is_file()
        assert not (out / "catalogs").exists()

        done = promote_staged(settings, [out], out)
        assert done.errors == []
        [image] = done.promoted
        assert client.digest(REPO, "15-minimal-bookworm") == image.digest
        assert catalog_image(out) == image.reference
