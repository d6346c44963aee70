"""Control plane pieces that need no process: flags, key material, kubeconfig."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from pipeline.tools import controlplane, daemon, pki
from pipeline.tools.controlplane import State, apiserver_args, etcd_args, kubeconfig_text
from pipeline.tools.kubeapi import load_kubeconfig, resource_path

ST = State(etcd_port=2379, peer_port=2380, apiserver_port=6443)


def flags(argv: list[str]) -> dict[str, str]:
    return dict(a[2:].split("=", 1) for a in argv[1:])


def test_apiserver_flags_the_brief_requires(tmp_path: Path) -> None:
    f = flags(apiserver_args(Path("/bin/kube-apiserver"), tmp_path, ST))
    assert f["authorization-mode"] == "RBAC"
    assert "PodSecurity" in f["enable-admission-plugins"].split(",")
    assert f["advertise-address"] == "127.0.0.1"
    assert f["bind-address"] == "127.0.0.1"
    assert f["secure-port"] == "6443"
    assert f["etcd-servers"] == "http://127.0.0.1:2379"
    for key in (
        "service-account-issuer",
        "service-account-key-file",
        "service-account-signing-key-file",
        "api-audiences",
        "token-auth-file",
        "tls-cert-file",
        "tls-private-key-file",
    ):
        assert f[key], key
    assert f["api-audiences"] == f["service-account-issuer"]


def test_etcd_flags_loopback_only(tmp_path: Path) -> None:
    argv = etcd_args(Path("/bin/etcd"), tmp_path, ST)
    f = flags(argv)
    assert f["listen-client-urls"] == "http://127.0.0.1:2379"
    assert f["listen-peer-urls"] == "http://127.0.0.1:2380"
    assert f["initial-cluster"] == "drydock=http://127.0.0.1:2380"
    assert f["data-dir"].startswith(str(tmp_path))


def test_pki_is_created_once_and_private(tmp_path: Path) -> None:
    pki.ensure(tmp_path)
    first = (tmp_path / "ca.crt").read_bytes()
    pki.ensure(tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == first
    for key in ("ca.key", "apiserver.key", "sa.key"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    ca = x509.load_pem_x509_certificate(first)
    cert.verify_directly_issued_by(ca)


def test_kubeconfig_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text("https://127.0.0.1:6443", b"PEM", "tok"))
    cfg = load_kubeconfig(path)
    assert (cfg.server, cfg.ca_pem, cfg.token) == ("https://127.0.0.1:6443", b"PEM", "tok")
    assert "tok" not in repr(cfg)
    assert cfg.with_token("other").token == "other"


def test_cache_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRYDOCK_CACHE", str(tmp_path / "c"))
    assert controlplane.cache_dir() == tmp_path / "c"
    assert controlplane.ControlPlaneSettings().resolved_state_dir() == tmp_path / "c" / "devcluster"
    monkeypatch.delenv("DRYDOCK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert controlplane.cache_dir() == tmp_path / "x" / "drydock"


def test_status_and_down_without_state(tmp_path: Path) -> None:
    settings = controlplane.ControlPlaneSettings(state_dir=tmp_path / "none")
    assert not controlplane.status(settings).running
    controlplane.down(settings)


def test_missing_binary_is_a_tool_error(tmp_path: Path) -> None:
    from pipeline.errors import ToolError

    settings = controlplane.ControlPlaneSettings(state_dir=tmp_path / "s", bin_dir=tmp_path / "bin")
    with pytest.raises(ToolError, match=r"scripts/tools\.sh"):
        controlplane.up(settings)


def test_resource_paths() -> None:
    assert resource_path("v1", "namespaces", "x") == "/api/v1/namespaces/x"
    assert (
        resource_path("postgresql.cnpg.io/v1", "imagecatalogs", "c", "ns")
        == "/apis/postgresql.cnpg.io/v1/namespaces/ns/imagecatalogs/c"
    )


def test_ports_are_free_distinct_and_below_the_ephemeral_range() -> None:
    ports = daemon.free_ports(3)
    assert len(set(ports)) == 3
    low = daemon.ephemeral_low()
    for port in ports:
        assert daemon.PORT_FLOOR <= port < low
        assert daemon.bindable(port)
