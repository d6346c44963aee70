"""The scanners Drydock knows, by name: the one place a scanner name becomes a class.

Adding a scanner is one module under pipeline/scan/ and one line here; nothing else
chooses between scanners by comparing strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.errors import InputError
from pipeline.scan.base import Scanner, ScanSettings
from pipeline.scan.clair import ClairScanner
from pipeline.scan.dockle import DockleScanner
from pipeline.scan.trivy import TrivyScanner

SCANNERS: Mapping[str, type[Scanner]] = {
    DockleScanner.name: DockleScanner,
    TrivyScanner.name: TrivyScanner,
    ClairScanner.name: ClairScanner,
}

DEFAULT_SCANNERS = (DockleScanner.name, TrivyScanner.name)


def make_scanner(name: str, settings: ScanSettings) -> Scanner:
    try:
        cls = SCANNERS[name]
    except KeyError:
        raise InputError(
            f"unknown scanner {name!r} (known: {', '.join(sorted(SCANNERS))})"
        ) from None
    return cls(settings)


def make_scanners(names: Sequence[str], settings: ScanSettings) -> tuple[Scanner, ...]:
    """One instance per name, in order; a run keeps them so Trivy fetches its DB once."""
    return tuple(make_scanner(name, settings) for name in names)
