"""Scan stage: every scanner and native check on each image, then the gate.

Images are scanned in parallel (bounded), scanners of one image one after the other;
the vulnerability DB is prepared once for the whole run before any scan starts, for the
Debian releases and source packages the images hold (read from each image's dpkg
database without running it), and Clair reports when its updaters last stored data.
Scanners that read from a registry (Clair) get the image's staged reference by digest.
A scanner that crashes, times out or prints something unparsable is recorded as a
ScannerError on the image, which the gate treats as "not proven safe": the image fails
(fail closed). A scanner that answers but could not see (a stale or empty vulnerability
database) is recorded as blind: its findings count, but the vulnerability controls
cannot pass on it. The report names every scanner, its version and the DB it used, and
the gate judges the DB's age against the policy.
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
from pipeline.compliance.native_base import (
    AptOutputError,
    NativeInputs,
    TrustedBase,
    UpdateEvidence,
    parse_apt_simulation,
)
from pipeline.errors import DrydockError, ScanError, ToolError
from pipeline.models.compliance import (
    GateReport,
    ImageScan,
    NativeSettings,
    ScannerError,
    ScannerRun,
    ran_by,
)
from pipeline.models.findings import Finding, Source
from pipeline.models.provenance import OsFacts, ScanProvenance, ToolInfo
from pipeline.scan.base import Scanner, ScanOutput
from pipeline.scan.dockle import STRUCTURAL_BLIND
from pipeline.scan.resolve import ResolvedImage
from pipeline.scan.trivy import TrivyScanner
from pipeline.tools import docker

log = logging.getLogger(__name__)

TARGET_LABEL = "io.drydock.target"  # set by the Dockerfile templates


@dataclass(frozen=True)
class ScanTarget:
    """One image to scan: a reference in the local engine and what is known about it."""

    image: str  # local tag or id: what is saved and scanned
    flavour: str = ""
    bootstrapped: bool = False  # a Debian base Drydock built from packages
    name: str = ""  # what reports call it (default: `image`)
    digest: str = ""  # the registry digest being scanned, when it came from a registry
    remote: str = ""  # a registry reference by digest, for scanners that read registries
    target: str = ""  # the plan target it was built from ("" = read its io.drydock.target)
    dockerfile: str | None = None  # the Dockerfile it was built from, when known
    allowed_ports: tuple[str, ...] | None = None  # DISA-2.13 for this image (None: policy's)

    @property
    def label(self) -> str:
        return self.name or self.image

    @classmethod
    def resolved(cls, image: ResolvedImage, flavour: str = "") -> ScanTarget:
        """A resolved image; one pulled from a registry by digest is scanned there too."""
        remote = ""
        if image.digest and "/" in image.name:
            remote = f"{image.name.split('@', 1)[0]}@{image.digest}"
        return cls(
            image.image_id, flavour=flavour, name=image.name, digest=image.digest, remote=remote
        )


@dataclass(frozen=True)
class ScanConfig:
    controls: Path
    policy: Path
    waivers: Path

    @classmethod
    def in_dir(
        cls, folder: Path, policy: Path | None = None, waivers: Path | None = None
    ) -> ScanConfig:
        return cls(
            folder / "controls.yaml",
            policy or folder / "policy.yaml",
            waivers or folder / "waivers.yaml",
        )

    def check(self, today: dt.date) -> None:
        """Read and validate all three files now (PolicyError, exit 2), before any work."""
        controls = load_controls(self.controls)
        policy = load_policy(self.policy)
        load_waivers(self.waivers, controls, max_days=policy.max_waiver_days, today=today)


@dataclass
class ScanRun:
    report: GateReport
    outputs: dict[str, list[ScanOutput]] = field(default_factory=dict)
    sboms: dict[str, Path] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)  # image -> plan target name
    seconds: float = 0.0


def _slug(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", ref).strip("_")


def _updates(image: str, timeout: float) -> tuple[UpdateEvidence | None, str]:
    """CIS 4.4: which upgrades apt would install in the image right now, or (None, why)
    when that cannot be known (no network, a timeout, apt errors, output without apt's
    summary): then CIS-4.4 is unverified, never passed."""
    try:
        text = docker.apt_simulation(image, timeout=timeout)
        source = f"apt-get -s dist-upgrade (holds ignored) in {image}"
        return parse_apt_simulation(text, source=source), ""
    except (ToolError, AptOutputError) as err:
        why = f"the apt simulation failed: {str(err).splitlines()[0]}"
        log.warning("%s: %s; CIS-4.4 stays unverified", image, why)
        return None, why


def trusted_bases(refs: Sequence[str]) -> tuple[TrustedBase, ...]:
    """The layers of each base (image id or reference) found in the local engine; one
    that is not there is left out (an image on it is then not recognised: fail closed)."""
    bases = []
    for ref in dict.fromkeys(refs):
        inspected = docker.inspect(ref)
        layers = tuple((inspected or {}).get("RootFS", {}).get("Layers") or ())
        if not layers:
            log.info("trusted base %s is not in the local engine: not used", ref)
            continue
        bases.append(TrustedBase(ref, tuple(str(layer) for layer in layers)))
    return tuple(bases)


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


@dataclass
class _Collected:
    """What the scanners said about one image, gathered as they run."""

    findings: list[Finding] = field(default_factory=list)
    ran: set[str] = field(default_factory=set)
    errors: list[ScannerError] = field(default_factory=list)
    runs: list[ScannerRun] = field(default_factory=list)
    blind: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[ScanOutput] = field(default_factory=list)
    sbom: Path | None = None
    os: OsFacts | None = None  # what Trivy saw of the OS and its packages


def blind_level(blind: Sequence[tuple[str, str]]) -> int:
    """WARNING when a scanner could not see something it should have; INFO when all it
    missed is structural (Dockle's tag check on an archive: every image, every run). The
    reports and the gate record both alike."""
    return logging.INFO if all(key in STRUCTURAL_BLIND for key, _ in blind) else logging.WARNING


def _run_scanners(
    target: ScanTarget, scanners: Sequence[Scanner], tar: Path, scratch: Path
) -> _Collected:
    got = _Collected()
    for scanner in scanners:
        source = Source(scanner.name)
        ref = target.remote if scanner.needs_registry else target.label
        if not ref:
            message = f"{scanner.name}: {target.label} is in no registry (stage it first)"
            got.errors.append(ScannerError(source, message))
            continue
        try:
            out = scanner.scan(tar, ref)
        except ScanError as exc:
            got.errors.append(ScannerError(source, str(exc)))
            continue
        got.outputs.append(out)
        got.findings.extend(out.findings)
        why = "; ".join(reason for _, reason in out.blind)
        got.runs.append(ScannerRun(source, len(out.findings), out.seconds, out.database, why))
        got.blind += out.blind
        if why:
            log.log(
                blind_level(out.blind), "%s: %s could not see: %s", target.label, scanner.name, why
            )
        got.ran |= ran_by(source) - {key for key, _ in out.blind}
        if isinstance(scanner, TrivyScanner):
            got.os = out.os
            try:
                got.sbom = scratch / "sbom.cdx.json"
                got.sbom.write_text(scanner.sbom(tar), encoding="utf-8")
            except ScanError as exc:
                got.errors.append(ScannerError(Source.TRIVY, f"SBOM: {exc}"))
                got.sbom = None
    return got


def scan_one(
    target: ScanTarget,
    scanners: Sequence[Scanner],
    work: Path,
    policy_native: NativeSettings,
    known_bases: tuple[TrustedBase, ...] | None,
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
    got = _run_scanners(target, scanners, tar, scratch)
    updates, problem = _updates(target.image, timeout) if check_updates else (None, "")
    inputs = NativeInputs(
        flavour=target.flavour,
        target=target.target or docker.labels_of(inspected).get(TARGET_LABEL, ""),
        updates=updates,
        updates_problem=problem,
        trusted_bases=known_bases,
        bootstrapped=target.bootstrapped,
        postgres_eol=lifecycle.postgres_eol,
        today=lifecycle.today,
        dockerfile=target.dockerfile,
        allowed_ports=target.allowed_ports,
    )
    try:
        # The archive holds exactly the one image saved above, whatever name it goes by.
        native = check_image_archive(tar, policy_native, inputs)
        got.findings.extend(native.findings)
        got.ran |= native.ran
        got.blind += native.blind
    except (DrydockError, OSError, tarfile.TarError, ValueError, KeyError) as exc:
        # An image the native checks cannot read is not proven safe: fail closed.
        got.errors.append(ScannerError(Source.NATIVE, f"native checks failed: {exc}"))
    finally:
        tar.unlink(missing_ok=True)
    scan = ImageScan(
        image=target.label,
        findings=tuple(got.findings),
        ran=frozenset(got.ran),
        errors=tuple(got.errors),
        digest=target.digest or str(inspected.get("Id", "")),
        os=got.os,
        runs=tuple(got.runs),
        blind=tuple(got.blind),
    )
    return scan, got.outputs, got.sbom


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
    trusted: Sequence[str] = (),
    check_updates: bool = True,
    timeout: float = 600.0,
    on_done: Callable[[ImageScan], None] | None = None,
    postgres_eol: tuple[tuple[int, dt.date], ...] | None = None,
) -> ScanRun:
    """Scan every target and judge them; input errors (policy, waivers) raise first.

    `known_bases` (image ids of the bases Drydock built in this run), `trusted` (more base
    references: Drydock's bases in the engine, descriptor-pinned ones, --trusted-base) and
    the policy's trusted_bases / trusted_base_digests are the bases an image's layers may
    start with (CIS-4.2, DISA-2.14, 2.17); read from the engine once per run."""
    start = time.monotonic()
    controls = load_controls(config.controls)
    policy = load_policy(config.policy)
    today = today or dt.datetime.now(dt.UTC).date()
    waivers = load_waivers(config.waivers, controls, max_days=policy.max_waiver_days, today=today)
    work.mkdir(parents=True, exist_ok=True)
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
    native = policy.native
    bases = trusted_bases(
        [*sorted(known_bases or ()), *trusted, *native.trusted_bases, *native.trusted_base_digests]
    )

    def one(target: ScanTarget) -> tuple[ImageScan, list[ScanOutput], Path | None]:
        scan, outputs, sbom = scan_one(
            target, active, work, policy.native, bases, check_updates, timeout, lifecycle
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
        labels = {} if target.target else docker.labels_of(docker.inspect(target.image) or {})
        run.targets[target.label] = target.target or labels.get(TARGET_LABEL, "")
        if sbom is not None:
            run.sboms[target.label] = sbom
    return run
