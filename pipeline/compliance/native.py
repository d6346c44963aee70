"""Drydock's own checks of an image, read from the image itself (a `docker save` tarball).

Dockle and Trivy cover part of CIS Docker 4.x and DISA 2.x; several controls (sshd, exposed
ports, trusted base, package deny lists, signed apt sources, pending updates) no tool
checks. These checks fill the gaps and double the important ones, so the gate never rests
on one tool. Each check is a pure function over an `ImageFilesystem`; this module is the
explicit registry and the one entry point, `run_native_checks`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from pipeline.compliance import (
    native_build,
    native_config,
    native_eol,
    native_files,
    native_packages,
    native_users,
)
from pipeline.compliance.imagefs import ImageFilesystem, load_image_filesystem
from pipeline.compliance.native_base import (
    CheckContext,
    CheckSpec,
    NativeCheck,
    NativeInputs,
    NotRun,
    PendingUpdate,
    TrustedBase,
    UpdateEvidence,
    parse_apt_simulation,
)
from pipeline.models.compliance import NativeSettings, ran_native
from pipeline.models.findings import Finding

log = logging.getLogger(__name__)

CHECKS: tuple[NativeCheck, ...] = (
    *native_users.CHECKS,
    *native_config.CHECKS,
    *native_build.CHECKS,
    *native_packages.CHECKS,
    *native_files.CHECKS,
    *native_eol.CHECKS,
)


def catalogue() -> Mapping[str, CheckSpec]:
    """Every native check id with its title and severity."""
    return MappingProxyType({spec.id: spec for check in CHECKS for spec in check.specs})


@dataclass(frozen=True)
class NativeResult:
    findings: tuple[Finding, ...]
    ran: frozenset[str]  # ran_native(id) for every check id that ran
    # (ran_native(id), why) for every check that could not judge this image
    blind: tuple[tuple[str, str], ...] = ()


def run_native_checks(
    fs: ImageFilesystem,
    settings: NativeSettings,
    inputs: NativeInputs | None = None,
    checks: tuple[NativeCheck, ...] = CHECKS,
) -> NativeResult:
    """Run every native check on one image; pure."""
    ctx = CheckContext(settings=settings, inputs=inputs or NativeInputs())
    findings: list[Finding] = []
    ran: set[str] = set()
    blind: list[tuple[str, str]] = []
    for check in checks:
        result = check.func(fs, ctx)
        if result is None:
            log.debug("native checks %s did not run: no evidence given", ", ".join(check.ids))
            continue
        if isinstance(result, NotRun):
            log.info("native checks %s could not judge: %s", ", ".join(check.ids), result.reason)
            blind += [(ran_native(i), result.reason) for i in check.ids]
            continue
        ran.update(ran_native(i) for i in check.ids)
        findings.extend(result)
    return NativeResult(findings=tuple(findings), ran=frozenset(ran), blind=tuple(blind))


def check_image_archive(
    archive: Path,
    settings: NativeSettings,
    inputs: NativeInputs | None = None,
    image: str = "",
) -> NativeResult:
    """Read a `docker save` tarball and run every native check on the image in it."""
    return run_native_checks(load_image_filesystem(archive, image), settings, inputs)


__all__ = [
    "CHECKS",
    "NativeInputs",
    "NativeResult",
    "NotRun",
    "PendingUpdate",
    "TrustedBase",
    "UpdateEvidence",
    "catalogue",
    "check_image_archive",
    "parse_apt_simulation",
    "run_native_checks",
]
