"""A small Kubernetes API client over requests: kubeconfig, TLS, retries, server-side apply.

Drydock talks to the Kubernetes API in only a few ways (read an object, server-side apply
one, delete one, mint a ServiceAccount token, wait for a CRD), so a thin client over
`requests` is clearer than the generated client and keeps every call's timeout and retry
policy in one place. Every request has a (connect, read) timeout; 409, 429, 5xx and
connection errors are retried with exponential backoff (tenacity) up to `RetryPolicy`;
anything else fails at once with a `KubeAPIError` naming the method, path, status and the
server's message.

It lives in tools/ because both the local control plane (tools/controlplane.py) and the
catalog stage use it; it starts no processes.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
import yaml
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from pipeline.errors import DrydockError

log = logging.getLogger(__name__)

JSON = dict[str, Any]
RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"


class KubeAPIError(DrydockError):
    """A Kubernetes API call failed (after retries, when the failure was retryable)."""

    exit_code = 3

    def __init__(self, method: str, path: str, status: int | None, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        code = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{method} {path}: {code}: {message}")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts per call, backoff bounds and the per-request timeout."""

    attempts: int = 6
    initial_wait: float = 0.25
    max_wait: float = 4.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0


@dataclass(frozen=True)
class KubeConfig:
    """The parts of a kubeconfig Drydock uses: server, trust and one credential."""

    server: str
    ca_pem: bytes | None = None
    insecure: bool = False
    token: str | None = field(default=None, repr=False)
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = field(default=None, repr=False)

    def with_token(self, token: str) -> KubeConfig:
        """The same server and trust, authenticated by a bearer token instead."""
        return KubeConfig(
            server=self.server, ca_pem=self.ca_pem, insecure=self.insecure, token=token
        )


def _named(items: object, name: str, what: str, path: Path) -> Mapping[str, Any]:
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and item.get("name") == name:
                body = item.get(what)
                if isinstance(body, dict):
                    return body
    raise DrydockError(f"{path}: no {what} named {name!r}")


