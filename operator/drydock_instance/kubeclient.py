"""A minimal Kubernetes API client over HTTPS, as the pod's ServiceAccount.

python3-minimal has `ssl` and `socket` but no `http.client`, so this speaks just enough
HTTP/1.1 for JSON requests: one TLS connection per request (`Connection: close`), a
body by Content-Length or chunked encoding, a timeout on every socket operation. The
server is verified against the ServiceAccount's CA; the token is re-read for every
request because projected tokens are rotated by the kubelet.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
MAX_RESPONSE = 16 * 1024 * 1024

Obj = dict[str, Any]


class ApiError(Exception):
    """The API answered with an error status, or could not be reached (status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status


class KubeClient:
    """JSON in, JSON out; `get` returns None for 404."""

    def __init__(
        self,
        host: str,
        port: int,
        token_file: str,
        ca_file: str,
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.token_file = token_file
        self.timeout = timeout
        self._tls = ssl.create_default_context(cafile=ca_file)
        self._tls.minimum_version = ssl.TLSVersion.TLSv1_2

    @classmethod
    def in_cluster(cls, env: Mapping[str, str], timeout: float = 10.0) -> KubeClient:
        host = env.get("KUBERNETES_SERVICE_HOST", "")
        port = env.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port.isdigit():
            raise ApiError(0, "KUBERNETES_SERVICE_HOST/PORT are not set: not in a pod?")
        sa_dir = Path(env.get("DRYDOCK_SERVICEACCOUNT_DIR") or SA_DIR)
        return cls(host, int(port), str(sa_dir / "token"), str(sa_dir / "ca.crt"), timeout)

    def _token(self) -> str:
        return Path(self.token_file).read_text(encoding="utf-8").strip()

    def request(
        self,
        method: str,
        path: str,
        body: Obj | None = None,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
    ) -> Obj:
        payload = json.dumps(body).encode() if body is not None else b""
        target = path + ("?" + urlencode(dict(query)) if query else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        head = [
            f"{method} {target} HTTP/1.1",
            f"Host: {host}:{self.port}",
            f"Authorization: Bearer {self._token()}",
            "Accept: application/json",
            "User-Agent: drydock-instance-manager",
            "Connection: close",
            f"Content-Length: {len(payload)}",
        ]
        if body is not None:
            head.append(f"Content-Type: {content_type}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        try:
            with (
                socket.create_connection((self.host, self.port), timeout=self.timeout) as sock,
                self._tls.wrap_socket(sock, server_hostname=self.host) as tls,
            ):
                tls.sendall(raw)
                response = _read_all(tls)
        except (OSError, ssl.SSLError) as err:
            raise ApiError(0, f"{method} {path}: {err}") from err
        status, data = parse_response(response)
        if status >= 400:
            raise ApiError(status, f"{method} {path}: {_message(data)}")
        if not data:
            return {}
        parsed = json.loads(data)
        return parsed if isinstance(parsed, dict) else {}

    def get(self, path: str) -> Obj | None:
        try:
            return self.request("GET", path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise


def _read_all(sock: ssl.SSLSocket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = sock.recv(65536)
        except ssl.SSLZeroReturnError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE:
            raise ApiError(0, "response too large")
    return b"".join(chunks)


def parse_response(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of an HTTP/1.1 response read to the end of the connection."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ApiError(0, "truncated HTTP response")
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ApiError(0, f"not an HTTP response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = dechunk(body)
    elif "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return int(parts[1]), body


def dechunk(data: bytes) -> bytes:
    out: list[bytes] = []
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise ApiError(0, "truncated chunked body")
        size = int(data[pos:end].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(out)
        start = end + 2
        if start + size > len(data):
            raise ApiError(0, "truncated chunked body")
        out.append(data[start : start + size])
        pos = start + size + 2


def _message(data: bytes) -> str:
    try:
        parsed = json.loads(data)
    except ValueError:
        return data[:200].decode("utf-8", "replace")
    return str(parsed.get("message", "")) if isinstance(parsed, dict) else ""


def path(group: str, version: str, plural: str, namespace: str, name: str = "") -> str:
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    out = f"{base}/namespaces/{quote(namespace, safe='')}/{plural}"
    return f"{out}/{quote(name, safe='')}" if name else out
