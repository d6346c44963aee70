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
    size: int = 0  # bytes, as the engine counts them (`docker images`); 0 when not local

    def label(self, key: str, default: str = "") -> str:
        return dict(self.labels).get(key, default)


@dataclass(frozen=True)
class PublishedState:
    """What the release repository holds for a target, as the build stage needs it: the
    fingerprint to compare with, and how to get the image when another target is built
    on it (its config digest is the engine's image id once pulled)."""

    fingerprint: str
    image_id: str = ""  # config digest, "sha256:..."
    reference: str = ""  # registry/repository@sha256:... to pull it by
