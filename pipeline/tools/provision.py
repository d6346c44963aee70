"""Pinned Go tools built when a step first needs them, and started early in the background.

A fresh machine spent about 22 minutes compiling every tool before Drydock built its first
image, although the build stage needs none of them: the scanners are needed only when the
first image is scanned, cosign only when one is published, etcd and kube-apiserver only for
the catalogs' control plane. So `locate` builds a missing pinned tool on first use (through
`scripts/tools.sh`, which pins the version and lets Go's checksum database verify every
module), and `drydock run` starts the builds its later steps will need in a background
thread while the bases download from the archive and the images build. tools.sh takes a
lock per tool, so a step that needs a tool the background build is compiling waits for
that build instead of starting a second one.

Only a source checkout has scripts/tools.sh; an installed drydock without it reports the
missing tool as before. DRYDOCK_BUILD_TOOLS=0 turns the on-demand builds off.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.tools.runner import run

log = logging.getLogger(__name__)
# A cold tool build takes minutes (Trivy ~10 on 2 cores): always say so, as a milestone.
progress = logging.getLogger("drydock.progress")

BUILD_TIMEOUT = 3600.0
# What each pipeline step needs, in the order a run reaches them.
RUN_TOOLS = ("trivy-db", "oras", "dockle", "trivy", "cosign")
# Each built in a lane of its own, beside the others built one after another: Trivy and
# Clair are the longest compiles a run waits for (405 s and 415 s on a fresh 2-core
# machine, against 242 s for cosign), and a lone build leaves a core idle while Go
# downloads modules and while it links.
ALONE = ("trivy", "clair")


def tools_script() -> Path | None:
    """scripts/tools.sh of the checkout this package runs from, if there is one."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "tools.sh"
    return script if script.is_file() else None


def enabled() -> bool:
    return os.environ.get("DRYDOCK_BUILD_TOOLS", "1") != "0" and tools_script() is not None


def build(names: Sequence[str]) -> None:
    """Build the pinned versions of `names` now (a no-op for those already built)."""
    script = tools_script()
    if script is None:
        raise ToolError(["scripts/tools.sh", *names], None, "", "no checkout to build from")
    progress.info(
        "building pinned tool(s) %s from the Go module proxy if not cached yet (scripts/tools.sh;"
        " minutes on first use, cached by version afterwards)",
        ", ".join(names),
    )
    run(["bash", str(script), *names], timeout=BUILD_TIMEOUT)


def _not_built(names: Sequence[str]) -> tuple[str, ...]:
    """The names whose pinned build is not in the cache yet (so a warm run says nothing)."""
    from pipeline.tools import locate  # here, not at the top: locate imports this module

    missing = []
    for name in names:
        try:
            version = locate.pinned_version(name)
        except ToolError:
            missing.append(name)  # tools.sh will say what is wrong with it
            continue
        if not (locate.bin_dir() / f"{name}-{version}").is_file():
            missing.append(name)
    return tuple(missing)


class Prefetch:
    """Builds tools in background threads: those in ALONE each in a lane of its own, the
    rest one after another in another lane, in order. Nothing waits for it: a step that
    needs one of its tools calls `locate`, whose own tools.sh run waits on that tool's lock
    (and reports that tool's error if its build failed). A build still running when drydock
    exits finishes on its own and leaves the binary in the cache."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.threads: list[threading.Thread] = []

    @property
    def lanes(self) -> list[tuple[str, ...]]:
        alone = [(n,) for n in self.names if n in ALONE]
        rest = tuple(n for n in self.names if n not in ALONE)
        return [lane for lane in (*alone, rest) if lane]

    def start(self) -> Prefetch:
        self.names = _not_built(self.names)
        if self.names and enabled():
            for number, lane in enumerate(self.lanes):
                thread = threading.Thread(
                    target=self._build, args=(lane,), name=f"tools-prefetch-{number}", daemon=True
                )
                thread.start()
                self.threads.append(thread)
        return self

    @staticmethod
    def _build(lane: tuple[str, ...]) -> None:
        try:
            build(lane)
        except ToolError as err:
            log.warning("background tool build failed: %s", err)
