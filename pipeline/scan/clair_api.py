"""Clair v4's HTTP API as Drydock uses it, and the registry reads that feed it.

Clair does not read tarballs: its indexer downloads each layer from a URL. So the adapter
reads the image's manifest *by digest* from the registry (answering a 401 challenge with
the credentials the environment or `docker login` provides, pipeline.tools.registry_auth),
and gives Clair a manifest whose layer URIs point at that registry, each with the same
Authorization header, so Clair can fetch what Drydock could.

Endpoints (quay/clair v4.9.0 httptransport, openapi.yaml):
  POST /indexer/api/v1/index_report                    -> 201 index report
  GET  /indexer/api/v1/index_report/{digest}           -> 200 index report, 404
  DELETE /indexer/api/v1/index_report/{digest}         -> 204 (forget an index: cold scans)
  GET  /matcher/api/v1/vulnerability_report/{digest}   -> 201 report; 202 with no body while
                                                          the matcher holds no vulnerability
                                                          at all (not initialised); 404
  GET  /matcher/api/v1/internal/update_operation?latest=true
       -> {updater: [{ref, updater, fingerprint, date, kind}]}: when each updater last
          stored new data (claircore libvuln/driver.UpdateOperation)
Authentication: `Authorization: Bearer <JWT>`, HS256 over the pre-shared key Clair's
config holds, `iss` on its allow list, `exp` checked with 15 s leeway
(middleware/auth/httpauth_psk.go). Every call has a timeout; connection errors and 5xx
are retried a bounded number of times.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, RootModel
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
)

from pipeline.errors import DrydockError, ScanError
from pipeline.models.reference import ImageReference, is_loopback
from pipeline.scan.base import validate
from pipeline.tools.registry_auth import RegistryAuth, find_credentials

NAME = "clair"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
ATTEMPTS = 4
POLL_SECONDS = 1.0
TOKEN_SECONDS = 300
ISSUER = "drydock"
PSK_ENV = "DRYDOCK_CLAIR_PSK"  # base64 key
PSK_FILE_ENV = "DRYDOCK_CLAIR_PSK_FILE"
STATE_ENV = "DRYDOCK_CLAIR_STATE"  # the state dir of a Clair Drydock runs (its feed front)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_INDEX = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    OCI_INDEX,
    DOCKER_INDEX,
)
FINISHED = "IndexFinished"
FAILED = "IndexError"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_token(key: bytes, issuer: str = ISSUER, now: float | None = None) -> str:
    """A short-lived HS256 JWT Clair's PSK middleware accepts."""
    issued = int(time.time() if now is None else now)
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"iss": issuer, "iat": issued, "nbf": issued - 30, "exp": issued + TOKEN_SECONDS}
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


@dataclass(frozen=True)
class ClairAuth:
    """The pre-shared key and issuer Drydock signs its requests with."""

    key: bytes = field(repr=False)
    issuer: str = ISSUER

    @classmethod
    def load(cls, psk: str = "", psk_file: Path | None = None) -> ClairAuth | None:
        """From a base64 value or a file holding one; None when neither is given."""
        text = psk.strip()
        if not text and psk_file is not None:
            try:
                text = psk_file.read_text(encoding="utf-8").strip()
            except OSError as err:
                raise ScanError(f"{NAME}: cannot read the PSK file {psk_file}") from err
        if not text:
            return None
        try:
            return cls(base64.b64decode(text, validate=True))
        except ValueError as err:
            raise ScanError(f"{NAME}: the PSK is not base64") from err

    @classmethod
    def from_environment(cls) -> ClairAuth | None:
        file = os.environ.get(PSK_FILE_ENV, "")
        return cls.load(os.environ.get(PSK_ENV, ""), Path(file) if file else None)

    def header(self) -> str:
        return f"Bearer {mint_token(self.key, self.issuer)}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class IndexReport(_Model):
    manifest_hash: str
    state: str
    success: bool = False
    err: str = ""


class _UpdateOperation(_Model):
    ref: str = ""
    updater: str
    fingerprint: str = ""
    date: dt.datetime


@dataclass(frozen=True)
class UpdateOperation:
    """When one updater last stored new data in Clair's matcher database."""

    updater: str
    date: dt.datetime
    fingerprint: str = ""


