"""`drydock dev cluster up|down|status`: a local etcd + kube-apiserver for development.

A thin shell over pipeline.tools.controlplane; the state (kubeconfig, keys, data, logs)
lives in $DRYDOCK_CACHE/devcluster unless --state-dir says otherwise.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import exits
from pipeline.tools import controlplane


def _settings(state_dir: Path | None, timeout: float) -> controlplane.ControlPlaneSettings:
    return controlplane.ControlPlaneSettings(state_dir=state_dir, start_timeout=timeout)


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
    """A local Kubernetes control plane (etcd + kube-apiserver, no nodes)."""


@cluster.command("up")
@state_dir_option
@click.option("--timeout", type=float, default=180.0, show_default=True, help="Start timeout (s).")
@exits
def cluster_up(state_dir: Path | None, timeout: float) -> None:
    """Start the control plane (harmless when it already runs)."""
    cp = controlplane.up(_settings(state_dir, timeout))
    if cp.started_seconds:
        click.echo(f"control plane ready in {cp.started_seconds:.1f}s")
    else:
        click.echo("control plane already running")
    click.echo(f"server: {cp.server}")
    click.echo(f"export KUBECONFIG={cp.kubeconfig}")


@cluster.command("down")
@state_dir_option
@exits
def cluster_down(state_dir: Path | None) -> None:
    """Stop the control plane; its data stays for the next `up`."""
    controlplane.down(_settings(state_dir, 180.0))
    click.echo("control plane stopped")


@cluster.command("status")
@state_dir_option
@exits
def cluster_status(state_dir: Path | None) -> None:
    """Say what runs and whether the API server is ready (exit 3 when not ready)."""
    st = controlplane.status(_settings(state_dir, 180.0))
    click.echo(f"state dir: {st.state_dir}")
    click.echo(f"etcd: {'pid ' + str(st.etcd_pid) if st.etcd_pid else 'not running'}")
    click.echo(
        f"kube-apiserver: {'pid ' + str(st.apiserver_pid) if st.apiserver_pid else 'not running'}"
    )
    click.echo(f"ready: {'yes' if st.ready else 'no'}" + (f" ({st.server})" if st.ready else ""))
    if not st.ready:
        raise SystemExit(3)


def register(main: click.Group) -> None:
    main.add_command(dev)
