"""The one module of the manager that starts processes: PostgreSQL and its client tools.

Every call is an argument list (never a shell), has a timeout, and turns a failure into
`PgError` with the command and the tail of its output. The postmaster is a direct child
of the manager, which forwards stop requests to it as PostgreSQL's own shutdown signals
(SIGTERM smart, SIGINT fast, SIGQUIT immediate) and notices when it dies.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from drydock_instance.config import PORT_POSTGRESQL, SUPERUSER

log = logging.getLogger(__name__)

FIELD_SEP = "\x1f"
TAIL = 2000


class PgError(RuntimeError):
    """A PostgreSQL tool failed, timed out or could not be started."""


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"LC_ALL": "C.UTF-8", "PGCONNECT_TIMEOUT": "5"})
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str],
    timeout: float,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a tool to completion; its stdout, or PgError with its output's tail."""
    try:
        done = subprocess.run(  # noqa: S603 - an argument list, never a shell
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(env),
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise PgError(f"{argv[0]} timed out after {timeout:.0f}s") from err
    except OSError as err:
        raise PgError(f"{argv[0]}: {err}") from err
    if done.returncode != 0:
        tail = (done.stderr or done.stdout or "")[-TAIL:].strip()
        raise PgError(f"{' '.join(argv[:2])} exited {done.returncode}: {tail}")
    return done.stdout


class Local:
    """SQL over the Unix socket as `postgres`, authenticated by peer (the OS user)."""

    def __init__(self, socket_dir: str, timeout: float = 30.0) -> None:
        self.socket_dir = socket_dir
        self.timeout = timeout

    def query(self, sql: str, dbname: str = "postgres") -> list[list[str]]:
        """Rows of fields (NULL as ""); statements come on stdin, never in argv."""
        out = run(
            [
                "psql",
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-F",
                FIELD_SEP,
                "-h",
                self.socket_dir,
                "-p",
                str(PORT_POSTGRESQL),
                "-U",
                SUPERUSER,
                "-d",
                dbname,
                "-f",
                "-",
            ],
            self.timeout,
            stdin=sql,
        )
        return [line.split(FIELD_SEP) for line in out.splitlines() if line]

    def accepting(self) -> bool:
        try:
            run(
                ["pg_isready", "-q", "-h", self.socket_dir, "-p", str(PORT_POSTGRESQL)],
                10.0,
            )
        except PgError:
            return False
        return True


class Postmaster:
    """The PostgreSQL server process, a child of the manager."""

    def __init__(self, pgdata: str, local: Local) -> None:
        self.pgdata = pgdata
        self.local = local
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.starts = 0

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def start(self, extra: Sequence[str] = ()) -> None:
        if self.running():
            return
        argv = ["postgres", "-D", self.pgdata, *extra]
        log.info("starting %s", " ".join(argv))
        try:
            self._proc = subprocess.Popen(argv, env=_env())  # noqa: S603 - argument list
        except OSError as err:
            raise PgError(f"postgres: {err}") from err
        self.started_at = time.time()
        self.starts += 1

    def wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.local.accepting():
            if not self.running():
                raise PgError(f"postgres exited with {self.exit_code()} while starting")
            if time.monotonic() > deadline:
                raise PgError(f"postgres did not accept connections within {timeout:.0f}s")
            time.sleep(0.2)

    def signal(self, signum: int) -> None:
        if self._proc is not None and self.running():
            self._proc.send_signal(signum)

    def reload(self) -> None:
        self.signal(signal.SIGHUP)

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Shut down (smart/fast/immediate); escalate to immediate if it takes too long."""
        signum = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
        if self._proc is None:
            return
        self.signal(signum[mode])
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("postgres did not stop (%s) within %.0fs: immediate", mode, timeout)
            self.signal(signal.SIGQUIT)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        log.info("postgres stopped (%s), exit code %s", mode, self._proc.returncode)

    def promote(self, timeout: float = 60.0) -> None:
        run(["pg_ctl", "promote", "-w", "-t", str(int(timeout)), "-D", self.pgdata], timeout + 5)


def initdb(pgdata: str, timeout: float = 300.0) -> None:
    run(
        [
            "initdb",
            "-D",
            pgdata,
            "--username",
            SUPERUSER,
            "--encoding",
            "UTF8",
            "--lc-collate",
            "C",
            "--lc-ctype",
            "C",
            "--auth-local",
            "peer",
            "--auth-host",
            "scram-sha-256",
            "--no-instructions",
        ],
        timeout,
    )


def basebackup(pgdata: str, conninfo: str, timeout: float = 3600.0) -> None:
    run(
        [
            "pg_basebackup",
            "-D",
            pgdata,
            "-d",
            conninfo,
            "-X",
            "stream",
            "--checkpoint",
            "fast",
            "--no-password",
        ],
        timeout,
    )


def rewind(pgdata: str, conninfo: str, timeout: float = 3600.0) -> str:
    """Bring a former primary's data directory onto the new primary's timeline."""
    return run(
        ["pg_rewind", "--target-pgdata", pgdata, "--source-server", conninfo],
        timeout,
    )


def controldata(pgdata: str) -> dict[str, str]:
    out = run(["pg_controldata", "-D", pgdata], 30.0)
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}
