"""Scan stage: every scanner and native check on each image, then the gate.

Images are scanned in parallel (bounded), scanners of one image one after the other;
the vulnerability DB is prepared once for the whole run before any scan starts, for the
Debian releases and source packages the images hold (read from each image's dpkg
database without running it). A scanner that crashes, times out or prints something
unparsable is recorded as a ScannerError on the image, which the gate treats as "not
proven safe": the image fails (fail closed). The report names every scanner, its version
and the DB it used, and the gate judges the DB's age against the policy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.archive.deb822 import installed_sources, os_release_codename
from pipeline.compliance.config import load_controls, load_policy, load_waivers
from pipeline.compliance.gate import evaluate
from pipeline.compliance.native import check_image_archive
from pipeline.compliance.native_base import NativeInputs, UpdateEvidence, parse_apt_simulation
from pipeline.errors import DrydockError, ScanError, ToolError
from pipeline.models.compliance import GateReport, ImageScan, NativeSettings, ScannerError, ran_by
from pipeline.models.findings import Finding, Source
from pipeline.models.provenance import OsFacts, ScanProvenance, ToolInfo
from pipeline.scan.base import Scanner, ScanOutput
from pipeline.scan.resolve import ResolvedImage
from pipeline.scan.trivy import TrivyScanner
from pipeline.tools import docker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanTarget:
    """One image to scan: a reference in the local engine and what is known about it."""

    image: str  # local tag or id: what is saved and scanned
    flavour: str = ""
    bootstrapped: bool = False  # a Debian base Drydock built from packages
    name: str = ""  # what reports call it (default: `image`)
    digest: str = ""  # the registry digest being scanned, when it came from a registry

    @property
    def label(self) -> str:
        return self.name or self.image

    @classmethod
    def resolved(cls, image: ResolvedImage, flavour: str = "") -> ScanTarget:
        return cls(image.image_id, flavour=flavour, name=image.name, digest=image.digest)


@dataclass(frozen=True)
class ScanConfig:
    controls: Path
    policy: Path
    waivers: Path

    @classmethod
    def in_dir(cls, folder: Path, policy: Path | None = None) -> ScanConfig:
        return cls(
            folder / "controls.yaml", policy or folder / "policy.yaml", folder / "waivers.yaml"
        )


@dataclass
class ScanRun:
    report: GateReport
    outputs: dict[str, list[ScanOutput]] = field(default_factory=dict)
    sboms: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def _slug(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", ref).strip("_")


def _updates(image: str, timeout: float) -> UpdateEvidence | None:
    """CIS 4.4: which upgrades apt would install in the image right now, or None if unknown."""
    try:
        text = docker.apt_simulation(image, timeout=timeout)
    except ToolError as err:
        log.warning("%s: could not simulate apt upgrade (%s); CIS-4.4 stays unverified", image, err)
        return None
    return parse_apt_simulation(text, source=f"apt-get -s upgrade in {image}")


STATUS_FILE = "/var/lib/dpkg/status"
OS_RELEASE_FILES = ("/etc/os-release", "/usr/lib/os-release")


def image_inventory(images: Sequence[str]) -> dict[str, frozenset[str]]:
    """Debian release -> source packages installed, over the images (read from each
    image's dpkg database and os-release without running it). An image that cannot be
    read adds nothing: its scan says so."""
    found: dict[str, set[str]] = {}
    for image in images:
        try:
            files = docker.read_files(image, (STATUS_FILE, *OS_RELEASE_FILES))
        except ToolError as err:
            log.warning("%s: package inventory unreadable (%s)", image, err)
            continue
        release = next(
            (
                os_release_codename(files[p].decode("utf-8", "replace"))
                for p in OS_RELEASE_FILES
                if p in files
            ),
            "",
        )
        if release and STATUS_FILE in files:
            status = files[STATUS_FILE].decode("utf-8", "replace")
            found.setdefault(release, set()).update(installed_sources(status))
    return {release: frozenset(sources) for release, sources in found.items()}


@dataclass(frozen=True)
class ScanLifecycle:
    """End-of-life dates the native checks judge by, and the day to judge them on."""

    postgres_eol: tuple[tuple[int, dt.date], ...] | None = None
    today: dt.date | None = None


def scan_one(
    target: ScanTarget,
    scanners: Sequence[Scanner],
    work: Path,
    policy_native: NativeSettings,
    known_bases: frozenset[str] | None,
    check_updates: bool,
    timeout: float,
    lifecycle: ScanLifecycle = ScanLifecycle(),
) -> tuple[ImageScan, list[ScanOutput], Path | None]:
    """Save the image, run each scanner and the native checks, never raising ScanError."""
    # A directory of its own per scan: several runs may scan the same image at once.
    scratch = Path(tempfile.mkdtemp(prefix=f"{_slug(target.label)}-", dir=work))
    tar = scratch / "image.tar"
    inspected = docker.inspect(target.image)
    if inspected is None:
        err = ScannerError(Source.NATIVE, f"image {target.image} is not in the local engine")
        return ImageScan(image=target.label, errors=(err,)), [], None
    docker.save(target.image, tar)
    findings: list[Finding] = []
    ran: set[str] = set()
    errors: list[ScannerError] = []
    outputs: list[ScanOutput] = []
    sbom_path: Path | None = None
    os_facts: OsFacts | None = None
    blind: list[tuple[str, str]] = []
    for scanner in scanners:
        try:
            out = scanner.scan(tar, target.label)
        except ScanError as exc:
            errors.append(ScannerError(Source(scanner.name), str(exc)))
            continue
        outputs.append(out)
        findings.extend(out.findings)
        ran |= ran_by(Source(scanner.name))
        blind += out.blind
        if isinstance(scanner, TrivyScanner):
            os_facts = out.os
        if isinstance(scanner, TrivyScanner):
            try:
                sbom_path = scratch / "sbom.cdx.json"
                sbom_path.write_text(scanner.sbom(tar), encoding="utf-8")
            except ScanError as exc:
                errors.append(ScannerError(Source.TRIVY, f"SBOM: {exc}"))
                sbom_path = None
    inputs = NativeInputs(
        flavour=target.flavour,
        updates=_updates(target.image, timeout) if check_updates else None,
        known_base_digests=known_bases,
        bootstrapped=target.bootstrapped,
        postgres_eol=lifecycle.postgres_eol,
        today=lifecycle.today,
    )
    try:
        # The archive holds exactly the one image saved above, whatever name it goes by.
        native = check_image_archive(tar, policy_native, inputs)
        findings.extend(native.findings)
        ran |= native.ran
    except (DrydockError, OSError, tarfile.TarError, ValueError, KeyError) as exc:
        # An image the native checks cannot read is not proven safe: fail closed.
        errors.append(ScannerError(Source.NATIVE, f"native checks failed: {exc}"))
    finally:
        tar.unlink(missing_ok=True)
    scan = ImageScan(
        image=target.label,
        findings=tuple(findings),
        ran=frozenset(ran),
        errors=tuple(errors),
        digest=target.digest or str(inspected.get("Id", "")),
        os=os_facts,
        blind=tuple(blind),
    )
    return scan, outputs, sbom_path


def provenance_of(scanners: Sequence[Scanner]) -> ScanProvenance:
    """Which scanners (and versions) ran, with which vulnerability DB, as of now."""
    db = next((s.db for s in scanners if isinstance(s, TrivyScanner) and s.db), None)
    return ScanProvenance(
        generated_at=dt.datetime.now(dt.UTC),
        scanners=tuple(ToolInfo(s.name, s.version()) for s in scanners),
        vuln_db=db,
    )


def scan_images(
    targets: Sequence[ScanTarget],
    scanners: Sequence[Scanner],
    config: ScanConfig,
    work: Path,
    *,
    jobs: int = 2,
    today: dt.date | None = None,
    known_bases: frozenset[str] | None = None,
    check_updates: bool = True,
    timeout: float = 600.0,
    on_done: Callable[[ImageScan], None] | None = None,
    postgres_eol: tuple[tuple[int, dt.date], ...] | None = None,
) -> ScanRun:
    """Scan every target and judge them; input errors (policy, waivers) raise first."""
    start = time.monotonic()
    controls = load_controls(config.controls)
    policy = load_policy(config.policy)
    waivers = load_waivers(config.waivers, controls)
    work.mkdir(parents=True, exist_ok=True)
    today = today or dt.datetime.now(dt.UTC).date()
    inventory = image_inventory([t.image for t in targets])
    prepare_errors: list[ScannerError] = []
    for scanner in scanners:
        try:
            scanner.prepare(inventory)  # e.g. the vulnerability DB, once per run
        except ScanError as exc:
            prepare_errors.append(ScannerError(Source(scanner.name), str(exc)))
    failed = {e.source.value for e in prepare_errors}
    active = [s for s in scanners if s.name not in failed]
    lifecycle = ScanLifecycle(postgres_eol, today)

    def one(target: ScanTarget) -> tuple[ImageScan, list[ScanOutput], Path | None]:
        scan, outputs, sbom = scan_one(
            target, active, work, policy.native, known_bases, check_updates, timeout, lifecycle
        )
        if prepare_errors:
            scan = dataclasses.replace(scan, errors=scan.errors + tuple(prepare_errors))
        if on_done is not None:
            on_done(scan)
        return scan, outputs, sbom

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, targets))
    report = evaluate(
        [r[0] for r in results],
        controls,
        policy,
        waivers,
        today,
        provenance=provenance_of(scanners),
    )
    run = ScanRun(report=report, seconds=time.monotonic() - start)
    for target, (_, outputs, sbom) in zip(targets, results, strict=True):
        run.outputs[target.label] = outputs
        if sbom is not None:
            run.sboms[target.label] = sbom
    return run
