"""Registry authentication: challenge parsing, credentials, Basic and Bearer token flows.

The flows run against an in-process HTTP server on loopback that behaves like a hosted
registry with a token service (401 + WWW-Authenticate, then a token endpoint).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from pipeline.errors import RegistryError
from pipeline.tools import registry_auth as auth
from pipeline.tools.registry import RegistryClient

DIGEST = "sha256:" + "e" * 64


def test_parse_bearer_challenge() -> None:
    c = auth.parse_challenge(
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/pg:pull"'
    )
    assert c is not None
    assert c.scheme == "bearer"
    assert c.param("realm") == "https://ghcr.io/token"
    assert c.param("scope") == "repository:o/pg:pull"
    assert auth.parse_challenge('Basic realm="x"') == auth.Challenge("basic", (("realm", "x"),))
    assert auth.parse_challenge("Negotiate abc") is None
    assert auth.parse_challenge("") is None


def test_credentials_from_docker_config(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    encoded = base64.b64encode(b"robot:s3cret:with-colon").decode()
    config.write_text(json.dumps({"auths": {"https://ghcr.io": {"auth": encoded}}}))
    creds = auth.credentials_from_docker_config("ghcr.io", config)
    assert creds == auth.Credentials("robot", "s3cret:with-colon")
    assert "s3cret" not in repr(creds)
    assert auth.credentials_from_docker_config("quay.io", config) is None
    assert auth.credentials_from_docker_config("ghcr.io", tmp_path / "missing.json") is None


def test_environment_credentials_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv(auth.USER_ENV, "ci")
    monkeypatch.setenv(auth.PASSWORD_ENV, "pw")
    assert auth.find_credentials("ghcr.io") == auth.Credentials("ci", "pw")
    monkeypatch.delenv(auth.PASSWORD_ENV)
    assert auth.find_credentials("ghcr.io") is None


class _TokenRegistry(BaseHTTPRequestHandler):
    """A registry that demands a Bearer token (or Basic credentials) for everything."""

    scheme: ClassVar[str] = "bearer"
    token_requests: ClassVar[list[dict[str, list[str]]]] = []
    token_auth: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        return

    def _reply(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        host = self.headers.get("Host", "")
        if url.path == "/token":
            type(self).token_requests.append(parse_qs(url.query))
            type(self).token_auth.append(self.headers.get("Authorization", ""))
            self._reply(200, {"Content-Type": "application/json"}, b'{"token": "t0k3n"}')
            return
        expected = (
            "Bearer t0k3n"
            if type(self).scheme == "bearer"
            else ("Basic " + base64.b64encode(b"robot:pw").decode())
        )
        if self.headers.get("Authorization") != expected:
            if type(self).scheme == "bearer":
                challenge = (
                    f'Bearer realm="http://{host}/token",service="{host}",'
                    'scope="repository:o/pg:pull"'
                )
            else:
                challenge = 'Basic realm="registry"'
            self._reply(401, {"WWW-Authenticate": challenge})
            return
        self._reply(200, {"Docker-Content-Digest": DIGEST})

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()


@pytest.fixture
def token_registry() -> Iterator[str]:
    _TokenRegistry.token_requests = []
    _TokenRegistry.token_auth = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _TokenRegistry)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_bearer_token_is_fetched_once_per_repository(token_registry: str) -> None:
    _TokenRegistry.scheme = "bearer"
    client = RegistryClient(
        token_registry, attempts=1, timeout=5, credentials=auth.Credentials("robot", "pw")
    )
    assert client.digest("o/pg", "15") == DIGEST
    assert client.digest("o/pg", "16") == DIGEST
    assert len(_TokenRegistry.token_requests) == 1
    assert _TokenRegistry.token_requests[0]["scope"] == ["repository:o/pg:pull"]
    assert _TokenRegistry.token_auth[0] == "Basic " + base64.b64encode(b"robot:pw").decode()


def test_anonymous_bearer_token(token_registry: str) -> None:
    _TokenRegistry.scheme = "bearer"
    client = RegistryClient(token_registry, attempts=1, timeout=5)
    assert client.digest("o/pg", "15") == DIGEST
    assert _TokenRegistry.token_auth == [""]


def test_basic_auth_needs_credentials(token_registry: str) -> None:
    _TokenRegistry.scheme = "basic"
    try:
        with_creds = RegistryClient(
            token_registry, attempts=1, timeout=5, credentials=auth.Credentials("robot", "pw")
        )
        assert with_creds.digest("o/pg", "15") == DIGEST
        without = RegistryClient(token_registry, attempts=1, timeout=5)
        with pytest.raises(RegistryError, match="HTTP 401"):
            without.digest("o/pg", "15")
    finally:
        _TokenRegistry.scheme = "bearer"
