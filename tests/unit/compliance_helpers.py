"""Build synthetic `docker save` tarballs in memory for the native-check unit tests.

A test describes layers as lists of entries and an image config as a dict; `image_fs`
runs them through the real parser (`read_image_filesystem`), so the checks are tested on
the same model a real image produces.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.compliance.imagefs import ImageFilesystem, read_image_filesystem
from pipeline.compliance.native_base import TrustedBase

BASE_DIGEST = "sha256:" + "ab" * 32
PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\npostgres:x:26:26:PostgreSQL:/var/lib/postgresql:/bin/sh\n"
)
GROUP = "root:x:0:\npostgres:x:26:\n"
SHADOW = "root:*:19000:0:99999:7:::\npostgres:!:19000::::::\n"
SOURCES = (
    "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\nComponents: main\n"
    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
)


def dpkg_status(*packages: tuple[str, str]) -> str:
    return "\n".join(
        f"Package: {name}\nStatus: install ok installed\nVersion: {version}\n"
        for name, version in packages
    )


@dataclass(frozen=True)
class Entry:
    path: str
    kind: str = "file"  # file, dir, symlink, hardlink
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    linkname: str = ""


def file(path: str, data: str | bytes = b"", mode: int = 0o644) -> Entry:
    raw = data.encode() if isinstance(data, str) else data
    return Entry(path, "file", raw, mode)


def directory(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, "dir", mode=mode)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, "symlink", mode=0o777, linkname=target)


def whiteout(path: str) -> Entry:
    parent, _, name = path.rpartition("/")
    return file(f"{parent}/.wh.{name}" if parent else f".wh.{name}")


def opaque(directory_path: str) -> Entry:
    return file(f"{directory_path}/.wh..wh..opq")


def layer(entries: Iterable[Entry], compress: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w") as tar:
        for e in entries:
            info = tarfile.TarInfo(e.path)
            info.mode, info.uid, info.gid = e.mode, e.uid, e.gid
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, e.linkname
                tar.addfile(info)
            elif e.kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, e.linkname
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    return buf.getvalue()


def base_entries() -> list[Entry]:
    """A tiny, clean Debian-like root filesystem."""
    return [
        directory("etc"),
        file("etc/passwd", PASSWD),
        file("etc/group", GROUP),
        file("etc/shadow", SHADOW, 0o640),
        directory("etc/apt/sources.list.d"),
        file("etc/apt/sources.list.d/debian.sources", SOURCES),
        directory("etc/apt/apt.conf.d"),
        file("etc/apt/apt.conf.d/docker-clean", 'DPkg::Post-Invoke { "rm -f /x"; };\n'),
        directory("tmp", 0o1777),
        directory("usr/bin"),
        file("usr/bin/env", b"\x7fELF", 0o755),
        directory("var/lib/dpkg"),
        file("var/lib/dpkg/status", dpkg_status(("base-files", "12.4"), ("libc6", "2.36-9"))),
        directory("var/lib/apt/lists/partial", 0o700),
        file("var/lib/apt/lists/lock", b"", 0o640),
    ]


def clean_config() -> dict[str, Any]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": "26",
            "Env": ["PATH=/usr/bin:/bin", "PGDATA=/var/lib/postgresql/data", "GPG_KEY=ABCD"],
            "ExposedPorts": {"5432/tcp": {}},
            "Healthcheck": {"Test": ["CMD", "pg_isready"]},
            "Labels": {
                "org.opencontainers.image.base.name": "drydock/debian:bookworm",
                "org.opencontainers.image.base.digest": BASE_DIGEST,
            },
        },
        "history": [
            {"created_by": "debuerreotype rootfs bookworm"},
            {"created_by": "COPY entrypoint.sh /usr/local/bin/ # buildkit"},
            {"created_by": "USER 26", "empty_layer": True},
        ],
    }


def config_with(**changes: Any) -> dict[str, Any]:
    """clean_config() with keys of its `config` replaced (None deletes a key)."""
    doc = copy.deepcopy(clean_config())
    for key, value in changes.items():
        if value is None:
            doc["config"].pop(key, None)
        else:
            doc["config"][key] = value
    return doc


def image_tar(
    config: dict[str, Any],
    layers: Sequence[bytes],
    repo_tags: Sequence[str] = ("drydock/test:1",),
    oci_paths: bool = False,
) -> bytes:
    """A `docker save` tarball (legacy layout, or OCI-style blob paths)."""
    buf = io.BytesIO()
    config_raw = json.dumps(config).encode()
    config_hex = hashlib.sha256(config_raw).hexdigest()
    config_name = f"blobs/sha256/{config_hex}" if oci_paths else f"{config_hex}.json"
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add(config_name, config_raw)
        names = []
        for n, data in enumerate(layers):
            digest = hashlib.sha256(data).hexdigest()
            name = f"blobs/sha256/{digest}" if oci_paths else f"{n:02d}{digest[:20]}/layer.tar"
            add(name, data)
            names.append(name)
        manifest = [{"Config": config_name, "RepoTags": list(repo_tags), "Layers": names}]
        add("manifest.json", json.dumps(manifest).encode())
    return buf.getvalue()


def diff_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def base_layer_id() -> str:
    """The content digest of the clean base layer (tar members carry mtime 0: stable)."""
    return diff_id(layer(base_entries()))


def trusted_base() -> TrustedBase:
    return TrustedBase("drydock/debian:bookworm", (base_layer_id(),))


def image_fs(
    config: dict[str, Any] | None = None, *extra_layers: Iterable[Entry]
) -> ImageFilesystem:
    """The clean base layer, then extra layers, through the real parser.

    As an engine would, the config gets rootfs.diff_ids for the layers (unless it names
    its own), and history and layers are made to agree: an empty layer for each history
    entry that claims one beyond the given layers, a RUN entry for each extra layer."""
    doc = copy.deepcopy(config if config is not None else clean_config())
    layers = [layer(base_entries()), *(layer(entries) for entries in extra_layers)]
    history = doc.setdefault("history", [])
    claimed = sum(1 for h in history if not h.get("empty_layer"))
    layers += [layer([]) for _ in range(claimed - len(layers))]
    history += [{"created_by": "RUN test layer"} for _ in range(len(layers) - claimed)]
    doc.setdefault("rootfs", {"type": "layers", "diff_ids": [diff_id(d) for d in layers]})
    raw = image_tar(doc, layers)
    return read_image_filesystem(io.BytesIO(raw), "test.tar")
