"""The node's credentials and configuration files, written where its daemons read them.

Why: `node.up` must know which daemons to restart after a change, and the answer is "the
ones whose files changed": each file is written only when its content differs, and the
names of the parts affected come back. Certificates are issued once per node by the
cluster CA (pki.issue), with the user names and groups the API server's bootstrap RBAC and
Node authorizer expect.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.tools import controlplane, pki
from pipeline.tools import node_config as cfg
from pipeline.tools.controlplane import ControlPlane
from pipeline.tools.node_addons import KUBELET_CLIENT_USER
from pipeline.tools.node_layout import NodeLayout, service_ip
from pipeline.tools.node_storage import PROVISIONER_USER


def apiserver_overrides(pki_dir: Path) -> tuple[tuple[str, str | None], ...]:
    """Node authorization, client certificates, the ServiceAccount admission, kubelet access."""
    return (
        ("--authorization-mode", "Node,RBAC"),
        ("--enable-admission-plugins", "NodeRestriction,PodSecurity"),
        # The controller-manager now creates every namespace's `default` ServiceAccount,
        # so the ServiceAccount admission plugin (token automount) is on, as in a real cluster.
        ("--disable-admission-plugins", None),
        ("--client-ca-file", str(pki_dir / "ca.crt")),
        ("--kubelet-client-certificate", str(pki_dir / "apiserver-kubelet-client.crt")),
        ("--kubelet-client-key", str(pki_dir / "apiserver-kubelet-client.key")),
        ("--kubelet-certificate-authority", str(pki_dir / "ca.crt")),
        ("--kubelet-preferred-address-types", "InternalIP"),
    )


def ensure_pki(layout: NodeLayout, cp_pki: Path) -> None:
    pki.ensure(cp_pki)
    pki.issue(cp_pki, cp_pki, "apiserver-kubelet-client", KUBELET_CLIENT_USER)
    node_pki = layout.pki_dir
    pki.issue(cp_pki, node_pki, "kubelet", f"system:node:{layout.name}", orgs=("system:nodes",))
    pki.issue(
        cp_pki, node_pki, "kubelet-serving", layout.name, ips=(layout.node_ip,), dns=(layout.name,)
    )
    for part in ("kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-router"):
        pki.issue(cp_pki, node_pki, part, f"system:{part}")
    for part in ("kube-scheduler", "kube-controller-manager"):
        pki.issue(cp_pki, node_pki, f"{part}-serving", part, ips=(layout.node_ip,))
    pki.issue(cp_pki, node_pki, "local-provisioner", PROVISIONER_USER)
    ca = (cp_pki / "ca.crt").read_bytes()
    if not (node_pki / "ca.crt").exists() or (node_pki / "ca.crt").read_bytes() != ca:
        (node_pki / "ca.crt").write_bytes(ca)


def write(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write text unless path already holds it; True when it changed."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=mode)
    path.write_text(text, encoding="utf-8")
    return True


def write_configs(
    layout: NodeLayout, cp: ControlPlane, api_port: int, sandbox: str, registry: str
) -> set[str]:
    """Every config file; returns the names of the parts whose configuration changed."""
    ca = cp.ca_file
    server = f"https://{layout.host_ip}:{api_port}"
    changed: set[str] = set()
    users = {"kubelet": f"system:node:{layout.name}", "local-provisioner": PROVISIONER_USER}
    parts = ("kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-router")
    for part in (*parts, "local-provisioner"):
        text = cfg.kubeconfig(
            cp.server if part == "local-provisioner" else server,  # it runs on the host
            ca.read_bytes(),
            (layout.pki_dir / f"{part}.crt").read_bytes(),
            (layout.pki_dir / f"{part}.key").read_bytes(),
            users.get(part, f"system:{part}"),
        )
        if write(layout.config(f"{part}.kubeconfig"), text, 0o600):
            changed.add(part)
    dns = service_ip(controlplane.SERVICE_CIDR, 10)
    files = {
        "containerd": [("containerd.toml", cfg.containerd_toml(layout, sandbox))],
        "kubelet": [
            ("kubelet.yaml", cfg.kubelet_config(layout, ca, dns)),
            ("resolv.conf", cfg.resolv_conf()),
        ],
        "kube-proxy": [
            (
                "kube-proxy.yaml",
                cfg.kube_proxy_config(layout, layout.config("kube-proxy.kubeconfig")),
            )
        ],
    }
    for part, entries in files.items():
        for name, text in entries:
            if write(layout.config(name), text):
                changed.add(part)
    write(layout.cni_conf_dir / "10-drydock.conflist", cfg.cni_conflist(layout))
    hosts = layout.registry_hosts_dir / registry / "hosts.toml"
    write(hosts, cfg.registry_hosts_toml(layout, registry))  # read at each pull
    return changed