def parse_index_report(text: str) -> IndexReport:
    """A Clair index report (JSON text) -> its state; ScanError when indexing failed."""
    report = validate(NAME, IndexReport, text)
    if report.state == FAILED or (report.state == FINISHED and not report.success):
        raise ScanError(f"{NAME}: indexing {report.manifest_hash} failed: {report.err or '?'}")
    return report


class _Operations(RootModel[dict[str, list[_UpdateOperation]] | None]):
    model_config = ConfigDict(frozen=True)


def parse_update_operations(text: str) -> dict[str, UpdateOperation]:
    """`update_operation?latest=true` JSON -> the newest operation of each updater."""
    data = validate(NAME, _Operations, text)
    latest: dict[str, UpdateOperation] = {}
    for name, ops in (data.root or {}).items():
        for op in ops:
            when = op.date if op.date.tzinfo else op.date.replace(tzinfo=dt.UTC)
            if name not in latest or when > latest[name].date:
                latest[name] = UpdateOperation(op.updater or name, when, op.fingerprint)
    return latest


# ---- the registry side: Clair's manifest for an image pushed to a registry ------------


def split_reference(ref: str) -> tuple[str, str, str]:
    """ "host:port/repo/name:tag" or "...@sha256:..." -> (host, repository, tag-or-digest)."""
    try:
        parsed = ImageReference.parse(ref)
    except ValueError as err:
        raise ScanError(f"{NAME}: {ref!r}: {err}") from err
    if "/" not in ref or ref.strip().split("/", 1)[0].lower() != parsed.host:
        raise ScanError(f"{NAME}: needs a registry reference (host/repo:tag), got {ref!r}")
    return parsed.host, parsed.repository, parsed.digest or parsed.tag


def registry_url(host: str) -> str:
    """Plain HTTP for loopback registries (as go-containerregistry does), HTTPS otherwise."""
    return f"{'http' if is_loopback(host) else 'https'}://{host}"


def clair_manifest(
    base_url: str,
    repository: str,
    digest: str,
    manifest: Any,
    authorization: str | None = None,
) -> dict[str, Any]:
    """An OCI/Docker image manifest -> the body Clair's indexer expects (pure)."""
    headers = {"Authorization": [authorization]} if authorization else {}
    try:
        body_layers = []
        for layer in manifest["layers"]:
            entry: dict[str, Any] = {
                "hash": layer["digest"],
                "uri": f"{base_url}/v2/{repository}/blobs/{layer['digest']}",
                "headers": headers,
            }
            media_type = str(layer.get("mediaType", ""))
            if media_type.startswith("application/vnd.oci.image.layer.v1.tar"):
                entry["media_type"] = media_type
            body_layers.append(entry)
    except (KeyError, TypeError) as err:
        raise ScanError(f"{NAME}: registry manifest of {repository} has no layers") from err
    return {"hash": digest, "layers": body_layers}


def _platform_child(index: Mapping[str, Any], ref: str) -> str:
    for child in index.get("manifests") or ():
        platform = child.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return str(child["digest"])
    raise ScanError(f"{NAME}: {ref} is an index without a linux/amd64 image")


class RegistryReader:
    """Reads image manifests by digest, with the credentials Clair will need too."""

    def __init__(self, session: requests.Session, timeout: float = READ_TIMEOUT) -> None:
        self.session = session
        self.timeout = timeout

    def _get(self, url: str, auth: RegistryAuth, scope: list[str]) -> requests.Response:
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        if scope:
            headers["Authorization"] = scope[0]
        try:
            resp = self.session.get(url, headers=headers, timeout=(CONNECT_TIMEOUT, self.timeout))
            if resp.status_code == 401 and not scope:
                answer = auth.answer(self.session, resp, self.timeout)
                if answer is not None:
                    scope.append(answer[1])
                    headers["Authorization"] = answer[1]
                    resp = self.session.get(
                        url, headers=headers, timeout=(CONNECT_TIMEOUT, self.timeout)
                    )
        except (requests.RequestException, DrydockError) as err:
            raise ScanError(f"{NAME}: reading {url} failed: {err}") from err
        if resp.status_code != 200:
            raise ScanError(f"{NAME}: GET {url} answered {resp.status_code}")
        return resp

    def manifest_for_clair(self, ref: str) -> dict[str, Any]:
        """Clair's manifest body for an image in a registry (layers with credentials)."""
        host, repository, version = split_reference(ref)
        base = registry_url(host)
        auth, granted = RegistryAuth(find_credentials(host)), list[str]()
        resp = self._get(f"{base}/v2/{repository}/manifests/{version}", auth, granted)
        doc = resp.json()
        digest = "sha256:" + hashlib.sha256(resp.content).hexdigest()
        if version.startswith("sha256:") and version != digest:
            raise ScanError(f"{NAME}: {ref}: the registry's manifest hashes to {digest}")
        if doc.get("mediaType") in {OCI_INDEX, DOCKER_INDEX} or "manifests" in doc:
            digest = _platform_child(doc, ref)
            resp = self._get(f"{base}/v2/{repository}/manifests/{digest}", auth, granted)
            doc = resp.json()
        return clair_manifest(base, repository, digest, doc, granted[0] if granted else None)


