"""Turn what a person types into the exact image that will be scanned.

`drydock scan` accepts what `docker` and `trivy` accept: a local name with or without a tag
(normalised as the engine does: `myapp` is `docker.io/library/myapp:latest`), an image id,
a registry reference by tag or digest, and a `docker save` tarball (`--input FILE`).

Resolution order for a reference:
  1. an image id, or a name the local engine knows (as typed, then normalised);
  2. a registry reference: the registry is asked which manifest digest the tag names (or
     whether it serves the digest given), and the image is pulled *by that digest* with the
     credentials Drydock uses for that host, so a tag moving during the scan cannot change
     what is scanned. The report names that digest.
A tarball is loaded into the engine (the pending-updates check runs a container from it).
Whatever this module pulled or loaded is removed again afterwards (`cleanup`), unless the
engine had it before.

A reference that cannot be resolved is bad input (InputError, exit 2) listing what was
tried; a registry that cannot be reached while it is the only way to the image is an
infrastructure failure (RegistryError, exit 3).
"""

from __future__ import annotations

import json
import logging
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError, Problem, RegistryError, ToolError
from pipeline.models.reference import DOCKER_HUB, ImageReference, looks_like_image_id
from pipeline.tools import docker
from pipeline.tools.registry import RegistryClient
from pipeline.tools.registry_auth import find_credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedImage:
    """An image in the local engine, ready to be saved and scanned."""

    requested: str  # as typed (or the tarball path)
    name: str  # what reports call it: the normalised reference, or the tarball's name
    image_id: str  # the engine's id (config digest) of exactly what is scanned
    digest: str = ""  # the registry manifest digest, when the image came from a registry
    # What resolution added to the engine and must take away again: the by-digest name it
    # pulled (removing a name never deletes an image that other names still hold), or the
    # id of an image loaded from a tarball that the engine did not have before. "" = none.
    cleanup: str = ""

    @property
    def scanned(self) -> str:
        """The digest a report names: the registry digest when there is one, else the id."""
        return self.digest or self.image_id


def _digest_from_repo_digests(inspected: dict[str, object], ref: ImageReference) -> str:
    for entry in inspected.get("RepoDigests") or ():  # type: ignore[attr-defined]
        name, _, digest = str(entry).partition("@")
        if name in {ref.name, ref.familiar.split("@")[0].rsplit(":", 1)[0]}:
            return digest
    return ""


def _local(text: str, tried: list[str]) -> ResolvedImage | None:
    """An image the engine already has, by id, by name as typed, or normalised."""
    candidates = [text]
    try:
        ref: ImageReference | None = ImageReference.parse(text)
    except ValueError:
        ref = None
    if ref is not None:
        candidates += [ref.familiar, str(ref)]
    for candidate in dict.fromkeys(candidates):
        inspected = docker.inspect(candidate)
        if inspected is not None:
            digest = ref.digest if ref is not None and ref.digest else ""
            if ref is not None and not digest and ref.host != DOCKER_HUB:
                digest = _digest_from_repo_digests(inspected, ref)
            name = ref.familiar if ref is not None else text
            if looks_like_image_id(text):
                name = str(inspected["Id"])
            return ResolvedImage(text, name, str(inspected["Id"]), digest)
    tried.append(f"local engine: no image {text!r}" + (f" (nor {ref.familiar})" if ref else ""))
    return None


