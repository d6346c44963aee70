"""Start external processes safely: argument lists, timeouts, errors with context.

Every process Drydock starts goes through `run` or `stream`. Neither uses a shell; both
enforce a timeout; a non-zero exit becomes a `ToolError` carrying argv, exit code and the
tail of stderr, so a failure in a nightly log says exactly what ran and why it failed.
Environment variables named like secrets are never echoed into errors or logs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ToolError

log = logging.getLogger(__name__)

TAIL_LINES = 30


@dataclass(frozen=True)
class Completed:
    """The result of a finished process."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _env(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    if not extra:
        return None
    env = dict(os.environ)
    env.update(extra)
    return env


def run(
    argv: Sequence[str | Path],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input_bytes: bytes | None = None,
    check: bool = True,
) -> Completed:
    """Run argv to completion and capture its output (text, replacing undecodable bytes)."""
    args = [str(a) for a in argv]
    log.debug("run: %s", " ".join(args))
    start = time.monotonic()
    try:
        proc = subprocess.run(  # noqa: S603 - argv list, never a shell
            args,
            input=input_bytes,
            capture_output=True,
            timeout=timeout,
            env=_env(env),
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        stderr = err.stderr.decode("utf-8", "replace") if isinstance(err.stderr, bytes) else ""
        raise ToolError(args, None, _tail(stderr), f"timed out after {timeout:.0f}s") from err
    except OSError as err:
        raise ToolError(args, None, "", f"could not be started ({err.strerror})") from err
    done = Completed(
        argv=tuple(args),
        returncode=proc.returncode,
        stdout=proc.stdout.decode("utf-8", "replace"),
        stderr=proc.stderr.decode("utf-8", "replace"),
        seconds=time.monotonic() - start,
    )
    if check and proc.returncode != 0:
        raise ToolError(args, proc.returncode, _tail(done.stderr or done.stdout))
    return done


def stream(
    argv: Sequence[str | Path],
    *,
    timeout: float,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Completed:
    """Run argv, handing each output line (stdout and stderr merged) to on_line as it arrives.

    Used for long builds so progress is visible. The timeout covers the whole run; the
    process is killed when it is exceeded.
    """
    args = [str(a) for a in argv]
    log.debug("stream: %s", " ".join(args))
    start = time.monotonic()
    lines: list[str] = []
    try:
        proc = subprocess.Popen(  # noqa: S603 - argv list, never a shell
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_env(env),
            cwd=cwd,
        )
    except OSError as err:
        raise ToolError(args, None, "", f"could not be started ({err.strerror})") from err
    assert proc.stdout is not None  # noqa: S101 - guaranteed by stdout=PIPE
    deadline = start + timeout
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            on_line(line)
            if time.monotonic() > deadline:
                proc.kill()
                raise ToolError(
                    args, None, _tail("\n".join(lines)), f"timed out after {timeout:.0f}s"
                )
        returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as err:
        proc.kill()
        proc.wait()
        raise ToolError(
            args, None, _tail("\n".join(lines)), f"timed out after {timeout:.0f}s"
        ) from err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "\n".join(lines)
    if returncode != 0:
        raise ToolError(args, returncode, _tail(out))
    return Completed(tuple(args), returncode, out, "", time.monotonic() - start)
