"""Push a local image to staging, prove its digest, and promote it by digest to release.

The order is the whole point (fail closed):
  1. tag the local image `REGISTRY/staging/<repo>:<immutable tag>` and `docker push` it,
     retrying a bounded number of times with jittered backoff;
  2. read the digest back from the registry API and compare it with the digest the engine
     recorded (RepoDigests); a mismatch stops here;
  3. only for an image that passed its gate: refuse if the immutable tag already names a
     different digest in the release repository, then copy by digest to `REGISTRY/<repo>`
     under the immutable tag and the rolling tags, and read every tag back.
An image that failed its gate or its verification never reaches the release repository.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity import wait_random_exponential as jittered

from pipeline.errors import PublishError, ToolError
from pipeline.models.publish import PublishedImage
from pipeline.models.targets import Target
from pipeline.publish.tags import TagSet
from pipeline.tools import docker
from pipeline.tools.registry import RegistryClient

log = logging.getLogger(__name__)

STAGING_PREFIX = "staging/"


@dataclass(frozen=True)
class Release:
    """Where and under which tags one built image is to be published."""

    target: str  # plan target name
    repository: str  # release repository, e.g. "drydock/postgresql"
    tags: TagSet
    major: int | None = None
    flavour: str | None = None
    release: str | None = None
    created: str = ""  # RFC 3339 build time

    @property
    def staging_repository(self) -> str:
        return STAGING_PREFIX + self.repository

    @classmethod
    def for_target(cls, target: Target, tags: TagSet, created: str = "") -> Release:
        """The release of a plan target, in the repository its local tag uses."""
        repository = target.local_tag.rsplit(":", 1)[0]
        return cls(
            target=target.name,
            repository=repository,
            tags=tags,
            major=target.major,
            flavour=target.flavour,
            release=target.release,
            created=created,
        )


@dataclass(frozen=True)
class PushRetry:
    """Bounds for retrying `docker push` (jittered exponential backoff)."""

    attempts: int = 4
    max_wait: float = 30.0
    timeout: float = docker.PUSH_TIMEOUT


def _push_with_retries(ref: str, retry: PushRetry) -> str:
    retrying = Retrying(
        stop=stop_after_attempt(max(1, retry.attempts)),
        wait=jittered(multiplier=0.5, max=retry.max_wait),
        retry=retry_if_exception_type(ToolError),
        before_sleep=lambda state: log.warning(
            "push %s: attempt %d failed, retrying", ref, state.attempt_number
        ),
    )
    try:
        return retrying(docker.push, ref, timeout=retry.timeout)
    except RetryError as err:
        cause = err.last_attempt.exception()
        raise PublishError(
            f"pushing {ref} failed after {retry.attempts} attempts: {cause}"
        ) from cause


def _local_digest(ref: str, name: str, reported: str) -> str:
    """The digest the engine recorded for `name` (registry/repository) after the push."""
    found = {d.split("@", 1)[1] for d in docker.repo_digests(ref) if d.split("@", 1)[0] == name}
    if reported:
        if found and reported not in found:
            raise PublishError(f"{ref}: push reported {reported}, engine recorded {sorted(found)}")
        return reported
    if len(found) != 1:
        raise PublishError(f"{ref}: engine recorded {len(found)} digests for {name}, expected 1")
    return found.pop()


def push_to_staging(
    local_ref: str,
    release: Release,
    client: RegistryClient,
    retry: PushRetry | None = None,
    *,
    image_id: str = "",
) -> PublishedImage:
    """Push to `staging/<repo>:<immutable tag>` and verify the digest over the registry API;
    with `image_id`, also that the staged manifest's config is that image (pushed by id, so
    a concurrent build that moves a shared local tag cannot swap the image under the run).

    Returns the staged image (`gated=False`: staging is never a release).
    """
    retry = retry or PushRetry()
    name = f"{client.registry}/{release.staging_repository}"
    staged_ref = f"{name}:{release.tags.immutable}"
    docker.tag(local_ref, staged_ref)
    try:
        reported = _push_with_retries(staged_ref, retry)
        local = _local_digest(staged_ref, name, reported)
    finally:
        docker.untag(staged_ref)
    remote = client.digest(release.staging_repository, release.tags.immutable)
    if remote != local:
        raise PublishError(
            f"{staged_ref}: registry reports {remote or 'no manifest'}, the engine pushed {local}"
        )
    if image_id:
        manifest = client.manifest(release.staging_repository, remote)
        config = (manifest.document().get("config") or {}).get("digest") if manifest else None
        if config != image_id:
            raise PublishError(
                f"{staged_ref}@{remote}: its config is {config}, not the built image {image_id}"
            )
    log.info("staged %s@%s (digest verified)", staged_ref, remote)
    return _published(release, client, release.staging_repository, remote, gated=False)


def promote(
    staged: PublishedImage, release: Release, client: RegistryClient, *, gated: bool
) -> PublishedImage:
    """Copy a verified staged image by digest to the release repository under its tags."""
    if not gated:
        raise PublishError(f"{release.target}: failed its gate; not promoted")
    if staged.repository != release.staging_repository or staged.registry != client.registry:
        raise PublishError(f"{staged.reference} is not the staging image of {release.target}")
    now = client.digest(release.staging_repository, release.tags.immutable)
    if now != staged.digest:
        raise PublishError(
            f"{release.staging_repository}:{release.tags.immutable} now names {now}, "
            f"not the verified {staged.digest}; not promoted"
        )
    existing = client.digest(release.repository, release.tags.immutable)
    if existing is not None and existing != staged.digest:
        raise PublishError(
            f"{client.registry}/{release.repository}:{release.tags.immutable} already exists "
            f"({existing}); immutable tags are never overwritten"
        )
    if existing == staged.digest:
        log.info(
            "%s:%s already published; moving rolling tags only",
            release.repository,
            release.tags.immutable,
        )
    tags: Sequence[str] = release.tags.rolling if existing else release.tags.all
    client.copy(release.staging_repository, staged.digest, release.repository, tags)
    for tag in release.tags.all:
        got = client.digest(release.repository, tag)
        if got != staged.digest:
            raise PublishError(
                f"{release.repository}:{tag} reads back as {got}, expected {staged.digest}"
            )
    return _published(release, client, release.repository, staged.digest, gated=True)


def publish(
    local_ref: str,
    release: Release,
    client: RegistryClient,
    *,
    gated: bool,
    retry: PushRetry | None = None,
) -> PublishedImage:
    """Stage, verify and (only when `gated`) promote one image.

    An image that failed its gate is still staged for inspection and returned with
    `gated=False` and its staging repository; it is never promoted.
    """
    staged = push_to_staging(local_ref, release, client, retry)
    if not gated:
        log.warning("%s failed its gate: left in %s only", release.target, staged.reference)
        return staged
    return promote(staged, release, client, gated=gated)


def _published(
    release: Release, client: RegistryClient, repository: str, digest: str, *, gated: bool
) -> PublishedImage:
    return PublishedImage(
        target=release.target,
        registry=client.registry,
        repository=repository,
        tag=release.tags.immutable,
        digest=digest,
        gated=gated,
        major=release.major,
        flavour=release.flavour,
        release=release.release,
        created=release.created,
    )
