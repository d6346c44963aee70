"""Dockle: CIS-DI / DKL checkpoints of an image, read from Dockle's JSON (or SARIF) report.

Each entry of Dockle's `details` becomes one CHECKPOINT finding, its alerts kept as
evidence. Dockle's levels are mapped onto Drydock severities (FATAL high, WARN medium,
INFO low); SKIP means Dockle could not look (e.g. no /etc/shadow), which proves nothing,
so it is kept as UNKNOWN rather than dropped. A report whose summary disagrees with its
details is an error, and the checkpoints Dockle cannot judge on a `docker save` archive
are reported as blind, so the gate does not count them as checked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import ScanError, ToolError
from pipeline.models.compliance import ran_dockle
from pipeline.models.findings import Finding, Kind, Severity, Source
from pipeline.scan.base import Scanner, ScanOutput, validate
from pipeline.scan.sarif import parse_sarif
from pipeline.tools import dockle as dockle_tool
from pipeline.tools.locate import locate

NAME = "dockle"


class Level(StrEnum):
    FATAL = "FATAL"
    WARN = "WARN"
    INFO = "INFO"
    SKIP = "SKIP"
    IGNORE = "IGNORE"
    PASS = "PASS"  # noqa: S105 - a Dockle level, not a password


SEVERITY: Mapping[Level, Severity] = {
    Level.FATAL: Severity.HIGH,
    Level.WARN: Severity.MEDIUM,
    Level.INFO: Severity.LOW,
    Level.SKIP: Severity.UNKNOWN,
    Level.IGNORE: Severity.INFO,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Summary(_Model):
    fatal: int = Field(ge=0)
    warn: int = Field(ge=0)
    info: int = Field(ge=0)
    skip: int = Field(default=0, ge=0)  # absent before Dockle 0.3
    pass_: int = Field(alias="pass", ge=0)


class _Detail(_Model):
    code: str = Field(min_length=1)
    title: str = ""
    level: Level
    alerts: list[str] | None = None


class DockleReport(_Model):
    image: str = ""  # Dockle >= 0.4 names the image; empty with --input on older builds
    summary: _Summary
    details: list[_Detail] | None = None  # Go writes null when nothing was found


def _check_counts(report: DockleReport) -> None:
    """The summary and the details must agree, and something must have been checked."""
    details = report.details or []
    summary = report.summary
    for level, expected in (
        (Level.FATAL, summary.fatal),
        (Level.WARN, summary.warn),
        (Level.INFO, summary.info),
        (Level.SKIP, summary.skip),
    ):
        found = sum(1 for d in details if d.level is level)
        if found != expected:
            raise ScanError(
                f"{NAME}: inconsistent report: summary counts {expected} {level.value} "
                f"but {found} are listed"
            )
    if summary.fatal + summary.warn + summary.info + summary.skip + summary.pass_ == 0:
        raise ScanError(f"{NAME}: empty report: no checkpoint was evaluated")


def parse_dockle(text: str) -> tuple[Finding, ...]:
    """Dockle `--format json` text -> one CHECKPOINT finding per reported detail.
    A report whose summary contradicts its details, or that checked nothing, is a
    ScanError."""
    report = validate(NAME, DockleReport, text)
    _check_counts(report)
    return tuple(
        Finding(
            id=detail.code,
            source=Source.DOCKLE,
            kind=Kind.CHECKPOINT,
            severity=SEVERITY[detail.level],
            title=detail.title,
            evidence=tuple(detail.alerts or ()),
        )
        for detail in report.details or ()
        if detail.level is not Level.PASS
    )


def parse_dockle_sarif(text: str) -> tuple[Finding, ...]:
    """Dockle `--format sarif` text -> CHECKPOINT findings (one per rule result)."""
    return parse_sarif(NAME, text, Source.DOCKLE, Kind.CHECKPOINT)


# Checkpoints Dockle cannot evaluate on a `docker save` archive (--input): it judges the
# tag the image was pulled by, and an archive has none, so the check silently passes.
BLIND_WITH_INPUT: Mapping[str, str] = {
    "DKL-DI-0006": "Dockle reads a docker-save archive (--input), which has no tag to judge",
}
# The evidence keys of that blindness: the same on every image of every run, so recorded in
# the reports but not worth a warning each time (pipeline.stages.scan).
STRUCTURAL_BLIND = frozenset(ran_dockle(code) for code in BLIND_WITH_INPUT)


class DockleScanner(Scanner):
    """Runs the pinned Dockle on the tarball and parses its JSON."""

    name: ClassVar[str] = NAME

    def version(self) -> str:
        binary = self.settings.binary(NAME)
        if binary is not None:
            return f"unknown ({binary})"
        try:
            return locate(NAME).version
        except ToolError:
            return "unknown"

    def scan(self, image_tar: Path, ref: str) -> ScanOutput:
        start = time.monotonic()
        raw = self._run_tool(
            lambda: dockle_tool.dockle_json(
                image_tar,
                timeout=self.settings.timeout,
                binary=self.settings.binary(NAME),
                content_trust=self.settings.content_trust,
            )
        )
        findings = parse_dockle(raw)
        blind = tuple((ran_dockle(code), why) for code, why in BLIND_WITH_INPUT.items())
        return ScanOutput(NAME, ref, findings, raw, time.monotonic() - start, blind=blind)
