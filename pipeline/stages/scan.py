"""Scan stage: every scanner and native check on each image, then the gate.

Images are scanned in parallel (bounded), scanners of one image one after the other;
Trivy's DB is fetched once for the whole run before any scan starts. A scanner that
crashes, times out or prints something unparsable is recorded as a ScannerError on the
image, which the gate treats as "not proven safe": the image fails (fail closed).
"""

from __future__ import annotations

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

from pipeline.compliance.config import load_controls, load_policy, load_waivers
from pipeline.compliance.gate import evaluate
from pipeline.compliance.native import check_image_archive
from pipeline.compliance.native_base import NativeInputs, UpdateEvidence, parse_apt_simulation
from pipeline.errors import DrydockError, ScanError, ToolError
from pipeline.models.compliance import GateReport, ImageScan, NativeSettings, ScannerError, ran_by
from pipeline.models.findings import Finding, Source
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


def scan_one(
    target: ScanTarget,
    scanners: Sequence[Scanner],
    work: Path,
    policy_native: NativeSettings,
    known_bases: frozenset[str] | None,
    check_updates: bool,
    timeout: float,
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
    for scanner in scanners:
        try:
            out = scanner.scan(tar, target.label)
        except ScanError as exc:
            errors.append(ScannerError(Source(scanner.name), str(exc)))
            continue
        outputs.append(out)
        findings.extend(out.findings)
        ran |= ran_by(Source(scanner.name))
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
    )
    return scan, outputs, sbom_path


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
) -> ScanRun:
    """Scan every target and judge them; input errors (policy, waivers) raise first."""
    start = time.monotonic()
    controls = load_controls(config.controls)
    policy = load_policy(config.policy)
    waivers = load_waivers(config.waivers, controls)
    work.mkdir(parents=True, exist_ok=True)
    prepare_errors: list[ScannerError] = []
    for scanner in scanners:
        if isinstance(scanner, TrivyScanner):
            try:
                scanner.prepare()  # the DB, once per run
            except ScanError as exc:
                prepare_errors.append(ScannerError(Source.TRIVY, str(exc)))
    active = [s for s in scanners if not (isinstance(s, TrivyScanner) and prepare_errors)]

    def one(target: ScanTarget) -> tuple[ImageScan, list[ScanOutput], Path | None]:
        scan, outputs, sbom = scan_one(
            target, active, work, policy.native, known_bases, check_updates, timeout
        )
        if prepare_errors:
            errors = scan.errors + tuple(prepare_errors)
            scan = ImageScan(scan.image, scan.findings, scan.ran, errors, scan.digest)
        if on_done is not None:
            on_done(scan)
        return scan, outputs, sbom

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, targets))
    report = evaluate(
        [r[0] for r in results], controls, policy, waivers, today or dt.datetime.now(dt.UTC).date()
    )
    run = ScanRun(report=report, seconds=time.monotonic() - start)
    for target, (_, outputs, sbom) in zip(targets, results, strict=True):
        run.outputs[target.label] = outputs
        if sbom is not None:
            run.sboms[target.label] = sbom
    return run
