"""A real one-node Kubernetes on this machine: the control plane plus a node that runs pods.

Why: the operator's promises (instances that bootstrap, replicate, roll) can only be proven
where pods really run. This module adds a node to the local control plane of
tools/controlplane.py: kube-scheduler and kube-controller-manager, containerd (Debian's,
its own instance), the kubelet, kube-proxy and CoreDNS, all built or installed by
scripts/tools.sh and scripts/host.sh. Images, the sandbox image included, are pulled by
digest from the local registry. node_host.py gives the node namespaces of its own, so
several nodes (a developer's, the e2e tier's) share the host without meeting.

Stable API (the e2e fixtures and `drydock dev cluster` use it; change it only with them):

    settings = NodeSettings(control_plane=ControlPlaneSettings(state_dir=...))
    node = up(settings)          # control plane + node; idempotent, quick when all runs
    node.control_plane           # the ControlPlane (kubeconfig, server, ca_file)
    node.name, node.log_dir      # Node object name; daemons' logs (kubelet.log, ...)
    status(settings)             # NodeStatus(pids, ready)
    down(settings, purge=False)  # stops the node (not the control plane), leaves nothing

State lives in the control plane's state dir under node/ (see NodeLayout).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.errors import ToolError
from pipeline.tools import controlplane, node_files, node_leftovers, provision
from pipeline.tools import node_host as host
from pipeline.tools.controlplane import ControlPlane, ControlPlaneSettings
from pipeline.tools.daemon import cmdline, is_ours, read_state, spawn, stop, wait_until, write_state
from pipeline.tools.daemon import locked_dir as _locked
from pipeline.tools.node_images import ScratchImage, ensure_image
from pipeline.tools.node_layout import NodeLayout, link_slot_for, node_id_for
from pipeline.tools.node_parts import PARTS, Part, apply_addons, node_ready

log = logging.getLogger(__name__)

DAEMON_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # Debian's containerd, runc, iptables, mount


def default_registry() -> str:
    return os.environ.get("DRYDOCK_REGISTRY_ADDR", "127.0.0.1:5000")


@dataclass(frozen=True)
class NodeSettings:
    control_plane: ControlPlaneSettings = field(default_factory=ControlPlaneSettings)
    registry: str = field(default_factory=default_registry)
    start_timeout: float = 240.0
    stop_timeout: float = 30.0

    def resolved_state_dir(self) -> Path:
        return self.control_plane.resolved_state_dir() / "node"

    def resolved_bin_dir(self) -> Path:
        return self.control_plane.resolved_bin_dir()

    def plane(self) -> ControlPlaneSettings:
        """The control plane's settings with the API server flags a node needs."""
        pki_dir = self.control_plane.resolved_state_dir() / "pki"
        return replace(
            self.control_plane, apiserver_overrides=node_files.apiserver_overrides(pki_dir)
        )


@dataclass(frozen=True)
class Node:
    control_plane: ControlPlane
    name: str
    layout: NodeLayout
    pids: dict[str, int]
    started_seconds: float  # 0.0 when everything already ran

    @property
    def log_dir(self) -> Path:
        return self.layout.logs


@dataclass(frozen=True)
class NodeStatus:
    state_dir: Path
    name: str | None
    pids: dict[str, int | None]
    ready: bool

    @property
    def running(self) -> bool:
        return any(p is not None for p in self.pids.values())


@dataclass(frozen=True)
class State:
    node_id: str
    link_slot: int
    holder: int | None = None
    mnt_inode: int | None = None
    pids: dict[str, int] = field(default_factory=dict)


# -- state -----------------------------------------------------------------------------------


def _read_state(state_dir: Path) -> State | None:
    return read_state(state_dir, State)


def _write_state(state_dir: Path, st: State) -> None:
    write_state(state_dir, st)


def _new_state(state_dir: Path) -> State:
    """A node id from the state dir, and the first slot whose link /30 and pod /20 the host
    does not use (another node's are routes to its link)."""
    node_id = node_id_for(state_dir)
    host.remove_network(NodeLayout(node_id, 0, state_dir))  # a purged node's, if any
    used = host.host_networks()
    for attempt in range(64):
        slot = link_slot_for(node_id, attempt)
        candidate = NodeLayout(node_id, slot, state_dir)
        mine = (candidate.link, candidate.pod_cidr)
        if not any(net.overlaps(other) for net in mine for other in used):
            return State(node_id, slot)
    raise ToolError(["ip", "addr"], None, "", "no free /30 for the node's link in 10.213.0.0/16")


# -- up ----------------------------------------------------------------------------------------


