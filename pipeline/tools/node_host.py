"""The host side of a local node: its namespaces, its link, its chains and cgroups.

Why: a kubelet, containerd and kube-proxy assume they own the machine (one bridge, one set
of KUBE-*/CNI-* chains, /run/containerd, /var/lib/cni, /kubepods, kernel settings). This
module gives each node a world of its own instead and takes it away again:

- a network namespace `drydock-<id>` joined to the host by a veth pair; the host forwards
  exactly two ports from its end to loopback (the API server and the registry, by DNAT with
  route_localnet on that link only) and drops everything else the node sends to or through
  the host (chain DRYDOCK-<ID> on INPUT and FORWARD);
- a mount namespace (held by a `sleep infinity` process) with a private tmpfs over each of
  PRIVATE_DIRS and the kubelet's kernel settings bind-mounted from files, so the host's
  kernel.panic & co. are never changed;
- a cgroup root /drydock-<id> in every hierarchy.

Teardown kills every process of the node (its daemons, containerd's shims, every container)
found through its cgroups and namespaces, so a node whose daemons were SIGKILLed is cleaned
as well as a healthy one. `leftovers` lists what a node can leave on the host; `down` ends
by checking it is empty.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.tools.daemon import proc_state
from pipeline.tools.node_layout import KUBELET_SYSCTLS, NODE_IF, PRIVATE_DIRS, NodeLayout
from pipeline.tools.runner import Completed, run

log = logging.getLogger(__name__)

CMD_TIMEOUT = 30.0
CGROUP_BASE = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/run/netns")


def tool(name: str) -> str:
    """Absolute path of a host command (ip, iptables, nsenter, mount, ...)."""
    for folder in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if Path(folder, name).is_file():
            return str(Path(folder, name))
    found = shutil.which(name)
    if not found:
        raise ToolError([name], None, "", "not found (install it with scripts/host.sh node)")
    return found


def _run(*argv: str, check: bool = True) -> Completed:
    return run([tool(argv[0]), *argv[1:]], timeout=CMD_TIMEOUT, check=check)


def in_netns(layout: NodeLayout, *argv: str, check: bool = True) -> Completed:
    """Run a command in the node's network namespace only (ip, sysctl, iptables-save)."""
    return _run(
        "nsenter", f"--net={NETNS_DIR / layout.netns}", "--", tool(argv[0]), *argv[1:], check=check
    )


def in_node(holder: int, *argv: str, check: bool = True) -> Completed:
    """Run a command in the node's network and mount namespaces (those of its holder)."""
    return _run(
        "nsenter", "-t", str(holder), "-n", "-m", "--", tool(argv[0]), *argv[1:], check=check
    )


def ns_inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


# -- network ---------------------------------------------------------------------------------


