"""Run settings: where things are and how hard to work. Frozen, passed in, never global."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.models.reference import RegistryLocation

DEFAULT_REGISTRY = "127.0.0.1:5000"


def default_cache() -> Path:
    """$DRYDOCK_CACHE, else $XDG_CACHE_HOME/drydock, else ~/.cache/drydock."""
    if os.environ.get("DRYDOCK_CACHE"):
        return Path(os.environ["DRYDOCK_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "drydock"


@dataclass(frozen=True)
class Settings:
    root: Path  # the repository: images/, dockerfiles/, scan-config/, operator/
    cache: Path
    registry: str = DEFAULT_REGISTRY  # host[:port][/namespace], validated by the CLI
    jobs: int = 2
    builder: str = "auto"  # auto | buildx | buildkit | legacy
    revision: str = ""
    source_url: str = "https://example.invalid/drydock"
    images_dir: Path | None = None  # default: root/images
    # Prefix of the apt download cache's id in BuildKit builds: "" shares one cache per
    # release with every Drydock build on the engine (the benchmark's cold sides set one).
    cache_namespace: str = ""

    @property
    def registry_location(self) -> RegistryLocation:
        return RegistryLocation.parse(self.registry)

    @property
    def descriptors(self) -> Path:
        return self.images_dir or self.root / "images"

    @property
    def templates(self) -> Path:
        return self.root / "dockerfiles"

    @property
    def scan_config(self) -> Path:
        return self.root / "scan-config"

    @property
    def work(self) -> Path:
        return self.cache / "work"

    @property
    def records(self) -> Path:
        return self.cache / "records"
