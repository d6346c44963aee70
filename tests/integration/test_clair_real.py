"""The real Clair v4 next to the real Trivy, on a real image in the real registry.

One private Clair (its own PostgreSQL, feed front and ports; pipeline.tools.clair_service)
serves advisories this module writes: the CVE ids the changelog of bookworm-security's
openssl upload names, fixed in the version bookworm-security really has. Trivy's DB is
built from the same advisories with the real trivy-db builder. The image holds libssl3 at
the bookworm point release (apt-mark hold: `apt-get upgrade` skips it), so only the
vulnerability scanners can see it; both must report exactly those CVE ids.

Then Clair fails closed: down (nothing listening), wrong key (PSK auth is on), an empty
matcher database and a stale feed leave the vulnerability controls error/unverified, never
pass. Nothing is skipped: a missing engine, registry, mirror or binary fails the run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from clair_support import (
    OPENSSL_CVES,
    HeldImage,
    PrivateClair,
    held_libssl3_image,
    openssl_advisories,
    start_clair,
)
from click.testing import CliRunner
from native_support import base_image

from pipeline.cli import main
from pipeline.models.compliance import ControlStatus, ImageVerdict, Policy, VerdictStatus
from pipeline.models.findings import Source
from pipeline.scan.base import ScanSettings
from pipeline.scan.scanners import make_scanners
from pipeline.scan.trivydb import ensure_local_db
from pipeline.settings import Settings, default_cache
from pipeline.stages.scan import ScanConfig, ScanRun, ScanTarget, scan_images
from pipeline.stages.scan_context import stage_for_scan
from pipeline.stages.vulndb import vuln_db_spec
from pipeline.tools import clair_service
from pipeline.tools.clair_service import ClairSettings
from pipeline.tools.daemon import free_ports

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = "127.0.0.1:5000"
VULN_CONTROLS = ("CIS-4.4", "DISA-2.15")


@dataclass(frozen=True)
class _Registry:
    registry: str


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> HeldImage:
    base, _ = base_image()
    image = held_libssl3_image(tmp_path_factory.mktemp("held"), base)
    if image.installed == image.fixed:
        pytest.fail(f"bookworm-security has no libssl3 newer than {image.installed}")
    return image


@pytest.fixture(scope="module")
def clair(tmp_path_factory: pytest.TempPathFactory, held: HeldImage) -> Iterator[PrivateClair]:
    instance = start_clair(tmp_path_factory.mktemp("clair"), openssl_advisories(held.fixed))
    try:
        yield instance
    finally:
        instance.stop()


def _scan(
    image: str, settings: ScanSettings, names: tuple[str, ...], work: Path, policy: Path
) -> ScanRun:
    scanners = make_scanners(names, settings)
    targets = stage_for_scan([ScanTarget(image)], REGISTRY)
    return scan_images(
        targets,
        scanners,
        ScanConfig.in_dir(ROOT / "scan-config", policy),
        work,
        check_updates=False,
    )


def _policy(tmp: Path, required: str) -> Path:
    text = (ROOT / "scan-config" / "policy.yaml").read_text(encoding="utf-8")
    path = tmp / "policy.yaml"
    assert "required_scanners: []" in text
    path.write_text(text.replace("required_scanners: []", required), encoding="utf-8")
    return path


def _status(verdict: ImageVerdict, control: str) -> ControlStatus:
    return next(r.status for r in verdict.controls if r.control.id == control)


def _evidence(verdict: ImageVerdict, control: str) -> tuple[str, ...]:
    return next(r.evidence for r in verdict.controls if r.control.id == control)


def _ids(verdict: ImageVerdict, source: Source) -> set[str]:
    return {
        af.finding.id
        for af in verdict.findings
        if af.finding.source is source and af.finding.package == "libssl3"
    }


def test_clair_and_trivy_report_the_same_cves_for_a_held_libssl3(
    clair: PrivateClair, held: HeldImage, tmp_path: Path
) -> None:
    advisories = openssl_advisories(held.fixed)
    db = ensure_local_db(_Registry(REGISTRY), advisories, repository="drydock-test/clair-trivy-db")
    settings = clair.scan_settings(default_cache() / "trivy", db_repository=db)
    policy = _policy(tmp_path, "required_scanners: [trivy, clair]")
    run = _scan(held.tag, settings, ("trivy", "clair"), tmp_path / "work", policy)
    (verdict,) = run.report.images

    assert not verdict.errors, verdict.errors
    assert _ids(verdict, Source.TRIVY) == set(OPENSSL_CVES)
    assert _ids(verdict, Source.CLAIR) == set(OPENSSL_CVES)
    clair_libssl3 = [
        af.finding
        for af in verdict.findings
        if af.finding.source is Source.CLAIR and af.finding.package == "libssl3"
    ]
    assert {(f.installed_version, f.fixed_version) for f in clair_libssl3} == {
        (held.installed, held.fixed)
    }
    check = verdict.crosscheck
    assert check.scanners == (Source.TRIVY, Source.CLAIR) and check.compared
    libssl3 = [v for v in check.vulnerabilities if v.package == "libssl3"]
    assert {v.id for v in libssl3} == set(OPENSSL_CVES)
    assert all(v.seen_by == (Source.TRIVY, Source.CLAIR) for v in libssl3)
    assert not [v for v in check.disagreements if v.package == "libssl3"]
    assert all(_status(verdict, c) is ControlStatus.FAIL for c in VULN_CONTROLS)
    (clair_run,) = [r for r in verdict.runs if r.source is Source.CLAIR]
    assert not clair_run.blind and "debian/updater" in clair_run.database
    assert verdict.status is VerdictStatus.FAIL


def test_a_clair_that_is_down_fails_closed(held: HeldImage, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    settings = ScanSettings(cache_dir=tmp_path, clair_url=f"http://127.0.0.1:{port}", timeout=20)
    policy = _policy(tmp_path, "required_scanners: [clair]")
    run = _scan(held.tag, settings, ("clair",), tmp_path / "work", policy)
    (verdict,) = run.report.images
    assert verdict.status is VerdictStatus.ERROR
    assert [e.source for e in verdict.errors] == [Source.CLAIR]
    assert all(_status(verdict, c) is ControlStatus.ERROR for c in VULN_CONTROLS)


def test_clair_refuses_a_wrong_key(clair: PrivateClair, held: HeldImage, tmp_path: Path) -> None:
    wrong = tmp_path / "psk"
    wrong.write_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", encoding="utf-8")
    settings = dataclasses.replace(clair.scan_settings(tmp_path), clair_psk_file=wrong)
    policy = _policy(tmp_path, "required_scanners: [clair]")
    run = _scan(held.tag, settings, ("clair",), tmp_path / "work", policy)
    (verdict,) = run.report.images
    assert verdict.status is VerdictStatus.ERROR
    assert "refused Drydock's credentials" in verdict.errors[0].message


def test_an_empty_then_stale_clair_leaves_the_vulnerability_controls_unverified(
    held: HeldImage, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """No finding, yet no pass: the data could not have shown the problem."""
    policy = _policy(tmp_path, "required_scanners: [clair]")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # Feed times only move forward (If-Modified-Since): empty 4 days ago, stale 3, then now.
    empty = start_clair(tmp_path_factory.mktemp("clair-empty"), [], now - dt.timedelta(days=4))
    try:
        run = _scan(held.tag, empty.scan_settings(tmp_path), ("clair",), tmp_path / "e", policy)
        (verdict,) = run.report.images
        assert not verdict.errors and not verdict.crosscheck.vulnerabilities
        assert "holds no vulnerability data" in verdict.runs[0].blind
        assert all(_status(verdict, c) is ControlStatus.UNVERIFIED for c in VULN_CONTROLS)
        assert verdict.status is VerdictStatus.FAIL

        # Data that cannot match this image (no postgresql-15 in it), three days old.
        stale = [dataclasses.replace(a, package="postgresql-15") for a in openssl_advisories("99")]
        empty.serve(stale, now - dt.timedelta(days=3))
        run = _scan(held.tag, empty.scan_settings(tmp_path), ("clair",), tmp_path / "s", policy)
        (verdict,) = run.report.images
        assert not verdict.errors and not _ids(verdict, Source.CLAIR)
        assert "3.0 days old (the policy allows 36.0 h)" in verdict.runs[0].blind
        assert all(_status(verdict, c) is ControlStatus.UNVERIFIED for c in VULN_CONTROLS)
        assert all("clair could not see" in " ".join(_evidence(verdict, c)) for c in VULN_CONTROLS)

        # The same data, fresh: now Clair can see, and the image has nothing it matches.
        empty.serve(stale, now)
        run = _scan(held.tag, empty.scan_settings(tmp_path), ("clair",), tmp_path / "f", policy)
        (verdict,) = run.report.images
        assert not verdict.runs[0].blind
        assert not any("could not see" in " ".join(_evidence(verdict, c)) for c in VULN_CONTROLS)
    finally:
        empty.stop()


def test_drydock_dev_clair_up_status_env_down(tmp_path: Path) -> None:
    """The commands people run: up (the repository's feed, every release of the plan),
    status, env (the exports `drydock run` reads; never the key itself), down --purge."""
    state = ["--state-dir", str(tmp_path / "clair")]
    runner = CliRunner()
    try:
        up = runner.invoke(main, ["dev", "clair", "up", *state])
        assert up.exit_code == 0, up.output
        assert "debian/updater data from" in up.output
        env = runner.invoke(main, ["dev", "clair", "env", *state])
        assert env.exit_code == 0
        exports = dict(item.split("=", 1) for item in env.output.split()[1:])
        assert exports["DRYDOCK_CLAIR_URL"].startswith("http://127.0.0.1:")
        psk_file = Path(exports["DRYDOCK_CLAIR_PSK_FILE"])
        assert psk_file.stat().st_mode & 0o077 == 0  # the key file is the owner's only
        assert psk_file.read_text().strip() not in up.output + env.output
        status = runner.invoke(main, ["dev", "clair", "status", *state])
        assert status.exit_code == 0 and "ready: yes" in status.output
        assert "updater debian/updater: data from" in status.output
    finally:
        down = runner.invoke(main, ["dev", "clair", "down", "--purge", *state])
    assert down.exit_code == 0
    after = runner.invoke(main, ["dev", "clair", "status", *state])
    assert after.exit_code == 3 and "ready: no" in after.output


def test_on_drydocks_archive_feed_both_scanners_name_the_same_real_cves(
    held: HeldImage, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The real thing: Trivy's debian-archive DB and Clair's feed front both from the feed
    derived from Debian's signed archive (bookworm-security's openssl changelog). The run
    serves the feed to its local Clair before scanning (`clair_state`)."""
    settings = Settings(root=ROOT, cache=default_cache())
    spec = vuln_db_spec("debian-archive", settings, Policy())
    clair = start_clair(tmp_path_factory.mktemp("clair-archive"), [])  # nothing until served
    try:
        scanning = dataclasses.replace(
            clair.scan_settings(default_cache() / "trivy", vuln_db=spec),
            clair_state=clair.settings.resolved_state_dir(),
        )
        policy = _policy(tmp_path, "required_scanners: [trivy, clair]")
        run = _scan(held.tag, scanning, ("trivy", "clair"), tmp_path / "work", policy)
        (verdict,) = run.report.images
        assert not verdict.errors, verdict.errors
        trivy_ids, clair_ids = _ids(verdict, Source.TRIVY), _ids(verdict, Source.CLAIR)
        assert trivy_ids and trivy_ids == clair_ids
        assert all(i.startswith(("CVE-", "DSU-")) for i in trivy_ids)
        assert not [v for v in verdict.crosscheck.disagreements if v.package == "libssl3"]
        clair_run = next(r for r in verdict.runs if r.source is Source.CLAIR)
        assert not clair_run.blind and "debian/updater" in clair_run.database
        assert all(_status(verdict, c) is ControlStatus.FAIL for c in VULN_CONTROLS)
    finally:
        clair.stop()


def test_clair_url_local_starts_the_local_clair_when_the_first_image_is_scanned(
    held: HeldImage, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """`--clair-url local` (make build-images): no Clair runs before the scan; the scan
    step starts one in the given state dir, serves it the run's archive feed, and its
    verdict rests on Clair's real data (both scanners name the same CVEs)."""
    settings = Settings(root=ROOT, cache=default_cache())
    spec = vuln_db_spec("debian-archive", settings, Policy())
    state = tmp_path_factory.mktemp("clair-local")
    local = ClairSettings(state_dir=state)
    assert not clair_service.status(local).ready
    scanning = ScanSettings(
        cache_dir=default_cache() / "trivy", vuln_db=spec, clair_url="local", clair_state=state
    )
    try:
        policy = _policy(tmp_path, "required_scanners: [trivy, clair]")
        run = _scan(held.tag, scanning, ("trivy", "clair"), tmp_path / "work", policy)
        assert clair_service.status(local).ready
        (verdict,) = run.report.images
        assert not verdict.errors, verdict.errors
        trivy_ids, clair_ids = _ids(verdict, Source.TRIVY), _ids(verdict, Source.CLAIR)
        assert trivy_ids and trivy_ids == clair_ids
        clair_run = next(r for r in verdict.runs if r.source is Source.CLAIR)
        assert not clair_run.blind and "debian/updater" in clair_run.database
    finally:
        clair_service.down(local, purge=True)
