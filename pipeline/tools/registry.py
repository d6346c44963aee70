"""A small client for the OCI distribution HTTP API: read digests back, list tags, promote.

Publication must prove, from the registry itself, which digest a tag names before anything
downstream (a catalog, a signature) may refer to it. This client reads manifests with the
Accept headers for Docker v2 and OCI manifests and indexes, computes the digest from the
body when the registry does not send Docker-Content-Digest, and promotes an image from a
staging repository to a release repository *by digest* on the same registry: blobs are
cross-repository mounted (no bytes move), child manifests of an index are copied first,
then the manifest is PUT under each tag with the exact bytes that were read, so the digest
cannot change on the way.

Why not `crane copy`: promotion stays on one registry, the mount makes it a handful of
small requests, and doing it here keeps digest checks, immutability and error mapping in
one typed place without another process. crane remains the tool for cross-registry copies.

Every request has a timeout. Connection errors, timeouts and 5xx answers are retried a
bounded number of times with jittered exponential backoff; what still fails becomes a
RegistryError (exit 3).

This is the one registry client of Drydock: publication, catalogs (digest checks before an
apply), scanning by registry reference and the dev loop all use it. A client is bound to a
registry *location* (`host[/namespace]`, see pipeline.models.reference): every repository
it is given is placed under the namespace, requests go to the host, and credentials are
those stored for the host.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from pipeline.errors import RegistryError
from pipeline.models.reference import RegistryLocation
from pipeline.tools.registry_auth import Credentials, RegistryAuth, find_credentials

log = logging.getLogger(__name__)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_INDEX = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_INDEX, DOCKER_MANIFEST)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_INDEX})
ACCEPT = ", ".join(MANIFEST_TYPES)


class _ServerError(Exception):
    """A 5xx or 429 answer: worth another try."""


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as the registry served it (the bytes are what the digest covers)."""

    media_type: str
    digest: str
    body: bytes = field(repr=False)

    def document(self) -> dict[str, Any]:
        doc = json.loads(self.body)
        if not isinstance(doc, dict):
            raise RegistryError(f"manifest {self.digest} is not a JSON object")
        return doc

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def blobs(self) -> tuple[str, ...]:
        """Digests of the config and layers an image manifest refers to."""
        doc = self.document()
        config = doc.get("config") or {}
        found = [config["digest"]] if "digest" in config else []
        found += [layer["digest"] for layer in doc.get("layers") or ()]
        return tuple(found)

    def children(self) -> tuple[str, ...]:
        """Digests of the manifests an index refers to."""
        return tuple(m["digest"] for m in self.document().get("manifests") or ())


def _repository_of(url: str) -> str:
    """The repository a /v2/<repository>/(manifests|blobs|tags)/... URL addresses ("" if none)."""
    path = urlsplit(url).path
    match = re.match(r"^/v2/(.+?)/(?:manifests|blobs|tags)/", path)
    return match.group(1) if match else ""


