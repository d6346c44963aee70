"""Clair's database: a private PostgreSQL from Debian's packages, run unprivileged.

Clair keeps its index and vulnerability data in PostgreSQL. The machine's packaged
cluster (if any) belongs to someone else, so this is an instance of its own: its own data
directory, loopback port and passwords, TCP on 127.0.0.1 only (no Unix socket), and an
unprivileged account: the current user, or Debian's `postgres` account when Drydock runs
as root (PostgreSQL refuses to run as root anyway). Clair connects as the role `clair`,
which owns its database and is not a superuser; the bootstrap superuser's password stays
in the state directory (0600) for maintenance.

The data lives in `<clair state>/postgres` unless that account cannot reach it (root's
home directory is 0700 and Drydock does not open it): then in
`/var/lib/drydock/clair-postgres/<hash of the state dir>`, outside any home directory.
"""

from __future__ import annotations

import grp
import hashlib
import logging
import os
import pwd
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.tools.daemon import gone, log_tail, spawn, stop
from pipeline.tools.runner import run

log = logging.getLogger(__name__)

PG_LIB = Path("/usr/lib/postgresql")
FALLBACK_ROOT = Path("/var/lib/drydock/clair-postgres")
ADMIN = "drydock_admin"
ROLE = "clair"
DATABASE = "clair"
INIT_TIMEOUT = 180.0


@dataclass(frozen=True)
class DbUser:
    """The account PostgreSQL runs as."""

    name: str
    uid: int
    gid: int


def db_user() -> DbUser:
    """The current user, or Debian's `postgres` account when running as root."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return DbUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise ToolError(
            ["postgres"], None, "", "no `postgres` account: install PostgreSQL (scripts/host.sh up)"
        ) from None
    return DbUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def searchable(path: Path, user: DbUser) -> bool:
    """Can `user` reach `path` (search every directory from / down to it)? Mode bits only."""
    if user.uid == 0:
        return True
    gids = {user.gid, *(g.gr_gid for g in grp.getgrall() if user.name in g.gr_mem)}
    resolved = path.resolve()
    for directory in (*reversed(resolved.parents), resolved):
        try:
            st = directory.stat()
        except OSError:
            return False
        if st.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def data_root(state_dir: Path, user: DbUser) -> Path:
    """Where this user's PostgreSQL keeps its files (see the module docstring); outside
    the state dir, one directory per state dir (several instances may run at once)."""
    preferred = state_dir / "postgres"
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if user.uid == os.geteuid() or searchable(state_dir, user):
        return preferred
    key = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    return FALLBACK_ROOT / key


def bin_dir() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        (
            p
            for p in PG_LIB.glob("*/bin")
            if (p / "postgres").is_file() and (p / "initdb").is_file()
        ),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise ToolError(
            ["postgres"], None, "", f"no PostgreSQL under {PG_LIB} (run scripts/host.sh up)"
        )
    return found[-1]


def as_user(argv: list[str], user: DbUser) -> list[str]:
    """argv run as `user`: unchanged when that is us, else through util-linux setpriv."""
    if user.uid == os.geteuid():
        return argv
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [
        setpriv,
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--init-groups",
        "--inh-caps=-all",
        "--",
        *argv,
    ]


def _owned_dir(path: Path, user: DbUser) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.geteuid() == 0:
        os.chown(path, user.uid, user.gid)
    path.chmod(0o700)


def _secret_file(path: Path, text: str, user: DbUser) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    if os.geteuid() == 0:
        os.chown(path, user.uid, user.gid)


def postgres_argv(bins: Path, data: Path, port: int) -> list[str]:
    """The server's command line: TCP on loopback only, no Unix socket, quiet log."""
    return [
        str(bins / "postgres"),
        "-D",
        str(data),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"port={port}",
        "-c",
        "unix_socket_directories=",
        "-c",
        "synchronous_commit=off",
        "-c",
        "log_min_messages=warning",
    ]


def initialise(root: Path, user: DbUser, admin_password: str, port: int) -> bool:
    """initdb (scram passwords, no local socket auth) unless done; False if it was."""
    data = root / "data"
    if (data / "PG_VERSION").is_file():
        return False
    _owned_dir(root, user)
    pwfile = root / "initdb.pw"
    _secret_file(pwfile, admin_password + "\n", user)
    bins = bin_dir()
    argv = [
        str(bins / "initdb"),
        "-D",
        str(data),
        "-U",
        ADMIN,
        f"--pwfile={pwfile}",
        "--auth-host=scram-sha-256",
        "--auth-local=reject",
        "--encoding=UTF8",
        "--locale=C",
    ]
    try:
        run(as_user(argv, user), timeout=INIT_TIMEOUT)
    except ToolError as err:
        hint = f" ({user.name} must be able to reach {root})"
        raise ToolError(err.argv, err.returncode, err.stderr_tail, "initdb failed" + hint) from err
    finally:
        pwfile.unlink(missing_ok=True)
    log.info("initialised Clair's PostgreSQL in %s (port %d)", data, port)
    return True


def wait_accepting(pid: int, port: int, log_file: Path, timeout: float) -> None:
    """Poll pg_isready until the server accepts connections; stop it on timeout."""
    isready = str(bin_dir() / "pg_isready")
    deadline = time.monotonic() + timeout
    while True:
        if gone(pid):
            raise ToolError(["postgres"], None, log_tail(log_file), "exited during start")
        done = run(
            [isready, "-q", "-h", "127.0.0.1", "-p", str(port), "-t", "2"],
            timeout=10.0,
            check=False,
        )
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            stop(pid, 10.0)
            raise ToolError(["postgres"], None, log_tail(log_file), f"not ready in {timeout:.0f}s")
        time.sleep(0.25)


def start(root: Path, user: DbUser, port: int, log_file: Path, timeout: float) -> int:
    """Start the server on 127.0.0.1:port and wait until it accepts connections."""
    argv = as_user(postgres_argv(bin_dir(), root / "data", port), user)
    pid = spawn(argv, log_file)
    wait_accepting(pid, port, log_file, timeout)
    log.info("Clair's PostgreSQL up on 127.0.0.1:%d (pid %d, as %s)", port, pid, user.name)
    return pid


# Role and database for Clair, created once; the password arrives as a psql variable.
ROLE_SQL = """\\set ON_ERROR_STOP on
SELECT 'CREATE ROLE clair LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE'
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'clair')\\gexec
ALTER ROLE clair PASSWORD :'role_password';
SELECT 'CREATE DATABASE clair OWNER clair'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'clair')\\gexec
"""


def create_role(port: int, admin_password: str, role_password: str) -> None:
    """Create the `clair` login role and its database (idempotent), as the superuser.

    The password goes through stdin (never argv, which `ps` shows) as a psql variable.
    """
    if not role_password.isalnum():
        raise ToolError(["psql"], None, "", "the role password must be alphanumeric")
    psql = str(bin_dir() / "psql")
    script = f"\\set role_password {role_password}\n" + ROLE_SQL
    run(
        [psql, "-X", "-q", "-h", "127.0.0.1", "-p", str(port), "-U", ADMIN, "-d", "postgres"],
        timeout=60.0,
        env={"PGPASSWORD": admin_password},
        input_bytes=script.encode(),
    )


def connstring(port: int, password: str) -> str:
    """The DSN Clair uses (libpq key=value form)."""
    return (
        f"host=127.0.0.1 port={port} user={ROLE} dbname={DATABASE} "
        f"password={password} sslmode=disable"
    )
