"""The node's daemons in start order, how each is recognised and when each is ready.

Why: `node.up` starts, reuses or restarts five daemons the same way; what differs is each
one's argument list, the argument that marks it as this node's (so a recycled pid or another
node's daemon is never mistaken for it) and the probe that says it is ready. This module
holds that table, plus the two questions `up` asks the API: is the Node Ready (and CoreDNS
available), and the addons applied once the controller-manager runs.
"""

from __future__ import annotations

import datetime as dt
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from pipeline.tools import controlplane
from pipeline.tools import node_config as cfg
from pipeline.tools.controlplane import ControlPlane
from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, load_kubeconfig, resource_path
from pipeline.tools.node_addons import (
    DNS_NAMESPACE,
    coredns_objects,
    kube_router_access,
    kubelet_api_access,
    kubernetes_endpoints,
    storage_objects,
)
from pipeline.tools.node_layout import (
    CONTROLLER_MANAGER_PORT,
    KUBE_ROUTER_HEALTH_PORT,
    KUBELET_HEALTHZ_PORT,
    PROXY_HEALTHZ_PORT,
    SCHEDULER_PORT,
    NodeLayout,
    service_ip,
)

CONTAINERD = Path("/usr/bin/containerd")  # Debian's, installed with docker.io


def socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _http_ok(url: str, layout: NodeLayout) -> bool:
    """url answers 200; HTTPS is verified against the cluster CA, which signed every part."""
    try:
        ca = str(layout.pki_dir / "ca.crt")
        return requests.get(url, verify=ca, timeout=2.0).status_code == 200
    except requests.RequestException:
        return False


@dataclass(frozen=True)
class Part:
    """One daemon: its binary's name, its argv (argv[1] is its marker) and its readiness probe."""

    name: str
    binary: str
    marker_flag: str  # e.g. "--config=kubelet.yaml": flag and the config file it names
    build: Callable[[Path, NodeLayout, ControlPlane], list[str]]
    ready: Callable[[NodeLayout], bool]
    in_node: bool = True  # run in the node's namespaces (else on the host)

    def marker(self, layout: NodeLayout) -> str:
        flag, name = self.marker_flag.split("=", 1)
        return f"{flag}={layout.config(name)}"

    def argv(self, bins: Path, layout: NodeLayout, cp: ControlPlane) -> list[str]:
        argv = self.build(bins, layout, cp)
        assert self.marker(layout) in argv, argv  # noqa: S101 - a programming error
        return argv


def _fresh(path: Path, seconds: float = 3.0) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


def provisioner_argv(layout: NodeLayout) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.tools.node_storage",
        f"--kubeconfig={layout.config('local-provisioner.kubeconfig')}",
        f"--root={layout.volumes}",
        f"--node={layout.name}",
    ]


