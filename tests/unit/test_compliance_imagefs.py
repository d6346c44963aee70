"""The docker-save reader: manifest, config, layer order and whiteouts."""

from __future__ import annotations

import io
import tarfile

import pytest
from compliance_helpers import (
    Entry,
    clean_config,
    directory,
    file,
    image_fs,
    image_tar,
    layer,
    opaque,
    symlink,
    whiteout,
)

from pipeline.compliance.imagefs import FileKind, normalise, read_image_filesystem
from pipeline.errors import ScanError


def test_config_fields_are_read() -> None:
    fs = image_fs()
    assert fs.config.user == "26"
    assert fs.config.exposed_ports == ("5432/tcp",)
    assert ("PGDATA", "/var/lib/postgresql/data") in fs.config.env
    assert fs.config.healthcheck == ("CMD", "pg_isready")
    assert fs.config.label("org.opencontainers.image.base.name") == "drydock/debian:bookworm"
    assert [h.created_by for h in fs.config.history][1].startswith("COPY")
    assert fs.config.history[2].empty_layer
    assert fs.repo_tags == ("drydock/test:1",)


def test_files_keep_mode_owner_and_head() -> None:
    fs = image_fs(None, [Entry("usr/bin/su", data=b"\x7fELF-su", mode=0o4755, uid=0, gid=0)])
    su = fs.files["usr/bin/su"]
    assert su.kind == FileKind.FILE
    assert su.mode == 0o4755
    assert su.head.startswith(b"\x7fELF")
    assert fs.files["tmp"].kind == FileKind.DIR
    assert fs.files["tmp"].mode == 0o1777
    assert "root:x:0:0" in fs.text("etc/passwd")


def test_a_later_layer_replaces_a_file_and_its_text() -> None:
    fs = image_fs(None, [file("etc/passwd", "root:x:0:0::/:/bin/sh\n")])
    assert "postgres" not in fs.text("etc/passwd")


def test_whiteout_removes_a_file_and_a_whole_tree() -> None:
    fs = image_fs(
        None,
        [directory("opt/app"), file("opt/app/a"), file("opt/app/sub/b"), file("opt/keep")],
        [whiteout("opt/app"), whiteout("etc/shadow")],
    )
    assert not any(p.startswith("opt/app") for p in fs.files)
    assert fs.exists("opt/keep")
    assert not fs.exists("etc/shadow")
    assert fs.text("etc/shadow") == ""


def test_opaque_directory_hides_lower_layers_but_not_its_own_layer() -> None:
    fs = image_fs(
        None,
        [file("var/lib/apt/lists/mirror.invalid_InRelease", "x")],
        # the new content is listed before the opaque marker on purpose
        [file("var/lib/apt/lists/new"), opaque("var/lib/apt/lists")],
    )
    lists = sorted(p for p in fs.files if p.startswith("var/lib/apt/lists/"))
    assert lists == ["var/lib/apt/lists/new"]


def test_a_file_replacing_a_directory_drops_the_directory_contents() -> None:
    fs = image_fs(None, [directory("srv"), file("srv/x")], [symlink("srv", "/opt")])
    assert fs.files["srv"].kind == FileKind.SYMLINK
    assert not fs.exists("srv/x")


def test_oci_blob_paths_and_compressed_layers() -> None:
    layers = [layer([file("etc/passwd", "root:x:0:0::/:/bin/sh\n")], compress=True)]
    raw = image_tar(clean_config(), layers, oci_paths=True)
    fs = read_image_filesystem(io.BytesIO(raw))
    assert fs.exists("etc/passwd")


def test_picks_the_image_by_tag() -> None:
    raw = image_tar(clean_config(), [layer([file("a")])], repo_tags=("x:1", "x:2"))
    assert read_image_filesystem(io.BytesIO(raw), image="x:2").exists("a")
    with pytest.raises(ScanError, match="no image tagged 'y:1'"):
        read_image_filesystem(io.BytesIO(raw), image="y:1")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not a tarball at all", "not a tar archive"),
        (layer([file("something")]), "manifest.json is missing"),
        (layer([file("manifest.json", "{")]), "not valid JSON"),
        (layer([file("manifest.json", "[]")]), "non-empty list"),
    ],
)
def test_broken_archives_are_scan_errors(raw: bytes, message: str) -> None:
    with pytest.raises(ScanError, match=message) as info:
        read_image_filesystem(io.BytesIO(raw), "broken.tar")
    assert str(info.value).startswith("native: broken.tar: ")
    assert info.value.exit_code == 3


def test_a_missing_layer_is_named() -> None:
    raw = image_tar(clean_config(), [])
    doc = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as src, tarfile.open(fileobj=doc, mode="w") as dst:
        for member in src:
            data = src.extractfile(member)
            if member.name == "manifest.json" and data is not None:
                text = data.read().replace(b'"Layers": []', b'"Layers": ["gone/layer.tar"]')
                member.size = len(text)
                dst.addfile(member, io.BytesIO(text))
            else:
                dst.addfile(member, data)
    with pytest.raises(ScanError, match=r"gone/layer.tar is missing"):
        read_image_filesystem(io.BytesIO(doc.getvalue()))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("./etc//passwd", "etc/passwd"), ("/usr/bin/", "usr/bin"), ("./", ""), ("a/../b", "b")],
)
def test_normalise(name: str, expected: str) -> None:
    assert normalise(name) == expected