def digest_of(body: bytes) -> str:
    """The canonical digest of a manifest body."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def media_type_of(body: bytes, content_type: str) -> str:
    """The manifest's media type: from the body's mediaType, else the Content-Type header."""
    try:
        doc = json.loads(body)
    except ValueError as err:
        raise RegistryError("registry returned a manifest that is not JSON") from err
    declared = doc.get("mediaType") if isinstance(doc, dict) else None
    if isinstance(declared, str) and declared:
        return declared
    header = content_type.split(";", 1)[0].strip()
    if header in MANIFEST_TYPES:
        return header
    if isinstance(doc, dict) and "manifests" in doc:
        return OCI_INDEX
    return OCI_MANIFEST


class RegistryClient:
    """The distribution API of one registry location (`host[:port][/namespace]`).

    Anonymous unless `credentials` are given (see `from_environment`); 401 challenges
    (Basic or Bearer token) are answered by pipeline.tools.registry_auth. Repository names
    given to the methods are Drydock's (`drydock/postgresql`); the namespace is added here.

    `insecure=None` means plain http for loopback hosts and https elsewhere.
    """

    def __init__(
        self,
        registry: RegistryLocation | str,
        *,
        insecure: bool | None = None,
        timeout: float = 30.0,
        attempts: int = 5,
        max_wait: float = 8.0,
        session: requests.Session | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.location = (
            registry if isinstance(registry, RegistryLocation) else RegistryLocation.parse(registry)
        )
        self.registry = str(self.location)  # what references start with: host[/namespace]
        self.auth = RegistryAuth(credentials)
        self._authorization: dict[str, str] = {}  # repository -> Authorization header
        if insecure is None:
            insecure = self.location.insecure
        self.base = f"{'http' if insecure else 'https'}://{self.location.host}/v2"
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.max_wait = max_wait
        self.session = session or requests.Session()

    @classmethod
    def from_environment(cls, registry: RegistryLocation | str, **options: Any) -> RegistryClient:
        """A client with the credentials the environment or `docker login` provides."""
        location = (
            registry if isinstance(registry, RegistryLocation) else RegistryLocation.parse(registry)
        )
        return cls(location, credentials=find_credentials(location.host), **options)

    # -- transport -------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        params: dict[str, str],
        data: bytes | None,
    ) -> requests.Response:
        """One HTTP exchange, answering an authentication challenge once if there is one."""
        key = _repository_of(url)

        def exchange(authorization: str | None) -> requests.Response:
            sent = dict(headers)
            if authorization:
                sent["Authorization"] = authorization
            return self.session.request(
                method,
                url,
                headers=sent,
                params=params,
                data=data,
                timeout=self.timeout,
                allow_redirects=True,
            )

        resp = exchange(self._authorization.get(key))
        if resp.status_code != 401:
            return resp
        answer = self.auth.answer(self.session, resp, self.timeout)
        if answer is None:
            return resp
        self._authorization[key] = answer[1]
        return exchange(answer[1])

    def _request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        ok: Iterable[int] = (200,),
    ) -> requests.Response:
        """One API call with bounded jittered retries; returns only answers in `ok` or 404."""
        accepted = set(ok) | {404}
        full = url if url.startswith("http") else f"{self.base}{url}"

        def once() -> requests.Response:
            resp = self._send(method, full, dict(headers or {}), dict(params or {}), data)
            if resp.status_code >= 500 or resp.status_code == 429:
                raise _ServerError(f"{method} {full}: HTTP {resp.status_code}")
            return resp

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=0.25, max=self.max_wait),
            retry=retry_if_exception_type(
                (requests.ConnectionError, requests.Timeout, _ServerError)
            ),
            before_sleep=lambda state: log.warning(
                "registry %s: attempt %d failed (%s), retrying",
                self.registry,
                state.attempt_number,
                state.outcome.exception() if state.outcome else "?",
            ),
            reraise=False,
        )
        try:
            resp = retrying(once)
        except RetryError as err:
            cause = err.last_attempt.exception()
            raise RegistryError(
                f"registry {self.registry}: {method} {full} failed after {self.attempts} "
                f"attempts: {cause}"
            ) from cause
        except requests.RequestException as err:
            raise RegistryError(f"registry {self.registry}: {method} {full}: {err}") from err
        if resp.status_code not in accepted:
            raise RegistryError(
                f"registry {self.registry}: {method} {full}: HTTP {resp.status_code} "
                f"{resp.text[:300]}"
            )
        return resp

    def _path(self, repository: str, kind: str, reference: str = "") -> str:
        tail = f"/{quote(reference, safe=':')}" if reference else "/"
        return f"/{self.location.repository(repository)}/{kind}{tail}"

    # -- reads -----------------------------------------------------------------------------

    def ping(self) -> None:
        """Raise RegistryError unless the host answers the API version check.

        200 (open) and 401 (asks for credentials) are registries; anything else, a 404
        from a web server that is not a registry included, is not."""
        resp = self._request("GET", "/", ok=(200, 401))
        if resp.status_code not in (200, 401):
            raise RegistryError(
                f"registry {self.registry}: GET {self.base}/ answered HTTP {resp.status_code}: "
                "not an OCI distribution API"
            )

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest a tag or digest names, or None when there is none."""
        resp = self._request(
            "GET", self._path(repository, "manifests", reference), headers={"Accept": ACCEPT}
        )
        if resp.status_code == 404:
            return None
        body = resp.content
        computed = digest_of(body)
        announced = resp.headers.get("Docker-Content-Digest", "")
        if announced and announced != computed:
            raise RegistryError(
                f"{repository}:{reference}: registry announced {announced} "
                f"but the manifest body hashes to {computed}"
            )
        if reference.startswith("sha256:") and reference != computed:
            raise RegistryError(f"{repository}@{reference}: body hashes to {computed}")
        media = media_type_of(body, resp.headers.get("Content-Type", ""))
        return Manifest(media_type=media, digest=computed, body=body)

    def digest(self, repository: str, reference: str) -> str | None:
        """The digest a tag names (HEAD, falling back to GET and hashing), or None if absent."""
        resp = self._request(
            "HEAD", self._path(repository, "manifests", reference), headers={"Accept": ACCEPT}
        )
        if resp.status_code == 404:
            return None
        announced = resp.headers.get("Docker-Content-Digest", "")
        if announced:
            return announced
        found = self.manifest(repository, reference)
        return found.digest if found else None

    def tag_exists(self, repository: str, tag: str) -> bool:
        return self.digest(repository, tag) is not None

    def list_tags(self, repository: str) -> tuple[str, ...]:
        """Every tag of a repository (following pagination); () when the repository is absent."""
        found: list[str] = []
        url = self._path(repository, "tags", "list").rstrip("/")
        params: dict[str, str] | None = {"n": "1000"}
        while url:
            resp = self._request("GET", url, params=params)
            params = None  # the next link carries its own query
            if resp.status_code == 404:
                return ()
            found.extend(resp.json().get("tags") or ())
            nxt = resp.links.get("next", {}).get("url", "")
            url = (
                nxt
                if not nxt or nxt.startswith("http")
                else f"{self.base}{nxt.removeprefix('/v2')}"
            )
        return tuple(sorted(set(found)))

    def config_labels(self, repository: str, reference: str) -> dict[str, str] | None:
        """The image config labels of a single-platform image, or None when it is absent."""
        found = self.manifest(repository, reference)
        if found is None or found.is_index:
            return None
        config = found.document().get("config", {}).get("digest", "")
        if not config:
            return None
        resp = self._request("GET", self._path(repository, "blobs", config))
        if resp.status_code == 404:
            return None
        if digest_of(resp.content) != config:
            raise RegistryError(f"{repository}: config blob does not hash to {config}")
        labels = (resp.json().get("config") or {}).get("Labels") or {}
        return {str(k): str(v) for k, v in labels.items()}

    def blob_exists(self, repository: str, digest: str) -> bool:
        resp = self._request("HEAD", self._path(repository, "blobs", digest))
        return resp.status_code == 200

    # -- writes ----------------------------------------------------------------------------

    def mount_blob(self, to_repository: str, from_repository: str, digest: str) -> None:
        """Make a blob of `from_repository` available in `to_repository` without moving it."""
        if self.blob_exists(to_repository, digest):
            return
        resp = self._request(
            "POST",
            f"/{self.location.repository(to_repository)}/blobs/uploads/",
            params={"mount": digest, "from": self.location.repository(from_repository)},
            ok=(201, 202),
        )
        if resp.status_code == 201:
            return
        # 202: the registry opened an upload instead of mounting; copy the bytes through it.
        location = resp.headers.get("Location", "")
        self._copy_blob(from_repository, digest, location)

    def _copy_blob(self, from_repository: str, digest: str, location: str) -> None:
        if not location:
            raise RegistryError(f"registry {self.registry}: upload for {digest} has no Location")
        got = self._request("GET", self._path(from_repository, "blobs", digest))
        if got.status_code == 404 or digest_of(got.content) != digest:
            raise RegistryError(f"{from_repository}@{digest}: blob missing or corrupt")
        url = (
            location
            if location.startswith("http")
            else f"{self.base}{location.removeprefix('/v2')}"
        )
        sep = "&" if "?" in url else "?"
        self._request(
            "PUT",
            f"{url}{sep}digest={quote(digest, safe=':')}",
            headers={"Content-Type": "application/octet-stream"},
            data=got.content,
            ok=(201,),
        )

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """Store the manifest bytes under a tag or digest; returns the digest the registry took."""
        resp = self._request(
            "PUT",
            self._path(repository, "manifests", reference),
            headers={"Content-Type": manifest.media_type},
            data=manifest.body,
            ok=(201,),
        )
        stored = resp.headers.get("Docker-Content-Digest", "") or manifest.digest
        if stored != manifest.digest:
            raise RegistryError(
                f"{repository}:{reference}: registry stored {stored}, expected {manifest.digest}"
            )
        return stored

    def _copy_content(self, from_repository: str, to_repository: str, digest: str) -> Manifest:
        """Copy a manifest by digest after what it refers to (blobs, child manifests)."""
        found = self.manifest(from_repository, digest)
        if found is None:
            raise RegistryError(f"{from_repository}@{digest}: no such manifest")
        if found.is_index:
            for child in found.children():
                self._copy_content(from_repository, to_repository, child)
        else:
            for blob in found.blobs():
                self.mount_blob(to_repository, from_repository, blob)
        self.put_manifest(to_repository, digest, found)
        return found

    def copy(
        self, from_repository: str, digest: str, to_repository: str, tags: Iterable[str]
    ) -> str:
        """Promote `from_repository@digest` to `to_repository` under each tag, in order.

        The caller decides which tags may be written (immutability is its policy); this
        only guarantees that every tag ends up naming exactly `digest`.
        """
        found = self._copy_content(from_repository, to_repository, digest)
        for tag in tags:
            self.put_manifest(to_repository, tag, found)
            log.info("promoted %s@%s to %s:%s", from_repository, digest, to_repository, tag)
        return found.digest