def _data_or_file(section: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    data = section.get(f"{key}-data")
    if isinstance(data, str):
        return base64.b64decode(data)
    ref = section.get(key)
    if isinstance(ref, str):
        return (base / ref).read_bytes()
    return None


def load_kubeconfig(path: Path, context: str | None = None) -> KubeConfig:
    """Read a kubeconfig file (token or client certificate; inline data or file references)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DrydockError(f"cannot read kubeconfig {path}: {err}") from err
    if not isinstance(doc, dict):
        raise DrydockError(f"{path}: not a kubeconfig")
    ctx_name = context or doc.get("current-context")
    if not isinstance(ctx_name, str):
        raise DrydockError(f"{path}: no current-context")
    ctx = _named(doc.get("contexts"), ctx_name, "context", path)
    cluster = _named(doc.get("clusters"), str(ctx.get("cluster")), "cluster", path)
    user = _named(doc.get("users"), str(ctx.get("user")), "user", path)
    base = path.parent
    token = user.get("token")
    if token is None and isinstance(user.get("tokenFile"), str):
        token = (base / user["tokenFile"]).read_text(encoding="utf-8").strip()
    return KubeConfig(
        server=str(cluster["server"]).rstrip("/"),
        ca_pem=_data_or_file(cluster, "certificate-authority", base),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=token if isinstance(token, str) else None,
        client_cert_pem=_data_or_file(user, "client-certificate", base),
        client_key_pem=_data_or_file(user, "client-key", base),
    )


def resource_path(
    api_version: str, plural: str, name: str | None = None, namespace: str | None = None
) -> str:
    """REST path of a collection or object: core group under /api, the rest under /apis."""
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{root}{ns}/{plural}" + (f"/{name}" if name else "")


class _RetryableError(Exception):
    """Internal: a failure worth another attempt."""

    def __init__(self, error: KubeAPIError) -> None:
        super().__init__(str(error))
        self.error = error


class KubeAPI:
    """A session bound to one server and credential. Use as a context manager."""

    def __init__(self, config: KubeConfig, retry: RetryPolicy | None = None) -> None:
        self.config = config
        self.retry = retry or RetryPolicy()
        self._tmp = tempfile.TemporaryDirectory(prefix="drydock-kube-")
        self._session = requests.Session()
        tmp = Path(self._tmp.name)
        # Passed on every request: a session-level `verify` loses to REQUESTS_CA_BUNDLE.
        self._verify: str | bool = True
        if config.insecure:
            self._verify = False
        elif config.ca_pem is not None:
            ca = tmp / "ca.crt"
            ca.write_bytes(config.ca_pem)
            self._verify = str(ca)
        if config.client_cert_pem is not None and config.client_key_pem is not None:
            cert, key = tmp / "client.crt", tmp / "client.key"
            key.touch(mode=0o600)
            key.write_bytes(config.client_key_pem)
            cert.write_bytes(config.client_cert_pem)
            self._session.cert = (str(cert), str(key))
        if config.token:
            self._session.headers["Authorization"] = f"Bearer {config.token}"
        self._session.headers["Accept"] = "application/json"

    def close(self) -> None:
        self._session.close()
        self._tmp.cleanup()

    def __enter__(self) -> KubeAPI:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- one request, with retries -------------------------------------------------------

    def _once(
        self,
        method: str,
        *,
        path: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        content_type: str | None,
        accept: frozenset[int],
    ) -> requests.Response:
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            resp = self._session.request(
                method,
                self.config.server + path,
                params=params,
                data=body,
                headers=headers,
                verify=self._verify,
                timeout=(self.retry.connect_timeout, self.retry.read_timeout),
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            raise _RetryableError(KubeAPIError(method, path, None, str(err))) from err
        if resp.status_code in accept:
            return resp
        error = KubeAPIError(method, path, resp.status_code, _message(resp))
        if resp.status_code in RETRYABLE_STATUS:
            raise _RetryableError(error)
        raise error

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        accept: frozenset[int] = frozenset({200, 201}),
    ) -> requests.Response:
        """One API call; statuses in `accept` are success, retryable ones are retried."""
        retrying = Retrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_exponential(multiplier=self.retry.initial_wait, max=self.retry.max_wait),
            retry=retry_if_exception(lambda e: isinstance(e, _RetryableError)),
            before_sleep=lambda state: log.debug(
                "retrying %s %s (attempt %d)", method, path, state.attempt_number
            ),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(
                        method,
                        path=path,
                        params=params,
                        body=body,
                        content_type=content_type,
                        accept=accept,
                    )
        except _RetryableError as err:
            raise err.error from err
        raise AssertionError("unreachable")  # pragma: no cover

    # -- conveniences ----------------------------------------------------------------------

    def get(self, path: str) -> JSON | None:
        """The object at path, or None when it does not exist."""
        resp = self.request("GET", path, accept=frozenset({200, 404}))
        return None if resp.status_code == 404 else _json(resp)

    def create(self, path: str, obj: Mapping[str, Any], *, exist_ok: bool = False) -> JSON | None:
        """POST obj to the collection at path; with exist_ok a 409 AlreadyExists is fine."""
        accept = frozenset({200, 201, 202} | ({409} if exist_ok else set()))
        resp = self.request(
            "POST",
            path,
            body=json.dumps(obj).encode(),
            content_type="application/json",
            accept=accept,
        )
        return None if resp.status_code == 409 else _json(resp)

    def apply(
        self,
        path: str,
        obj: Mapping[str, Any],
        *,
        field_manager: str = "drydock",
        force: bool = True,
    ) -> JSON:
        """Server-side apply obj at its object path: one atomic write of the whole object."""
        params = {"fieldManager": field_manager, "force": "true" if force else "false"}
        return _json(self._apply_patch(path, obj, params))

    def _apply_patch(
        self,
        path: str,
        obj: Mapping[str, Any],
        params: dict[str, str],
        accept: frozenset[int] = frozenset({200, 201}),
    ) -> requests.Response:
        """One server-side apply request (what `apply` and `apply_strict` share)."""
        return self.request(
            "PATCH",
            path,
            params=params,
            body=json.dumps(obj, sort_keys=True).encode(),
            content_type=APPLY_CONTENT_TYPE,
            accept=accept,
        )

    def apply_strict(
        self,
        path: str,
        obj: Mapping[str, Any],
        *,
        field_manager: str = "drydock",
        dry_run: bool = False,
    ) -> list[str]:
        """Server-side apply with `fieldValidation=Strict`: a field the schema does not know
        is an error instead of being pruned silently. Returns the API server's warnings
        (deprecations, admission webhooks' advice)."""
        params = {"fieldManager": field_manager, "force": "true", "fieldValidation": "Strict"}
        if dry_run:
            params["dryRun"] = "All"
        resp = self._apply_patch(path, obj, params, accept=frozenset({200, 201, 500}))
        if resp.status_code == 500:
            # Server-side apply reports a field the schema does not declare as an internal
            # error ("failed to create typed patch object ... field not declared in
            # schema"); it is the input's fault, and retrying cannot help.
            message = _message(resp)
            status = 422 if "not declared in schema" in message else 500
            raise KubeAPIError("PATCH", path, status, message)
        return warnings(resp.headers.get("Warning", ""))

    def delete(self, path: str) -> bool:
        """Delete the object at path; False when it was already gone."""
        resp = self.request("DELETE", path, accept=frozenset({200, 202, 404}))
        return resp.status_code != 404

    def wait_gone(self, path: str, timeout: float = 60.0) -> None:
        """Poll until the object at path no longer exists."""
        deadline = time.monotonic() + timeout
        while self.get(path) is not None:
            if time.monotonic() > deadline:
                raise KubeAPIError("GET", path, None, f"still present after {timeout:.0f}s")
            time.sleep(0.2)

    def wait_crd_established(self, name: str, timeout: float = 60.0) -> None:
        """Poll until the CRD is Established and its resource answers a list request."""
        crd_path = resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions", name)
        deadline = time.monotonic() + timeout
        while True:
            crd = self.get(crd_path) or {}
            conditions = crd.get("status", {}).get("conditions", [])
            established = any(
                c.get("type") == "Established" and c.get("status") == "True" for c in conditions
            )
            if established:
                spec = crd["spec"]
                version = next(v["name"] for v in spec["versions"] if v.get("served"))
                plural_path = resource_path(f"{spec['group']}/{version}", spec["names"]["plural"])
                resp = self.request("GET", plural_path, accept=frozenset({200, 404}))
                if resp.status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise KubeAPIError("GET", crd_path, None, f"not established after {timeout:.0f}s")
            time.sleep(0.2)


def _json(resp: requests.Response) -> JSON:
    try:
        data = resp.json()
    except ValueError as err:
        raise KubeAPIError(
            resp.request.method or "?", resp.url, resp.status_code, "not JSON"
        ) from err
    if not isinstance(data, dict):
        raise KubeAPIError(resp.request.method or "?", resp.url, resp.status_code, "not an object")
    return data


_WARNING = re.compile(r'\d{3} \S+ "((?:[^"\\]|\\.)*)"')


def warnings(header: str) -> list[str]:
    """The texts of a `Warning` header (RFC 7234: `299 - "text"`, comma-joined)."""
    return [text.replace('\\"', '"') for text in _WARNING.findall(header)]


def _message(resp: requests.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[-500:]
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return resp.text[-500:]