def _ensure_holder(layout: NodeLayout, st: State) -> State:
    if host.holder_alive(layout, st.holder):
        return st
    argv = [
        host.tool("nsenter"),
        f"--net={host.NETNS_DIR / layout.netns}",
        "--",
        host.tool("unshare"),
        "--mount",
        "--propagation",
        "slave",
        "--",
        host.tool("sleep"),
        "infinity",
    ]
    pid = spawn(argv, layout.logs / "holder.log", env={"PATH": DAEMON_PATH})
    deadline = time.monotonic() + 10.0
    while not host.holder_alive(layout, pid):  # nsenter and unshare exec into sleep
        if time.monotonic() > deadline:
            raise ToolError(argv, None, "", "the node's namespace holder did not start")
        time.sleep(0.05)
    mnt = host.ns_inode(Path(f"/proc/{pid}/ns/mnt"))
    return replace(st, holder=pid, mnt_inode=mnt, pids={})


def _start_part(part: Part, layout: NodeLayout, st: State, argv: list[str], timeout: float) -> int:
    assert st.holder is not None  # noqa: S101 - the holder runs before any part
    if not Path(argv[0]).is_file():
        how = "scripts/host.sh node" if part.name == "containerd" else "scripts/tools.sh"
        raise ToolError(argv, None, "", f"binary not found (install it with: bash {how})")
    nsenter = [host.tool("nsenter"), "-t", str(st.holder), "-n", "-m", "--"]
    wrapped = [*nsenter, *argv] if part.in_node else argv
    log_file = layout.logs / f"{part.name}.log"
    pid = spawn(wrapped, log_file, env={"PATH": DAEMON_PATH, "HOME": str(layout.state_dir)})
    wait_until(
        pid, argv=wrapped, probe=lambda: part.ready(layout), log_file=log_file, timeout=timeout
    )
    log.info("node %s: %s started (pid %d)", layout.name, part.name, pid)
    return pid


# The node's pinned builds (scripts/tools.sh), besides the control plane's.
NODE_TOOLS = (
    "kubelet",
    "kube-proxy",
    "kube-controller-manager",
    "kube-scheduler",
    "coredns",
    "pause",
    "kube-router",
)


def up(settings: NodeSettings | None = None) -> Node:
    """Start the control plane and the node unless they run; wait until the node is Ready.

    Quick when everything runs: each part is checked (process, flags, configuration) and
    only what is missing or changed is started again.
    """
    settings = settings or NodeSettings()
    state_dir = settings.resolved_state_dir()
    bins = settings.resolved_bin_dir()
    if os.geteuid() != 0:
        raise ToolError(
            ["node up"],
            None,
            "",
            "a node needs root (namespaces, iptables, "
            "cgroups): run as root, or start the control plane alone (--no-node)",
        )
    missing = [n for n in NODE_TOOLS if not (bins / n).is_file()]
    if missing and settings.control_plane.bin_dir is None and provision.enabled():
        provision.build(missing)  # built on first use (pipeline.tools.provision)
    with _locked(state_dir):
        st = _read_state(state_dir) or _new_state(state_dir)
        layout = NodeLayout(st.node_id, st.link_slot, state_dir)
        node_files.ensure_pki(layout, settings.control_plane.resolved_state_dir() / "pki")
        cp = controlplane.up(settings.plane())
        started = time.monotonic()
        wall = dt.datetime.now(dt.UTC)
        fresh_namespaces = not host.holder_alive(layout, st.holder)
        if fresh_namespaces:  # whatever is left of an earlier life of this node goes first
            _stop_parts(layout, st, settings.stop_timeout)
            host.kill_all(layout, st.mnt_inode)
        api_port = int(urlsplit(cp.server).port or 443)
        registry_port = int(settings.registry.rsplit(":", 1)[1])
        host.ensure_network(layout, (api_port, registry_port), registry_port)
        host.ensure_cgroups(layout)
        st = _ensure_holder(layout, st)
        _write_state(state_dir, st)
        assert st.holder is not None  # noqa: S101 - set by _ensure_holder
        host.ensure_mounts(layout, st.holder)
        images = state_dir / "images"
        sandbox = ensure_image(
            ScratchImage("pause", bins / "pause", "/pause", "65535:65535", _version(bins, "pause")),
            settings.registry,
            images,
        )
        dns = ensure_image(
            ScratchImage(
                "coredns", bins / "coredns", "/coredns", "65532:65532", _version(bins, "coredns")
            ),
            settings.registry,
            images,
        )
        changed = node_files.write_configs(layout, cp, api_port, sandbox, settings.registry)
        did_start = kubelet_started = False
        for part in PARTS:
            argv = part.argv(bins, layout, cp)
            if not _running(part, layout, st, argv) or part.name in changed:
                old = st.pids.get(part.name)
                if is_ours(old, part.binary, part.marker(layout)):
                    assert old is not None  # noqa: S101 - checked by is_ours
                    stop(old, settings.stop_timeout)
                pid = _start_part(part, layout, st, argv, settings.start_timeout)
                st = replace(st, pids={**st.pids, part.name: pid})
                _write_state(state_dir, st)
                did_start = True
                kubelet_started |= part.name == "kubelet"
            if part.name == "kube-controller-manager" and (
                did_start or not node_ready(cp.kubeconfig, layout.name, with_dns=True)
            ):
                apply_addons(cp.kubeconfig, layout, api_port, dns)
        if not did_start and node_ready(cp.kubeconfig, layout.name, with_dns=True):
            return Node(cp, layout.name, layout, dict(st.pids), 0.0)
        _wait_ready(
            cp,
            layout,
            settings.start_timeout,
            since=wall if kubelet_started else None,
            pods_since=wall if fresh_namespaces else None,
        )
        seconds = time.monotonic() - started
        log.info("node %s ready in %.1fs", layout.name, seconds)
        return Node(cp, layout.name, layout, dict(st.pids), seconds)


