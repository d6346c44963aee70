"""One parser for registry locations and image references, and the client that uses them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from loopback_http import Script, serve

from pipeline.cli.common import registry_option
from pipeline.errors import InputError, RegistryError
from pipeline.models.reference import ImageReference, RegistryLocation, looks_like_image_id
from pipeline.tools import registry_auth as auth
from pipeline.tools.registry import RegistryClient

DIGEST = "sha256:" + "d" * 64


@pytest.mark.parametrize(
    ("text", "host", "namespace"),
    [
        ("127.0.0.1:5000", "127.0.0.1:5000", ""),
        ("ghcr.io/acme", "ghcr.io", "acme"),
        ("ghcr.io/Acme", "ghcr.io", "acme"),  # GitHub owners may have capitals
        ("registry.example:5000/team/drydock/", "registry.example:5000", "team/drydock"),
        ("localhost:5000", "localhost:5000", ""),
    ],
)
def test_registry_location(text: str, host: str, namespace: str) -> None:
    location = RegistryLocation.parse(text)
    assert (location.host, location.namespace) == (host, namespace)
    assert location.repository("drydock/postgresql") == (
        f"{namespace}/drydock/postgresql" if namespace else "drydock/postgresql"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("https://ghcr.io/acme", "URL"),
        ("acme", "not a registry host"),
        ("ghcr.io/acme/app:1", "names an image"),
        ("ghcr.io/acme@sha256:" + "a" * 64, "names an image"),
        ("ghcr.io/a--b_/c", "not a valid repository name"),
    ],
)
def test_bad_registry_locations_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        RegistryLocation.parse(text)


def test_registry_option_is_bad_input_naming_the_flag() -> None:
    with pytest.raises(InputError) as caught:
        registry_option("https://ghcr.io/acme")
    assert str(caught.value).startswith("--registry: https://ghcr.io/acme: is a URL")
    assert caught.value.exit_code == 2
    assert registry_option("GHCR.io/Acme") == "ghcr.io/acme"
    assert registry_option(None) == "127.0.0.1:5000"


@pytest.mark.parametrize(
    ("text", "canonical", "familiar"),
    [
        ("myapp", "docker.io/library/myapp:latest", "myapp:latest"),
        ("myapp:1.0", "docker.io/library/myapp:1.0", "myapp:1.0"),
        ("acme/app", "docker.io/acme/app:latest", "acme/app:latest"),
        (
            "127.0.0.1:5000/drydock/pg:15",
            "127.0.0.1:5000/drydock/pg:15",
            "127.0.0.1:5000/drydock/pg:15",
        ),
        (f"127.0.0.1:5000/drydock/pg@{DIGEST}", f"127.0.0.1:5000/drydock/pg@{DIGEST}", None),
        (f"ghcr.io/o/pg:1@{DIGEST}", f"ghcr.io/o/pg:1@{DIGEST}", None),
        ("localhost/pg", "localhost/pg:latest", "localhost/pg:latest"),
    ],
)
def test_image_reference_normalised_as_the_engine_does(
    text: str, canonical: str, familiar: str | None
) -> None:
    ref = ImageReference.parse(text)
    assert str(ref) == canonical
    assert ref.familiar == (familiar or canonical)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("MyApp", "lower-case"),
        ("app@sha256:abc", "sha256:<64 hex digits>"),
        ("app:bad tag", "not a valid tag"),
        ("", "empty"),
    ],
)
def test_bad_image_references(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        ImageReference.parse(text)


def test_image_ids() -> None:
    assert looks_like_image_id("sha256:" + "a" * 64)
    assert looks_like_image_id("0123456789ab")
    assert not looks_like_image_id("myapp")
    assert not looks_like_image_id("0123")


def test_ping_refuses_a_web_server_that_is_not_a_registry() -> None:
    with (
        serve(Script([(404, {}, b"not found")])) as host,
        pytest.raises(RegistryError, match="HTTP 404: not an OCI distribution API"),
    ):
        RegistryClient(host, attempts=1).ping()
    with serve(Script([(401, {}, b"")])) as host:
        RegistryClient(host, attempts=1).ping()  # asks for credentials: a registry


def test_namespaced_client_places_every_repository_under_the_namespace() -> None:
    script = Script([(200, {}, b"")])
    with serve(script) as host:
        client = RegistryClient(f"{host}/acme", attempts=1)
        assert client.registry == f"{host}/acme"
        client.mount_blob("drydock/pg", "staging/drydock/pg", DIGEST)
    # The blob is looked for in the target first (200: already there, nothing to mount).
    assert len(script.seen) == 1
    method, path, _ = script.seen[0]
    assert (method, path) == ("HEAD", f"/v2/acme/drydock/pg/blobs/{DIGEST}")


def test_mount_names_the_namespaced_source_repository() -> None:
    script = Script([(404, {}, b""), (201, {}, b"")])
    with serve(script) as host:
        RegistryClient(f"{host}/acme", attempts=1).mount_blob("drydock/pg", "staging/x", DIGEST)
    method, path, _ = script.seen[1]
    assert method == "POST"
    assert path.startswith("/v2/acme/drydock/pg/blobs/uploads/?")
    assert "from=acme%2Fstaging%2Fx" in path


def test_credentials_are_found_by_host_for_a_namespaced_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(auth.USER_ENV, raising=False)
    monkeypatch.delenv(auth.PASSWORD_ENV, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    encoded = base64.b64encode(b"robot:pw").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"ghcr.io": {"auth": encoded}}}))
    client = RegistryClient.from_environment("ghcr.io/acme")
    assert client.auth.credentials == auth.Credentials("robot", "pw")
    assert client.base == "https://ghcr.io/v2"