PARTS: tuple[Part, ...] = (
    Part(
        "containerd",
        "containerd",
        "--config=containerd.toml",
        lambda bins, lay, cp: cfg.containerd_argv(CONTAINERD, lay.config("containerd.toml")),
        lambda lay: socket_answers(lay.containerd_socket),
    ),
    Part(
        "kube-scheduler",
        "kube-scheduler",
        "--kubeconfig=kube-scheduler.kubeconfig",
        lambda bins, lay, cp: cfg.scheduler_argv(bins / "kube-scheduler", lay),
        lambda lay: _http_ok(f"https://{lay.node_ip}:{SCHEDULER_PORT}/healthz", lay),
    ),
    Part(
        "kube-controller-manager",
        "kube-controller-manager",
        "--kubeconfig=kube-controller-manager.kubeconfig",
        lambda bins, lay, cp: cfg.controller_manager_argv(
            bins / "kube-controller-manager", lay, cp.ca_file, controlplane.SERVICE_CIDR
        ),
        lambda lay: _http_ok(f"https://{lay.node_ip}:{CONTROLLER_MANAGER_PORT}/healthz", lay),
    ),
    Part(
        "local-provisioner",
        "python",
        "--kubeconfig=local-provisioner.kubeconfig",
        lambda bins, lay, cp: provisioner_argv(lay),
        lambda lay: _fresh(lay.volumes / ".ready"),
        in_node=False,
    ),
    Part(
        "kubelet",
        "kubelet",
        "--config=kubelet.yaml",
        lambda bins, lay, cp: cfg.kubelet_argv(bins / "kubelet", lay),
        lambda lay: _http_ok(f"http://{lay.node_ip}:{KUBELET_HEALTHZ_PORT}/healthz", lay),
    ),
    Part(
        "kube-proxy",
        "kube-proxy",
        "--config=kube-proxy.yaml",
        lambda bins, lay, cp: cfg.kube_proxy_argv(bins / "kube-proxy", lay),
        lambda lay: _http_ok(f"http://{lay.node_ip}:{PROXY_HEALTHZ_PORT}/livez", lay),
    ),
    # NetworkPolicy enforcement (kube-router's firewall only), last: its RBAC is an addon.
    Part(
        "kube-router",
        "kube-router",
        "--kubeconfig=kube-router.kubeconfig",
        lambda bins, lay, cp: cfg.kube_router_argv(
            bins / "kube-router", lay, controlplane.SERVICE_CIDR
        ),
        lambda lay: _http_ok(f"http://{lay.node_ip}:{KUBE_ROUTER_HEALTH_PORT}/healthz", lay),
    ),
)


def apply_addons(kubeconfig: Path, layout: NodeLayout, api_port: int, dns_image: str) -> None:
    """The `kubernetes` endpoint, the API server's kubelet access and CoreDNS (server-side)."""
    docs = kubernetes_endpoints(layout.host_ip, api_port)
    docs += [("rbac.authorization.k8s.io/v1", "clusterrolebindings", None, kubelet_api_access())]
    docs += storage_objects()
    docs += kube_router_access()
    docs += coredns_objects(dns_image, service_ip(controlplane.SERVICE_CIDR, 10))
    with KubeAPI(load_kubeconfig(kubeconfig)) as api:
        for api_version, plural, namespace, obj in docs:
            name = obj["metadata"]["name"]
            api.apply(
                resource_path(api_version, plural, name, namespace),
                obj,
                field_manager="drydock-node",
            )


def _since(stamp: str | None, since: dt.datetime | None) -> bool:
    """True when the API timestamp is not older than since (None: anything goes)."""
    if since is None:
        return True
    if not stamp:
        return False
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return when >= since - dt.timedelta(seconds=1)  # the API keeps whole seconds


def _ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions", []):
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return dict(cond)
    return None


def node_ready(
    kubeconfig: Path,
    name: str,
    *,
    with_dns: bool = False,
    since: dt.datetime | None = None,
    pods_since: dt.datetime | None = None,
) -> bool:
    """The Node reports Ready (and, with_dns, a CoreDNS pod is Ready).

    After a restart the API still shows what the old kubelet last said: `since` demands a
    heartbeat from the new kubelet, `pods_since` a CoreDNS container started after it (when
    the node's namespaces, and so all its containers, are new).
    """
    try:
        with KubeAPI(load_kubeconfig(kubeconfig)) as api:
            ready = _ready(api.get(resource_path("v1", "nodes", name)) or {})
            if ready is None or not _since(ready.get("lastHeartbeatTime"), since):
                return False
            if not with_dns:
                return True
            pods = api.request(
                "GET",
                resource_path("v1", "pods", namespace=DNS_NAMESPACE),
                params={"labelSelector": "k8s-app=kube-dns"},
            ).json()
    except (KubeAPIError, OSError, ValueError):
        return False
    for pod in pods.get("items", []):
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        started = statuses[0].get("state", {}).get("running", {}).get("startedAt")
        if _ready(pod) is not None and _since(started, pods_since):
            return True
    return False