def _stop_parts(layout: NodeLayout, st: State, timeout: float) -> None:
    """SIGTERM each recorded part that still runs (the host's ones too), last started first."""
    for part in reversed(PARTS):
        pid = st.pids.get(part.name)
        if is_ours(pid, part.binary, part.marker(layout)):
            assert pid is not None  # noqa: S101 - checked by is_ours
            stop(pid, timeout)


def _running(part: Part, layout: NodeLayout, st: State, argv: list[str]) -> bool:
    pid = st.pids.get(part.name)
    return is_ours(pid, part.binary, part.marker(layout)) and cmdline(pid) == argv


def _version(bins: Path, name: str) -> str:
    target = (bins / name).resolve().name  # tools.sh links NAME -> NAME-VERSION
    return target.removeprefix(f"{name}-") if target.startswith(f"{name}-") else "local"


def _wait_ready(
    cp: ControlPlane,
    layout: NodeLayout,
    timeout: float,
    *,
    since: dt.datetime | None,
    pods_since: dt.datetime | None,
) -> None:
    deadline = time.monotonic() + max(timeout, 30.0)
    while not node_ready(
        cp.kubeconfig, layout.name, with_dns=True, since=since, pods_since=pods_since
    ):
        if time.monotonic() > deadline:
            raise ToolError(
                ["kubelet"],
                None,
                "",
                f"node {layout.name} (or its CoreDNS) not Ready after {timeout:.0f}s: "
                f"read {layout.logs / 'kubelet.log'} and {layout.pod_logs}",
            )
        time.sleep(0.5)


def layout(settings: NodeSettings) -> NodeLayout:
    """The node's layout: as recorded, or as `up` will first choose it (link slot aside)."""
    state_dir = settings.resolved_state_dir()
    st = _read_state(state_dir)
    if st is not None:
        return NodeLayout(st.node_id, st.link_slot, state_dir)
    return NodeLayout(node_id_for(state_dir), 0, state_dir)


# -- status and down ---------------------------------------------------------------------------


def status(settings: NodeSettings | None = None) -> NodeStatus:
    settings = settings or NodeSettings()
    state_dir = settings.resolved_state_dir()
    st = _read_state(state_dir)
    if st is None:
        return NodeStatus(state_dir, None, {p.name: None for p in PARTS}, ready=False)
    layout = NodeLayout(st.node_id, st.link_slot, state_dir)
    pids: dict[str, int | None] = {}
    for part in PARTS:
        pid = st.pids.get(part.name)
        pids[part.name] = pid if is_ours(pid, part.binary, part.marker(layout)) else None
    kubeconfig = settings.control_plane.resolved_state_dir() / "kubeconfig"
    running = all(pids.values()) and host.holder_alive(layout, st.holder)
    ready = running and controlplane.status(settings.control_plane).ready
    ready = ready and node_ready(kubeconfig, layout.name, with_dns=True)
    return NodeStatus(state_dir, layout.name, pids, ready=bool(ready))


def down(settings: NodeSettings | None = None, *, purge: bool = False) -> None:
    """Stop every process of the node and remove what it set up on the host; check that.

    The control plane keeps running (controlplane.down stops it). Pods stay as API objects:
    the kubelet starts them again at the next `up`, as after a reboot.
    """
    settings = settings or NodeSettings()
    state_dir = settings.resolved_state_dir()
    st = _read_state(state_dir)
    if st is None:
        return
    layout = NodeLayout(st.node_id, st.link_slot, state_dir)
    with _locked(state_dir):
        _stop_parts(layout, st, settings.stop_timeout)
        host.kill_all(layout, st.mnt_inode)  # containers, containerd and its shims, the holder
        host.remove_cgroups(layout)
        host.remove_network(layout)
        _write_state(state_dir, State(st.node_id, st.link_slot))
        left = node_leftovers.own(layout, st.mnt_inode)
        deadline = time.monotonic() + 5.0  # a process may still be on its way out
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = node_leftovers.own(layout, st.mnt_inode)
        if left:
            raise ToolError(["node down"], None, "\n".join(left), "the node left these behind")
        log.info("node %s stopped", layout.name)
    if purge:
        shutil.rmtree(state_dir)
