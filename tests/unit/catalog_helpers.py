"""Shared builders for the catalog unit tests."""

from __future__ import annotations

from pipeline.models.publish import PublishedImage


def digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def image(
    major: int = 16,
    flavour: str = "minimal",
    release: str = "bookworm",
    *,
    minor: int = 1,
    stamp: str = "202611271200",
    n: int = 1,
    gated: bool = True,
    created: str | None = None,
) -> PublishedImage:
    tag = f"{major}.{minor}-{stamp}-{flavour}-{release}"
    if created is None:
        created = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:12]}:00Z"
    return PublishedImage(
        target=f"postgresql-{major}-{flavour}-{release}",
        registry="127.0.0.1:5000",
        repository="drydock/postgresql",
        tag=tag,
        digest=digest(n),
        gated=gated,
        major=major,
        flavour=flavour,
        release=release,
        created=created,
    )
