"""RegistryCheck against a scripted loopback registry: found, missing, retried, token,
namespaced locations."""

from __future__ import annotations

import json

from loopback_http import Script, serve

from pipeline.catalog.registry import RegistryCheck

DIGEST = "sha256:" + "b" * 64
FAST = RegistryCheck(timeout=2.0, attempts=3)


def test_found_when_the_registry_serves_the_digest() -> None:
    script = Script([(200, {"Docker-Content-Digest": DIGEST}, b"")])
    with serve(script) as registry:
        assert FAST.exists(registry, "drydock/postgresql", DIGEST)
    method, path, headers = script.seen[0]
    assert (method, path) == ("HEAD", f"/v2/drydock/postgresql/manifests/{DIGEST}")
    assert "application/vnd.oci.image.index.v1+json" in headers["Accept"]


def test_missing_or_other_digest_is_not_found() -> None:
    with serve(Script([(404, {}, b"")])) as registry:
        assert not FAST.exists(registry, "a/b", DIGEST)
    other = "sha256:" + "c" * 64
    with serve(Script([(200, {"Docker-Content-Digest": other}, b"")])) as registry:
        assert not FAST.exists(registry, "a/b", DIGEST)


def test_transient_errors_are_retried() -> None:
    found = {"Docker-Content-Digest": DIGEST}
    script = Script([(503, {}, b""), (429, {}, b""), (200, found, b"")])
    with serve(script) as registry:
        assert FAST.exists(registry, "a/b", DIGEST)
    assert len(script.seen) == 3


def test_persistent_failure_fails_closed() -> None:
    script = Script([(503, {}, b"")])
    with serve(script) as registry:
        assert not FAST.exists(registry, "a/b", DIGEST)
    assert len(script.seen) == 3


def test_anonymous_bearer_token_is_fetched() -> None:
    token = json.dumps({"token": "t0k"}).encode()
    found = {"Docker-Content-Digest": DIGEST}
    script = Script([(401, {}, b""), (200, {}, token), (200, found, b"")])
    with serve(script) as registry:
        challenge = (
            f'Bearer realm="http://{registry}/token",service="reg",scope="repository:a/b:pull"'
        )
        script.responses[0] = (401, {"WWW-Authenticate": challenge}, b"")
        assert FAST.exists(registry, "a/b", DIGEST)
    assert script.seen[1][1].startswith("/token?")
    assert script.seen[2][2]["Authorization"] == "Bearer t0k"


def test_scheme_plain_http_only_on_loopback() -> None:
    assert FAST.client("127.0.0.1:5000").base == "http://127.0.0.1:5000/v2"
    assert FAST.client("localhost:5000").base == "http://localhost:5000/v2"
    assert FAST.client("ghcr.io/acme").base == "https://ghcr.io/v2"
    assert FAST.client("10.0.0.5:5000").base == "https://10.0.0.5:5000/v2"


def test_a_namespace_is_part_of_the_repository_path() -> None:
    script = Script([(200, {"Docker-Content-Digest": DIGEST}, b"")])
    with serve(script) as registry:
        assert FAST.exists(f"{registry}/team/drydock", "drydock/postgresql", DIGEST)
    assert script.seen[0][1] == f"/v2/team/drydock/drydock/postgresql/manifests/{DIGEST}"


def test_a_header_without_a_matching_body_is_not_trusted() -> None:
    # No Docker-Content-Digest: the manifest is read and hashed; this body is not DIGEST.
    script = Script([(200, {}, b""), (200, {}, b"{}")])
    with serve(script) as registry:
        assert not FAST.exists(registry, "a/b", DIGEST)
