"""The Debian mirror comes from the host's apt sources, in either format."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.build.apt_sources import (
    Mirrors,
    choose,
    host_mirrors,
    parse_sources,
    resolve,
    sources_list,
)
from pipeline.errors import InputError

DEB822 = """Types: deb
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
"""
ONE_LINE = """# comment
deb [arch=amd64] https://other.invalid/nodesource nodistro main
deb http://one.invalid/debian bullseye main contrib
deb http://one.invalid/debian-security bullseye-security main
"""


def test_deb822_and_one_line_are_both_read() -> None:
    assert choose(parse_sources(DEB822)) == Mirrors(
        "http://mirror.invalid/debian", "http://mirror.invalid/debian-security"
    )
    assert choose(parse_sources(ONE_LINE)) == Mirrors(
        "http://one.invalid/debian", "http://one.invalid/debian-security"
    )


def test_third_party_repositories_are_ignored() -> None:
    assert choose(parse_sources("deb https://x.invalid/apt nodistro main\n")) is None


def test_host_without_debian_sources_is_a_clear_input_error(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    with pytest.raises(InputError, match="no Debian mirror found"):
        host_mirrors(tmp_path)


def test_explicit_mirror_wins() -> None:
    assert resolve("http://m.invalid/debian/", "") == Mirrors(
        "http://m.invalid/debian", "http://m.invalid/debian-security"
    )


def test_base_sources_include_updates_and_security() -> None:
    text = sources_list("trixie", Mirrors("http://m.invalid/debian", "http://s.invalid/ds"))
    assert text.splitlines() == [
        "deb http://m.invalid/debian trixie main",
        "deb http://m.invalid/debian trixie-updates main",
        "deb http://s.invalid/ds trixie-security main",
    ]
