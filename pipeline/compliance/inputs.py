"""Assemble the gate's input for one image from what the scan stage produced.

The gate must know not only what was found but what was *looked at*: a control is `pass`
only if one of its evidence sources ran, and `error` if one crashed. These helpers turn
scanner outputs, the native result and caught scanner errors into an `ImageScan` with the
right `ran` keys, so the caller cannot forget one and accidentally pass an image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pipeline.compliance.native import NativeInputs, NativeResult, check_image_archive
from pipeline.errors import ScanError
from pipeline.models.compliance import ImageScan, NativeSettings, ScannerError, ran_by
from pipeline.models.findings import Finding, Source
from pipeline.scan.base import ScanOutput

log = logging.getLogger(__name__)


def scanner_source(name: str) -> Source:
    """'dockle' -> Source.DOCKLE; an unknown scanner name is a programming error."""
    return Source(name)


def scanner_error(name: str, err: Exception) -> ScannerError:
    """A caught ScanError/ToolError of the named scanner, as the gate records it."""
    return ScannerError(scanner_source(name), str(err))


def native_scan(
    archive: Path, settings: NativeSettings, inputs: NativeInputs, image: str = ""
) -> tuple[NativeResult, tuple[ScannerError, ...]]:
    """Run the native checks; an unreadable tarball becomes a native scanner error."""
    try:
        return check_image_archive(archive, settings, inputs, image), ()
    except ScanError as err:
        log.warning("native checks failed on %s: %s", archive, err)
        empty = NativeResult(findings=(), ran=frozenset())
        return empty, (ScannerError(Source.NATIVE, str(err)),)


def image_scan(
    image: str,
    outputs: Sequence[ScanOutput],
    native: NativeResult | None,
    errors: Sequence[ScannerError] = (),
    digest: str = "",
) -> ImageScan:
    """The gate's input for one image.

    `outputs` are the successful scanner runs (each covers everything that scanner looks
    at), `native` the native checks' result, `errors` the scanners that failed.
    """
    findings: list[Finding] = []
    ran: set[str] = set()
    for output in outputs:
        findings.extend(output.findings)
        ran |= ran_by(scanner_source(output.scanner))
    if native is not None:
        findings.extend(native.findings)
        ran |= native.ran
    return ImageScan(
        image=image,
        findings=tuple(findings),
        ran=frozenset(ran),
        errors=tuple(errors),
        digest=digest,
    )