# ---- Clair -----------------------------------------------------------------------------


class ClairClient:
    """The Clair v4 endpoints Drydock uses, with JWT auth, timeouts and bounded retries."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        auth: ClairAuth | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.auth = auth
        self.session = session or requests.Session()
        self.registry = RegistryReader(self.session)

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"

        def once() -> requests.Response:
            headers = {"Authorization": self.auth.header()} if self.auth else {}
            response = self.session.request(
                method, url, headers=headers, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), **kwargs
            )
            if response.status_code >= 500:
                response.raise_for_status()
            return response

        retrying = Retrying(
            stop=stop_after_attempt(ATTEMPTS),
            wait=wait_exponential(multiplier=0.5, max=4),
            retry=retry_if_exception_type(
                (requests.ConnectionError, requests.Timeout, requests.HTTPError)
            ),
            reraise=True,
        )
        try:
            response = retrying(once)
        except requests.RequestException as err:
            raise ScanError(f"{NAME}: {method} {url} failed: {err}") from err
        if response.status_code == 401:
            raise ScanError(f"{NAME}: {method} {url}: 401, Clair refused Drydock's credentials")
        return response

    @staticmethod
    def _expect(response: requests.Response, *codes: int) -> str:
        if response.status_code not in codes:
            raise ScanError(
                f"{NAME}: {response.request.method} {response.url} answered"
                f" {response.status_code}: {response.text[:200]}"
            )
        return response.text

    def index(self, manifest: Mapping[str, Any]) -> IndexReport:
        response = self._request("POST", "/indexer/api/v1/index_report", json=dict(manifest))
        return parse_index_report(self._expect(response, 200, 201))

    def index_report(self, digest: str) -> IndexReport:
        response = self._request("GET", f"/indexer/api/v1/index_report/{digest}")
        return parse_index_report(self._expect(response, 200))

    def forget(self, digest: str) -> None:
        """Delete an index report, so the next scan of this manifest indexes it again."""
        self._expect(self._request("DELETE", f"/indexer/api/v1/index_report/{digest}"), 200, 204)

    def wait_indexed(self, first: IndexReport) -> IndexReport:
        """Poll the index report until the indexer finished, for at most `timeout` seconds."""
        if first.state == FINISHED:
            return first
        polling = Retrying(
            stop=stop_after_delay(self.timeout),
            wait=wait_fixed(POLL_SECONDS),
            retry=retry_if_result(lambda r: r.state != FINISHED),
        )
        try:
            return polling(self.index_report, first.manifest_hash)
        except RetryError as err:
            raise ScanError(
                f"{NAME}: {first.manifest_hash} not indexed within {self.timeout:.0f}s"
            ) from err

    def vulnerability_report(self, digest: str) -> str | None:
        """The report's JSON text; None when the matcher holds no vulnerability data (202)."""
        response = self._request("GET", f"/matcher/api/v1/vulnerability_report/{digest}")
        if response.status_code == 202:
            return None
        return self._expect(response, 200, 201)

    def update_operations(self) -> dict[str, UpdateOperation]:
        """The newest update operation of each vulnerability updater."""
        path = "/matcher/api/v1/internal/update_operation?latest=true"
        return parse_update_operations(self._expect(self._request("GET", path), 200))
