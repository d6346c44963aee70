"""What a build produced: the image id, its labels, its packages and its fingerprint."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    source: str = ""  # source package name (dpkg ${source:Package}), used for CVE lookups


@dataclass(frozen=True)
class BuiltImage:
    """One image in the local engine, as the build stage left it."""

    target: str
    tag: str  # local tag, e.g. "drydock/postgresql:15-minimal-bookworm"
    image_id: str  # "sha256:..."
    fingerprint: str  # sha256 of every build input
    labels: tuple[tuple[str, str], ...]
    packages: tuple[InstalledPackage, ...]
    seconds: float
    builder: str  # "buildx", "buildkit", "legacy" or "debuerreotype"
    reused: bool = False  # true when a fresh image was found and no build ran
    published: bool = False  # identical to the published image: no build, scan or push

    def label(self, key: str, default: str = "") -> str:
        return dict(self.labels).get(key, default)
