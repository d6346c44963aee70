"""What a local node could leave on the host, listed so that `down` can prove it left nothing.

Why: a kubelet node that is stopped carelessly (or killed) leaves iptables chains, network
namespaces, veths, a bridge, mounts under the kubelet root, CNI IPAM files, cgroups and
orphaned container processes behind, and changes kernel settings. `node.down` ends with
`own(layout)` and fails if anything of that node is still there; the e2e tier compares
`host_view(layout)` before the node started and after it went down (also after its daemons
were SIGKILLed), so a regression in the cleanup shows up as a concrete line.

Entries are strings like "netns drydock-1a2b3c" or "iptables nat chain KUBE-SERVICES".
Names that any kubelet, CNI plugin or kube-proxy would use on the host (cni0, KUBE-*, CNI-*,
/var/lib/cni/networks/*, kubepods cgroups) are listed as well: a node of this design never
creates them on the host, so their appearance is a leak out of the node's namespaces.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.tools.node_host import (
    CGROUP_BASE,
    NETNS_DIR,
    cgroup_dirs,
    in_netns,
    node_pids,
    tool,
)
from pipeline.tools.node_layout import KUBELET_SYSCTLS, NodeLayout
from pipeline.tools.runner import run

GLOBAL_LINKS = ("cni0", "drydock0")
GLOBAL_CHAIN_PREFIXES = ("KUBE-", "CNI-")
GLOBAL_FILE_DIRS = (
    Path("/var/lib/cni/networks"),
    Path("/var/lib/cni/results"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
)


def _netns(layout: NodeLayout) -> list[str]:
    try:
        names = sorted(p.name for p in NETNS_DIR.iterdir())
    except OSError:
        return []
    return [f"netns {n}" for n in names if n == layout.netns or n.startswith("cni-")]


def _links(layout: NodeLayout) -> list[str]:
    try:
        names = sorted(p.name for p in Path("/sys/class/net").iterdir())
    except OSError:
        return []
    return [f"link {n}" for n in names if n.startswith(layout.host_if) or n in GLOBAL_LINKS]


def iptables_lines(save_output: str, table: str, layout: NodeLayout) -> list[str]:
    """The chains and rules of one `iptables-save -t table` that belong to a node (pure)."""
    found: list[str] = []
    for line in save_output.splitlines():
        if line.startswith(":"):
            name = line[1:].split()[0]
            if name == layout.chain or name.startswith(GLOBAL_CHAIN_PREFIXES):
                found.append(f"iptables {table} chain {name}")
        elif line.startswith("-A") and (layout.host_if in line or layout.chain in line):
            found.append(f"iptables {table} rule {line}")
    return found


def _iptables(layout: NodeLayout) -> list[str]:
    found: list[str] = []
    for table in ("filter", "nat", "mangle"):
        out = run([tool("iptables-save"), "-t", table], timeout=30.0).stdout
        found += iptables_lines(out, table, layout)
    return found


def _mounts(layout: NodeLayout) -> list[str]:
    """Host mounts a node might leak: under its state dir, pod netns, CNI or kubelet paths."""
    watched = (
        str(layout.state_dir) + "/",
        "/run/netns/cni-",
        "/var/lib/cni/",
        "/var/lib/kubelet/",
        "/run/containerd/io.containerd",
    )
    found: list[str] = []
    for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
        point = line.split()[4]
        if point.startswith(watched) or point == str(NETNS_DIR / layout.netns):
            found.append(f"mount {point}")
    return sorted(found)


def _cgroups(layout: NodeLayout) -> list[str]:
    found = [f"cgroup {p}" for p in cgroup_dirs(layout) if p.exists()]
    found += [f"cgroup {p}" for p in sorted(CGROUP_BASE.glob("*/kubepods*"))]
    return found


def _files() -> list[str]:
    found: list[str] = []
    for folder in GLOBAL_FILE_DIRS:
        if folder.is_dir():
            found += [f"file {p}" for p in sorted(folder.rglob("*"))]
    return found


def _processes(layout: NodeLayout, mnt_inode: int | None) -> list[str]:
    marker = str(layout.state_dir).encode()
    pids = set(node_pids(layout, mnt_inode))
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
            except OSError:
                continue
    found = []
    for pid in sorted(pids):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        found.append(f"process {pid} {comm}")
    return found


def kernel_settings() -> list[str]:
    """The host's values of the settings a kubelet wants changed (they must stay the host's)."""
    out = []
    for key in sorted(KUBELET_SYSCTLS):
        try:
            value = Path(f"/proc/sys/{key}").read_text().strip()
        except OSError:
            value = "?"
        out.append(f"sysctl {key}={value}")
    return out


def own(layout: NodeLayout, mnt_inode: int | None = None) -> list[str]:
    """What is left of this node on the host (empty after a clean `down`)."""
    return (
        _netns(layout)
        + _links(layout)
        + [e for e in _iptables(layout) if layout.chain in e or layout.host_if in e]
        + _mounts(layout)
        + [f"cgroup {p}" for p in cgroup_dirs(layout) if p.exists()]
        + _processes(layout, mnt_inode)
    )


def host_view(layout: NodeLayout) -> list[str]:
    """Everything a node could leave on the host or change there, for before/after checks."""
    return (
        _netns(layout)
        + _links(layout)
        + _iptables(layout)
        + _mounts(layout)
        + _cgroups(layout)
        + _files()
        + _processes(layout, None)
        + kernel_settings()
    )


def inside_view(layout: NodeLayout) -> list[str]:
    """The node's own chains, seen from inside its namespace (proof the rules exist there)."""
    found: list[str] = []
    for table in ("filter", "nat"):
        out = in_netns(layout, "iptables-save", "-t", table).stdout
        found += iptables_lines(out, table, layout)
    return found
