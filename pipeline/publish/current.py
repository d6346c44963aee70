"""What the release repository holds now for a target: the nightly's point of comparison.

The rolling tag (`MAJOR-FLAVOUR-RELEASE` for operands, `X.Y.Z` for the operator) names
the current image; its config labels carry the build fingerprint and package lock, and
the immutable tag pointing at the same digest is what catalogs reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.build.executor import FINGERPRINT_LABEL
from pipeline.build.freshness import LOCK_LABEL
from pipeline.models.images import PublishedState
from pipeline.models.publish import PublishedImage
from pipeline.models.targets import Kind, Target
from pipeline.publish.tags import is_immutable
from pipeline.tools import docker
from pipeline.tools.registry import RegistryClient
from pipeline.tools.registry_auth import find_credentials


@dataclass(frozen=True)
class Current:
    image: PublishedImage
    fingerprint: str
    lock: str  # label value: name=version,...
    image_id: str = ""  # config digest: the engine's id of the image once pulled

    @property
    def state(self) -> PublishedState:
        """What the build stage compares with, and pulls when a target is built on it."""
        image = self.image
        return PublishedState(
            self.fingerprint, self.image_id, f"{image.registry}/{image.repository}@{image.digest}"
        )


def pull_published(reference: str) -> str:
    """Pull a published image by digest, with Drydock's credentials for its registry."""
    creds = find_credentials(reference.split("/", 1)[0])
    auth = {"username": creds.username, "password": creds.password} if creds else None
    return docker.pull(reference, auth)


def rolling_tag(target: Target) -> str:
    if target.kind is Kind.OPERATOR:
        return target.version
    return f"{target.major}-{target.flavour}-{target.release}"


def release_repository(target: Target) -> str:
    return target.local_tag.rsplit(":", 1)[0]


def find_current(client: RegistryClient, target: Target) -> Current | None:
    """The published image of target, or None when nothing is published yet."""
    repository = release_repository(target)
    digest = client.digest(repository, rolling_tag(target))
    if digest is None:
        return None
    manifest = client.manifest(repository, digest)
    config = manifest.document().get("config", {}) if manifest and not manifest.is_index else {}
    labels = client.config_labels(repository, digest) or {}
    immutable = sorted(
        (t for t in client.list_tags(repository) if is_immutable(t) and _belongs(t, target)),
        reverse=True,
    )
    tag = next((t for t in immutable if client.digest(repository, t) == digest), "")
    if not tag:
        return None
    image = PublishedImage(
        target=target.name,
        registry=client.registry,
        repository=repository,
        tag=tag,
        digest=digest,
        gated=True,
        major=target.major,
        flavour=target.flavour,
        release=target.release if target.kind is Kind.OPERAND else None,
        created=labels.get("org.opencontainers.image.created", ""),
    )
    return Current(
        image,
        labels.get(FINGERPRINT_LABEL, ""),
        labels.get(LOCK_LABEL, ""),
        str(config.get("digest", "")),
    )


def _belongs(tag: str, target: Target) -> bool:
    if target.kind is Kind.OPERATOR:
        return tag.startswith(f"{target.version}-")
    return tag.startswith(f"{target.major}.") and tag.endswith(
        f"-{target.flavour}-{target.release}"
    )
