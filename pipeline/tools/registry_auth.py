"""Registry authentication: answer a 401 challenge with Basic credentials or a Bearer token.

The local registry needs none; a hosted one (ghcr.io in the nightly) answers 401 with a
`WWW-Authenticate` challenge. For `Basic` the credentials are sent as they are; for
`Bearer` a token is fetched from the challenge's realm for its service and scope (with the
credentials, or anonymously) and reused for that scope. Credentials come from the
environment (DRYDOCK_REGISTRY_USER / DRYDOCK_REGISTRY_PASSWORD) or from the `auths` entry
of the Docker CLI config that `docker login` wrote. Tokens and passwords are never logged.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import requests

from pipeline.errors import RegistryError

log = logging.getLogger(__name__)

USER_ENV = "DRYDOCK_REGISTRY_USER"
PASSWORD_ENV = "DRYDOCK_REGISTRY_PASSWORD"  # noqa: S105 - the variable's name, not a secret
_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: tuple[tuple[str, str], ...]

    def param(self, key: str) -> str:
        return dict(self.params).get(key, "")


def parse_challenge(header: str) -> Challenge | None:
    """`Bearer realm="...",service="...",scope="..."` -> Challenge; None when unusable."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() not in {"basic", "bearer"}:
        return None
    return Challenge(scheme.lower(), tuple(_PARAM.findall(rest)))


def credentials_from_docker_config(host: str, path: Path | None = None) -> Credentials | None:
    """The `auths` entry `docker login HOST` stored (no credential helpers).

    `docker login` keys entries by host only (`ghcr.io`, `127.0.0.1:5000`), never by a
    namespace under it, so a registry location `ghcr.io/acme` is looked up as `ghcr.io`.
    Docker Hub's entry is the historical `https://index.docker.io/v1/`.
    """
    config = path or Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(config.read_text(encoding="utf-8")).get("auths") or {}
    except (OSError, ValueError):
        return None
    keys = [host, f"https://{host}", f"http://{host}"]
    if host in {"docker.io", "index.docker.io", "registry-1.docker.io"}:
        keys.append("https://index.docker.io/v1/")
    for key in keys:
        encoded = (auths.get(key) or {}).get("auth", "")
        if encoded:
            user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
            return Credentials(user, password)
    return None


def find_credentials(host: str) -> Credentials | None:
    """Environment first, then the Docker CLI config entry for the registry host."""
    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    if user and password:
        return Credentials(user, password)
    return credentials_from_docker_config(host.split("/", 1)[0])


class RegistryAuth:
    """Turns 401 challenges into Authorization headers, caching Bearer tokens per scope."""

    def __init__(self, credentials: Credentials | None) -> None:
        self.credentials = credentials
        self._tokens: dict[str, str] = {}

    def header_for(self, scope: str) -> str | None:
        """A cached Authorization header for this scope, if a token was fetched before."""
        token = self._tokens.get(scope)
        return f"Bearer {token}" if token else None

    def answer(
        self, session: requests.Session, response: requests.Response, timeout: float
    ) -> tuple[str, str] | None:
        """(scope, Authorization header) answering a 401, or None when it cannot be answered."""
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return None
        creds = self.credentials
        if challenge.scheme == "basic":
            if creds is None:
                return None
            raw = f"{creds.username}:{creds.password}".encode()
            return "", "Basic " + base64.b64encode(raw).decode("ascii")
        realm = challenge.param("realm")
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(f"registry token realm {realm!r} is not an http(s) URL")
        scope = challenge.param("scope")
        params = {k: v for k, v in (("service", challenge.param("service")), ("scope", scope)) if v}
        try:
            got = session.get(
                realm,
                params=params,
                auth=(creds.username, creds.password) if creds else None,
                timeout=timeout,
            )
        except requests.RequestException as err:
            raise RegistryError(f"registry token request to {realm} failed: {err}") from err
        if got.status_code != 200:
            raise RegistryError(f"registry token request to {realm}: HTTP {got.status_code}")
        body = got.json()
        token = body.get("token") or body.get("access_token") or ""
        if not token:
            raise RegistryError(f"registry token service {realm} returned no token")
        self._tokens[scope] = str(token)
        log.debug("registry token obtained for scope %r", scope)
        return scope, f"Bearer {token}"
