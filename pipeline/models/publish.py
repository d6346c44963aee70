"""What publication produced: an image pushed, verified by digest, gated and promoted."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedImage:
    """One image in the release repository, addressable by digest.

    Catalogs are generated only from these, so a catalog can never name a digest that
    was not pushed, read back from the registry, and passed its gate.
    """

    target: str  # plan target name, e.g. "postgresql-15-minimal-bookworm"
    registry: str  # "127.0.0.1:5000"
    repository: str  # "drydock/postgresql"
    tag: str  # the immutable tag, e.g. "15.20-202611271200-minimal-bookworm"
    digest: str  # "sha256:..." as read back from the registry
    gated: bool  # passed its gate (never False in a release repository)
    major: int | None = None
    flavour: str | None = None
    release: str | None = None
    created: str = ""  # RFC 3339 build time

    @property
    def reference(self) -> str:
        """`registry/repository:tag@sha256:...`, the form catalogs use."""
        return f"{self.registry}/{self.repository}:{self.tag}@{self.digest}"
