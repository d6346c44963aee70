"""Publication on the real Docker engine and registry: stage, verify, promote, sign.

Uses the shared registry on 127.0.0.1:5000 (unique repository names per run) and, for the
fault drill, a private registry instance it may stop and restart. A missing engine,
registry or cosign fails these tests; nothing is skipped.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.errors import PublishError, ToolError, VerificationFailed
from pipeline.models.publish import PublishedImage
from pipeline.publish import sign
from pipeline.publish.push import PushRetry, Release, promote, publish, push_to_staging
from pipeline.publish.tags import TagSet, operand_tags
from pipeline.tools import docker
from pipeline.tools.cosign import Cosign, locate_cosign
from pipeline.tools.locate import locate
from pipeline.tools.registry import RegistryClient
from pipeline.tools.registry_server import RegistryServer
from pipeline.tools.runner import run

pytestmark = pytest.mark.integration

SHARED_REGISTRY = "127.0.0.1:5000"
WHEN = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FAST = PushRetry(attempts=3, max_wait=1.0, timeout=300.0)


@pytest.fixture(scope="module")
def engine() -> None:
    try:
        run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=30)
    except ToolError as err:
        pytest.fail(f"Docker engine not available (scripts/host.sh up): {err}")


@pytest.fixture(scope="module")
def client() -> RegistryClient:
    c = RegistryClient(SHARED_REGISTRY, attempts=2, max_wait=0.5, timeout=10)
    try:
        c.ping()
    except PublishError as err:
        pytest.fail(f"registry {SHARED_REGISTRY} not available (scripts/host.sh up): {err}")
    return c


@pytest.fixture
def make_image(engine: None, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Build tiny single-layer images with `docker import`; removed afterwards."""
    made: list[str] = []

    def make(extra_bytes: int = 0) -> str:
        name = uuid.uuid4().hex[:12]
        tarball = tmp_path / f"{name}.tar"
        with tarfile.open(tarball, "w") as tar:
            data = f"drydock integration test {name}\n".encode()
            info = tarfile.TarInfo("hello.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            if extra_bytes:
                blob = os.urandom(extra_bytes)  # incompressible: the push takes a while
                info = tarfile.TarInfo("noise.bin")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        ref = f"drydock-it/publish:{name}"
        run(["docker", "import", str(tarball), ref], timeout=300)
        made.append(ref)
        return ref

    yield make
    for ref in made:
        run(["docker", "image", "rm", "--force", ref], timeout=60, check=False)


def _release(tags: TagSet | None = None) -> Release:
    repo = f"drydock-it/{uuid.uuid4().hex[:10]}/postgresql"
    return Release(
        target="postgresql-15-minimal-bookworm",
        repository=repo,
        tags=tags or operand_tags("15.20", "minimal", "bookworm", WHEN),
        major=15,
        flavour="minimal",
        release="bookworm",
        created=WHEN.isoformat(),
    )


def test_publish_stages_verifies_and_promotes(
    client: RegistryClient, make_image: Callable[..., str]
) -> None:
    release = _release()
    published = publish(make_image(), release, client, gated=True, retry=FAST)

    assert published.gated
    assert published.repository == release.repository
    assert published.tag == "15.20-202611271200-minimal-bookworm"
    assert client.list_tags(release.repository) == tuple(sorted(release.tags.all))
    for tag in release.tags.all:
        assert client.digest(release.repository, tag) == published.digest
        manifest = client.manifest(release.repository, tag)
        assert manifest is not None
        assert manifest.digest == published.digest
    assert client.digest(release.staging_repository, release.tags.immutable) == published.digest
    assert published.reference == (
        f"{SHARED_REGISTRY}/{release.repository}:{release.tags.immutable}@{published.digest}"
    )


def test_failed_gate_stays_in_staging(
    client: RegistryClient, make_image: Callable[..., str]
) -> None:
    release = _release()
    staged = publish(make_image(), release, client, gated=False, retry=FAST)

    assert not staged.gated
    assert staged.repository == release.staging_repository
    assert client.list_tags(release.staging_repository) == (release.tags.immutable,)
    assert client.list_tags(release.repository) == ()
    with pytest.raises(PublishError, match="failed its gate"):
        promote(staged, release, client, gated=False)
    assert client.list_tags(release.repository) == ()


def test_existing_immutable_tag_is_never_overwritten(
    client: RegistryClient, make_image: Callable[..., str]
) -> None:
    release = _release()
    original = make_image()
    first = publish(original, release, client, gated=True, retry=FAST)

    with pytest.raises(PublishError, match="never overwritten") as caught:
        publish(make_image(), release, client, gated=True, retry=FAST)
    assert caught.value.exit_code == 3
    for tag in release.tags.all:
        assert client.digest(release.repository, tag) == first.digest

    # Publishing the very same digest again is not an overwrite; it changes nothing.
    again = publish(original, release, client, gated=True, retry=FAST)
    assert again.digest == first.digest
    assert client.list_tags(release.repository) == tuple(sorted(release.tags.all))


def _stop_when_upload_starts(server: RegistryServer, stopped: threading.Event) -> None:
    """Stop the registry as soon as a blob upload is in progress (mid-push)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        uploads = list(server.storage.rglob("_uploads/*/data"))
        if any(path.stat().st_size > 0 for path in uploads if path.exists()):
            server.stop()
            stopped.set()
            return
        time.sleep(0.02)


def test_fault_drill_registry_dies_mid_push(tmp_path: Path, make_image: Callable[..., str]) -> None:
    image = make_image(extra_bytes=48 * 1024 * 1024)
    release = _release()
    with RegistryServer(tmp_path / "drill-registry") as server:
        drill = RegistryClient(server.address, attempts=3, max_wait=0.5, timeout=10)
        stopped = threading.Event()
        watcher = threading.Thread(target=_stop_when_upload_starts, args=(server, stopped))
        watcher.start()
        started = time.monotonic()
        with pytest.raises(PublishError) as caught:
            publish(image, release, drill, gated=True, retry=FAST)
        watcher.join(timeout=130)
        assert stopped.is_set(), "the registry was not stopped mid-push"
        assert caught.value.exit_code == 3
        assert "3 attempts" in str(caught.value)
        assert time.monotonic() - started < 600

        server.start()  # same storage: whatever half-arrived is still there
        assert drill.list_tags(release.repository) == ()
        published = publish(image, release, drill, gated=True, retry=FAST)
        assert published.registry == server.address
        for tag in release.tags.all:
            assert drill.digest(release.repository, tag) == published.digest


SBOM = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "version": 1,
    "metadata": {"component": {"type": "container", "name": "drydock-it"}},
    "components": [{"type": "library", "name": "hello", "version": "1"}],
}


@pytest.fixture(scope="module")
def cosign() -> Cosign:
    try:
        return locate_cosign()
    except ToolError as err:
        pytest.fail(f"cosign not available (scripts/tools.sh cosign): {err}")


def test_sign_attest_verify_and_detect_a_repointed_tag(
    *,
    client: RegistryClient,
    make_image: Callable[..., str],
    cosign: Cosign,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    key = sign.ensure_key(cosign, key_dir=tmp_path / "keys")
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert key.private.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys" / "cosign.password").stat().st_mode & 0o777 == 0o600
    assert key.password not in repr(key)
    assert sign.ensure_key(cosign, key_dir=tmp_path / "keys").password == key.password

    release = _release()
    published = publish(make_image(), release, client, gated=True, retry=FAST)
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps(SBOM), encoding="utf-8")
    sign.sign_image(cosign, published, key, sbom)

    rolling = f"{SHARED_REGISTRY}/{release.repository}:{release.tags.rolling[0]}"
    verified = sign.verify_image(cosign, client, rolling, key.public)
    assert verified.digest == published.digest
    assert verified.signature and verified.attestation
    cli_ok = CliRunner().invoke(main, ["verify", rolling, "--key", str(key.public)])
    assert cli_ok.exit_code == 0, cli_ok.output
    assert json.loads(cli_ok.stdout)["digest"] == published.digest
    with pytest.raises(VerificationFailed, match="expected"):
        sign.verify_image(cosign, client, rolling, key.public, expect_digest="sha256:" + "0" * 64)

    # Re-point the rolling tag at an unsigned image: verification must now fail (exit 1).
    unsigned = make_image()
    docker.tag(unsigned, rolling)
    docker.push(rolling)
    docker.untag(rolling)
    assert client.digest(release.repository, release.tags.rolling[0]) != published.digest
    with pytest.raises(VerificationFailed) as caught:
        sign.verify_image(cosign, client, rolling, key.public)
    assert caught.value.exit_code == 1
    cli_bad = CliRunner().invoke(main, ["verify", rolling, "--key", str(key.public)])
    assert cli_bad.exit_code == 1, cli_bad.output
    # The immutable tag still names the signed digest.
    immutable = f"{SHARED_REGISTRY}/{release.repository}:{release.tags.immutable}"
    assert sign.verify_image(cosign, client, immutable, key.public).digest == published.digest
    assert "run: " in caplog.text  # argv was logged ...
    assert key.password not in caplog.text  # ... and the password never was


def test_unsigned_image_cannot_be_signed_when_not_gated(
    client: RegistryClient, make_image: Callable[..., str], cosign: Cosign, tmp_path: Path
) -> None:
    release = _release()
    staged = push_to_staging(make_image(), release, client, FAST)
    key = sign.SigningKey(tmp_path / "k", tmp_path / "p", "x")
    with pytest.raises(PublishError, match="gate"):
        sign.sign_image(cosign, staged, key, tmp_path / "sbom.json")


def test_a_multi_platform_index_is_promoted_with_its_children(
    client: RegistryClient, make_image: Callable[..., str]
) -> None:
    release = _release()
    children = []
    for n in range(2):
        part = Release(release.target, release.repository, TagSet(f"part-{n}", ()))
        children.append(push_to_staging(make_image(), part, client, FAST).digest)
    staging = f"{SHARED_REGISTRY}/{release.staging_repository}"
    crane = locate("crane")
    run(
        [str(crane.path), "index", "append", "--insecure",
         "-m", f"{staging}@{children[0]}", "-m", f"{staging}@{children[1]}",
         "-t", f"{staging}:{release.tags.immutable}"],
        timeout=120,
    )  # fmt: skip
    index_digest = client.digest(release.staging_repository, release.tags.immutable)
    assert index_digest is not None
    staged = PublishedImage(
        target=release.target,
        registry=SHARED_REGISTRY,
        repository=release.staging_repository,
        tag=release.tags.immutable,
        digest=index_digest,
        gated=False,
    )

    published = promote(staged, release, client, gated=True)

    index = client.manifest(release.repository, release.tags.immutable)
    assert index is not None
    assert index.is_index
    assert index.digest == published.digest == index_digest
    assert set(index.children()) == set(children)
    for child in children:
        manifest = client.manifest(release.repository, child)
        assert manifest is not None
        for blob in manifest.blobs():
            assert client.blob_exists(release.repository, blob)


def test_blob_copy_through_an_upload_session(
    client: RegistryClient, make_image: Callable[..., str]
) -> None:
    """The path taken when a registry answers a mount request with 202 (no mount)."""
    release = _release()
    staged = push_to_staging(make_image(), release, client, FAST)
    manifest = client.manifest(staged.repository, staged.digest)
    assert manifest is not None
    target = release.repository + "-copy"
    resp = client.session.post(f"{client.base}/{target}/blobs/uploads/", timeout=client.timeout)
    assert resp.status_code == 202
    for blob in manifest.blobs()[:1]:
        client._copy_blob(staged.repository, blob, resp.headers["Location"])
        assert client.blob_exists(target, blob)


def test_verification_fails_under_another_key(
    client: RegistryClient,
    make_image: Callable[..., str],
    cosign: Cosign,
    tmp_path: Path,
) -> None:
    key = sign.ensure_key(cosign, key_dir=tmp_path / "signer")
    other = sign.ensure_key(cosign, key_dir=tmp_path / "stranger")
    published = publish(make_image(), _release(), client, gated=True, retry=FAST)
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps(SBOM), encoding="utf-8")
    sign.sign_image(cosign, published, key, sbom)
    ref = f"{published.registry}/{published.repository}:{published.tag}"
    assert sign.verify_image(cosign, client, ref, key.public).signature
    with pytest.raises(VerificationFailed, match="signature"):
        sign.verify_image(cosign, client, ref, other.public)


def test_verify_cli_exits_3_when_the_registry_cannot_be_asked(cosign: Cosign) -> None:
    result = CliRunner().invoke(main, ["verify", "127.0.0.1:9/nothing:here", "--timeout", "2"])
    assert result.exit_code == 3, result.output
    assert "failed after" in result.output


def test_staging_by_image_id_proves_the_registry_holds_that_image(
    client: RegistryClient, make_image: Callable[..., str]
) -> None:
    built, other = make_image(), make_image()
    built_id, other_id = docker.image_id(built), docker.image_id(other)
    staged = push_to_staging(built_id, _release(), client, FAST, image_id=built_id)
    manifest = client.manifest(staged.repository, staged.digest)
    assert manifest is not None and manifest.document()["config"]["digest"] == built_id
    # The local name now holds another image (a concurrent build moved the tag): the run's
    # image id no longer matches what was pushed under it, and nothing is staged.
    with pytest.raises(PublishError, match=f"not the built image {other_id}"):
        push_to_staging(built, _release(), client, FAST, image_id=other_id)
