"""Detached long-running processes: start one in its own session, know it, stop it.

Used by the local control plane (etcd, kube-apiserver), the local node (containerd, kubelet,
kube-proxy, kube-scheduler, kube-controller-manager) and the dev operator. A process is
recognised by its pid *and* its argv (binary name plus a marker argument), so a recycled
pid never makes Drydock signal somebody else's process.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path

import requests

from pipeline.errors import ToolError

log = logging.getLogger(__name__)


def proc_state(pid: int) -> str | None:
    """The /proc state letter, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def is_ours(pid: int | None, name: str, marker: str) -> bool:
    """True when pid is a live process of binary `name` whose argv contains marker."""
    if pid is None:
        return False
    state = proc_state(pid)
    if state is None or state in {"Z", "X"}:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return Path(os.fsdecode(argv[0])).name.startswith(name) and marker.encode() in argv


def cmdline(pid: int | None) -> list[str]:
    """The argv of a live process (empty when there is none)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(a) for a in raw.split(b"\0")[:-1]]


def reap(pid: int) -> None:
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def gone(pid: int) -> bool:
    reap(pid)
    return proc_state(pid) in {None, "Z", "X"}


def stop(pid: int, timeout: float) -> None:
    """SIGTERM, then SIGKILL after timeout; returns when the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if gone(pid):
                return
            time.sleep(0.1)
    raise ToolError([str(pid)], None, "", f"process {pid} did not stop")


def spawn(argv: Sequence[str], log_file: Path, env: Mapping[str, str] | None = None) -> int:
    """Start a long-running daemon in its own session, output to log_file; returns its pid.

    The runner's `run`/`stream` wait for their process; a control plane or the dev
    operator must outlive the call, so this is the one place that starts a detached
    process. Argument list, no shell; the caller bounds the start with a readiness
    timeout. `env` replaces the environment (default: this process's).
    """
    if not Path(argv[0]).is_file():
        raise ToolError(
            list(argv),
            None,
            "",
            f"binary not found (build it with: bash scripts/tools.sh {Path(argv[0]).name})",
        )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_file), flags, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    log.debug("spawn: %s", " ".join(argv))
    try:
        return os.posix_spawn(
            argv[0],
            list(argv),
            dict(os.environ if env is None else env),
            file_actions=actions,
            setsid=True,
        )
    except OSError as err:
        raise ToolError(list(argv), None, "", f"could not be started ({err.strerror})") from err


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_ready(
    pid: int, *, argv: Sequence[str], url: str, verify: str | bool, log_file: Path, timeout: float
) -> None:
    """Poll url until it answers 200; a process that exits, or a timeout (after which the
    process is stopped), raises ToolError with the tail of its log."""

    def answers() -> bool:
        try:
            return requests.get(url, verify=verify, timeout=2.0).status_code == 200
        except requests.RequestException:
            return False

    wait_until(pid, argv=argv, probe=answers, log_file=log_file, timeout=timeout)


def wait_until(
    pid: int,
    *,
    argv: Sequence[str],
    probe: Callable[[], bool],
    log_file: Path,
    timeout: float,
) -> None:
    """Poll probe until it is true, as wait_ready does for a URL (a socket, a file, ...)."""
    deadline = time.monotonic() + timeout
    while True:
        if gone(pid):
            raise ToolError(list(argv), None, log_tail(log_file), "exited during start")
        if probe():
            return
        if time.monotonic() > deadline:
            stop(pid, 5.0)
            raise ToolError(
                list(argv),
                None,
                log_tail(log_file),
                f"not ready after {timeout:.0f}s (log: {log_file})",
            )
        time.sleep(0.25)
