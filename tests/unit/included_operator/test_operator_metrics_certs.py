"""The operator's metrics endpoint and its certificate decisions.

Aspects: `/metrics` speaks Prometheus text with controller-runtime's reconcile metrics
(counts by result, errors, a cumulative histogram) and one image gauge per Cluster, which
goes when the Cluster is forgotten; other paths are 404; the bind address setting is
checked. Certificates: the CA key lives in `-ca-key`, never in the `-ca` instances read; a
leaf is renewed when less than the threshold remains, when another CA issued it and when
the server's names change, and not otherwise; the lifetime and threshold are settings.
"""

from __future__ import annotations

import datetime
import urllib.error
import urllib.request

import pytest
from drydock_operator import certs, metrics, pki, resources
from drydock_operator.config import OperatorSettings, SettingsError, load_settings
from drydock_operator.model import ParseError, parse_cluster
from operator_samples import cluster_body

SETTINGS = OperatorSettings()
IMAGE = "127.0.0.1:5000/postgresql@sha256:" + "a" * 64


def sample_lines(text: str) -> dict[str, str]:
    return {
        line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_reconciles_are_counted_and_timed() -> None:
    m = metrics.Metrics()
    m.observe(0.02, ok=True)
    m.observe(3.0, ok=False)
    with m.timed() as ok:
        ok[0] = True
    with pytest.raises(RuntimeError), m.timed():
        raise RuntimeError("boom")  # a reconcile that raised counts as an error
    found = sample_lines(m.render())
    c = 'controller="cluster"'
    assert found[f'controller_runtime_reconcile_total{{{c},result="success"}}'] == "2"
    assert found[f'controller_runtime_reconcile_total{{{c},result="error"}}'] == "2"
    assert found[f"controller_runtime_reconcile_errors_total{{{c}}}"] == "2"
    assert found[f"controller_runtime_reconcile_time_seconds_count{{{c}}}"] == "4"
    buckets = f"controller_runtime_reconcile_time_seconds_bucket{{{c},le="
    assert found[buckets + '"0.025"}'] == "3"  # cumulative: 0.02 and the two instant ones
    assert found[buckets + '"2.5"}'] == "3"
    assert found[buckets + '"5"}'] == "4"
    assert found[buckets + '"+Inf"}'] == "4"
    assert float(found[f"controller_runtime_reconcile_time_seconds_sum{{{c}}}"]) >= 3.02


def test_each_cluster_has_an_image_gauge_until_forgotten() -> None:
    m = metrics.Metrics()
    m.set_image("db", "pg", IMAGE, 15)
    m.set_image("db", "other", "example/postgres:17", None)
    found = sample_lines(m.render())
    key = (
        f'drydock_cluster_image_info{{namespace="db",cluster="pg",image="{IMAGE}",'
        f'digest="sha256:{"a" * 64}",major="15"}}'
    )
    assert found[key] == "1"
    assert found["drydock_clusters{}"] == "2"
    m.forget("db", "pg")
    text = m.render()
    assert 'cluster="pg"' not in text and 'cluster="other"' in text


def test_metrics_are_served_over_http_and_nothing_else() -> None:
    m = metrics.Metrics()
    m.set_image("db", "pg", IMAGE, 15)
    server = metrics.MetricsServer(m, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:  # noqa: S310
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert 'cluster="pg"' in answer.read().decode()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url + "/healthz", timeout=5)  # noqa: S310
        assert err.value.code == 404
    finally:
        server.close()


def test_metrics_bind_address_setting() -> None:
    assert (SETTINGS.metrics_host, SETTINGS.metrics_port) == ("", 8080)
    s = load_settings({"DRYDOCK_OPERATOR_METRICS_BIND_ADDRESS": "127.0.0.1:0"})
    assert (s.metrics_host, s.metrics_port) == ("127.0.0.1", 0)
    for bad in ("8080", "localhost:http", ":70000"):
        with pytest.raises(SettingsError, match="DRYDOCK_OPERATOR_METRICS_BIND_ADDRESS"):
            load_settings({"DRYDOCK_OPERATOR_METRICS_BIND_ADDRESS": bad})


def test_certificate_lifetime_and_threshold_are_settings() -> None:
    assert SETTINGS.cert_duration_seconds == 90 * 86400
    assert SETTINGS.cert_renew_before_seconds == 7 * 86400
    s = load_settings(
        {
            "DRYDOCK_OPERATOR_CERT_DURATION_SECONDS": "120",
            "DRYDOCK_OPERATOR_CERT_RENEW_BEFORE_SECONDS": "90",
        }
    )
    assert (s.cert_duration_seconds, s.cert_renew_before_seconds) == (120, 90)
    with pytest.raises(SettingsError, match="must be less than"):
        load_settings(
            {
                "DRYDOCK_OPERATOR_CERT_DURATION_SECONDS": "60",
                "DRYDOCK_OPERATOR_CERT_RENEW_BEFORE_SECONDS": "60",
            }
        )


def test_the_ca_key_is_kept_apart_from_what_instances_read() -> None:
    c = parse_cluster(cluster_body())
    ca = pki.new_ca("pg.db")
    public = certs.ca_cert_secret(c, SETTINGS, resources.ca_secret_name(c), ca.cert_pem)
    private = certs.ca_key_secret(c, SETTINGS, ca.cert_pem, ca.key_pem)
    assert public["metadata"]["name"] == "pg-ca"
    assert public["stringData"] == {"ca.crt": ca.cert_pem}
    assert private["metadata"]["name"] == "pg-ca-key"
    assert private["stringData"]["ca.key"] == ca.key_pem
    readable = resources.instance_secret_names(
        parse_cluster(cluster_body(enableSuperuserAccess=True))
    )
    assert "pg-ca" in readable and "pg-ca-key" not in readable


def test_a_leaf_is_renewed_when_due_and_not_before() -> None:
    c = parse_cluster(cluster_body())
    names = resources.server_dns_names(c)
    ca = pki.new_ca("pg.db")
    cert = pki.new_server_cert(ca, names, datetime.timedelta(days=30)).cert_pem
    now = datetime.datetime.now(datetime.UTC)
    week = datetime.timedelta(days=7)
    assert certs.renewal_reason(cert, ca.cert_pem, names, week, now) is None
    due = certs.renewal_reason(cert, ca.cert_pem, names, week, now + datetime.timedelta(days=24))
    assert due is not None and due.startswith("it expires in")
    expired = certs.renewal_reason(
        cert, ca.cert_pem, names, week, now + datetime.timedelta(days=40)
    )
    assert expired == "it expires in 0s"
    client = pki.new_client_cert(ca, "streaming_replica", datetime.timedelta(seconds=120)).cert_pem
    short = datetime.timedelta(seconds=90)
    assert certs.renewal_reason(client, ca.cert_pem, (), short, now) is None
    assert certs.renewal_reason(
        client, ca.cert_pem, (), short, now + datetime.timedelta(seconds=40)
    )


def test_a_leaf_from_another_ca_or_for_other_names_is_reissued() -> None:
    c = parse_cluster(cluster_body())
    names = resources.server_dns_names(c)
    ca, other = pki.new_ca("pg.db"), pki.new_ca("pg.db")
    now = datetime.datetime.now(datetime.UTC)
    week = datetime.timedelta(days=7)
    foreign = pki.new_server_cert(other, names).cert_pem
    assert certs.renewal_reason(foreign, ca.cert_pem, names, week, now) == (
        "it was not issued by the Cluster's CA"
    )
    spec = certs.parse(cluster_body(certificates={"serverAltDNSNames": ["db.example.com"]}))
    wanted = certs.server_names(names, spec)
    assert wanted[-1] == "db.example.com" and wanted[: len(names)] == names
    mine = pki.new_server_cert(ca, names).cert_pem
    assert certs.renewal_reason(mine, ca.cert_pem, wanted, week, now) == "its names changed"
    assert certs.renewal_reason("garbage", ca.cert_pem, names, week, now) == "it cannot be parsed"


def test_expirations_for_the_status() -> None:
    ca = pki.new_ca("pg.db")
    cert = pki.new_client_cert(ca, "streaming_replica").cert_pem
    found = certs.expirations({"pg-replication": cert, "pg-broken": "garbage"})
    assert list(found) == ["pg-replication"]
    assert found["pg-replication"].endswith("+0000 UTC")


def test_spec_certificates_takes_cloudnativepgs_fields_and_their_rules() -> None:
    spec = certs.parse(
        cluster_body(
            certificates={
                "serverCASecret": "corp-ca",
                "serverTLSSecret": "corp-tls",
                "clientCASecret": "repl-ca",
                "serverAltDNSNames": ["db.example.com"],
            }
        )
    )
    assert (spec.server_ca_secret, spec.server_tls_secret, spec.client_ca_secret) == (
        "corp-ca",
        "corp-tls",
        "repl-ca",
    )
    assert spec.user_secret_names() == ("corp-tls",)  # never a CA Secret
    with pytest.raises(ParseError, match=r"serverTLSSecret: needs serverCASecret"):
        certs.parse(cluster_body(certificates={"serverTLSSecret": "x"}))
    with pytest.raises(ParseError, match=r"replicationTLSSecret: needs clientCASecret"):
        certs.parse(cluster_body(certificates={"replicationTLSSecret": "x"}))
    with pytest.raises(ParseError, match=r"spec\.certificates\.clientCASecret: expected a Secret"):
        certs.parse(cluster_body(certificates={"clientCASecret": ["x"]}))


def test_instances_read_the_users_pairs_but_never_a_ca_secret() -> None:
    c = parse_cluster(cluster_body())
    spec = certs.CertificatesSpec(
        server_ca_secret="corp-ca",
        server_tls_secret="corp-tls",
        client_ca_secret="repl-ca",
        replication_tls_secret="repl-tls",
    )
    role = certs.with_user_secrets(resources.role(c, SETTINGS), spec)
    (rule,) = [r for r in role["rules"] if r["resources"] == ["secrets"]]
    assert rule["resourceNames"] == [
        "pg-ca",
        "pg-server",
        "pg-replication",
        "pg-app",
        "corp-tls",
        "repl-tls",
    ]
    assert (
        resources.role(c, SETTINGS)["rules"]
        == certs.with_user_secrets(resources.role(c, SETTINGS), certs.CertificatesSpec())["rules"]
    )


def test_the_published_ca_secret_separates_a_client_ca_only_when_it_differs() -> None:
    assert certs.ca_cert_data("S", "S") == {"ca.crt": "S"}
    assert certs.ca_cert_data("S", "") == {"ca.crt": "S"}
    assert certs.ca_cert_data("S", "C") == {"ca.crt": "S", "client-ca.crt": "C"}


def test_status_names_what_the_operator_will_not_renew() -> None:
    ca = pki.new_ca("pg.db")
    cert = pki.new_client_cert(ca, "streaming_replica").cert_pem
    spec = certs.CertificatesSpec(server_ca_secret="corp-ca", server_tls_secret="corp-tls")
    status = certs.status_of(
        spec,
        {"corp-tls": cert, "pg-replication": cert},
        {"corp-tls": "user-provided (serverTLSSecret): the operator does not renew it"},
    )
    assert status["serverCASecret"] == "corp-ca" and status["serverTLSSecret"] == "corp-tls"
    assert set(status["expirations"]) == {"corp-tls", "pg-replication"}
    assert list(status["notRenewed"]) == ["corp-tls"]
    assert "notRenewed" not in certs.status_of(certs.CertificatesSpec(), {"x": cert}, {})
