"""Count what a Trivy DB holds per platform, reading its bbolt file directly (pure).

"The DB holds data for this image's OS" must be evidence read from the DB Trivy scanned
with, not a claim of whoever built it: a public or mirrored DB may lack a platform, and a
DB built from an empty feed holds nothing. trivy.db is a bbolt (B+tree) file; Trivy
stores a top-level bucket per platform ("debian 12"), in it a bucket per source package,
in that one key per vulnerability. This reader walks that structure read-only, following
bbolt's on-disk format (go.etcd.io/bbolt: page.go, node.go, bucket.go, db.go): two meta
pages, branch and leaf pages with 16-byte element headers, nested buckets stored as a
16-byte header plus, for small ones, an inline page.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import ScanError

MAGIC = 0xED0CDAED
BRANCH, LEAF, META = 0x01, 0x02, 0x04
BUCKET_LEAF = 0x01
_PAGE = struct.Struct("<QHHI")  # id, flags, count, overflow
_META = struct.Struct("<IIII QQ QQQQ")  # magic, version, page size, flags, root, seq, ...
_BRANCH_ELEM = struct.Struct("<IIQ")  # pos, ksize, pgid
_LEAF_ELEM = struct.Struct("<IIII")  # flags, pos, ksize, vsize
_BUCKET = struct.Struct("<QQ")  # root pgid, sequence
MAX_DEPTH = 64


class BoltReader:
    """Read-only view of a bbolt file held in memory (or mapped)."""

    def __init__(self, data: bytes | mmap.mmap) -> None:
        self.data = data
        self.page_size, self.root = self._meta()

    def _meta(self) -> tuple[int, int]:
        best: tuple[int, int, int] | None = None  # txid, page size, root
        size = 4096
        for index in (0, 1):
            offset = index * size
            if offset + _PAGE.size + _META.size > len(self.data):
                break
            fields = _META.unpack_from(self.data, offset + _PAGE.size)
            magic, _version, page_size, _flags, root, _seq, _free, _pgid, txid, _sum = fields
            if magic != MAGIC:
                continue
            if index == 0:
                size = page_size
            if best is None or txid > best[0]:
                best = (txid, page_size, root)
        if best is None:
            raise ScanError("trivy.db: not a bbolt file (no valid meta page)")
        return best[1], best[2]

    def _page(self, pgid: int) -> int:
        offset = pgid * self.page_size
        if offset + _PAGE.size > len(self.data):
            raise ScanError(f"trivy.db: page {pgid} beyond the end of the file")
        return offset

    def _items(self, page_offset: int, depth: int = 0) -> Iterator[tuple[bytes, bytes, int]]:
        """(key, value, flags) of every leaf element under the page at page_offset."""
        if depth > MAX_DEPTH:
            raise ScanError("trivy.db: B+tree deeper than any valid file")
        _pid, flags, count, _overflow = _PAGE.unpack_from(self.data, page_offset)
        base = page_offset + _PAGE.size
        if flags & BRANCH:
            for i in range(count):
                _pos, _ksize, child = _BRANCH_ELEM.unpack_from(self.data, base + i * 16)
                yield from self._items(self._page(child), depth + 1)
        elif flags & LEAF:
            for i in range(count):
                elem = base + i * 16
                eflags, pos, ksize, vsize = _LEAF_ELEM.unpack_from(self.data, elem)
                key = bytes(self.data[elem + pos : elem + pos + ksize])
                value = bytes(self.data[elem + pos + ksize : elem + pos + ksize + vsize])
                yield key, value, eflags
        else:
            raise ScanError(f"trivy.db: unexpected page flags {flags:#x}")

    def _bucket_items(self, value: bytes) -> Iterator[tuple[bytes, bytes, int]]:
        root, _seq = _BUCKET.unpack_from(value, 0)
        if root == 0:  # inline bucket: its page follows the header inside the value
            yield from BoltReader._inline(value[_BUCKET.size :])
        else:
            yield from self._items(self._page(root))

    @staticmethod
    def _inline(page: bytes) -> Iterator[tuple[bytes, bytes, int]]:
        _pid, flags, count, _overflow = _PAGE.unpack_from(page, 0)
        if not flags & LEAF:
            raise ScanError("trivy.db: inline bucket that is not a leaf")
        for i in range(count):
            elem = _PAGE.size + i * 16
            eflags, pos, ksize, vsize = _LEAF_ELEM.unpack_from(page, elem)
            yield (
                page[elem + pos : elem + pos + ksize],
                page[elem + pos + ksize : elem + pos + ksize + vsize],
                eflags,
            )

    def buckets(self) -> Iterator[tuple[str, bytes]]:
        """(name, bucket value) of every top-level bucket."""
        for key, value, flags in self._items(self._page(self.root)):
            if flags & BUCKET_LEAF:
                yield key.decode("utf-8", "replace"), value

    def count_nested(self, bucket_value: bytes) -> int:
        """Keys in the buckets nested one level inside a bucket (advisories of a platform)."""
        total = 0
        for _key, value, flags in self._bucket_items(bucket_value):
            if flags & BUCKET_LEAF:
                total += sum(1 for _ in self._bucket_items(value))
        return total


def platform_counts(path: Path, prefixes: tuple[str, ...] = ("debian ",)) -> dict[str, int]:
    """Platform bucket ("debian 12") -> number of advisories, for buckets with a prefix."""
    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            reader = BoltReader(data)
            return {
                name: reader.count_nested(value)
                for name, value in reader.buckets()
                if name.startswith(prefixes)
            }
    except (OSError, ValueError, struct.error) as err:
        raise ScanError(f"{path}: cannot read the Trivy DB ({err})") from err
