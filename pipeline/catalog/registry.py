"""Prove that an image exists in its registry at a digest: HEAD /v2/<repo>/manifests/<digest>.

A catalog may only name digests that a cluster can pull, so before any apply every entry is
checked against the registry API itself (not a local record of what was pushed). Loopback
registries are spoken to over plain HTTP (as go-containerregistry does), others over HTTPS;
anonymous bearer tokens are fetched when a registry asks for them. Every request has a
timeout; connection errors, 429 and 5xx are retried with backoff.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)

MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
LOOPBACK = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$")


class _TransientError(Exception):
    """Internal: worth another attempt."""


@dataclass(frozen=True)
class RegistryCheck:
    """How to reach registries: timeouts and retries."""

    timeout: float = 10.0
    attempts: int = 4

    def scheme(self, registry: str) -> str:
        return "http" if LOOPBACK.match(registry) else "https"

    def _head(
        self, session: requests.Session, url: str, headers: dict[str, str]
    ) -> requests.Response:
        try:
            resp = session.head(url, headers=headers, timeout=self.timeout, allow_redirects=True)
        except (requests.ConnectionError, requests.Timeout) as err:
            raise _TransientError(str(err)) from err
        if resp.status_code == 429 or resp.status_code >= 500:
            raise _TransientError(f"HTTP {resp.status_code}")
        return resp

    def _token(self, session: requests.Session, challenge: str) -> str | None:
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if not challenge.lower().startswith("bearer") or realm is None:
            return None
        resp = session.get(realm, params=params, timeout=self.timeout)
        if resp.status_code != 200:
            return None
        body = resp.json()
        token = body.get("token") or body.get("access_token")
        return token if isinstance(token, str) else None

    def exists(self, registry: str, repository: str, digest: str) -> bool:
        """True when the registry serves repository@digest (and says that digest back)."""
        url = f"{self.scheme(registry)}://{registry}/v2/{repository}/manifests/{digest}"
        headers = {"Accept": MANIFEST_TYPES}
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.25, max=4.0),
            retry=retry_if_exception_type(_TransientError),
            reraise=True,
        )
        with requests.Session() as session:
            try:
                for attempt in retrying:
                    with attempt:
                        resp = self._head(session, url, headers)
                        if resp.status_code == 401:
                            token = self._token(session, resp.headers.get("WWW-Authenticate", ""))
                            if token:
                                headers["Authorization"] = f"Bearer {token}"
                                resp = self._head(session, url, headers)
            except _TransientError as err:
                log.warning("registry %s unreachable: %s", registry, err)
                return False
        if resp.status_code != 200:
            log.info("%s/%s@%s: HTTP %d", registry, repository, digest, resp.status_code)
            return False
        served = resp.headers.get("Docker-Content-Digest")
        return served is None or served == digest
