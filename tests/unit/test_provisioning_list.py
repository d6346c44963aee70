"""host.sh's program list keeps up with the code: every program the pipeline or a test starts
by name is either installed by scripts/host.sh (and so checked in a clean container by
tests/integration/test_provisioning.py) or built by scripts/tools.sh."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Literal program names at the head of an argv list or looked up on PATH.
_STARTS = re.compile(
    r"""(?:run|stream|spawn)\(\s*\[\s*"([a-z0-9][a-z0-9._-]*)"|which\("([a-z0-9][a-z0-9._-]*)"\)"""
    r"""|argv\s*(?::[^=]+)?=\s*\[\s*"([a-z0-9][a-z0-9._-]*)"|\[\s*"(debuerreotype-[a-z-]+)\""""
    # the node's host commands: tool(NAME), _run(NAME, ...), in_netns/in_node(target, NAME, ...)
    r"""|(?:\btool|\b_run)\(\s*"([a-z0-9][a-z0-9._-]*)"|\bin_(?:netns|node)\(\s*\w+,\s*"([a-z0-9][a-z0-9._-]*)\""""
)
# Built by scripts/tools.sh from the Go module proxy, or provided by the venv.
NOT_DEBIAN = {"cosign", "dockle", "trivy", "trivy-db", "crane", "oras", "etcd", "kube-apiserver"}


def _array(script: str, name: str) -> set[str]:
    match = re.search(rf"^{name}=\(([^)]*)\)", script, re.MULTILINE)
    assert match, f"{name}=( ... ) not found in host.sh"
    return set(match.group(1).split())


def _started_by_code() -> set[str]:
    found: set[str] = set()
    for folder in ("pipeline", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for groups in _STARTS.findall(path.read_text(encoding="utf-8")):
                found.update(g for g in groups if g)
    return found


def test_every_program_the_code_starts_is_provisioned() -> None:
    programs = _array((ROOT / "scripts" / "host.sh").read_text(encoding="utf-8"), "PROGRAMS")
    started = _started_by_code()
    assert {"docker", "debootstrap", "gpg"} <= started  # the scan finds real call sites
    assert {"nsenter", "ip", "iptables-save", "mount"} <= started  # ... the node's too
    missing = sorted(started - programs - NOT_DEBIAN)
    assert not missing, f"started by the code but not checked by host.sh: {missing}"
