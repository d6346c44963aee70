"""`drydock dev operator|apply|get`: the operator's whole loop on the local cluster.

    drydock dev operator up        CRDs, namespace and RBAC, then the operator (kopf) in the
                                   background, as its own ServiceAccount, naming the
                                   published operator image its instance pods copy the
                                   instance manager from, with its admission webhooks
                                   (`down` removes them with the operator)
    drydock dev apply -f FILE      server-side apply of manifests (Clusters, catalogs, ...)
    drydock dev get clusters -w    phase, image and instances of every Cluster

All talk to the control plane of `drydock dev cluster` (same --state-dir), as its admin,
except the operator, which only ever holds its ServiceAccount's token.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from pipeline.cli import exits
from pipeline.cli.common import repo_root
from pipeline.cli.dev import CRD_DIR, apply_crds, dev
from pipeline.devloop import manifests, status
from pipeline.devloop.operator_image import published_operator_image
from pipeline.errors import CatalogError
from pipeline.settings import DEFAULT_REGISTRY
from pipeline.tools import controlplane, devoperator
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig, resource_path

MANIFESTS = Path("operator") / "manifests"
INSTALL_FILES = ("namespace.yaml", "rbac.yaml")
WEBHOOKS_FILE = "webhooks.yaml"
ADMISSION = "admissionregistration.k8s.io/v1"
# The shipped webhook configurations (failurePolicy Fail), by resource and name.
WEBHOOK_CONFIGURATIONS = (
    ("mutatingwebhookconfigurations", "postgresql-operator-mutating-webhook-configuration"),
    ("validatingwebhookconfigurations", "postgresql-operator-validating-webhook-configuration"),
)
WEBHOOK_TIMEOUT = 60.0
KINDS = (("ClusterImageCatalog", "clusterimagecatalogs"), ("ImageCatalog", "imagecatalogs"))

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The dev control plane's state dir (default: $DRYDOCK_CACHE/devcluster).",
)


def admin_kubeconfig(state_dir: Path | None) -> Path:
    settings = controlplane.ControlPlaneSettings(state_dir=state_dir)
    if not controlplane.status(settings).ready:
        raise CatalogError("the control plane is not running: drydock dev cluster up")
    return settings.resolved_state_dir() / "kubeconfig"


def operator_settings(
    state_dir: Path | None,
    api_group: str = "postgresql.cnpg.io",
    resync: float = 30.0,
    operator_image: str = "",
) -> devoperator.OperatorProcessSettings:
    base = controlplane.ControlPlaneSettings(state_dir=state_dir).resolved_state_dir()
    return devoperator.OperatorProcessSettings(
        state_dir=base / "operator",
        operator_dir=repo_root() / "operator",
        api_group=api_group,
        operator_image=operator_image,
        resync_seconds=resync,
    )


def install_operator(kubeconfig: Path) -> list[str]:
    """The operator's CRDs, namespace (restricted) and least-privilege RBAC, as shipped."""
    crds = apply_crds(kubeconfig, repo_root() / CRD_DIR)
    docs = manifests.load_documents(repo_root() / MANIFESTS / f for f in INSTALL_FILES)
    with KubeAPI(load_kubeconfig(kubeconfig)) as api:
        return [f"CustomResourceDefinition/{n}" for n in crds] + manifests.apply_documents(
            api, docs
        )


def install_webhooks(kubeconfig: Path) -> list[str]:
    """The shipped admission webhooks: `operator up` installs them with the operator, which
    injects its CA and its address; `operator down` removes them again (failurePolicy Fail
    would otherwise refuse every Cluster and catalog while no operator answers)."""
    docs = manifests.load_documents([repo_root() / MANIFESTS / WEBHOOKS_FILE])
    with KubeAPI(load_kubeconfig(kubeconfig)) as api:
        # Only what is missing: re-applying a configuration the operator has injected its
        # URL into would add the shipped `service` beside that URL, which is invalid.
        resources = manifests.Resources(api)
        missing = [
            d for d in docs if api.get(manifests.resolve(resources, d, "default").path) is None
        ]
        return manifests.apply_documents(api, missing) if missing else []


def remove_webhooks(kubeconfig: Path) -> list[str]:
    removed = []
    with KubeAPI(load_kubeconfig(kubeconfig)) as api:
        for plural, name in WEBHOOK_CONFIGURATIONS:
            if api.delete(resource_path(ADMISSION, plural, name)):
                removed.append(f"{plural}/{name}")
    return removed


def wait_for_webhooks(kubeconfig: Path, timeout: float = WEBHOOK_TIMEOUT) -> None:
    """Until the operator has injected its CA bundle into every webhook it serves."""
    deadline = time.monotonic() + timeout
    with KubeAPI(load_kubeconfig(kubeconfig)) as api:
        while True:
            missing = []
            for plural, name in WEBHOOK_CONFIGURATIONS:
                found = api.get(resource_path(ADMISSION, plural, name)) or {}
                hooks = found.get("webhooks") or [{}]
                if not all((w.get("clientConfig") or {}).get("caBundle") for w in hooks):
                    missing.append(name)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise CatalogError(
                    f"the operator did not inject its CA into {', '.join(missing)} within "
                    f"{timeout:.0f}s (see its log: drydock dev operator status)"
                )
            time.sleep(0.5)


@click.group("operator")
def operator() -> None:
    """The included operator, run from this checkout against the local control plane."""


