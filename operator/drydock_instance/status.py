"""Pure: the instance's observed state, and how it is shown on 8000 and 9187.

The run loop fills one `Status` per tick from PostgreSQL's own views (one psql call);
the HTTP threads only read the latest value. `/pg/status` is what the operator polls to
pick a failover candidate (the most advanced replica) and to know an instance's role;
`/readyz` is the pod's readiness (the kubelet probes it); `/metrics` uses the metric
names CloudNativePG's exporter uses, so its dashboards and alerts read these too.
"""

from __future__ import annotations

from typing import Any, NamedTuple

STATUS_SQL = """
SELECT pg_is_in_recovery(),
  CASE WHEN pg_is_in_recovery()
       THEN COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
       ELSE pg_current_wal_lsn() END,
  pg_last_wal_replay_lsn(),
  (SELECT timeline_id FROM pg_control_checkpoint()),
  (SELECT status FROM pg_stat_wal_receiver),
  COALESCE(CASE WHEN pg_is_in_recovery()
       AND pg_last_wal_receive_lsn() IS DISTINCT FROM pg_last_wal_replay_lsn()
       THEN EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END, 0),
  (SELECT count(*) FROM pg_settings WHERE pending_restart),
  current_setting('server_version'),
  EXTRACT(EPOCH FROM pg_postmaster_start_time());
SELECT 'replica', r.application_name, COALESCE(r.state, ''), COALESCE(s.ssl, false),
  COALESCE(s.version, ''), COALESCE(r.client_addr::text, ''),
  COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn), 0)
FROM pg_stat_replication r LEFT JOIN pg_stat_ssl s ON s.pid = r.pid
WHERE NOT pg_is_in_recovery() ORDER BY 2;
"""


class Replica(NamedTuple):
    """One row of the primary's pg_stat_replication, with its TLS session."""

    name: str
    state: str
    ssl: bool
    tls_version: str
    address: str
    lag_bytes: float


class Status(NamedTuple):
    pod: str
    cluster: str
    target_primary: str = ""
    running: bool = False
    accepting: bool = False
    in_recovery: bool = False
    lsn: str = ""
    replay_lsn: str = ""
    timeline: int = 0
    receiver: str = ""
    lag_seconds: float = 0.0
    pending_restart: int = 0
    version: str = ""
    start_time: float = 0.0
    replicas: tuple[Replica, ...] = ()
    phase: str = "starting"
    """What the manager is doing: starting, running, promoting, demoting, restarting..."""
    restarts: int = 0
    reloads: int = 0
    api_ok: bool = False
    error: str = ""

    @property
    def is_primary(self) -> bool:
        return self.accepting and not self.in_recovery

    @property
    def ready(self) -> bool:
        """Serving in the role the Cluster wants: the target primary writable, any other
        instance a standby that is streaming from it."""
        if not self.accepting or self.phase != "running":
            return False
        if self.pod == self.target_primary:
            return not self.in_recovery
        return self.in_recovery and self.receiver == "streaming"


def _bool(field: str) -> bool:
    return field == "t"


def _float(field: str) -> float:
    try:
        return float(field)
    except ValueError:
        return 0.0


def parse_status(rows: list[list[str]], base: Status) -> Status:
    """Fill `base` from the rows STATUS_SQL returns."""
    if not rows or len(rows[0]) < 9:
        return base._replace(accepting=False, error="no status row")
    r = rows[0]
    replicas = tuple(
        Replica(f[1], f[2], _bool(f[3]), f[4], f[5], _float(f[6]))
        for f in rows[1:]
        if len(f) >= 7 and f[0] == "replica"
    )
    return base._replace(
        accepting=True,
        in_recovery=_bool(r[0]),
        lsn=r[1],
        replay_lsn=r[2],
        timeline=int(r[3] or 0),
        receiver=r[4],
        lag_seconds=_float(r[5]),
        pending_restart=int(r[6] or 0),
        version=r[7],
        start_time=_float(r[8]),
        replicas=replicas,
    )


def lsn_value(lsn: str) -> int:
    """`16/B374D848` as a number, so LSNs compare; 0 when unknown."""
    high, sep, low = lsn.partition("/")
    try:
        return (int(high, 16) << 32) + int(low, 16) if sep else 0
    except ValueError:
        return 0


def as_json(status: Status) -> dict[str, Any]:
    return {
        "pod": status.pod,
        "cluster": status.cluster,
        "phase": status.phase,
        "isPrimary": status.is_primary,
        "targetPrimary": status.target_primary,
        "ready": status.ready,
        "postgresRunning": status.running,
        "acceptingConnections": status.accepting,
        "inRecovery": status.in_recovery,
        "lsn": status.lsn,
        "replayLsn": status.replay_lsn,
        "timeLineID": status.timeline,
        "walReceiver": status.receiver,
        "replicationLagSeconds": status.lag_seconds,
        "pendingRestart": status.pending_restart > 0,
        "postgresVersion": status.version,
        "postmasterStartTime": status.start_time,
        "replicas": [
            {
                "name": r.name,
                "state": r.state,
                "ssl": r.ssl,
                "tlsVersion": r.tls_version,
                "address": r.address,
                "lagBytes": r.lag_bytes,
            }
            for r in status.replicas
        ],
        "restarts": status.restarts,
        "reloads": status.reloads,
        "apiReachable": status.api_ok,
        "error": status.error,
    }


def _number(value: float) -> str:
    """Exact in the exposition format: integers without exponent, floats in full."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def metrics(status: Status) -> str:
    """Prometheus text exposition (version 0.0.4), CloudNativePG's metric names."""
    labels = f'cluster="{status.cluster}",pod="{status.pod}"'
    out: list[str] = []

    def gauge(name: str, value: float, help_text: str, extra: str = "") -> None:
        if not any(line.startswith(f"# TYPE {name} ") for line in out):
            kind = "counter" if name.endswith("_total") else "gauge"
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
        lab = labels + (f",{extra}" if extra else "")
        out.append(f"{name}{{{lab}}} {_number(value)}")

    gauge("cnpg_collector_up", 1 if status.accepting else 0, "1 if PostgreSQL answers")
    gauge(
        "cnpg_pg_replication_in_recovery",
        1 if status.in_recovery else 0,
        "1 if the instance is a standby",
    )
    gauge(
        "cnpg_pg_replication_is_wal_receiver_up",
        1 if status.receiver == "streaming" else 0,
        "1 if the standby streams from the primary",
    )
    gauge("cnpg_pg_replication_lag", status.lag_seconds, "Replay lag in seconds")
    gauge(
        "cnpg_pg_replication_streaming_replicas",
        sum(1 for r in status.replicas if r.state == "streaming"),
        "Standbys streaming from this primary",
    )
    for r in status.replicas:
        gauge(
            "cnpg_pg_stat_replication_replay_diff_bytes",
            r.lag_bytes,
            "Bytes the standby has still to replay",
            f'application_name="{r.name}",ssl="{str(r.ssl).lower()}"',
        )
    gauge("cnpg_pg_postmaster_start_time", status.start_time, "Postmaster start, Unix time")
    gauge("cnpg_collector_pg_wal_lsn", float(lsn_value(status.lsn)), "Current or received LSN")
    gauge("cnpg_collector_timeline", status.timeline, "Timeline of the last checkpoint")
    gauge("cnpg_collector_pending_restart", status.pending_restart, "Settings awaiting restart")
    gauge("drydock_instance_postgres_restarts_total", status.restarts, "Postmaster restarts")
    gauge("drydock_instance_config_reloads_total", status.reloads, "Configuration reloads")
    return "\n".join(out) + "\n"
