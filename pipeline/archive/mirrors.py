"""Which Debian mirror to use, and the apt sources a base image gets.

The mirror defaults to the one the host's own apt sources name, so Drydock uses whatever
mirror (or proxy) the machine is set up for and never hard-codes one: the base images are
bootstrapped from it and the vulnerability feed reads its signed indices. Base images get
the release, -updates and -security suites; without -security they would miss fixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError, Problem

APT_DIR = Path("/etc/apt")
_CODENAMES = ("bullseye", "bookworm", "trixie", "forky", "sid")


@dataclass(frozen=True)
class Mirrors:
    archive: str  # e.g. http://<mirror>/debian
    security: str  # e.g. http://<mirror>/debian-security


def parse_sources(text: str) -> list[tuple[str, str]]:
    """(uri, suite) pairs from one-line or deb822 apt sources text."""
    pairs: list[tuple[str, str]] = []
    for line in text.splitlines():
        m = re.match(r"^\s*deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if m:
            pairs.append((m.group(2), m.group(3)))
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and "uris" in fields:
            for uri in fields["uris"].split():
                for suite in fields.get("suites", "").split():
                    pairs.append((uri, suite))
    return pairs


def choose(pairs: list[tuple[str, str]]) -> Mirrors | None:
    archive = security = ""
    for uri, suite in pairs:
        base = suite.split("-", 1)[0].split("/", 1)[0]
        if base not in _CODENAMES:
            continue
        if "security" in suite and not security:
            security = uri.rstrip("/")
        elif "security" not in suite and not archive:
            archive = uri.rstrip("/")
    if not archive:
        return None
    return Mirrors(archive, security or archive + "-security")


def host_mirrors(apt_dir: Path = APT_DIR) -> Mirrors:
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    text = "\n\n".join(
        f.read_text(encoding="utf-8", errors="replace") for f in files if f.is_file()
    )
    found = choose(parse_sources(text))
    if found is None:
        raise InputError(
            [
                Problem(
                    str(apt_dir),
                    "sources",
                    "no Debian mirror found in the host's apt sources; "
                    "set 'mirror' in images/base.yaml",
                )
            ]
        )
    return found


def resolve(mirror: str, security_mirror: str) -> Mirrors:
    """Explicit settings win; otherwise the host's apt sources decide."""
    if mirror:
        return Mirrors(mirror.rstrip("/"), (security_mirror or mirror.rstrip("/") + "-security"))
    host = host_mirrors()
    return Mirrors(host.archive, security_mirror or host.security)


def sources_list(release: str, mirrors: Mirrors) -> str:
    """One-line apt sources for a base image (signed by the archive keyring in the image)."""
    return (
        f"deb {mirrors.archive} {release} main\n"
        f"deb {mirrors.archive} {release}-updates main\n"
        f"deb {mirrors.security} {release}-security main\n"
    )