@operator.command("install")
@state_dir_option
@exits
def operator_install(state_dir: Path | None) -> None:
    """Apply the operator's CRDs, namespace and RBAC (operator/manifests)."""
    for line in install_operator(admin_kubeconfig(state_dir)):
        click.echo(f"applied {line}")


@operator.command("up")
@state_dir_option
@click.option("--resync", type=click.FloatRange(min=1.0), default=30.0, show_default=True)
@click.option(
    "--operator-image",
    default="",
    help="The operator image instance pods copy their manager from "
    "(default: the published postgresql-operator in the local registry, by digest).",
)
@exits
def operator_up(state_dir: Path | None, resync: float, operator_image: str) -> None:
    """Install (idempotent), then start the operator in the background as its ServiceAccount,
    with its admission webhooks (ready once it has injected its CA into them)."""
    kubeconfig = admin_kubeconfig(state_dir)
    install_operator(kubeconfig)
    image = operator_image or published_operator_image(repo_root(), DEFAULT_REGISTRY)
    settings = operator_settings(state_dir, resync=resync, operator_image=image)
    before = devoperator.status(settings)
    install_webhooks(kubeconfig)
    proc = devoperator.up(kubeconfig, settings)
    wait_for_webhooks(kubeconfig)
    verb = "already running" if before.pid else "running"
    click.echo(
        f"operator {verb} (pid {proc.pid}) as "
        f"{devoperator.OPERATOR_NAMESPACE}/{devoperator.OPERATOR_SERVICE_ACCOUNT}; "
        f"log: {proc.log_file}"
    )


@operator.command("down")
@state_dir_option
@exits
def operator_down(state_dir: Path | None) -> None:
    """Stop the operator (harmless when it does not run) and remove its webhooks."""
    stopped = devoperator.down(operator_settings(state_dir))
    settings = controlplane.ControlPlaneSettings(state_dir=state_dir)
    if controlplane.status(settings).ready:
        for removed in remove_webhooks(settings.resolved_state_dir() / "kubeconfig"):
            click.echo(f"removed {removed}")
    click.echo("operator stopped" if stopped else "operator was not running")


@operator.command("status")
@state_dir_option
@exits
def operator_status(state_dir: Path | None) -> None:
    """Say whether the operator runs and is live (exit 3 when not)."""
    st = devoperator.status(operator_settings(state_dir))
    click.echo(f"operator: {'pid ' + str(st.pid) if st.pid else 'not running'}")
    click.echo(f"live: {'yes' if st.ready else 'no'}")
    click.echo(f"log: {st.log_file}")
    if not st.ready:
        raise SystemExit(3)


@click.command("apply")
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("-n", "--namespace", default="default", show_default=True)
@state_dir_option
@exits
def apply_cmd(files: tuple[Path, ...], namespace: str, state_dir: Path | None) -> None:
    """Server-side apply manifests to the local control plane (all checked before any write:
    schema with strict field validation, admission webhooks, by a dry run of every one)."""
    docs = manifests.load_documents(files)
    with KubeAPI(load_kubeconfig(admin_kubeconfig(state_dir))) as api:
        for applied in manifests.apply_checked(api, docs, namespace):
            click.echo(f"applied {applied.description}")
            for warning in applied.warnings:
                click.echo(f"warning: {applied.description}: {warning}", err=True)


@click.group("get")
def get() -> None:
    """Show objects of the local control plane."""


@get.command("clusters")
@click.option("-n", "--namespace", default=None, help="One namespace (default: all).")
@click.option("-w", "--watch", is_flag=True, help="Print again whenever something changes.")
@click.option("--interval", type=click.FloatRange(min=0.2), default=1.0, show_default=True)
@click.option("--api-group", default="postgresql.cnpg.io", show_default=True)
@state_dir_option
@exits
def get_clusters(
    namespace: str | None, watch: bool, interval: float, api_group: str, state_dir: Path | None
) -> None:
    """Every Cluster: phase, the image it reports, and each instance's image and readiness."""
    where = f"/namespaces/{namespace}" if namespace else ""
    prefix = api_group.removeprefix("postgresql.")
    with KubeAPI(load_kubeconfig(admin_kubeconfig(state_dir))) as api:
        shown = ""
        while True:
            clusters = api.request("GET", f"/apis/{api_group}/v1{where}/clusters").json()
            pods = api.request(
                "GET", f"/api/v1{where}/pods", params={"labelSelector": status.MANAGED}
            ).json()
            text = status.render(status.rows(clusters["items"], pods["items"], prefix))
            if text != shown:
                click.echo((time.strftime("%H:%M:%S ") if watch else "") + text)
                shown = text
            if not watch:
                return
            try:
                time.sleep(interval)
            except KeyboardInterrupt:
                return


@get.command("catalogs")
@click.option("--api-group", default="postgresql.cnpg.io", show_default=True)
@state_dir_option
@exits
def get_catalogs(api_group: str, state_dir: Path | None) -> None:
    """Every ClusterImageCatalog and ImageCatalog: major -> image."""
    with KubeAPI(load_kubeconfig(admin_kubeconfig(state_dir))) as api:
        found = [
            {**item, "kind": kind}  # list answers leave out each item's kind
            for kind, plural in KINDS
            for item in api.request("GET", f"/apis/{api_group}/v1/{plural}").json()["items"]
        ]
    click.echo(status.render_catalogs(found))


def register(_main: click.Group) -> None:
    """Add these commands to `drydock dev` (registered by pipeline.cli.dev)."""
    for command in (operator, apply_cmd, get):
        dev.add_command(command)