def _from_registry(text: str, ref: ImageReference, tried: list[str]) -> ResolvedImage | None:
    """Ask the registry for the digest, then pull exactly that digest."""
    if ref.host == DOCKER_HUB:
        tried.append("registry: the reference names no registry host (Docker Hub is not asked)")
        return None
    client = RegistryClient.from_environment(ref.host, attempts=3)
    digest = client.digest(ref.repository, ref.digest or ref.tag)
    if digest is None:
        tried.append(f"registry {ref.host}: no manifest {ref.repository}:{ref.digest or ref.tag}")
        return None
    if ref.digest and digest != ref.digest:
        raise RegistryError(f"{text}: the registry served {digest} for {ref.digest}")
    by_digest = f"{ref.name}@{digest}"
    present = docker.inspect(by_digest)
    if present is not None:  # pulled before: scan it, and leave it where it was
        return ResolvedImage(text, str(ref), str(present["Id"]), digest)
    creds = find_credentials(ref.host)
    auth = {"username": creds.username, "password": creds.password} if creds else None
    log.info("pulling %s (resolved from %s)", by_digest, text)
    image_id = docker.pull(by_digest, auth)
    return ResolvedImage(text, str(ref), image_id, digest, cleanup=by_digest)


def resolve_reference(text: str) -> ResolvedImage:
    """A typed reference -> the image to scan; InputError (exit 2) says what was tried."""
    tried: list[str] = []
    if not looks_like_image_id(text):
        try:
            ImageReference.parse(text)
        except ValueError as err:
            raise InputError([Problem("IMAGE", text, f"not an image reference: {err}")]) from err
    found = _local(text, tried)
    if found is not None:
        return found
    if looks_like_image_id(text):
        raise InputError([Problem("IMAGE", text, "; ".join(tried))])
    ref = ImageReference.parse(text)
    try:
        found = _from_registry(text, ref, tried)
    except (RegistryError, ToolError) as err:
        raise RegistryError(f"{text}: {'; '.join(tried)}; registry {ref.host}: {err}") from err
    if found is None:
        raise InputError([Problem("IMAGE", text, "; ".join(tried))])
    return found


def resolve_tarball(path: Path) -> ResolvedImage:
    """A `docker save` tarball -> its one image, loaded into the engine."""
    if not path.is_file():
        raise InputError([Problem("--input", str(path), "no such file")])
    known = archive_image_id(path)
    had_it = bool(known) and docker.inspect(known) is not None
    try:
        ids = docker.load(path)
    except ToolError as err:
        reason = f"not a docker-save tarball the engine can load: {err.stderr_tail or err}"
        raise InputError([Problem("--input", str(path), reason)]) from err
    if len(ids) != 1:
        raise InputError(
            [Problem("--input", str(path), f"holds {len(ids)} images; give a tarball of one")]
        )
    return ResolvedImage(str(path), path.name, ids[0], cleanup="" if had_it else ids[0])


def archive_image_id(path: Path) -> str:
    """The image id a docker-save tarball holds (its config digest), "" if unreadable.

    Read before loading, to know whether the engine already had the image (then it is
    not removed after the scan)."""
    try:
        with tarfile.open(path) as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.load(member) if member is not None else []
    except (OSError, tarfile.TarError, KeyError, ValueError):
        return ""
    if not isinstance(manifest, list) or len(manifest) != 1:
        return ""
    config = Path(str(manifest[0].get("Config", ""))).name.removesuffix(".json")
    return f"sha256:{config}" if len(config) == 64 else ""


def resolve_all(references: Sequence[str], tarballs: Sequence[Path]) -> list[ResolvedImage]:
    """Every input resolved before anything is scanned; every bad one reported at once."""
    problems: list[Problem] = []
    resolved: list[ResolvedImage] = []
    for text in references:
        try:
            resolved.append(resolve_reference(text))
        except InputError as err:
            problems.extend(err.problems)
    for path in tarballs:
        try:
            resolved.append(resolve_tarball(path))
        except InputError as err:
            problems.extend(err.problems)
    if problems:
        release(resolved)
        raise InputError(problems)
    return resolved


def release(images: Sequence[ResolvedImage]) -> None:
    """Remove what resolution pulled or loaded (never an image the engine had before)."""
    for image in images:
        if image.cleanup == image.image_id:
            docker.remove(image.image_id)  # loaded here: every name it brought goes with it
        elif image.cleanup:
            docker.untag(image.cleanup, prune=True)
