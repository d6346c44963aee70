"""The contract every scanner adapter fulfils, and the helpers their parsers share.

A scanner turns an image (a `docker save` tarball plus its reference) into `Finding`s.
Whatever goes wrong — the tool crashes, times out, or prints something we cannot read —
becomes a `ScanError` naming the scanner: an image that was not scanned is not proven
safe, so the gate must never see "no findings" in place of "no scan". `ScanSettings` is
what the scanners of a run share, including which vulnerability DB Trivy uses
(`VulnDbSpec`; `pipeline.scan.vulndb` fetches or builds it).
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from pipeline.archive.mirrors import Mirrors
from pipeline.errors import ScanError, ToolError
from pipeline.models.findings import Finding
from pipeline.models.provenance import OsFacts
from pipeline.tools.gpgv import DEFAULT_KEYRING

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


@dataclass(frozen=True)
class ArchiveFeedSettings:
    """Where Drydock's Debian-archive feed is read from and kept."""

    feed_cache: Path  # pipeline.archive.feed.feed_dir($DRYDOCK_CACHE)
    mirrors: Mirrors
    releases: tuple[str, ...]  # the matrix's releases: the feed must cover them
    keyring: Path = DEFAULT_KEYRING
    update: bool = True  # False: never touch the network, use the feed already cached


@dataclass(frozen=True)
class VulnDbSpec:
    """A resolved vulnerability DB choice (never "auto")."""

    source: str  # VulnDbSource value
    reference: str = ""  # mirror: the DB's OCI reference
    archive: ArchiveFeedSettings | None = None  # debian-archive


@dataclass(frozen=True)
class ScanSettings:
    """What the scanners of one run share. Built by the caller; no scanner reads env vars."""

    cache_dir: Path  # root of Trivy's caches (one per DB reference; DB fetched once per run)
    timeout: float = 600.0  # per tool call
    db_repository: str = ""  # Trivy DB OCI reference; "" = Trivy's default (see vuln_db)
    vuln_db: VulnDbSpec | None = None  # wins over db_repository when given
    ignore_unfixed: bool = False
    clair_url: str = ""  # e.g. "http://127.0.0.1:6060"
    content_trust: bool = False  # value of DOCKER_CONTENT_TRUST for Dockle (see tools.dockle)
    binaries: tuple[tuple[str, Path], ...] = field(default=())  # overrides: (tool, path)

    def binary(self, tool: str) -> Path | None:
        return dict(self.binaries).get(tool)


@dataclass(frozen=True)
class ScanOutput:
    """What one scanner said about one image."""

    scanner: str
    ref: str
    findings: tuple[Finding, ...]
    raw: str  # the tool's report, verbatim, for the run record
    seconds: float = 0.0
    os: OsFacts | None = None  # what the scanner saw of the OS and package database
    blind: tuple[tuple[str, str], ...] = ()  # checks it could not evaluate: (key, why)


class Scanner(ABC):
    """One scanner. Subclasses set `name` and implement `scan`."""

    name: ClassVar[str]

    def __init__(self, settings: ScanSettings) -> None:
        self.settings = settings

    @abstractmethod
    def scan(self, image_tar: Path, ref: str) -> ScanOutput:
        """Scan the image; raise ScanError (naming this scanner) on any failure."""

    def prepare(self, inventory: Mapping[str, frozenset[str]] | None = None) -> None:  # noqa: B027
        """Get ready for the run's scans (e.g. the vulnerability DB), once. `inventory`:
        Debian release -> source packages installed in the images about to be scanned."""

    def version(self) -> str:
        """The scanner's version, for the reports ("unknown" when it cannot tell)."""
        return "unknown"

    def _run_tool(self, call: Callable[[], R]) -> R:
        """Call a pipeline.tools wrapper, turning its ToolError into a ScanError."""
        try:
            return call()
        except ToolError as err:
            raise ScanError(f"{self.name}: scanner failed: {err}") from err


def load_json(scanner: str, text: str) -> Any:
    """Parse JSON text or raise a ScanError naming the scanner."""
    if not text.strip():
        raise ScanError(f"{scanner}: empty output, expected a JSON report")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        snippet = text.strip()[:80].replace("\n", " ")
        raise ScanError(f"{scanner}: output is not JSON ({err.msg}): {snippet!r}") from err


def validate(scanner: str, model: type[M], text: str) -> M:
    """JSON text -> a pydantic model of the tool's report, or a ScanError naming the scanner."""
    data = load_json(scanner, text)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise ScanError(
            f"{scanner}: unexpected report shape at {where}: {first['msg']}"
            f" ({err.error_count()} problem(s))"
        ) from err
