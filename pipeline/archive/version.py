"""Debian version comparison, exactly as dpkg does it (pure).

The feed decides "is the version installed older than the version that fixes it" and
"is this security upload newer than the point release" by comparing Debian versions;
a string or a semantic-version comparison gets `1:2.0` vs `3.0`, `3.0.20-1~deb12u2` vs
`3.0.20-1` and `2.36-9+deb12u10` vs `2.36-9+deb12u7` wrong. This is dpkg's algorithm
(lib/dpkg/version.c, `dpkg --compare-versions`): epoch numerically, then upstream
version and Debian revision by alternating non-digit and digit runs, where `~` sorts
before everything, even the end of the string.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_UPSTREAM = re.compile(r"^[0-9][A-Za-z0-9.+~:-]*$")
_REVISION = re.compile(r"^[A-Za-z0-9.+~]*$")


@dataclass(frozen=True)
class DebVersion:
    epoch: int
    upstream: str
    revision: str

    def __str__(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch else ""
        revision = f"-{self.revision}" if self.revision else ""
        return f"{epoch}{self.upstream}{revision}"


def parse_version(text: str) -> DebVersion:
    """'1:2.3-4' -> DebVersion(1, '2.3', '4'); ValueError when dpkg would refuse it."""
    text = text.strip()
    epoch = 0
    rest = text
    if ":" in text:
        head, _, rest = text.partition(":")
        if not head.isdigit():
            raise ValueError(f"bad epoch in Debian version {text!r}")
        epoch = int(head)
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    if not _UPSTREAM.match(upstream) or not _REVISION.match(revision):
        raise ValueError(f"not a Debian version: {text!r}")
    return DebVersion(epoch, upstream, revision)


def _order(char: str) -> int:
    """dpkg's character weight: ~ first, then the end, letters, then everything else."""
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return -1 if ac < bc else 1
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
            return -1 if first_diff < 0 else 1
    return 0


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as `dpkg --compare-versions a lt|eq|gt b` would answer."""
    va, vb = parse_version(a), parse_version(b)
    if va.epoch != vb.epoch:
        return -1 if va.epoch < vb.epoch else 1
    return _compare_part(va.upstream, vb.upstream) or _compare_part(va.revision, vb.revision)


def newest(versions: list[str]) -> str:
    """The highest of several Debian versions ('' for none)."""
    if not versions:
        return ""
    return max(versions, key=functools.cmp_to_key(compare_versions))
