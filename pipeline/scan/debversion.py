"""Debian version ordering (dpkg's algorithm), for choosing among fixed versions.

Two uploads can fix the same CVE; the feed keeps the lowest fixed version, and "lowest"
must mean what dpkg means (epochs, `~` sorting before everything, digit runs compared as
numbers), or an installed package would be judged against the wrong fix. This is
deb-version(7) as `dpkg --compare-versions` implements it (lib/dpkg/version.c).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DebianVersion:
    epoch: int
    upstream: str
    revision: str

    @classmethod
    def parse(cls, text: str) -> DebianVersion:
        """`[epoch:]upstream[-revision]`; ValueError for an empty or malformed version."""
        text = text.strip()
        epoch_text, colon, rest = text.partition(":")
        if not colon:
            epoch_text, rest = "0", text
        if not epoch_text.isdigit() or not rest:
            raise ValueError(f"not a Debian version: {text!r}")
        upstream, dash, revision = rest.rpartition("-")
        if not dash:
            upstream, revision = rest, ""
        if not upstream or not upstream[0].isdigit():
            raise ValueError(f"not a Debian version: {text!r}")
        return cls(int(epoch_text), upstream, revision)


def _order(ch: str) -> int:
    if ch == "~":
        return -1
    if ch.isdigit():
        return 0
    if ch.isalpha():
        return ord(ch)
    return ord(ch) + 256


def _compare_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def compare(a: str, b: str) -> int:
    """<0, 0 or >0 as version a sorts before, equal to or after version b."""
    va, vb = DebianVersion.parse(a), DebianVersion.parse(b)
    if va.epoch != vb.epoch:
        return va.epoch - vb.epoch
    return _compare_part(va.upstream, vb.upstream) or _compare_part(va.revision, vb.revision)
