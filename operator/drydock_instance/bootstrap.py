"""The init containers' work: copy the manager in, then create or clone the data directory.

`bootstrap` runs in the operator image (container `bootstrap-controller`) and copies this
zipapp into the controller emptyDir, as CloudNativePG's bootstrap-controller copies its
manager binary. `initdb` (a new Cluster's first instance) and `join` (every other
instance) run in the operand image. Both build the data directory beside its final place
and rename it only when it is complete, so an init container killed half-way leaves
nothing that looks like a data directory; both do nothing when one already exists (a
re-created pod keeps its PVC, and the run loop takes it from there).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from drydock_instance import fsutil, postgres
from drydock_instance.config import Settings
from drydock_instance.pgfiles import STANDBY_SIGNAL, bootstrap_sql, conninfo
from drydock_instance.sources import Desired, SourceError, Transport, fetch

log = logging.getLogger(__name__)

DESIRED_TIMEOUT = 300.0
JOIN_TIMEOUT = 1800.0
RETRY_SECONDS = 3.0


class BootstrapError(RuntimeError):
    """The data directory could not be created; the init container fails and is retried."""


def copy_self(dest: str) -> None:
    """Copy the running zipapp to `dest`, read-only for its owner, atomically."""
    source = Path(sys.argv[0]).resolve()
    if not source.is_file():
        raise BootstrapError(f"{source} is not a file: run the manager as a zipapp")
    data = source.read_bytes()
    target = Path(dest)
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.chmod(0o400)
    tmp.replace(target)
    log.info("copied %s to %s (%d bytes)", source, target, len(data))


def wait_desired(transport: Transport, settings: Settings, timeout: float) -> Desired:
    """The desired state, once the operator has written every object it needs."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fetch(transport, settings)
        except SourceError as err:
            if time.monotonic() > deadline:
                raise BootstrapError(f"cannot read the Cluster's objects: {err}") from err
            log.info("waiting for the Cluster's objects: %s", err)
            time.sleep(RETRY_SECONDS)


def _prepare(settings: Settings, name: str) -> Path | None:
    """The staging directory to build in, or None when PGDATA is already initialised."""
    if fsutil.is_initialised(settings.pgdata):
        log.info("%s already holds a data directory: nothing to do", settings.pgdata)
        return None
    pgdata = Path(settings.pgdata)
    if pgdata.is_dir():
        if any(pgdata.iterdir()):
            raise BootstrapError(f"{pgdata} is not empty and has no PG_VERSION")
        pgdata.rmdir()
    staging = Path(settings.staging_parent) / name
    fsutil.rmtree(staging)  # a previous attempt's leftovers
    return staging


def initdb(settings: Settings, transport: Transport) -> None:
    """A new primary: initdb, the replication and application roles, the app database."""
    staging = _prepare(settings, "pgdata-initdb")
    if staging is None:
        return
    desired = wait_desired(transport, settings, DESIRED_TIMEOUT)
    postgres.initdb(str(staging))
    local = postgres.Local(settings.socket_dir)
    server = postgres.Postmaster(str(staging), local)
    # Only the Unix socket, no TLS yet: nothing outside the pod can reach this server.
    server.start(
        ["-c", "listen_addresses=", "-c", f"unix_socket_directories={settings.socket_dir}"]
    )
    try:
        server.wait_accepting(120)
        local.query(bootstrap_sql(desired.app_user, desired.app_database))
    finally:
        server.stop("fast")
    staging.rename(settings.pgdata)
    log.info("initialised %s with roles %s, streaming_replica", settings.pgdata, desired.app_user)


def join(settings: Settings, transport: Transport) -> None:
    """A new replica: a base backup of the primary as streaming_replica (TLS client
    certificate, TLS 1.3), then standby.signal so it starts as a standby."""
    staging = _prepare(settings, "pgdata-join")
    if staging is None:
        return
    desired = wait_desired(transport, settings, DESIRED_TIMEOUT)
    fsutil.write_certs(settings, desired.certs)
    source = conninfo(settings, settings.rw_host)
    deadline = time.monotonic() + JOIN_TIMEOUT
    while True:
        try:
            postgres.basebackup(str(staging), source)
            break
        except postgres.PgError as err:
            fsutil.rmtree(staging)
            if time.monotonic() > deadline:
                raise BootstrapError(f"pg_basebackup from {settings.rw_host}: {err}") from err
            log.info("pg_basebackup from %s failed, retrying: %s", settings.rw_host, err)
            time.sleep(RETRY_SECONDS)
    fsutil.touch(staging / STANDBY_SIGNAL)
    staging.rename(settings.pgdata)
    log.info("cloned %s from %s", settings.pgdata, settings.rw_host)
