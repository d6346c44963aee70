"""`drydock scan` takes the image references people type (issue 16), on the real engine and
the shared local registry: a local name without a tag, an image id, a registry reference by
tag and by digest (pulled at that digest, removed again afterwards), a `docker save`
tarball, and references that cannot be resolved (exit 2, saying what was tried).

The image is a tiny one imported from a hand-made rootfs (a passwd file and a script), so
each scan is quick; Dockle is the one scanner run and the apt check is off, because what is
under test is which image gets scanned and what the report calls it, not the verdict.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import main
from pipeline.tools import docker

pytestmark = pytest.mark.integration

REGISTRY = "127.0.0.1:5000"


def _rootfs(path: Path) -> Path:
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/false\napp:x:1000:1000::/app:/bin/false\n",
        "etc/group": "root:x:0:\napp:x:1000:\n",
        "app/run.sh": "#!/bin/sh\necho hello\n",
    }
    with tarfile.open(path, "w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def local_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(repository without tag, image id) of a fresh image tagged `:latest` only."""
    repository = f"drydock-scanref-{uuid.uuid4().hex[:8]}/app"
    rootfs = _rootfs(tmp_path_factory.mktemp("rootfs") / "rootfs.tar")
    image_id = docker.import_rootfs(
        rootfs, f"{repository}:latest", ["USER 1000", 'CMD ["/app/run.sh"]']
    )
    yield repository, image_id
    docker.remove(image_id)


def _scan(tmp_path: Path, *args: str) -> tuple[Result, dict[str, object] | None]:
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        main,
        [
            "scan",
            *args,
            "--scanner",
            "dockle",
            "--no-update-check",
            "--format",
            "json",
            "-o",
            str(report),
        ],
    )
    doc = json.loads(report.read_text()) if report.exists() else None
    return result, doc


def _scanned(doc: dict[str, object] | None) -> tuple[str, str]:
    assert doc is not None
    images = doc["images"]
    assert isinstance(images, list) and len(images) == 1
    return str(images[0]["image"]), str(images[0]["digest"])


def test_a_local_name_without_a_tag_is_scanned_as_latest(
    local_image: tuple[str, str], tmp_path: Path
) -> None:
    repository, image_id = local_image
    result, doc = _scan(tmp_path, repository)
    assert result.exit_code in (0, 1), result.output  # scanned and judged, not bad input
    assert _scanned(doc) == (f"{repository}:latest", image_id)


def test_an_image_id_is_scanned(local_image: tuple[str, str], tmp_path: Path) -> None:
    _, image_id = local_image
    result, doc = _scan(tmp_path, image_id.removeprefix("sha256:")[:12])
    assert result.exit_code in (0, 1), result.output
    assert _scanned(doc) == (image_id, image_id)


@pytest.fixture(scope="module")
def pushed(local_image: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """(registry name:tag, digest) of the image pushed to the shared registry; no local copy."""
    repository, image_id = local_image
    remote = f"{REGISTRY}/{repository}:1"
    docker.tag(image_id, remote)
    digest = docker.push(remote)
    docker.untag(remote)
    assert digest.startswith("sha256:")
    yield remote, digest
    docker.remove(f"{REGISTRY}/{repository}@{digest}")


def test_a_registry_reference_by_tag_is_pulled_at_its_digest(
    pushed: tuple[str, str], tmp_path: Path
) -> None:
    remote, digest = pushed
    by_digest = f"{remote.rsplit(':', 1)[0]}@{digest}"
    assert docker.inspect(by_digest) is None
    result, doc = _scan(tmp_path, remote)
    assert result.exit_code in (0, 1), result.output
    assert _scanned(doc) == (remote, digest)
    assert docker.inspect(by_digest) is None, "the pulled image must be removed again"


def test_a_registry_reference_by_digest_is_scanned_at_that_digest(
    pushed: tuple[str, str], tmp_path: Path
) -> None:
    remote, digest = pushed
    by_digest = f"{remote.rsplit(':', 1)[0]}@{digest}"
    result, doc = _scan(tmp_path, by_digest)
    assert result.exit_code in (0, 1), result.output
    assert _scanned(doc) == (by_digest, digest)


def test_a_docker_save_tarball_is_scanned(local_image: tuple[str, str], tmp_path: Path) -> None:
    repository, image_id = local_image
    tarball = tmp_path / "app.tar"
    docker.save(f"{repository}:latest", tarball)
    result, doc = _scan(tmp_path, "--input", str(tarball))
    assert result.exit_code in (0, 1), result.output
    assert _scanned(doc) == ("app.tar", image_id)
    # The engine had this image before the load: it must still be there.
    assert docker.inspect(f"{repository}:latest") is not None


@pytest.mark.parametrize(
    ("reference", "said"),
    [
        ("drydock-scanref-nothing/here", "local engine: no image 'drydock-scanref-nothing/here'"),
        (
            f"{REGISTRY}/drydock-scanref-nothing/here:1",
            "no manifest drydock-scanref-nothing/here:1",
        ),
        ("Not A Reference", "not an image reference"),
    ],
)
def test_unresolvable_references_are_bad_input(tmp_path: Path, reference: str, said: str) -> None:
    result, doc = _scan(tmp_path, reference)
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert doc is None, "nothing is scanned when an input is bad"


def test_a_file_that_is_not_an_image_is_bad_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tarball")
    result, _ = _scan(tmp_path, "--input", str(junk))
    assert result.exit_code == 2, result.output
    assert "junk.tar" in result.output
