"""Freshness: the exact package versions apt would install right now, as a build input.

The nightly rebuilds only what would change. An image's fingerprint covers its rendered
Dockerfile and context, its base, and a lock of the package versions apt resolves today
(written into the context as `packages.lock`), so a new Debian security update changes
the fingerprint of exactly the images that would pick it up, and the lock says what
changed (`libssl3 3.0.15-1~deb12u1 -> 3.0.17-1~deb12u1`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pipeline.models.targets import Kind, Target

LOCK_FILE = "packages.lock"
LOCK_LABEL = "io.drydock.packages-lock"
_INST = re.compile(r"^Inst (\S+) (?:\[(\S+)\] )?\((\S+) ")


def apt_packages(target: Target) -> tuple[str, ...]:
    """What apt installs for the target: its Dockerfile's packages, and those of the image
    it is built on when that is another target (so the lock covers the whole image)."""
    if target.kind is Kind.OPERAND:
        return ("postgresql-common", *target.inherited_packages, *target.packages)
    if target.kind is Kind.OPERATOR:
        return ("python3", "python3-venv", *target.packages)
    return ()


def parse_simulation(text: str) -> dict[str, str]:
    """{package: version} from `apt-get -s` output ('Inst name [old] (new suite [arch])')."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _INST.match(line)
        if m:
            found[m.group(1)] = m.group(3)
    return found


def pending_upgrades(text: str) -> dict[str, tuple[str, str]]:
    """{package: (installed, candidate)} for upgrades in `apt-get -s` output."""
    pending: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        m = _INST.match(line)
        if m and m.group(2):
            pending[m.group(1)] = (m.group(2), m.group(3))
    return pending


def lock_text(versions: Mapping[str, str]) -> str:
    return "".join(f"{name}={version}\n" for name, version in sorted(versions.items()))


def parse_lock(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in re.split(r"[\n,]", text):
        name, sep, version = item.strip().partition("=")
        if sep and name:
            out[name] = version
    return out


def label_value(versions: Mapping[str, str]) -> str:
    """The lock in one label value (comma-separated name=version)."""
    return ",".join(f"{n}={v}" for n, v in sorted(versions.items()))


def delta(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Human lines for what changed: 'libssl3 3.0.15-1~deb12u1 -> 3.0.17-1~deb12u1'."""
    lines = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        lines.append(f"{name} {before or '(none)'} -> {after or '(removed)'}")
    return lines
