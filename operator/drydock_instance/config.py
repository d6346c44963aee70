"""Where things are and what this instance is called, read once from the environment.

The operator sets these variables in the pod spec (`drydock_operator.instances`); the
Docker integration tests set the same ones. Paths are fixed by the pod layout: the data
directory on the PVC, the controller directory on an emptyDir shared by the init
containers and the postgres container, the socket directory on another emptyDir.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import NamedTuple

PORT_POSTGRESQL = 5432
PORT_STATUS = 8000
PORT_METRICS = 9187
REPLICATION_USER = "streaming_replica"
SUPERUSER = "postgres"


class SettingsError(ValueError):
    """A required variable is missing or malformed."""


class Settings(NamedTuple):
    """One instance's identity and layout."""

    pod: str
    """This instance's name (`<cluster>-<serial>`), also its `application_name` upstream."""
    cluster: str
    namespace: str
    pgdata: str
    """The data directory; its parent is the PVC mount (staging directories go there)."""
    controller_dir: str
    """The emptyDir shared with the init containers: the manager itself, certificates."""
    socket_dir: str
    source: str
    """`kubernetes` (the API, as the Cluster's ServiceAccount) or `dir:PATH` (files)."""
    api_group: str
    poll_seconds: float
    switchover_timeout: float = 60.0
    """How long a switchover's target waits for the old primary's last WAL before it
    gives the primary role back (`DRYDOCK_SWITCHOVER_TIMEOUT`, seconds)."""
    status_port: int = PORT_STATUS
    metrics_port: int = PORT_METRICS

    @property
    def certs_dir(self) -> str:
        return str(PurePosixPath(self.controller_dir, "certificates"))

    @property
    def rw_host(self) -> str:
        """The `-rw` Service: replicas stream from whatever instance it points at."""
        return f"{self.cluster}-rw"

    @property
    def staging_parent(self) -> str:
        return str(PurePosixPath(self.pgdata).parent)

    @property
    def label_prefix(self) -> str:
        return self.api_group.removeprefix("postgresql.")


def _required(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "")
    if not value:
        raise SettingsError(f"{key} is not set")
    return value


def _seconds(env: Mapping[str, str], key: str, default: str, low: float, high: float) -> float:
    raw = env.get(key) or default
    try:
        value = float(raw)
    except ValueError as err:
        raise SettingsError(f"{key}={raw!r} is not a number") from err
    if not low <= value <= high:
        raise SettingsError(f"{key}={raw!r} must be within {low:g}..{high:g}")
    return value


def load(env: Mapping[str, str]) -> Settings:
    """Settings from an environment mapping (pass `os.environ`)."""
    poll = _seconds(env, "DRYDOCK_POLL_SECONDS", "2", 0.1, 60)
    switchover_timeout = _seconds(env, "DRYDOCK_SWITCHOVER_TIMEOUT", "60", 5, 3600)
    pgdata = _required(env, "PGDATA")
    if not PurePosixPath(pgdata).is_absolute() or str(PurePosixPath(pgdata).parent) == "/":
        raise SettingsError(f"PGDATA={pgdata!r} must be an absolute path below a volume mount")
    return Settings(
        pod=_required(env, "POD_NAME"),
        cluster=_required(env, "CLUSTER_NAME"),
        namespace=_required(env, "NAMESPACE"),
        pgdata=pgdata,
        controller_dir=env.get("DRYDOCK_CONTROLLER_DIR") or "/controller",
        socket_dir=env.get("PGHOST") or "/var/run/postgresql",
        source=env.get("DRYDOCK_INSTANCE_SOURCE") or "kubernetes",
        api_group=env.get("DRYDOCK_API_GROUP") or "postgresql.cnpg.io",
        poll_seconds=poll,
        switchover_timeout=switchover_timeout,
    )
