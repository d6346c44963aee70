"""Run Trivy offline on a `docker save` tarball: JSON reports and CycloneDX SBOMs.

Every call is offline except the one that fetches the vulnerability DB (`download_db`),
which a run makes once into a shared cache directory; each scan then uses
`--skip-db-update` against that cache. The flags that stop Trivy from phoning home
(version check, telemetry, checks bundle, Java DB, Maven Central) are always passed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.tools.locate import locate
from pipeline.tools.runner import run

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 900.0
SCANNERS = ("vuln", "secret", "misconfig")
IMAGE_CONFIG_SCANNERS = ("misconfig", "secret")
OFFLINE_FLAGS = (
    "--skip-version-check",
    "--disable-telemetry",
    "--skip-check-update",
    "--offline-scan",
    "--skip-java-db-update",
)


@dataclass(frozen=True)
class TrivyOptions:
    """What a Trivy run needs besides the image."""

    cache_dir: Path  # shared by every scan of a run, so the DB is fetched once
    db_repository: str = ""  # e.g. "127.0.0.1:5000/drydock/trivy-db:2"; "" = Trivy default
    ignore_unfixed: bool = False
    severities: tuple[str, ...] = ()  # empty = all
    timeout: float = DEFAULT_TIMEOUT
    binary: Path | None = None  # None = the pinned build


def _exe(opts: TrivyOptions) -> str:
    return str(opts.binary or locate("trivy").path)


def _common(opts: TrivyOptions) -> list[str]:
    # Trivy's own timeout a little shorter than ours, so it reports before it is killed.
    inner = max(10, int(opts.timeout) - 15)
    # The scan cache in memory: Trivy's on-disk scan cache takes an exclusive lock, which
    # would serialise (or fail) the parallel scans of a run; the DB itself is shared.
    argv = [
        "--cache-dir",
        str(opts.cache_dir),
        "--cache-backend",
        "memory",
        *OFFLINE_FLAGS,
        "--timeout",
        f"{inner}s",
    ]
    if opts.db_repository:
        argv += ["--db-repository", opts.db_repository]
    return argv


def download_db_argv(opts: TrivyOptions) -> list[str]:
    return [_exe(opts), "image", "--download-db-only", *_common(opts)]


def scan_argv(image_tar: Path, opts: TrivyOptions, scanners: Sequence[str] = SCANNERS) -> list[str]:
    argv = [
        _exe(opts),
        "image",
        "--input",
        str(image_tar),
        "--format",
        "json",
        "--exit-code",
        "0",
        "--scanners",
        ",".join(scanners),
        # Every OS package in the report: proof the package database was read, and the
        # inventory a vulnerability is checked against.
        "--list-all-pkgs",
        "--image-config-scanners",
        ",".join(IMAGE_CONFIG_SCANNERS),
        "--skip-db-update",
        *_common(opts),
    ]
    if opts.ignore_unfixed:
        argv.append("--ignore-unfixed")
    if opts.severities:
        argv += ["--severity", ",".join(opts.severities)]
    return argv


def sbom_argv(image_tar: Path, opts: TrivyOptions) -> list[str]:
    # CycloneDX output disables vulnerability scanning, so no DB is needed here.
    return [
        _exe(opts),
        "image",
        "--input",
        str(image_tar),
        "--format",
        "cyclonedx",
        "--exit-code",
        "0",
        *_common(opts),
    ]


def download_db(opts: TrivyOptions) -> None:
    """Fetch the vulnerability DB into opts.cache_dir (once per run)."""
    opts.cache_dir.mkdir(parents=True, exist_ok=True)
    done = run(download_db_argv(opts), timeout=opts.timeout)
    log.info("trivy DB fetched into %s in %.1fs", opts.cache_dir, done.seconds)


def scan_json(image_tar: Path, opts: TrivyOptions) -> str:
    """Trivy's JSON report (vuln, secret, misconfig) for a docker-save tarball."""
    done = run(scan_argv(image_tar, opts), timeout=opts.timeout)
    log.info("trivy scanned %s in %.1fs", image_tar.name, done.seconds)
    return done.stdout


def sbom_cyclonedx(image_tar: Path, opts: TrivyOptions) -> str:
    """A CycloneDX (JSON) SBOM of the image."""
    done = run(sbom_argv(image_tar, opts), timeout=opts.timeout)
    return done.stdout
