"""Which vulnerability DB a run's Trivy uses: the settings `pipeline.scan.vulndb` acts on.

Kept apart from the code that fetches and builds DBs so `ScanSettings` can name a DB
without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.archive.mirrors import Mirrors
from pipeline.tools.gpgv import DEFAULT_KEYRING


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