def host_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks the host has addresses or routes in (a node's link must avoid them)."""
    nets: list[ipaddress.IPv4Network] = []
    for entry in json.loads(_run("ip", "-j", "-4", "addr", "show").stdout or "[]"):
        for addr in entry.get("addr_info", []):
            nets.append(ipaddress.IPv4Interface(f"{addr['local']}/{addr['prefixlen']}").network)
    for route in json.loads(_run("ip", "-j", "-4", "route", "show").stdout or "[]"):
        dst = route.get("dst", "default")
        if dst != "default":
            nets.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    return nets


def _link_has(layout: NodeLayout) -> bool:
    if not Path(f"/sys/class/net/{layout.host_if}").exists():
        return False
    out = _run("ip", "-j", "-4", "addr", "show", "dev", layout.host_if, check=False).stdout
    try:
        entries = json.loads(out or "[]")
    except ValueError:
        return False
    return any(a.get("local") == layout.host_ip for e in entries for a in e.get("addr_info", []))


def ensure_network(layout: NodeLayout, forwards: Iterable[int], registry_port: int) -> None:
    """Namespace, link, addresses, routes and chains; harmless when all exist."""
    netns_path = NETNS_DIR / layout.netns
    if not netns_path.exists() or not _link_has(layout):
        remove_network(layout)
        _run("ip", "netns", "add", layout.netns)
        peer = f"{layout.host_if}-n"
        _run("ip", "link", "add", layout.host_if, "type", "veth", "peer", "name", peer)
        _run("ip", "link", "set", peer, "netns", layout.netns)
        _run("ip", "addr", "add", f"{layout.host_ip}/30", "dev", layout.host_if)
        _run("ip", "link", "set", layout.host_if, "up")
        in_netns(layout, "ip", "link", "set", peer, "name", NODE_IF)
        in_netns(layout, "ip", "addr", "add", f"{layout.node_ip}/30", "dev", NODE_IF)
        in_netns(layout, "ip", "link", "set", NODE_IF, "up")
        in_netns(layout, "ip", "link", "set", "lo", "up")
        in_netns(layout, "ip", "route", "add", "default", "via", layout.host_ip)
        in_netns(layout, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        # The host reaches pods as a cluster's control plane would (goes with the link).
        _run(
            "ip", "route", "add", str(layout.pod_cidr), "via", layout.node_ip, "dev", layout.host_if
        )
        log.info("node %s: link %s, pods %s", layout.name, layout.link, layout.pod_cidr)
    # DNAT to 127.0.0.1 is routed only where route_localnet allows it: this link alone.
    Path(f"/proc/sys/net/ipv4/conf/{layout.host_if}/route_localnet").write_text("1\n")
    _ensure_chains(layout, forwards)
    _ensure_pod_rule(layout, registry_port)


def _iptables(table: str, *args: str, check: bool = True) -> Completed:
    return _run("iptables", "-w", "5", "-t", table, *args, check=check)


def chain_rules(layout: NodeLayout, forwards: Iterable[int]) -> dict[str, list[list[str]]]:
    """The rules of the node's host chains per table, as `iptables -S` prints them (pure)."""
    nat = [
        [
            "-d",
            f"{layout.host_ip}/32",
            "-p",
            "tcp",
            "-m",
            "tcp",
            "--dport",
            str(port),
            "-j",
            "DNAT",
            "--to-destination",
            f"127.0.0.1:{port}",
        ]
        for port in forwards
    ]
    accept = ["-m", "conntrack", "--ctstate"]
    filt = [
        [*accept, "RELATED,ESTABLISHED", "-j", "ACCEPT"],
        [*accept, "DNAT", "-j", "ACCEPT"],
        ["-j", "DROP"],
    ]
    return {"nat": nat, "filter": filt}


def _ensure_chains(layout: NodeLayout, forwards: Iterable[int]) -> None:
    chain, link = layout.chain, layout.host_if
    for table, rules in chain_rules(layout, forwards).items():
        listed = _iptables(table, "-S", chain, check=False)
        have = [ln for ln in listed.stdout.splitlines() if ln.startswith("-A ")]
        if listed.returncode == 0 and have == [" ".join(["-A", chain, *r]) for r in rules]:
            continue
        _iptables(table, "-N", chain, check=False)
        _iptables(table, "-F", chain)
        for rule in rules:
            _iptables(table, "-A", chain, *rule)
    for table, parent in (("nat", "PREROUTING"), ("filter", "INPUT"), ("filter", "FORWARD")):
        if _iptables(table, "-C", parent, "-i", link, "-j", chain, check=False).returncode:
            _iptables(table, "-I", parent, "1", "-i", link, "-j", chain)


def pod_rule(layout: NodeLayout, registry_port: int) -> list[str]:
    """The node's own containerd pulls from the registry; its pods may not (pure).

    In the namespace's mangle FORWARD, after any Service DNAT and before kube-proxy's filter
    chains, so no Service can route a pod around it.
    """
    return [
        "-s", str(layout.pod_cidr), "-d", f"{layout.host_ip}/32", "-p", "tcp", "-m", "tcp",
        "--dport", str(registry_port), "-j", "DROP",
    ]  # fmt: skip


def _ensure_pod_rule(layout: NodeLayout, registry_port: int) -> None:
    rule = pod_rule(layout, registry_port)
    base = ("iptables", "-w", "5", "-t", "mangle")
    if in_netns(layout, *base, "-C", "FORWARD", *rule, check=False).returncode:
        in_netns(layout, *base, "-I", "FORWARD", "1", *rule)


def remove_network(layout: NodeLayout) -> None:
    chain, link = layout.chain, layout.host_if
    for table, parent in (("nat", "PREROUTING"), ("filter", "INPUT"), ("filter", "FORWARD")):
        while _iptables(table, "-D", parent, "-i", link, "-j", chain, check=False).returncode == 0:
            pass
    for table in ("nat", "filter"):
        _iptables(table, "-F", chain, check=False)
        _iptables(table, "-X", chain, check=False)
    if (NETNS_DIR / layout.netns).exists():
        _run("ip", "netns", "del", layout.netns)
    # The veth pair goes with the namespace, asynchronously; do not wait for the kernel.
    if Path(f"/sys/class/net/{layout.host_if}").exists():
        _run("ip", "link", "del", layout.host_if, check=False)


# -- mount namespace and cgroups ---------------------------------------------------------------


def mounted(holder: int, source: str) -> set[str]:
    """Mount points in the holder's namespace whose source is `source` (ours are named so)."""
    try:
        text = Path(f"/proc/{holder}/mountinfo").read_text(encoding="utf-8")
    except OSError:
        return set()
    points = set()
    for line in text.splitlines():
        fields, _, tail = line.partition(" - ")
        if tail.split()[1:2] == [source]:
            points.add(fields.split()[4])
    return points


def ensure_mounts(layout: NodeLayout, holder: int) -> None:
    """Private tmpfs over PRIVATE_DIRS and the kubelet's sysctls, in the holder's namespace."""
    have = mounted(holder, layout.netns)
    for folder in PRIVATE_DIRS:
        if folder not in have:
            Path(folder).mkdir(parents=True, exist_ok=True)
            in_node(holder, "mount", "-t", "tmpfs", "-o", "mode=0755", layout.netns, folder)
    layout.sysctl_dir.mkdir(parents=True, exist_ok=True)
    binds = _mount_points(holder)  # a file under /proc/sys is a mount point only if bound
    for key, value in KUBELET_SYSCTLS.items():
        target = f"/proc/sys/{key}"
        fake = layout.sysctl_dir / key.replace("/", ".")
        if target not in binds:
            fake.write_text(value + "\n", encoding="ascii")
            in_node(holder, "mount", "--bind", str(fake), target)


def _mount_points(holder: int) -> set[str]:
    try:
        text = Path(f"/proc/{holder}/mountinfo").read_text(encoding="utf-8")
    except OSError:
        return set()
    return {line.split()[4] for line in text.splitlines()}


def _subdirs(root: Path) -> list[Path]:
    """root and every directory below it; ones that vanish meanwhile are skipped."""
    return [Path(top) for top, _dirs, _files in os.walk(root, onerror=lambda _err: None)]


def cgroup_dirs(layout: NodeLayout) -> list[Path]:
    """The node's cgroup root in every mounted hierarchy (v1 controllers and unified)."""
    try:
        hierarchies = sorted(p for p in CGROUP_BASE.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []
    return [h / layout.cgroup_root.lstrip("/") for h in hierarchies]


def ensure_cgroups(layout: NodeLayout) -> None:
    for path in cgroup_dirs(layout):
        path.mkdir(exist_ok=True)
        if path.parent.name == "cpuset":  # a new cpuset has no CPUs until it is given some
            for name in ("cpuset.cpus", "cpuset.mems"):
                own = path / name
                if own.exists() and not own.read_text().strip():
                    own.write_text((path.parent / name).read_text())


def remove_cgroups(layout: NodeLayout, timeout: float = 10.0) -> None:
    """rmdir the node's cgroup trees, deepest first (a cgroup goes once its tasks are gone)."""
    deadline = time.monotonic() + timeout
    for root in cgroup_dirs(layout):
        if not root.exists():
            continue
        for folder in sorted(_subdirs(root), key=lambda p: -len(p.parts)):
            _rmdir(folder, deadline)


def _rmdir(folder: Path, deadline: float) -> None:
    while True:
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- processes ---------------------------------------------------------------------------------


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def cgroup_pids(layout: NodeLayout) -> set[int]:
    """The processes in the node's cgroups: its pods' containers."""
    pids: set[int] = set()
    for root in cgroup_dirs(layout):
        for folder in _subdirs(root):
            with suppress(OSError, ValueError):
                pids.update(int(x) for x in (folder / "cgroup.procs").read_text().split())
    return pids


def _parents() -> dict[int, int]:
    """pid -> ppid of every process (from /proc/<pid>/stat)."""
    parents: dict[int, int] = {}
    for pid in _all_pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
        except OSError:
            continue
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def node_pids(layout: NodeLayout, mnt_inode: int | None) -> set[int]:
    """Every process of the node: in its cgroups, its network namespace or its mount namespace,
    and their descendants (a container that runc is still creating is in none of them yet)."""
    pids = cgroup_pids(layout)
    net = ns_inode(NETNS_DIR / layout.netns)
    parents = _parents()
    for pid in parents:
        if pid == os.getpid():
            continue
        in_net = net is not None and ns_inode(Path(f"/proc/{pid}/ns/net")) == net
        in_mnt = mnt_inode is not None and ns_inode(Path(f"/proc/{pid}/ns/mnt")) == mnt_inode
        if in_net or in_mnt:
            pids.add(pid)
    grew = True
    while grew:
        found = {pid for pid, ppid in parents.items() if ppid in pids and pid not in pids}
        pids |= found
        grew = bool(found)
    pids.discard(os.getpid())
    return {pid for pid in pids if proc_state(pid) not in {None, "Z", "X"}}  # zombies are dead


def kill_all(layout: NodeLayout, mnt_inode: int | None, timeout: float = 15.0) -> None:
    """SIGKILL every process of the node until none is left."""
    deadline = time.monotonic() + timeout
    while pids := node_pids(layout, mnt_inode):
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > deadline:
            raise ToolError(["kill"], None, "", f"node processes still alive: {sorted(pids)}")
        time.sleep(0.1)


def holder_alive(layout: NodeLayout, pid: int | None) -> bool:
    """The holder is a live `sleep` in the node's network namespace (a recycled pid is not)."""
    if pid is None:
        return False
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    net = ns_inode(NETNS_DIR / layout.netns)
    return comm == "sleep" and net is not None and ns_inode(Path(f"/proc/{pid}/ns/net")) == net
