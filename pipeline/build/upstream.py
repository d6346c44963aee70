"""Did anything change upstream? Answered from Debian's signed indices before any container.

A no-op nightly asked apt in a throwaway container, once per base image, only to learn
that nothing had changed (5-7 s each, plus `apt-get update`). The archive says so itself:
a suite's InRelease, verified against the archive keyring (pipeline.archive.client), names
the hash of every index, and the Packages index names every version a suite offers. So,
for a base Drydock built (whose apt sources are the release, -updates and -security
suites of the plan's mirror, see pipeline.archive.mirrors.sources_list), apt's last
answer in that base image (the locks of every target on it and the base's pending
upgrades, kept in `$DRYDOCK_CACHE/resolutions/`) still stands when:

  1. the InRelease hashes of the three suites are the ones it was given under; or else
  2. every locked version is still the newest the suites offer, and no package installed
     in the base has a newer one (the Packages entries of exactly those packages).

Only when neither holds is apt asked again, for that base. apt's candidate is the newest
version across those suites (all at the default priority), which is what is compared.
A package the indices do not name (another repository's) counts as changed. Bases
Drydock did not build (a registry base pinned by digest) are always asked in a container:
their sources are not known here.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.archive.client import ArchiveClient, VerifiedRelease, atomic_write
from pipeline.archive.deb822 import source_versions
from pipeline.archive.mirrors import Mirrors
from pipeline.archive.version import compare_versions, newest
from pipeline.errors import ArchiveError

log = logging.getLogger(__name__)

ARCH = "amd64"


@dataclass(frozen=True)
class Answer:
    """apt's answer in one base image, and the archive state it was given under."""

    state: tuple[str, ...]  # "suite sha256-of-InRelease", per suite
    pending: dict[str, tuple[str, str]]
    locks: dict[tuple[str, ...], dict[str, str]]


def _answer_path(store: Path, image_id: str) -> Path:
    return store / f"{image_id.removeprefix('sha256:')}.json"


def load_answer(store: Path, image_id: str) -> Answer | None:
    try:
        doc: dict[str, Any] = json.loads(_answer_path(store, image_id).read_text("utf-8"))
        return Answer(
            tuple(doc["state"]),
            {k: (v[0], v[1]) for k, v in doc["pending"].items()},
            {tuple(s): dict(v) for s, v in doc["locks"]},
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def save_answer(store: Path, image_id: str, answer: Answer) -> None:
    doc = {
        "state": list(answer.state),
        "pending": {k: list(v) for k, v in answer.pending.items()},
        "locks": [[list(s), v] for s, v in answer.locks.items()],
    }
    atomic_write(_answer_path(store, image_id), json.dumps(doc, sort_keys=True).encode())


class Upstream:
    """The signed state of each release's suites, read once per run, and the newest
    version each offers (summaries cached by index hash, as pipeline.archive does)."""

    def __init__(self, archive: Path, store: Path, mirrors: Callable[[str], Mirrors]) -> None:
        self.client = ArchiveClient(archive)  # the feed's cache: indices are shared
        self.summaries = archive / "summaries"
        self.store = store
        self._mirrors = mirrors
        self._guard = threading.Lock()
        self._suites: dict[str, tuple[VerifiedRelease, ...]] = {}
        self._newest: dict[str, dict[str, str]] = {}
        self.fetched = 0  # InRelease files fetched (for the record)

    def suites(self, release: str) -> tuple[VerifiedRelease, ...]:
        with self._guard:
            if release not in self._suites:
                m = self._mirrors(release)
                wanted = (
                    (m.archive, release),
                    (m.archive, f"{release}-updates"),
                    (m.security, f"{release}-security"),
                )
                self._suites[release] = tuple(self.client.release(u, s) for u, s in wanted)
                self.fetched += len(wanted)
            return self._suites[release]

    def state(self, release: str) -> tuple[str, ...]:
        return tuple(f"{v.suite} {v.inrelease_sha256}" for v in self.suites(release))

    def content(self, release: str) -> tuple[str, ...]:
        """The hashes of the indices that say what the suites hold (main's Packages and
        Sources), as their verified InRelease names them. Unlike the InRelease itself, which
        is re-signed with a new date when nothing was uploaded, these change only when a
        package does."""
        named: list[str] = []
        for suite in self.suites(release):
            for path in (f"main/binary-{ARCH}/Packages", "main/source/Sources"):
                found = next(
                    (path + s for s in (".xz", ".gz", ".bz2", "") if suite.release.has(path + s)),
                    None,
                )
                sha = suite.release.file(found).sha256 if found else "absent"
                named.append(f"{suite.suite} {path} {sha}")
        return tuple(named)

    def newest(self, release: str) -> dict[str, str]:
        """Binary package -> the newest version any of the release's suites offers."""
        suites = self.suites(release)
        with self._guard:
            if release in self._newest:
                return self._newest[release]
        merged: dict[str, str] = {}
        for suite in suites:
            for package, version in self._suite_newest(suite).items():
                known = merged.get(package)
                if known is None or compare_versions(version, known) > 0:
                    merged[package] = version
        with self._guard:
            self._newest[release] = merged
        return merged

    def _suite_newest(self, suite: VerifiedRelease) -> dict[str, str]:
        path = f"main/binary-{ARCH}/Packages"
        key = next(
            suite.release.file(path + s).sha256
            for s in (".xz", ".gz", ".bz2", "")
            if suite.release.has(path + s)
        )
        cached = self.summaries / f"{key}-newest.json"
        try:
            found: dict[str, str] = json.loads(cached.read_text(encoding="utf-8"))
            return found
        except (OSError, ValueError):
            pass
        text = self.client.index(suite, path).decode("utf-8", "replace")
        found = {p: newest(vs) for p, vs in source_versions(text.splitlines()).items()}
        atomic_write(cached, json.dumps(found, sort_keys=True).encode())
        return found


def still_stands(
    answer: Answer,
    sets: list[tuple[str, ...]],
    installed: Mapping[str, str],
    offered: Mapping[str, str],
) -> bool:
    """True when apt, asked again, would give the same locks and no pending upgrade: every
    locked version is the newest offered, and no installed package has a newer one."""
    if any(s not in answer.locks for s in sets) or answer.pending:
        return False
    for lock in (answer.locks[s] for s in sets):
        for package, version in lock.items():
            if offered.get(package) != version:
                return False
    for package, version in installed.items():
        candidate = offered.get(package)
        if candidate is not None and compare_versions(candidate, version) > 0:
            return False
    return True


__all__ = ["Answer", "ArchiveError", "Upstream", "load_answer", "save_answer", "still_stands"]
