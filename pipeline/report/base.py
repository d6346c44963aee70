"""The contract of a report format, and the small helpers several formats share.

A format is a `Renderer` subclass in its own module, registered by name in
`pipeline.report.formats.FORMATS`; nothing picks a format by comparing strings elsewhere.
Renderers are pure: a `GateReport` in, text out.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter
from typing import ClassVar

from pipeline.models.compliance import ControlStatus, GateReport, ImageVerdict, ScannerRun
from pipeline.models.crosscheck import CrossCheck

STATUS_ORDER = (
    ControlStatus.FAIL,
    ControlStatus.ERROR,
    ControlStatus.UNVERIFIED,
    ControlStatus.WAIVED,
    ControlStatus.MANUAL,
    ControlStatus.PASS,
)


class Renderer(ABC):
    """One output format."""

    name: ClassVar[str]
    media_type: ClassVar[str]
    extension: ClassVar[str]

    @abstractmethod
    def render(self, report: GateReport) -> str:
        """The whole document as text."""


def status_counts(verdict: ImageVerdict) -> dict[ControlStatus, int]:
    counts = Counter(r.status for r in verdict.controls)
    return {s: counts[s] for s in STATUS_ORDER if counts[s]}


def counts_text(verdict: ImageVerdict) -> str:
    return ", ".join(f"{n} {s.value}" for s, n in status_counts(verdict).items())


def slug(text: str) -> str:
    """A stable identifier fragment for an image reference or a control id."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def scanner_state(run: ScannerRun) -> str:
    return f"BLIND: {run.blind}" if run.blind else "could see"


def crosscheck_summary(check: CrossCheck) -> str:
    """One line: who reported, how many vulnerabilities, how many seen by one scanner only."""
    if not check.scanners:
        return "no vulnerability scanner reported"
    names = " and ".join(s.value for s in check.scanners)
    total = len(check.vulnerabilities)
    if not check.compared:
        return f"{names} only: {total} vulnerabilities (no second scanner to compare with)"
    parts = [f"{names}: {total} vulnerabilities, {total - len(check.disagreements)} seen by all"]
    for source in check.scanners:
        only = check.only(source)
        listed = ", ".join(v.id for v in only[:5]) + (", ..." if len(only) > 5 else "")
        parts.append(f"only {source.value}: {len(only)}" + (f" ({listed})" if only else ""))
    return "; ".join(parts)
