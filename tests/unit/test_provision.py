"""Pinned tools are built when a step first needs them, and only then."""

from __future__ import annotations

import re
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from pipeline.errors import ToolError
from pipeline.tools import locate, provision
from pipeline.tools.node import NODE_TOOLS

ROOT = Path(__file__).resolve().parents[2]


def fake_tool(bin_dir: Path, name: str, version: str) -> None:
    path = bin_dir / f"{name}-{version}"
    path.write_text(f"#!/bin/sh\necho '{name} version {version.removeprefix('v')}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DRYDOCK_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no dockle on PATH
    (tmp_path / "bin").mkdir()
    return tmp_path


def test_a_missing_tool_is_built_on_first_use(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[tuple[str, ...]] = []
    version = locate.pinned_version("dockle")

    def build(names: Sequence[str]) -> None:
        builds.append(tuple(names))
        fake_tool(cache / "bin", "dockle", version)

    monkeypatch.setattr(provision, "build", build)
    tool = locate.locate("dockle")
    assert tool.path == cache / "bin" / f"dockle-{version}"
    assert builds == [("dockle",)]
    locate.locate("dockle")  # found now: not built again
    assert builds == [("dockle",)]


def test_a_build_that_leaves_no_tool_still_fails_clearly(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provision, "build", lambda names: None)
    with pytest.raises(ToolError, match=r"scripts/tools.sh dockle"):
        locate.locate("dockle")


def test_builds_can_be_turned_off(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRYDOCK_BUILD_TOOLS", "0")
    called: list[Sequence[str]] = []
    monkeypatch.setattr(provision, "build", called.append)
    with pytest.raises(ToolError):
        locate.locate("dockle")
    assert called == []


def test_the_run_prefetches_what_its_steps_need_in_tools_sh() -> None:
    script = (ROOT / "scripts" / "tools.sh").read_text(encoding="utf-8")
    assert provision.tools_script() == ROOT / "scripts" / "tools.sh"
    # tools.sh --for run builds the same tools, in the order a run reaches them
    line = next(x for x in script.splitlines() if x.strip().startswith("run) want=("))
    listed = line.split("(", 1)[1].split(")", 1)[0].split()
    assert [n.replace("_", "-") for n in listed] == list(provision.RUN_TOOLS)


def test_the_run_prefetches_only_tools_not_built_yet(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tool(cache / "bin", "dockle", locate.pinned_version("dockle"))
    monkeypatch.setenv("DRYDOCK_BUILD_TOOLS", "0")  # nothing starts; only the choice is checked
    prefetch = provision.Prefetch(["dockle", "trivy", "no-such-tool"]).start()
    assert prefetch.names == ("trivy", "no-such-tool")
    assert prefetch.threads == []


def test_trivy_and_clair_build_in_lanes_of_their_own_beside_the_others_in_order() -> None:
    prefetch = provision.Prefetch(provision.RUN_TOOLS)
    assert prefetch.lanes == [("trivy",), ("trivy-db", "oras", "dockle", "cosign")]
    assert provision.Prefetch(["trivy"]).lanes == [("trivy",)]
    assert provision.Prefetch(["dockle", "cosign"]).lanes == [("dockle", "cosign")]
    with_clair = provision.Prefetch((*provision.RUN_TOOLS, "clair")).lanes  # --clair-url local
    assert with_clair == [("trivy",), ("clair",), ("trivy-db", "oras", "dockle", "cosign")]


def test_each_lane_is_one_tools_sh_run_started_at_once(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[str, ...]] = []
    both = threading.Barrier(2, timeout=10)

    def build(names: Sequence[str]) -> None:
        started.append(tuple(names))
        both.wait()  # fails (BrokenBarrierError in the thread) if the lanes ran one by one

    monkeypatch.setattr(provision, "build", build)
    prefetch = provision.Prefetch(["oras", "trivy", "dockle"]).start()
    for thread in prefetch.threads:
        thread.join(timeout=20)
    assert sorted(started) == [("oras", "dockle"), ("trivy",)]
    assert not both.broken


def test_the_node_builds_on_first_use_what_tools_sh_builds_for_a_node() -> None:
    text = (ROOT / "scripts" / "tools.sh").read_text(encoding="utf-8")
    match = re.search(r"^\s*node\) want=\(([^)]*)\)", text, re.MULTILINE)
    assert match is not None
    for_node = {name.replace("_", "-") for name in match.group(1).split()}
    assert for_node == {"etcd", "kube-apiserver", *NODE_TOOLS}  # the control plane's + the node's
