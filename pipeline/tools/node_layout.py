"""Who a local Kubernetes node is: its name, addresses, namespaces and paths (pure).

Why a module of its own: several nodes share one host (a developer's `drydock dev cluster`,
the e2e tier's node, another engineer's test run), so everything host-global a node touches
must be derived from one identity, in one place, and tested. The node runs inside a network
namespace of its own, which makes most of a kubelet's host-global state (the pod bridge,
pod veths, kube-proxy's and CNI's iptables chains, the kubelet's and kube-proxy's ports)
private to it; what is still host-global is named after the node id here:

    netns        drydock-<id>          (ip netns), holds the bridge, pods' veths, KUBE-*/CNI-*
    host link    dd-<id> <-> eth0      a veth pair; the host side has host_ip, the node side
                                       node_ip (a /30 of LINK_BLOCK per node)
    pod CIDR     a /20 of POD_BLOCK    routed by the host to node_ip, so host processes (the
                                       API server's proxy, an operator run from a checkout,
                                       tests) reach pods as they would in a cluster
    host chains  DRYDOCK-<ID>          nat (DNAT to the API server and the registry) and filter
                                       (the node reaches nothing else on or through the host);
                                       kube-router's KUBE-ROUTER-*/KUBE-NWPLCY-* chains and its
                                       ipsets (NetworkPolicy enforcement) live in the netns
    cgroup root  /drydock-<id>         in every cgroup hierarchy; the kubelet's kubepods under it
    state        <state_dir>           containerd root and socket, kubelet root, configs, logs

Inside the namespace the names and ports are the same for every node (the bridge, the
kubelet's ports), since no other node can see them.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

LINK_BLOCK = ipaddress.IPv4Network("10.213.0.0/16")  # one /30 per node, host side .1
LINK_SLOTS = LINK_BLOCK.num_addresses // 4
POD_BLOCK = ipaddress.IPv4Network("10.128.0.0/12")  # one /20 (4094 pods) per node
POD_PREFIX = 20
POD_SLOTS = 2 ** (POD_PREFIX - POD_BLOCK.prefixlen)
BRIDGE = "drydock0"
NODE_IF = "eth0"  # the node side of the link, inside the namespace
CLUSTER_DOMAIN = "cluster.local"
DNS_TARGET_PORT = 1053  # CoreDNS listens unprivileged; the kube-dns Service maps 53 to it

# Ports inside the node's namespace (bound to link_node_ip, so never a host port).
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
PROXY_HEALTHZ_PORT = 10256
PROXY_METRICS_PORT = 10249
SCHEDULER_PORT = 10259
CONTROLLER_MANAGER_PORT = 10257
KUBE_ROUTER_HEALTH_PORT = 20244  # kube-router's default; it binds every address of the netns

# Directories that are host-global for a kubelet and containerd (hard-coded by them) and that
# each node gets privately: a tmpfs over each, in the node's own mount namespace.
PRIVATE_DIRS = ("/run/containerd", "/run/netns", "/var/lib/cni", "/var/log/containers")

# Kernel settings the kubelet insists on (pkg/kubelet/cm setupKernelTunables) and would
# otherwise write host-wide; the node sees these values in files bind-mounted over them.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
}


def node_id_for(state_dir: Path) -> str:
    """Six hex digits, stable for one state dir (so a restarted node keeps its name)."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:6]


def link_slot_for(node_id: str, attempt: int = 0) -> int:
    """The /30 of LINK_BLOCK this node tries first (then the next ones, on a clash)."""
    return (int(node_id, 16) + attempt) % LINK_SLOTS


def service_ip(service_cidr: str, offset: int) -> str:
    return str(ipaddress.IPv4Network(service_cidr)[offset])


@dataclass(frozen=True)
class NodeLayout:
    """Everything about one node that follows from its id, its slot and its state dir."""

    node_id: str
    link_slot: int
    state_dir: Path

    @property
    def name(self) -> str:
        """The Node object's name (also the kubelet's --hostname-override)."""
        return f"drydock-{self.node_id}"

    @property
    def netns(self) -> str:
        return f"drydock-{self.node_id}"

    @property
    def host_if(self) -> str:
        return f"dd-{self.node_id}"  # 9 characters: interface names stop at 15

    @property
    def chain(self) -> str:
        return f"DRYDOCK-{self.node_id.upper()}"

    @property
    def cgroup_root(self) -> str:
        return f"/drydock-{self.node_id}"

    @property
    def link(self) -> ipaddress.IPv4Network:
        base = int(LINK_BLOCK.network_address) + 4 * self.link_slot
        return ipaddress.IPv4Network((base, 30))

    @property
    def pod_cidr(self) -> ipaddress.IPv4Network:
        size = 2 ** (32 - POD_PREFIX)
        base = int(POD_BLOCK.network_address) + size * (self.link_slot % POD_SLOTS)
        return ipaddress.IPv4Network((base, POD_PREFIX))

    @property
    def host_ip(self) -> str:
        return str(self.link[1])

    @property
    def node_ip(self) -> str:
        return str(self.link[2])

    # -- paths (all under the state dir) --

    @property
    def containerd_socket(self) -> Path:
        return self.state_dir / "containerd.sock"

    @property
    def containerd_root(self) -> Path:
        return self.state_dir / "containerd"

    @property
    def kubelet_root(self) -> Path:
        return self.state_dir / "kubelet"

    @property
    def volumes(self) -> Path:
        """Where the node's local PersistentVolumes live (node_storage.py)."""
        return self.state_dir / "volumes"

    @property
    def pod_logs(self) -> Path:
        return self.state_dir / "pod-logs"

    @property
    def registry_hosts_dir(self) -> Path:
        return self.state_dir / "certs.d"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state_dir / "cni"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def sysctl_dir(self) -> Path:
        return self.state_dir / "sysctl"

    def config(self, name: str) -> Path:
        return self.state_dir / "config" / name
