"""The files and argument lists of a node's daemons (pure text from a NodeLayout).

Why: each daemon of the node (containerd, kubelet, kube-proxy, kube-scheduler,
kube-controller-manager) is configured by a file or flags whose every line matters for
isolation or security (its cgroup root, its bind address, its credentials). Keeping them
pure makes them reviewable in one place and unit-testable without starting anything.

Choices that are not defaults, and why:
- containerd: `restrict_oom_score_adj` (the host lacks CAP_SYS_RESOURCE, runc fails without
  it), the sandbox image pinned by digest in the local registry (nothing can be pulled from
  the internet), and the local registry reached over the node's link (registry_hosts_toml).
- kubelet: cgroupfs under the node's own cgroup root (two kubelets sharing `kubepods` would
  remove each other's pods as orphans), cgroup v1 accepted, swap tolerated, anonymous access
  off, webhook authorization, a serving certificate from the cluster CA, pod logs in the state
  dir, and eviction thresholds low enough that a busy shared disk does not taint the node.
- kube-proxy: iptables mode inside the node's namespace; conntrack limits left alone (they are
  host-wide or read-only in a namespace).
- Every component authenticates with a client certificate from the cluster CA whose name the
  API server's bootstrap RBAC already binds (system:node:<name>, system:kube-proxy,
  system:kube-scheduler, system:kube-controller-manager): no extra permissions are granted.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import yaml

from pipeline.tools.node_layout import (
    BRIDGE,
    CLUSTER_DOMAIN,
    CONTROLLER_MANAGER_PORT,
    KUBE_ROUTER_HEALTH_PORT,
    KUBELET_HEALTHZ_PORT,
    KUBELET_PORT,
    PROXY_HEALTHZ_PORT,
    PROXY_METRICS_PORT,
    SCHEDULER_PORT,
    NodeLayout,
)

CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
TLS_SERVER_NAME = "kubernetes"  # in the API server's certificate; the link address is not


def registry_hosts_toml(layout: NodeLayout, registry: str) -> str:
    """certs.d/<registry>/hosts.toml: the local registry is reached over the node's link only.

    `server` replaces the registry's own address (127.0.0.1 is the node's loopback inside its
    namespace, where nothing listens), so a pull never falls back to it. containerd 1.6
    refuses a file without a `host` table ("invalid `host` tree"), hence the same address twice.
    """
    port = registry.rsplit(":", 1)[1] if ":" in registry else "80"
    url = f"http://{layout.host_ip}:{port}"
    return f'server = "{url}"\n\n[host."{url}"]\n  capabilities = ["pull", "resolve"]\n'


def containerd_toml(layout: NodeLayout, sandbox_image: str) -> str:
    """containerd 1.6 (config version 2): its own root, socket and CRI settings.

    `state` is /run/containerd, which the node's mount namespace covers with a private tmpfs,
    so shim sockets and runc state never meet another containerd's.
    """
    return f"""version = 2
root = {json.dumps(str(layout.containerd_root))}
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = {json.dumps(str(layout.containerd_socket))}

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = {json.dumps(str(layout.containerd_root / "opt"))}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {json.dumps(sandbox_image)}
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {json.dumps(CNI_BIN_DIR)}
    conf_dir = {json.dumps(str(layout.cni_conf_dir))}
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = {json.dumps(str(layout.registry_hosts_dir))}
"""


def cni_conflist(layout: NodeLayout) -> str:
    """A bridge with host-local IPAM, masquerading to the link, hairpin for Service loops."""
    doc = {
        "cniVersion": "1.0.0",
        "name": "drydock",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(layout.pod_cidr)}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def kubeconfig(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, user: str) -> str:
    """A kubeconfig that authenticates by client certificate (server checked as TLS_SERVER_NAME)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "drydock",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    "tls-server-name": TLS_SERVER_NAME,
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": base64.b64encode(cert_pem).decode(),
                    "client-key-data": base64.b64encode(key_pem).decode(),
                },
            }
        ],
        "contexts": [{"name": "drydock", "context": {"cluster": "drydock", "user": user}}],
        "current-context": "drydock",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def kubelet_config(layout: NodeLayout, ca_file: Path, cluster_dns: str) -> str:
    pki = layout.pki_dir
    doc = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.node_ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": layout.node_ip,
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": layout.cgroup_root,
        "cgroupsPerQOS": True,
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDNS": [cluster_dns],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(layout.config("resolv.conf")),
        "podLogsDir": str(layout.pod_logs),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "registerNode": True,
        "serializeImagePulls": False,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "protectKernelDefaults": False,
        "shutdownGracePeriod": "0s",
        "maxPods": 250,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def kube_proxy_config(layout: NodeLayout, kubeconfig_path: Path) -> str:
    doc = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
        "mode": "iptables",
        "clusterCIDR": str(layout.pod_cidr),
        "hostnameOverride": layout.name,
        "bindAddress": layout.node_ip,
        "healthzBindAddress": f"{layout.node_ip}:{PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": f"{layout.node_ip}:{PROXY_METRICS_PORT}",
        "nodePortAddresses": ["primary"],  # NodePorts on the node's own address only
        # nf_conntrack_max is host-wide (read-only in a namespace): leave conntrack alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def resolv_conf() -> str:
    """What pods with dnsPolicy Default (CoreDNS itself) get: no upstream, nothing leaks out."""
    return "options ndots:1\n"


