"""Read an image from a `docker save` tarball into a model the native checks can query.

Native checks must look at the image itself, not at what a Dockerfile claims: the config
(User, ExposedPorts, Env, Healthcheck, labels, history) and the merged layer filesystem,
with each layer's whiteouts applied in order exactly as the overlay driver would. This is
pure Python over `tarfile`; no process is started, nothing is extracted to disk.

Only metadata is kept for every path (type, mode, owner, size, link target, the first
bytes, and whether a PEM private key appears anywhere in its first `KEY_SCAN_LIMIT` bytes,
read in chunks); the full text is kept for the few files the checks parse (passwd, group,
shadow, dpkg status, apt sources and configuration).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import posixpath
import re
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from pipeline.errors import ScanError

log = logging.getLogger(__name__)

HEAD_BYTES = 64  # enough for "-----BEGIN OPENSSH PRIVATE KEY-----"
TEXT_LIMIT = 16 * 1024 * 1024
KEY_SCAN_LIMIT = 64 * 1024 * 1024  # bytes of each file searched for a private key
CHUNK = 1024 * 1024
# A PEM private key: the BEGIN line, optional RFC 1421 headers, then a base64 body (a
# library that only carries the marker text as a constant, like libgnutls, is not a key).
PRIVATE_KEY = re.compile(
    rb"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----\r?\n"
    rb"(?:[A-Za-z-]+: [^\r\n]{0,200}\r?\n)*\r?\n?[A-Za-z0-9+/=\r\n]{64}"
)
_KEY_OVERLAP = 1024  # a key split across two chunks is still found
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"

# Files whose whole text the checks need.
TEXT_FILES = (
    "etc/passwd",
    "etc/group",
    "etc/shadow",
    "etc/gshadow",
    "var/lib/dpkg/status",
    "etc/apt/sources.list",
    "etc/apt/sources.list.d/*",
    "etc/apt/apt.conf",
    "etc/apt/apt.conf.d/*",
)


class FileKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    OTHER = "other"  # devices, fifos


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, normalised: "etc/passwd"
    kind: FileKind
    mode: int  # permission bits, including setuid (0o4000), setgid (0o2000), sticky (0o1000)
    uid: int = 0
    gid: int = 0
    size: int = 0
    linkname: str = ""
    head: bytes = b""
    private_key: bool = False  # a PEM private key marker in the first KEY_SCAN_LIMIT bytes


@dataclass(frozen=True)
class HistoryEntry:
    created_by: str
    empty_layer: bool = False


@dataclass(frozen=True)
class ImageConfig:
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    healthcheck: tuple[str, ...] | None = None  # the Test array, None if absent
    labels: tuple[tuple[str, str], ...] = ()
    volumes: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    diff_ids: tuple[str, ...] = ()  # rootfs.diff_ids: the layers' content digests, bottom first

    def label(self, key: str) -> str:
        return dict(self.labels).get(key, "")


@dataclass(frozen=True)
class ImageFilesystem:
    """An image as the native checks see it: its config and its merged filesystem."""

    config: ImageConfig
    files: Mapping[str, FileEntry]
    texts: Mapping[str, str]
    repo_tags: tuple[str, ...] = ()

    def text(self, path: str) -> str:
        return self.texts.get(path, "")

    def exists(self, path: str) -> bool:
        return path in self.files

    def texts_matching(self, pattern: str) -> Iterator[tuple[str, str]]:
        for path in sorted(self.texts):
            if fnmatch.fnmatchcase(path, pattern):
                yield path, self.texts[path]


def normalise(name: str) -> str:
    """'./etc//passwd' -> 'etc/passwd'; the root itself -> ''."""
    path = posixpath.normpath("/" + name).lstrip("/")
    return "" if path == "." else path


def _wants_text(path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in TEXT_FILES)


def _kind(member: tarfile.TarInfo) -> FileKind:
    if member.isdir():
        return FileKind.DIR
    if member.issym():
        return FileKind.SYMLINK
    if member.islnk():
        return FileKind.HARDLINK
    if member.isreg():
        return FileKind.FILE
    return FileKind.OTHER


def _remove(
    files: dict[str, FileEntry],
    texts: dict[str, str],
    path: str,
    keep: set[str],
    *,
    itself: bool = True,
) -> None:
    """Delete path (if `itself`) and everything below it, except what this layer added."""
    prefix = path + "/"
    for store in (files, texts):
        doomed = [
            k for k in store if (k.startswith(prefix) or (itself and k == path)) and k not in keep
        ]
        for key in doomed:
            del store[key]


def apply_layer(layer: tarfile.TarFile, files: dict[str, FileEntry], texts: dict[str, str]) -> None:
    """Apply one layer tarball on top of `files`/`texts`, as overlayfs would.

    A whiteout `.wh.NAME` hides NAME of the lower layers; an opaque marker `.wh..wh..opq`
    hides everything the lower layers had below its directory. Neither hides what this
    same layer adds, whatever the order of the entries in the tarball.
    """
    added: set[str] = set()
    for member in layer:
        path = normalise(member.name)
        if not path:
            continue
        parent, base = posixpath.split(path)
        if base == OPAQUE:
            _remove(files, texts, parent, added, itself=False)
            continue
        if base.startswith(WHITEOUT):
            _remove(files, texts, posixpath.join(parent, base[len(WHITEOUT) :]), added)
            continue
        if path in files and files[path].kind == FileKind.DIR and not member.isdir():
            _remove(files, texts, path, added)
        added.add(path)
        head, key = b"", False
        if member.isreg():
            stream = layer.extractfile(member)
            if stream is not None:
                if _wants_text(path) and member.size <= TEXT_LIMIT:
                    data = stream.read()
                    texts[path] = data.decode("utf-8", "replace")
                    head, key = data[:HEAD_BYTES], bool(PRIVATE_KEY.search(data))
                else:
                    head = stream.read(HEAD_BYTES)
                    key = scan_for_key(head, stream)
                    texts.pop(path, None)
        else:
            texts.pop(path, None)
        files[path] = FileEntry(
            path=path,
            kind=_kind(member),
            mode=member.mode & 0o7777,
            uid=member.uid,
            gid=member.gid,
            size=member.size,
            linkname=member.linkname,
            head=head,
            private_key=key,
        )


def scan_for_key(first: bytes, stream: IO[bytes], limit: int = KEY_SCAN_LIMIT) -> bool:
    """Does a PEM private key marker appear in `first` + the rest of `stream` (up to
    `limit` bytes in all)? Reads in chunks; never holds more than two in memory."""
    if PRIVATE_KEY.search(first):
        return True
    tail, seen = first[-_KEY_OVERLAP:], len(first)
    while seen < limit:
        chunk = stream.read(min(CHUNK, limit - seen))
        if not chunk:
            return False
        if PRIVATE_KEY.search(tail + chunk):
            return True
        seen += len(chunk)
        tail = chunk[-_KEY_OVERLAP:]
    return False


def _pairs(mapping: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(mapping, dict):
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items()))


def parse_config(doc: Mapping[str, Any]) -> ImageConfig:
    """The parts of an image config JSON (docker or OCI) that the checks read."""
    cfg = doc.get("config") or {}
    env: list[tuple[str, str]] = []
    for item in cfg.get("Env") or []:
        key, _, value = str(item).partition("=")
        env.append((key, value))
    health = cfg.get("Healthcheck")
    test = tuple(str(t) for t in (health or {}).get("Test") or ()) if health else None
    history = tuple(
        HistoryEntry(str(h.get("created_by", "")), bool(h.get("empty_layer", False)))
        for h in doc.get("history") or []
    )
    return ImageConfig(
        user=str(cfg.get("User") or ""),
        exposed_ports=tuple(sorted(str(p) for p in (cfg.get("ExposedPorts") or {}))),
        env=tuple(env),
        healthcheck=test,
        labels=_pairs(cfg.get("Labels")),
        volumes=tuple(sorted(str(v) for v in (cfg.get("Volumes") or {}))),
        history=history,
        diff_ids=tuple(str(d) for d in (doc.get("rootfs") or {}).get("diff_ids") or ()),
    )


def _problem(source: str, reason: str) -> ScanError:
    """A tarball docker save wrote that cannot be read is a tool failure (exit 3)."""
    return ScanError(f"native: {source}: {reason}")


def read_image_filesystem(
    archive: IO[bytes], source: str = "<tarball>", image: str = ""
) -> ImageFilesystem:
    """Parse a `docker save` tarball (legacy or OCI layout, both carry manifest.json).

    `image` picks the manifest entry whose RepoTags contain it; by default the first.
    """
    try:
        outer = tarfile.open(fileobj=archive, mode="r:*")  # noqa: SIM115 - closed below
    except tarfile.TarError as err:
        raise _problem(source, f"not a tar archive ({err})") from err
    with outer:
        manifest = _read_json(outer, "manifest.json", source)
        if not isinstance(manifest, list) or not manifest:
            raise _problem(source, "manifest.json is not a non-empty list")
        entry = manifest[0]
        if image:
            matches = [m for m in manifest if image in (m.get("RepoTags") or [])]
            if not matches:
                raise _problem(source, f"no image tagged {image!r} in manifest.json")
            entry = matches[0]
        config = parse_config(_read_json(outer, str(entry.get("Config", "")), source))
        files: dict[str, FileEntry] = {}
        texts: dict[str, str] = {}
        for name in entry.get("Layers") or []:
            stream = _member(outer, str(name), source)
            try:
                with tarfile.open(fileobj=stream, mode="r:*") as layer:
                    apply_layer(layer, files, texts)
            except tarfile.TarError as err:
                raise _problem(source, f"layer {name} is not a tar archive ({err})") from err
    log.debug("read %d paths from %s", len(files), source)
    return ImageFilesystem(
        config=config,
        files=MappingProxyType(files),
        texts=MappingProxyType(texts),
        repo_tags=tuple(str(t) for t in entry.get("RepoTags") or ()),
    )


def load_image_filesystem(path: Path, image: str = "") -> ImageFilesystem:
    """Read the `docker save` tarball at `path`."""
    with path.open("rb") as archive:
        return read_image_filesystem(archive, str(path), image)


def _member(outer: tarfile.TarFile, name: str, source: str) -> IO[bytes]:
    try:
        stream = outer.extractfile(normalise(name))
    except KeyError as err:
        raise _problem(source, f"{name} is missing") from err
    if stream is None:
        raise _problem(source, f"{name} is not a regular file")
    return stream


def _read_json(outer: tarfile.TarFile, name: str, source: str) -> Any:
    try:
        return json.load(_member(outer, name, source))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _problem(source, f"{name} is not valid JSON ({err})") from err
