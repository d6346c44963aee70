"""`drydock dev cluster up|down|status`: a local Kubernetes for development.

`up` starts etcd + kube-apiserver and, unless --no-node, a real node (scheduler,
controller-manager, containerd, kubelet, kube-proxy, CoreDNS) that runs pods. The operator
loop on top of it (`dev operator|apply|get|kubelet`) is in dev_loop.py.

A thin shell over pipeline.tools.controlplane and pipeline.tools.node; the state
(kubeconfig, keys, data, logs) lives in $DRYDOCK_CACHE/devcluster unless --state-dir says
otherwise, the node's under its node/ folder.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click
import yaml

from pipeline.cli import exits
from pipeline.cli.common import repo_root
from pipeline.errors import CatalogError
from pipeline.tools import controlplane, node
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig, resource_path


def _settings(state_dir: Path | None, timeout: float) -> controlplane.ControlPlaneSettings:
    return controlplane.ControlPlaneSettings(state_dir=state_dir, start_timeout=timeout)


def _node_settings(state_dir: Path | None, timeout: float) -> node.NodeSettings:
    return node.NodeSettings(control_plane=_settings(state_dir, timeout), start_timeout=timeout)


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the control plane keeps its state (default: $DRYDOCK_CACHE/devcluster).",
)


@click.group("dev")
def dev() -> None:
    """Developer conveniences."""


@dev.group("cluster")
def cluster() -> None:
    """A local Kubernetes: etcd + kube-apiserver, and a real node unless --no-node."""


CRD_DIR = Path("operator") / "manifests" / "crds"


def apply_crds(kubeconfig: Path, folder: Path, timeout: float = 60.0) -> list[str]:
    """Server-side apply every CRD in folder and wait until each is Established."""
    names: list[str] = []
    with KubeAPI(load_kubeconfig(kubeconfig)) as api:
        for path in sorted(folder.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    continue
                name = str(doc["metadata"]["name"])
                where = resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions", name)
                api.apply(where, doc)
                names.append(name)
        deadline = time.monotonic() + timeout
        for name in names:
            where = resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions", name)
            while True:
                conditions = ((api.get(where) or {}).get("status") or {}).get("conditions") or []
                if any(
                    c.get("type") == "Established" and c.get("status") == "True" for c in conditions
                ):
                    break
                if time.monotonic() > deadline:
                    raise CatalogError(f"CRD {name} not established within {timeout:.0f}s")
                time.sleep(0.5)
    return names


@cluster.command("up")
@state_dir_option
@click.option("--timeout", type=float, default=240.0, show_default=True, help="Start timeout (s).")
@click.option(
    "--install-crds",
    is_flag=True,
    help="Also apply Drydock's CRDs (operator/manifests/crds): catalogs and Cluster.",
)
@click.option(
    "--no-node",
    is_flag=True,
    help="Control plane only (stops a node that runs): stores and admits pods, runs none.",
)
@exits
def cluster_up(state_dir: Path | None, timeout: float, install_crds: bool, no_node: bool) -> None:
    """Start the control plane and a node (harmless when they already run)."""
    if no_node:
        if node.status(_node_settings(state_dir, timeout)).running:
            node.down(_node_settings(state_dir, timeout))
            click.echo("node stopped", err=True)
        cp = controlplane.up(_settings(state_dir, timeout))
        what = "control plane"
    else:
        started = node.up(_node_settings(state_dir, timeout))
        cp = started.control_plane
        cp = dataclasses.replace(cp, started_seconds=cp.started_seconds + started.started_seconds)
        what = f"control plane and node {started.name}"
    if cp.started_seconds:
        click.echo(f"{what} ready in {cp.started_seconds:.1f}s", err=True)
    else:
        click.echo(f"{what} already running", err=True)
    if install_crds:
        installed = apply_crds(cp.kubeconfig, repo_root() / CRD_DIR)
        click.echo(f"CRDs established: {', '.join(installed)}", err=True)
    click.echo(f"server: {cp.server}", err=True)
    click.echo(f"export KUBECONFIG={cp.kubeconfig}")


@cluster.command("kubeconfig")
@state_dir_option
@exits
def cluster_kubeconfig(state_dir: Path | None) -> None:
    """Print the path of the control plane's admin kubeconfig (exit 3 when not running)."""
    st = controlplane.status(_settings(state_dir, 180.0))
    if not st.ready:
        raise CatalogError("the control plane is not running: drydock dev cluster up")
    click.echo(str(_settings(state_dir, 180.0).resolved_state_dir() / "kubeconfig"))


@cluster.command("down")
@state_dir_option
@click.option("--purge", is_flag=True, help="Also delete the state dir (data, keys, kubeconfig).")
@exits
def cluster_down(state_dir: Path | None, purge: bool) -> None:
    """Stop the node and the control plane; data stays for the next `up` unless --purge."""
    node.down(_node_settings(state_dir, 180.0), purge=purge)
    controlplane.down(_settings(state_dir, 180.0), purge=purge)
    click.echo("control plane stopped" + (" and its state removed" if purge else ""))


@cluster.command("status")
@state_dir_option
@exits
def cluster_status(state_dir: Path | None) -> None:
    """Say what runs and whether it is ready (exit 3 when the control plane is not ready)."""
    st = controlplane.status(_settings(state_dir, 180.0))
    click.echo(f"state dir: {st.state_dir}")
    click.echo(f"etcd: {'pid ' + str(st.etcd_pid) if st.etcd_pid else 'not running'}")
    click.echo(
        f"kube-apiserver: {'pid ' + str(st.apiserver_pid) if st.apiserver_pid else 'not running'}"
    )
    click.echo(f"ready: {'yes' if st.ready else 'no'}" + (f" ({st.server})" if st.ready else ""))
    ns = node.status(_node_settings(state_dir, 180.0))
    if ns.running:
        for part, pid in ns.pids.items():
            click.echo(f"{part}: {'pid ' + str(pid) if pid else 'not running'}")
        click.echo(f"node {ns.name}: {'Ready' if ns.ready else 'not ready'}")
    else:
        click.echo("node: not running")
    if not st.ready:
        raise SystemExit(3)


def register(main: click.Group) -> None:
    main.add_command(dev)