# -- argument lists (the caller runs them inside the node's namespaces) ----------------------


def containerd_argv(binary: Path, config: Path) -> list[str]:
    return [str(binary), f"--config={config}"]


def kubelet_argv(binary: Path, layout: NodeLayout) -> list[str]:
    return [
        str(binary),
        f"--config={layout.config('kubelet.yaml')}",
        f"--kubeconfig={layout.config('kubelet.kubeconfig')}",
        f"--root-dir={layout.kubelet_root}",
        f"--cert-dir={layout.pki_dir}",
        f"--hostname-override={layout.name}",
        f"--node-ip={layout.node_ip}",
        "--v=1",
    ]


def kube_proxy_argv(binary: Path, layout: NodeLayout) -> list[str]:
    return [str(binary), f"--config={layout.config('kube-proxy.yaml')}", "--v=1"]


def kube_router_argv(binary: Path, layout: NodeLayout, service_cidr: str) -> list[str]:
    """kube-router as a NetworkPolicy enforcer only (iptables + ipset in the node's namespace):
    no BGP router, no service proxy (kube-proxy does that), no CNI (the bridge plugin does)."""
    return [
        str(binary),
        f"--kubeconfig={layout.config('kube-router.kubeconfig')}",
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--run-loadbalancer=false",
        "--enable-cni=false",
        f"--hostname-override={layout.name}",
        f"--service-cluster-ip-range={service_cidr}",
        f"--health-port={KUBE_ROUTER_HEALTH_PORT}",
        "--metrics-port=0",
        "--v=1",
    ]


def scheduler_argv(binary: Path, layout: NodeLayout) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={layout.config('kube-scheduler.kubeconfig')}",
        "--leader-elect=false",
        f"--bind-address={layout.node_ip}",
        f"--secure-port={SCHEDULER_PORT}",
        f"--tls-cert-file={layout.pki_dir / 'kube-scheduler-serving.crt'}",
        f"--tls-private-key-file={layout.pki_dir / 'kube-scheduler-serving.key'}",
        "--v=1",
    ]


def controller_manager_argv(
    binary: Path, layout: NodeLayout, ca_file: Path, service_cidr: str
) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={layout.config('kube-controller-manager.kubeconfig')}",
        "--leader-elect=false",
        f"--bind-address={layout.node_ip}",
        f"--secure-port={CONTROLLER_MANAGER_PORT}",
        f"--tls-cert-file={layout.pki_dir / 'kube-controller-manager-serving.crt'}",
        f"--tls-private-key-file={layout.pki_dir / 'kube-controller-manager-serving.key'}",
        # Each controller acts as its own ServiceAccount (system:controller:*), not as the
        # manager's identity; kube-root-ca.crt is published into every namespace for pods.
        "--use-service-account-credentials=true",
        f"--root-ca-file={ca_file}",
        f"--service-cluster-ip-range={service_cidr}",
        "--cluster-name=drydock",
        "--v=1",
    ]
