"""The instance manager running real PostgreSQL instances on the real Docker engine.

One Cluster of two instances, laid out as the operator's pods are (instance_support):
uid 26, read-only root, the manager copied in by the operator image's
bootstrap-controller, `initdb` / `join` init steps, the manager as PID 1. The Cluster's
objects are the operator's own specs, in files the managers read and write as they
would the API. The tests run in order on the same instances; the last three move the
primary (a switchover given back because its target missed WAL, a switchover, then a
failover after the primary is removed).

Aspects: restricted and read-only; streaming replication as streaming_replica by client
certificate over TLS 1.3 (pg_stat_replication + pg_stat_ssl on the primary); a TLS 1.2
client refused; status on 8000 and Prometheus metrics on 9187; the app password follows
its Secret; postgres cannot log in while superuser access is off and can once it is on;
a pg_hba line takes effect on reload and stops working once removed, without a restart;
user pg_hba lines cannot lock out streaming_replica (fixed rules first); a parameter is
reloaded, one that needs it restarts PostgreSQL; a switchover target that has not
received the old primary's WAL up to its shutdown checkpoint does not promote and gives
the role back (no committed row lost); switchover and failover with rejoin (pg_rewind),
data intact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cryptography import x509
from instance_support import (
    SWITCHOVER_TIMEOUT,
    DockerInstances,
    docker,
    docker_instances,
    wait_for,
)

from pipeline.build.executor import BuildResult

pytestmark = pytest.mark.integration

OPERAND = "postgresql-15-minimal-bookworm"


@pytest.fixture(scope="module")
def pg(
    foundation_build: BuildResult, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerInstances]:
    operand = foundation_build.images[OPERAND].image_id
    operator = foundation_build.images["operator"].image_id
    root = tmp_path_factory.mktemp("instances")
    with docker_instances(root, "pg", operand, operator) as instances:
        try:
            instances.start("pg-1")
            wait_for("pg-1 ready", lambda: instances.ready("pg-1"))
            instances.start("pg-2")
            wait_for("pg-2 ready", lambda: instances.ready("pg-2"))
            yield instances
        finally:
            for name in instances.running():
                (root / f"{name}.log").write_text(instances.logs(name))


def app_login(pg: DockerInstances, password: str = "", host: str = "", extra: str = "") -> str:
    """Log in as the app owner over TCP + TLS; '' when it worked, else the error."""
    done = pg.client(
        "pg-2", "app", password or pg.files.app_password, "SELECT 1", host=host, extra=extra
    )
    return "" if done.returncode == 0 and done.stdout.strip() == "1" else done.stderr


def start_time(pg: DockerInstances, instance: str) -> str:
    return pg.exec_sql(instance, "SELECT pg_postmaster_start_time()")


def test_instances_run_read_only_as_uid_26_with_the_manager_as_pid_1(pg: DockerInstances) -> None:
    for name in ("pg-1", "pg-2"):
        container = pg.container_name(name)
        config = json.loads(docker("inspect", container).stdout)[0]
        assert config["HostConfig"]["ReadonlyRootfs"] is True
        assert config["HostConfig"]["CapDrop"] == ["ALL"]
        assert config["Config"]["User"] == "26:26"
        pid1 = docker("exec", container, "cat", "/proc/1/cmdline").stdout.split("\0")
        assert pid1[:3] == ["python3", "/controller/manager.pyz", "run"]
        pid_file = "/var/lib/postgresql/data/pgdata/postmaster.pid"
        postmaster = docker("exec", container, "head", "-1", pid_file).stdout.strip()
        assert docker("exec", container, "cat", f"/proc/{postmaster}/comm").stdout == "postgres\n"
        status = docker("exec", container, "cat", f"/proc/{postmaster}/status").stdout
        assert "\nUid:\t26\t26\t26\t26\n" in status
        denied = docker("exec", container, "touch", "/usr/lib/x", check=False)
        assert denied.returncode != 0
        assert "Read-only file system" in denied.stderr


def test_replica_streams_as_streaming_replica_over_tls13(pg: DockerInstances) -> None:
    rows = pg.exec_sql(
        "pg-1",
        "SELECT r.application_name, r.usename, r.state, s.ssl, s.version, s.client_dn "
        "FROM pg_stat_replication r JOIN pg_stat_ssl s ON s.pid = r.pid",
    )
    assert rows == "pg-2|streaming_replica|streaming|t|TLSv1.3|/CN=streaming_replica"
    pg.exec_sql("pg-1", "CREATE TABLE IF NOT EXISTS t (v text); INSERT INTO t VALUES ('one')")
    wait_for(
        "the row on the replica",
        lambda: pg.exec_sql("pg-2", "SELECT string_agg(v, ',') FROM t") == "one",
    )
    replica = pg.status("pg-2")
    assert (replica["inRecovery"], replica["walReceiver"], replica["ready"]) == (
        True,
        "streaming",
        True,
    )


def test_a_tls12_client_is_refused_and_tls13_is_used(pg: DockerInstances) -> None:
    refused = app_login(pg, extra="ssl_max_protocol_version=TLSv1.2")
    assert "protocol version" in refused or "unsupported protocol" in refused, refused
    done = pg.client(
        "pg-2",
        "app",
        pg.files.app_password,
        "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    assert done.stdout.strip() == "TLSv1.3", done.stderr


def test_status_port_and_metrics_port(pg: DockerInstances) -> None:
    primary = pg.status("pg-1")
    assert primary["isPrimary"] is True
    assert primary["ready"] is True
    (replica,) = primary["replicas"]
    assert (replica["name"], replica["state"], replica["ssl"], replica["tlsVersion"]) == (
        "pg-2",
        "streaming",
        True,
        "TLSv1.3",
    )
    assert pg.http("pg-1", 8000, "/readyz")[0] == 200
    assert pg.http("pg-1", 8000, "/nope")[0] == 404
    code, text = pg.http("pg-1", 9187, "/metrics")
    assert code == 200
    assert 'cnpg_collector_up{cluster="pg",pod="pg-1"} 1' in text
    assert 'cnpg_pg_replication_streaming_replicas{cluster="pg",pod="pg-1"} 1' in text
    code, text = pg.http("pg-2", 9187, "/metrics")
    assert 'cnpg_pg_replication_is_wal_receiver_up{cluster="pg",pod="pg-2"} 1' in text


def test_renewed_certificates_are_reloaded_and_replication_keeps_streaming(
    pg: DockerInstances,
) -> None:
    """What the operator's renewal (drydock_operator.certs) relies on: new pairs in the
    Secrets are written and reloaded without a restart, the stream is not interrupted, and
    a new replication connection authenticates with the new client certificate."""
    stream = "SELECT pid FROM pg_stat_replication WHERE application_name = 'pg-2'"
    walsender = pg.exec_sql("pg-1", stream)
    started = start_time(pg, "pg-1")
    server_pem, client_pem = pg.files.renew_certificates()

    def has_new(name: str) -> bool:
        path = "/controller/certificates/server.crt"
        return docker("exec", pg.container_name(name), "cat", path).stdout == server_pem

    wait_for(
        "both instances have the new certificates", lambda: has_new("pg-1") and has_new("pg-2")
    )
    wait_for(
        "the reload event",
        lambda: any(
            e["reason"] == "ConfigurationReloaded" and "certificates" in e["message"]
            for e in pg.files.events()
        ),
    )
    assert pg.exec_sql("pg-1", stream) == walsender  # the same stream, never interrupted
    assert start_time(pg, "pg-1") == started  # reloaded, not restarted
    serial = format(x509.load_pem_x509_certificate(client_pem.encode()).serial_number, "d")
    pg.exec_sql("pg-1", f"SELECT pg_terminate_backend(({stream}))")  # the replica reconnects
    wait_for(
        "the replica back, with the new client certificate",
        lambda: (
            pg.exec_sql(
                "pg-1",
                "SELECT r.state || ' ' || s.version || ' ' || s.client_serial "
                "FROM pg_stat_replication r JOIN pg_stat_ssl s ON s.pid = r.pid",
            )
            == f"streaming TLSv1.3 {serial}"
        ),
    )
    assert app_login(pg) == ""  # a client still verifies the server against the CA


def test_the_app_password_follows_its_secret(pg: DockerInstances) -> None:
    old = pg.files.app_password
    assert app_login(pg) == ""
    pg.files.rotate_app_password()
    wait_for("the new password", lambda: app_login(pg) == "", timeout=30)
    assert "password authentication failed" in app_login(pg, password=old)


def test_superuser_login_follows_enable_superuser_access(pg: DockerInstances) -> None:
    def login() -> str:
        done = pg.client(
            "pg-2", "postgres", pg.files.superuser_password, "SELECT 1", extra="dbname=postgres"
        )
        return "" if done.returncode == 0 else done.stderr

    stored = "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'postgres'"
    assert pg.exec_sql("pg-1", stored) == "t"
    assert "password authentication failed" in login()
    pg.files.set_spec(enableSuperuserAccess=True)
    wait_for("superuser login", lambda: login() == "", timeout=30)
    assert pg.exec_sql("pg-1", stored) == "f"
    pg.files.set_spec(enableSuperuserAccess=False)
    wait_for("superuser refused", lambda: "password authentication failed" in login(), 30)
    assert pg.exec_sql("pg-1", stored) == "t"


def test_a_pg_hba_line_takes_effect_on_reload_and_stops_when_removed(
    pg: DockerInstances,
) -> None:
    started = start_time(pg, "pg-1")
    reloads = pg.status("pg-1")["reloads"]
    assert app_login(pg) == ""
    pg.files.set_spec(postgresql={"pg_hba": ["hostssl app app all reject"]})
    wait_for("the reject line", lambda: "rejects connection" in app_login(pg), timeout=30)
    pg.files.set_spec(postgresql={"pg_hba": []})
    wait_for("the line gone", lambda: app_login(pg) == "", timeout=30)
    assert start_time(pg, "pg-1") == started, "a pg_hba change must not restart PostgreSQL"
    wait_for("two reloads counted", lambda: pg.status("pg-1")["reloads"] >= reloads + 2, 10)


def test_user_pg_hba_lines_cannot_lock_out_streaming_replica(pg: DockerInstances) -> None:
    """The fixed rules come first: were the user's reject lines before them, the
    replica could not reconnect after its WAL sender is terminated."""
    lines = ["hostssl all streaming_replica all reject", "hostssl replication all all reject"]
    reloads = pg.status("pg-1")["reloads"]
    pg.files.set_spec(postgresql={"pg_hba": lines})
    wait_for("the lines loaded", lambda: pg.status("pg-1")["reloads"] > reloads, timeout=30)
    before = pg.exec_sql("pg-1", "SELECT pid FROM pg_stat_replication")
    pg.exec_sql("pg-1", "SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
    wait_for(
        "the replica streaming again",
        lambda: (
            pg.exec_sql("pg-1", "SELECT pid || state FROM pg_stat_replication")
            not in ("", f"{before}streaming")
            and pg.exec_sql("pg-1", "SELECT state FROM pg_stat_replication") == "streaming"
        ),
        timeout=60,
    )
    pg.files.set_spec(postgresql={"pg_hba": []})


def test_a_parameter_is_reloaded_and_one_that_needs_it_restarts(pg: DockerInstances) -> None:
    started = start_time(pg, "pg-1")
    pg.files.set_spec(postgresql={"parameters": {"work_mem": "8MB"}})
    wait_for("work_mem", lambda: pg.exec_sql("pg-1", "SHOW work_mem") == "8MB", timeout=30)
    assert start_time(pg, "pg-1") == started
    pg.files.set_spec(postgresql={"parameters": {"work_mem": "8MB", "shared_buffers": "64MB"}})
    for name in ("pg-1", "pg-2"):

        def restarted(instance: str = name) -> bool:
            return pg.exec_sql(instance, "SHOW shared_buffers") == "64MB"

        wait_for(f"shared_buffers on {name}", restarted, timeout=60)
    assert start_time(pg, "pg-1") != started
    wait_for("pg-2 ready again", lambda: pg.ready("pg-2"), timeout=60)
    reasons = [e["reason"] for e in pg.files.events()]
    assert "Restarted" in reasons and "ConfigurationReloaded" in reasons


def test_a_switchover_whose_target_misses_wal_is_given_back(pg: DockerInstances) -> None:
    """The target's stream is cut, then a row is committed on the primary: promoting the
    target would lose it. The target must wait for WAL past the old primary's shutdown
    checkpoint, give the role back when it cannot get it, and the old primary must come
    back as primary with the row."""
    pg.move_rw(None)  # no -rw alias: pg-2 cannot reconnect to a primary
    pg.exec_sql("pg-1", "SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
    receiver = pg.exec_sql("pg-2", "SELECT pid FROM pg_stat_wal_receiver")
    if receiver:
        kill = f"import os, signal; os.kill({int(receiver)}, signal.SIGTERM)"
        docker("exec", pg.container_name("pg-2"), "python3", "-c", kill)
    wait_for("pg-2 not streaming", lambda: pg.status("pg-2")["walReceiver"] != "streaming")
    pg.exec_sql("pg-1", "INSERT INTO t VALUES ('kept')")
    pg.files.set_target_primary("pg-2")
    primaries: set[str] = set()

    def given_back() -> bool:
        status = pg.files.status()
        primaries.add(str(status.get("currentPrimary")))
        return (
            status.get("targetPrimary") == "pg-1"
            and "demotion" not in status
            and pg.status("pg-1")["isPrimary"] is True
        )

    wait_for("the switchover given back to pg-1", given_back, timeout=SWITCHOVER_TIMEOUT + 90)
    assert primaries == {"pg-1"}, "pg-2 promoted without pg-1's last WAL"
    reasons = [e["reason"] for e in pg.files.events()]
    assert "SwitchoverAborted" in reasons and "Promoted" not in reasons
    assert pg.exec_sql("pg-1", "SELECT count(*) FROM t WHERE v = 'kept'") == "1"
    pg.move_rw("pg-1")
    wait_for("pg-2 streaming again", lambda: pg.status("pg-2")["walReceiver"] == "streaming")
    wait_for("the row on pg-2", lambda: pg.exec_sql("pg-2", "SELECT v FROM t WHERE v = 'kept'"))
    wait_for("pg-1 ready", lambda: pg.ready("pg-1"))
    wait_for("pg-2 ready", lambda: pg.ready("pg-2"))


def test_switchover_then_the_old_primary_follows(pg: DockerInstances) -> None:
    pg.exec_sql("pg-1", "INSERT INTO t VALUES ('two')")
    pg.files.set_target_primary("pg-2")
    wait_for("pg-2 recorded as primary", lambda: pg.files.status().get("currentPrimary") == "pg-2")
    assert "demotion" not in pg.files.status()  # the new primary cleared pg-1's record
    # Before it says so, the new primary has checkpointed: pg_control names the new
    # timeline, which pg_rewind on the old primary relies on.
    timeline = "SELECT timeline_id FROM pg_control_checkpoint()"
    assert pg.exec_sql("pg-2", timeline) == "2"
    pg.move_rw("pg-2")
    wait_for("pg-1 streaming from pg-2", lambda: pg.status("pg-1")["walReceiver"] == "streaming")
    assert pg.status("pg-2")["isPrimary"] is True
    assert pg.status("pg-2")["timeLineID"] == 2
    pg.exec_sql("pg-2", "INSERT INTO t VALUES ('three')")
    rows = "SELECT string_agg(v, ',' ORDER BY v) FROM t"
    wait_for("every row on pg-1", lambda: pg.exec_sql("pg-1", rows) == "kept,one,three,two")
    wait_for("pg-1 ready", lambda: pg.ready("pg-1"))
    reasons = [e["reason"] for e in pg.files.events()]
    assert {"Promoted", "Demoted", "Rejoined"} <= set(reasons)
    promoted = [e["message"] for e in pg.files.events() if e["reason"] == "Promoted"]
    assert len(promoted) == 1 and promoted[0].startswith("pg-2: ")


def test_a_removed_primary_is_replaced_and_rejoins(pg: DockerInstances) -> None:
    pg.exec_sql("pg-2", "INSERT INTO t VALUES ('four')")
    pg.stop("pg-2")  # SIGTERM: the manager shuts PostgreSQL down fast, as on pod deletion
    report = pg.status("pg-1")
    assert report["inRecovery"] is True  # the operator picks it by its reported LSN
    pg.files.set_target_primary("pg-1")
    wait_for("pg-1 recorded as primary", lambda: pg.files.status().get("currentPrimary") == "pg-1")
    assert pg.exec_sql("pg-1", "SELECT timeline_id FROM pg_control_checkpoint()") == "3"
    pg.move_rw("pg-1")
    pg.start("pg-2", init="join")  # the PVC survives: join finds a data directory
    wait_for("pg-2 streaming from pg-1", lambda: pg.status("pg-2")["walReceiver"] == "streaming")
    assert pg.status("pg-1")["timeLineID"] == 3
    rows = "SELECT string_agg(v, ',' ORDER BY v) FROM t"
    assert pg.exec_sql("pg-1", rows) == "four,kept,one,three,two"
    pg.exec_sql("pg-1", "INSERT INTO t VALUES ('five')")
    wait_for(
        "every row on pg-2", lambda: pg.exec_sql("pg-2", rows) == "five,four,kept,one,three,two"
    )
