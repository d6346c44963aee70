"""The local control plane: idempotent start, RBAC, PodSecurity, TokenRequest, clean stop."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import requests

from pipeline.tools import controlplane, daemon
from pipeline.tools.controlplane import ControlPlane, ControlPlaneSettings, mint_token
from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, load_kubeconfig, resource_path

pytestmark = pytest.mark.e2e


def test_up_twice_reuses_the_running_plane(
    control_plane: ControlPlane, control_plane_settings: ControlPlaneSettings
) -> None:
    again = controlplane.up(control_plane_settings)
    assert again.started_seconds == 0.0
    assert (again.etcd_pid, again.apiserver_pid) == (
        control_plane.etcd_pid,
        control_plane.apiserver_pid,
    )
    st = controlplane.status(control_plane_settings)
    assert st.ready and st.server == control_plane.server


def test_tls_is_verified_with_our_ca(control_plane: ControlPlane) -> None:
    resp = requests.get(
        f"{control_plane.server}/readyz", verify=str(control_plane.ca_file), timeout=5
    )
    assert resp.status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{control_plane.server}/readyz", timeout=5)


def test_admin_is_system_masters(kube_api: KubeAPI) -> None:
    review = kube_api.create(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert review is not None
    assert "system:masters" in review["status"]["userInfo"]["groups"]


def test_service_account_token_works_and_rbac_applies(
    control_plane: ControlPlane, kube_api: KubeAPI
) -> None:
    token = mint_token(control_plane.kubeconfig, "e2e-sa", "operator")
    as_sa = load_kubeconfig(control_plane.kubeconfig).with_token(token)
    with KubeAPI(as_sa) as api:
        review = api.create(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        assert review is not None
        assert review["status"]["userInfo"]["username"] == "system:serviceaccount:e2e-sa:operator"
        with pytest.raises(KubeAPIError) as err:
            api.get(resource_path("v1", "secrets", namespace="e2e-sa"))
        assert err.value.status == 403
        # Grant list on secrets in the namespace: the same token is now allowed.
        kube_api.apply(
            resource_path("rbac.authorization.k8s.io/v1", "roles", "read-secrets", "e2e-sa"),
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "read-secrets", "namespace": "e2e-sa"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
            },
        )
        kube_api.apply(
            resource_path("rbac.authorization.k8s.io/v1", "rolebindings", "read-secrets", "e2e-sa"),
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "read-secrets", "namespace": "e2e-sa"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "read-secrets",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": "e2e-sa"}],
            },
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                assert api.get(resource_path("v1", "secrets", namespace="e2e-sa")) is not None
                break
            except KubeAPIError as exc:
                if exc.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def test_pod_security_admission_is_enforced(kube_api: KubeAPI) -> None:
    kube_api.apply(
        resource_path("v1", "namespaces", "e2e-restricted"),
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": "e2e-restricted",
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        },
    )
    pods = resource_path("v1", "pods", namespace="e2e-restricted")
    plain = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    with pytest.raises(KubeAPIError) as err:
        kube_api.create(pods, plain)
    assert err.value.status == 403
    assert "violates PodSecurity" in err.value.message
    hardened = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hardened"},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    assert kube_api.create(pods, hardened) is not None


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_down_leaves_nothing_running(tmp_path: Path) -> None:
    settings = ControlPlaneSettings(state_dir=tmp_path / "plane")
    cp = controlplane.up(settings)
    assert cp.started_seconds > 0
    port = int(cp.server.rsplit(":", 1)[1])
    controlplane.up(settings)  # twice is harmless
    controlplane.down(settings)
    st = controlplane.status(settings)
    assert not st.running and not st.ready
    for pid in (cp.etcd_pid, cp.apiserver_pid):
        assert daemon.gone(pid)
    assert not _port_open(port)
    controlplane.down(settings)  # and so is stopping twice
    again = controlplane.up(settings)  # data and keys survive a stop
    assert again.server == cp.server
    controlplane.down(settings, purge=True)
    assert not settings.resolved_state_dir().exists()


def test_service_account_kubeconfig(control_plane: ControlPlane, tmp_path: Path) -> None:
    path = controlplane.service_account_kubeconfig(
        control_plane.kubeconfig, "e2e-sa", "reader", tmp_path / "kubeconfig"
    )
    with KubeAPI(load_kubeconfig(path)) as api:
        review = api.create(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
    assert review is not None
    assert review["status"]["userInfo"]["username"] == "system:serviceaccount:e2e-sa:reader"
