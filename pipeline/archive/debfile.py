"""Read the Debian changelog out of a binary package (.deb), in pure Python.

The security archive's pool serves binary packages but (on the mirrors these machines
reach) not the source packages, so the changelog of a security upload is read from one of
its binaries: every Debian binary ships `usr/share/doc/<package>/changelog.Debian.gz`
(`changelog.gz` for a native package). A .deb is an ar archive holding `debian-binary`,
`control.tar.*` and `data.tar.*`; this module parses the ar container itself and reads
the data tarball as a stream, so nothing is unpacked to disk and no tool is run.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from collections.abc import Iterator

from pipeline.archive.changelog import parse_changelog
from pipeline.errors import ArchiveError

AR_MAGIC = b"!<arch>\n"
_HEADER_SIZE = 60
# Python reads these data.tar compressions (the stream mode detects which); Debian's own
# packages use xz.
READABLE = ("data.tar", "data.tar.gz", "data.tar.xz", "data.tar.bz2")


def ar_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(name, content) of every member of an ar archive."""
    if not data.startswith(AR_MAGIC):
        raise ArchiveError("not a Debian package (no ar magic)")
    pos = len(AR_MAGIC)
    while pos + _HEADER_SIZE <= len(data):
        header = data[pos : pos + _HEADER_SIZE]
        if header[58:60] != b"`\n":
            raise ArchiveError(f"corrupt ar header at byte {pos}")
        name = header[0:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as err:
            raise ArchiveError(f"corrupt ar member size at byte {pos}") from err
        start = pos + _HEADER_SIZE
        if start + size > len(data):
            raise ArchiveError(f"ar member {name} is truncated")
        yield name, data[start : start + size]
        pos = start + size + (size % 2)


def _doc_changelogs(data_tar: bytes) -> dict[str, bytes]:
    """'usr/share/doc/<pkg>/changelog.Debian.gz' etc. -> gzip bytes (regular files only)."""
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data_tar), mode="r|*") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            parts = name.split("/")
            if (
                member.isfile()
                and len(parts) == 5
                and parts[:3] == ["usr", "share", "doc"]
                and parts[4] in {"changelog.Debian.gz", "changelog.gz"}
            ):
                fh = tar.extractfile(member)
                if fh is not None:
                    found[name] = fh.read()
    return found


def changelog_from_deb(data: bytes, source: str) -> str:
    """The Debian changelog of `source` as shipped in this binary package.

    Raises ArchiveError when the package ships none (its doc directory is a symlink to
    another package's, a common space saving) or cannot be read; the caller then tries
    another binary of the same source.
    """
    data_tar = next(((n, c) for n, c in ar_members(data) if n.startswith("data.tar")), None)
    if data_tar is None:
        raise ArchiveError("Debian package has no data.tar member")
    if data_tar[0] not in READABLE:
        raise ArchiveError(f"cannot read {data_tar[0]} (compression not supported)")
    try:
        logs = _doc_changelogs(data_tar[1])
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise ArchiveError(f"unreadable {data_tar[0]}: {err}") from err
    # changelog.Debian.gz first; changelog.gz is the Debian changelog only in a native
    # package (otherwise it is upstream's), which the package name in it tells apart.
    for name in sorted(logs, key=lambda n: not n.endswith("changelog.Debian.gz")):
        try:
            text = gzip.decompress(logs[name]).decode("utf-8", "replace")
        except (OSError, EOFError, zlib.error):
            continue
        entries = parse_changelog(text)
        if entries and entries[0].package == source:
            return text
    raise ArchiveError(f"no Debian changelog of {source} in this package")
