"""Detached long-running processes: start one in its own session, know it, stop it.

Used by the local control plane (etcd, kube-apiserver), the local node (containerd, kubelet,
kube-proxy, kube-scheduler, kube-controller-manager), the dev operator and the local Clair
(PostgreSQL, Clair, its feed front). A process is recognised by its pid *and* its argv
(binary name plus a marker argument), so a recycled pid never makes Drydock signal
somebody else's process. Also here: the loopback ports such daemons listen on, the lock
that keeps two `up`s of one state dir from racing, and their `state.json`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import requests

from pipeline.errors import ToolError

log = logging.getLogger(__name__)

S = TypeVar("S")
EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
PORT_FLOOR = 20000


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


def ephemeral_low() -> int:
    try:
        return int(Path(EPHEMERAL_RANGE).read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Free loopback ports *below* the kernel's ephemeral range.

    A port taken from the ephemeral range (bind to port 0) can be reused as the source
    port of any outgoing connection on the machine while a daemon is down or restarting,
    and the restart then fails with "address already in use". Ports below the range are
    never handed out that way.
    """
    low = ephemeral_low()
    chosen: list[int] = []
    if low - PORT_FLOOR < 1000:  # an unusual range: fall back to the kernel's choice
        while len(chosen) < count:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in chosen:
                chosen.append(port)
        return chosen
    for _ in range(1000):
        port = PORT_FLOOR + secrets.randbelow(low - PORT_FLOOR)
        if port not in chosen and bindable(port):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise ToolError(["bind"], None, "", "no free loopback port below the ephemeral range")


@contextmanager
def locked_dir(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on state_dir (created 0700) for the duration."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (state_dir / "lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_state(state_dir: Path, cls: type[S]) -> S | None:
    """The dataclass `state.json` of a state dir holds, or None (absent or unreadable)."""
    try:
        return cls(**json.loads((state_dir / "state.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def write_state(state_dir: Path, state: Any) -> None:
    """Write a dataclass as the state dir's `state.json`, atomically."""
    tmp = state_dir / "state.json.tmp"
    tmp.write_text(json.dumps(asdict(state), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(state_dir / "state.json")
