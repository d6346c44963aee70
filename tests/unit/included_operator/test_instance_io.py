"""The instance manager's reading and reporting: objects in, status and metrics out.

Aspects: the desired state comes from exactly the Cluster's own objects (the superuser
Secret only while access is on) and a missing one is reported, not guessed; status
patches merge as the API server merges them (RFC 7386); an instance is Ready only in the
role the Cluster wants (a standby only while streaming); `/pg/status` and Prometheus
metrics carry what the operator and dashboards read; the HTTP server and the HTTP/1.1
response parser used towards the API handle what they will meet.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from drydock_instance import handover, kubeclient, sources, status
from drydock_instance.server import Server
from instance_samples import secret, settings, write_objects


def test_fetch_reads_the_clusters_objects(tmp_path: Path) -> None:
    write_objects(tmp_path)
    transport = sources.DirTransport(str(tmp_path), settings())
    desired = sources.fetch(transport, settings())
    assert desired.target_primary == "pg-1"  # a new Cluster: its first instance
    assert (desired.app_user, desired.app_password, desired.app_database) == ("app", "pw", "app")
    assert (desired.superuser_enabled, desired.superuser_password) == (False, None)
    assert desired.certs == sources.Certs("CA", "SC", "SK", "RC", "RK", "")
    assert desired.custom_conf == "work_mem = '8MB'\n"
    assert desired.demotion is None


def test_fetch_reads_a_demotion_record(tmp_path: Path) -> None:
    write_objects(tmp_path)
    transport = sources.DirTransport(str(tmp_path), settings())
    record = {"from": "pg-1", "to": "pg-2", "state": "stopped", "shutdownCheckpointLSN": "0/5A0"}
    transport.patch_status({"status": {"currentPrimary": "pg-1", "demotion": record}})
    demotion = sources.fetch(transport, settings()).demotion
    assert demotion == handover.Demotion("pg-1", "pg-2", "stopped", "0/5A0")
    transport.patch_status({"status": {"demotion": None}})  # what the new primary writes
    assert sources.fetch(transport, settings()).demotion is None


def test_fetch_reads_the_certificates_spec_certificates_names(tmp_path: Path) -> None:
    """Bring-your-own certificates (CloudNativePG's spec.certificates): the named server and
    replication pairs are read; both CAs come from `-ca` (certificates only), the client
    CA from its `client-ca.crt` when the operator published one, else `ca.crt`."""
    write_objects(tmp_path)
    cluster = tmp_path / "clusters" / "pg.json"
    body = json.loads(cluster.read_text())
    body["spec"]["certificates"] = {"serverCASecret": "corp-ca", "serverTLSSecret": "corp-tls"}
    cluster.write_text(json.dumps(body))
    secrets = tmp_path / "secrets"
    (secrets / "corp-tls.json").write_text(
        json.dumps(secret("corp-tls", **{"tls.crt": "CSC", "tls.key": "CSK"}))
    )
    desired = sources.fetch(sources.DirTransport(str(tmp_path), settings()), settings())
    assert desired.certs == sources.Certs("CA", "CSC", "CSK", "RC", "RK", "")
    (secrets / "pg-ca.json").write_text(
        json.dumps(secret("pg-ca", **{"ca.crt": "CORP", "client-ca.crt": "OWN"}))
    )
    desired = sources.fetch(sources.DirTransport(str(tmp_path), settings()), settings())
    assert desired.certs == sources.Certs("CORP", "CSC", "CSK", "RC", "RK", "OWN")
    (secrets / "corp-tls.json").unlink()
    with pytest.raises(sources.SourceError, match="secrets/corp-tls does not exist"):
        sources.fetch(sources.DirTransport(str(tmp_path), settings()), settings())


def test_fetch_reads_the_superuser_secret_only_while_access_is_on(tmp_path: Path) -> None:
    write_objects(tmp_path, superuser=True, status={"targetPrimary": "pg-2"})
    desired = sources.fetch(sources.DirTransport(str(tmp_path), settings()), settings())
    assert (desired.superuser_enabled, desired.superuser_password) == (True, "su")
    assert desired.target_primary == "pg-2"
    (tmp_path / "secrets" / "pg-superuser.json").unlink()
    with pytest.raises(sources.SourceError, match="secrets/pg-superuser does not exist"):
        sources.fetch(sources.DirTransport(str(tmp_path), settings()), settings())


def test_status_patches_merge_like_the_api_server(tmp_path: Path) -> None:
    write_objects(tmp_path, status={"phase": "x", "instancesReportedState": {"pg-1": {"a": 1}}})
    transport = sources.DirTransport(str(tmp_path), settings())
    transport.patch_status(
        {"status": {"currentPrimary": "pg-2", "instancesReportedState": {"pg-2": {"a": 2}}}}
    )
    body = json.loads((tmp_path / "clusters" / "pg.json").read_text())
    assert body["status"] == {
        "phase": "x",
        "currentPrimary": "pg-2",
        "instancesReportedState": {"pg-1": {"a": 1}, "pg-2": {"a": 2}},
    }
    assert sources.merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None}}) == {"a": {"c": 2}}
    assert sources.merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}


def test_events_name_the_cluster_and_the_instance() -> None:
    ref = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "name": "pg"}
    ev = sources.event(ref, settings(), "Normal", "Promoted", "promoted")
    assert ev["involvedObject"] == ref
    assert ev["message"] == "pg-2: promoted"
    assert ev["metadata"] == {"generateName": "pg.", "namespace": "db"}


# --- readiness, status, metrics -----------------------------------------------------------

ROWS = [
    ["f", "0/3000060", "", "1", "", "0", "0", "15.20", "1796200000.25"],
    ["replica", "pg-2", "streaming", "t", "TLSv1.3", "10.0.0.2", "0"],
    ["replica", "pg-3", "catchup", "t", "TLSv1.3", "10.0.0.3", "8192"],
]


def test_status_rows_become_the_status() -> None:
    s = status.parse_status(ROWS, status.Status("pg-1", "pg", target_primary="pg-1"))
    assert (s.accepting, s.in_recovery, s.is_primary, s.timeline) == (True, False, True, 1)
    assert [(r.name, r.state, r.ssl, r.tls_version) for r in s.replicas] == [
        ("pg-2", "streaming", True, "TLSv1.3"),
        ("pg-3", "catchup", True, "TLSv1.3"),
    ]
    assert status.lsn_value("0/3000060") == 0x3000060
    assert status.lsn_value("16/B374D848") > status.lsn_value("15/FFFFFFFF")
    assert status.lsn_value("") == 0


@pytest.mark.parametrize(
    ("pod", "recovery", "receiver", "phase", "ready"),
    [
        ("pg-1", False, "", "running", True),  # the target primary, writable
        ("pg-1", True, "streaming", "running", False),  # the target, not promoted yet
        ("pg-2", True, "streaming", "running", True),  # a streaming standby
        ("pg-2", True, "", "running", False),  # a standby cut off from its primary
        ("pg-2", False, "", "running", False),  # a primary that should not be one
        ("pg-1", False, "", "restarting", False),
    ],
)
def test_ready_means_serving_in_the_wanted_role(
    pod: str, recovery: bool, receiver: str, phase: str, ready: bool
) -> None:
    s = status.Status(
        pod, "pg", target_primary="pg-1", accepting=True, in_recovery=recovery,
        receiver=receiver, phase=phase,
    )  # fmt: skip
    assert s.ready is ready


def test_metrics_use_cloudnativepg_names_and_exact_numbers() -> None:
    s = status.parse_status(ROWS, status.Status("pg-1", "pg", target_primary="pg-1"))
    text = status.metrics(s._replace(restarts=2))
    lines = text.splitlines()
    assert 'cnpg_collector_up{cluster="pg",pod="pg-1"} 1' in lines
    assert 'cnpg_pg_replication_streaming_replicas{cluster="pg",pod="pg-1"} 1' in lines
    assert 'cnpg_pg_postmaster_start_time{cluster="pg",pod="pg-1"} 1796200000.25' in lines
    assert (
        'cnpg_pg_stat_replication_replay_diff_bytes{cluster="pg",pod="pg-1",'
        'application_name="pg-3",ssl="true"} 8192'
    ) in lines
    assert "# TYPE drydock_instance_postgres_restarts_total counter" in lines
    assert lines.count("# TYPE cnpg_pg_stat_replication_replay_diff_bytes gauge") == 1
    assert "e+" not in text
    body = status.as_json(s)
    assert body["isPrimary"] is True and body["lsn"] == "0/3000060"


# --- HTTP --------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[Server]:
    def handler(path: str) -> tuple[int, str, bytes]:
        if path == "/boom":
            raise RuntimeError("bug")
        return (200, "text/plain", f"path={path}".encode()) if path == "/ok" else (404, "x", b"")

    srv = Server(0, handler, host="127.0.0.1")
    srv.start()
    yield srv
    srv.close()


def _get(srv: Server, path: str, method: str = "GET") -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback test server
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def test_the_server_answers_routes_errors_and_methods(server: Server) -> None:
    assert _get(server, "/ok?x=1") == (200, "path=/ok")
    assert _get(server, "/other")[0] == 404
    assert _get(server, "/boom")[0] == 503  # a handler bug does not kill the server
    assert _get(server, "/ok", "POST")[0] == 405
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /" + b"a" * 20000 + b" HTTP/1.0\r\n\r\n")
        try:
            answer = sock.recv(100)
        except ConnectionResetError:
            answer = b""
        assert answer == b""  # an oversized request head is dropped, unanswered
    assert _get(server, "/ok")[0] == 200


def test_responses_from_the_api_are_parsed_by_length_or_chunks() -> None:
    plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: x\r\n\r\n{}trailing"
    assert kubeclient.parse_response(plain) == (200, b"{}")
    chunked = (
        b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\n{"me"\r\n10;ext=1\r\n:"no access"}   \r\n0\r\n\r\n'
    )
    assert kubeclient.parse_response(chunked) == (403, b'{"me":"no access"}   ')
    with pytest.raises(kubeclient.ApiError, match="truncated"):
        kubeclient.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5")
    with pytest.raises(kubeclient.ApiError, match="not an HTTP response"):
        kubeclient.parse_response(b"SSH-2.0\r\n\r\n")
    with pytest.raises(kubeclient.ApiError, match="truncated chunked"):
        kubeclient.dechunk(b"a\r\nshort")


def test_api_paths() -> None:
    assert (
        kubeclient.path("", "v1", "secrets", "db", "pg-app")
        == "/api/v1/namespaces/db/secrets/pg-app"
    )
    assert (
        kubeclient.path("postgresql.cnpg.io", "v1", "clusters", "db", "pg")
        == "/apis/postgresql.cnpg.io/v1/namespaces/db/clusters/pg"
    )


def test_in_cluster_needs_the_service_environment() -> None:
    with pytest.raises(kubeclient.ApiError, match="KUBERNETES_SERVICE_HOST"):
        kubeclient.KubeClient.in_cluster({})
