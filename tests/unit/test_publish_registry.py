"""Registry client: digest computation, media types, retries and digest read-back rules.

The HTTP behaviour is exercised against a tiny in-process HTTP server on loopback that
plays a registry answering badly on purpose (5xx, missing or lying digest headers).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from pipeline.errors import PublishError, RegistryError
from pipeline.publish.sign import split_reference
from pipeline.tools import registry as reg

IMAGE = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": reg.DOCKER_MANIFEST,
        "config": {"digest": "sha256:" + "c" * 64, "size": 1, "mediaType": "x"},
        "layers": [{"digest": "sha256:" + "a" * 64, "size": 1, "mediaType": "y"}],
    }
).encode()
INDEX = json.dumps(
    {"schemaVersion": 2, "manifests": [{"digest": "sha256:" + "b" * 64, "size": 1}]}
).encode()


def test_digest_of_is_sha256_of_the_bytes() -> None:
    assert reg.digest_of(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_media_type_prefers_the_body_then_the_header() -> None:
    assert reg.media_type_of(IMAGE, reg.OCI_MANIFEST) == reg.DOCKER_MANIFEST
    assert reg.media_type_of(INDEX, reg.DOCKER_INDEX + "; charset=utf-8") == reg.DOCKER_INDEX
    assert reg.media_type_of(INDEX, "application/json") == reg.OCI_INDEX
    assert reg.media_type_of(b"{}", "") == reg.OCI_MANIFEST
    with pytest.raises(RegistryError):
        reg.media_type_of(b"not json", "")


def test_manifest_lists_blobs_and_children() -> None:
    image = reg.Manifest(reg.DOCKER_MANIFEST, reg.digest_of(IMAGE), IMAGE)
    assert image.blobs() == ("sha256:" + "c" * 64, "sha256:" + "a" * 64)
    assert not image.is_index
    index = reg.Manifest(reg.OCI_INDEX, reg.digest_of(INDEX), INDEX)
    assert index.is_index
    assert index.children() == ("sha256:" + "b" * 64,)


def test_loopback_registries_use_plain_http() -> None:
    assert reg.RegistryClient("127.0.0.1:5000").base == "http://127.0.0.1:5000/v2"
    assert reg.RegistryClient("localhost:5000").base == "http://localhost:5000/v2"
    assert reg.RegistryClient("ghcr.io").base == "https://ghcr.io/v2"
    assert reg.RegistryClient("10.0.0.1:5000", insecure=True).base.startswith("http://")


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("127.0.0.1:5000/drydock/pg:15-minimal", ("127.0.0.1:5000", "drydock/pg", "15-minimal")),
        ("localhost/pg", ("localhost", "pg", "latest")),
        (
            "ghcr.io/o/pg:1@sha256:" + "d" * 64,
            ("ghcr.io", "o/pg", "sha256:" + "d" * 64),
        ),
    ],
)
def test_split_reference(image: str, expected: tuple[str, str, str]) -> None:
    assert split_reference(image) == expected


def test_split_reference_needs_a_registry() -> None:
    with pytest.raises(PublishError):
        split_reference("drydock/pg:15")


class _Registry(BaseHTTPRequestHandler):
    """Answers manifest requests according to the class-level script."""

    failures: ClassVar[list[int]] = []  # status codes to answer before behaving
    announce: ClassVar[str | None] = None  # Docker-Content-Digest to send (None: none)
    seen: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def _answer(self, body: bool) -> None:
        type(self).seen.append(f"{self.command} {self.path}")
        if type(self).failures:
            self.send_response(type(self).failures.pop(0))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", reg.DOCKER_MANIFEST)
        self.send_header("Content-Length", str(len(IMAGE)))
        if type(self).announce is not None:
            self.send_header("Docker-Content-Digest", type(self).announce or "")
        self.end_headers()
        if body:
            self.wfile.write(IMAGE)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)


@pytest.fixture
def server() -> Iterator[str]:
    _Registry.failures = []
    _Registry.announce = None
    _Registry.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_5xx_is_retried_then_succeeds(server: str) -> None:
    _Registry.failures = [503, 502]
    _Registry.announce = reg.digest_of(IMAGE)
    client = reg.RegistryClient(server, attempts=3, max_wait=0.01, timeout=5)
    assert client.digest("r", "t") == reg.digest_of(IMAGE)
    assert len(_Registry.seen) == 3


def test_retries_are_bounded(server: str) -> None:
    _Registry.failures = [500, 500, 500]
    client = reg.RegistryClient(server, attempts=2, max_wait=0.01, timeout=5)
    with pytest.raises(RegistryError, match="after 2 attempts"):
        client.digest("r", "t")
    assert len(_Registry.seen) == 2


def test_4xx_is_not_retried(server: str) -> None:
    _Registry.failures = [403]
    client = reg.RegistryClient(server, attempts=3, max_wait=0.01, timeout=5)
    with pytest.raises(RegistryError, match="HTTP 403"):
        client.digest("r", "t")
    assert len(_Registry.seen) == 1


def test_digest_is_computed_when_the_header_is_absent(server: str) -> None:
    client = reg.RegistryClient(server, attempts=1, timeout=5)
    assert client.digest("r", "t") == reg.digest_of(IMAGE)
    assert [s.split()[0] for s in _Registry.seen] == ["HEAD", "GET"]


def test_a_lying_digest_header_is_refused(server: str) -> None:
    _Registry.announce = "sha256:" + "0" * 64
    client = reg.RegistryClient(server, attempts=1, timeout=5)
    with pytest.raises(RegistryError, match="hashes to"):
        client.manifest("r", "t")


def test_connection_refused_becomes_registry_error() -> None:
    client = reg.RegistryClient("127.0.0.1:9", attempts=2, max_wait=0.01, timeout=2)
    with pytest.raises(RegistryError, match="after 2 attempts"):
        client.ping()
