"""`drydock catalog generate|diff|apply|crds`: ImageCatalogs from published images.

generate writes the catalog files (validated first); diff shows what apply would change in
a cluster; apply verifies every image (gated, in the registry at its digest) and then
server-side applies each changed catalog. crds writes the CRD manifests of the included
operator from the schema in pipeline/catalog/crd.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.catalog import apply as applying
from pipeline.catalog.crd import DEFAULT_GROUP, EDB_GROUP, crd_files
from pipeline.catalog.files import write_catalogs
from pipeline.catalog.generate import Catalog, CatalogSettings, generate
from pipeline.catalog.published import load_published
from pipeline.catalog.validate import validate
from pipeline.cli import exits
from pipeline.errors import CatalogError
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig

F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F) -> F:
    options = [
        click.option(
            "--published",
            "published",
            required=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="JSON list of PublishedImage records.",
        ),
        click.option(
            "--api-group",
            default=DEFAULT_GROUP,
            show_default=True,
            help=f"Catalog API group (e.g. {EDB_GROUP}).",
        ),
        click.option("--namespaced", "namespace", default=None, help="Also an ImageCatalog in NS."),
        click.option("--family", default="postgresql", show_default=True),
        click.option("--publisher", default="drydock", show_default=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _kubeconfig_option(func: F) -> F:
    return click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Kubeconfig (default: $KUBECONFIG, else ~/.kube/config).",
    )(func)


def _catalogs(
    published: Path, api_group: str, namespace: str | None, family: str, publisher: str
) -> tuple[Catalog, ...]:
    settings = CatalogSettings(
        api_group=api_group, family=family, publisher=publisher, namespace=namespace
    )
    catalogs = generate(load_published(published), settings, source=str(published))
    validate(catalogs)
    return catalogs


def _api(kubeconfig: Path | None) -> KubeAPI:
    path = kubeconfig or Path(os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config")
    return KubeAPI(load_kubeconfig(path))


@click.group("catalog")
def catalog() -> None:
    """ImageCatalog / ClusterImageCatalog generation and apply."""


@catalog.command("generate")
@_common
@click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path))
@exits
def generate_cmd(
    *,
    published: Path,
    api_group: str,
    namespace: str | None,
    family: str,
    publisher: str,
    output: Path,
) -> None:
    """Write one catalog file per flavour x release, and kustomization.yaml."""
    catalogs = _catalogs(published, api_group, namespace, family, publisher)
    for path in write_catalogs(catalogs, output):
        click.echo(str(path))


@catalog.command("diff")
@_common
@_kubeconfig_option
@exits
def diff_cmd(
    *,
    published: Path,
    api_group: str,
    namespace: str | None,
    family: str,
    publisher: str,
    kubeconfig: Path | None,
) -> None:
    """Show what `apply` would change (reads the cluster, writes nothing)."""
    catalogs = _catalogs(published, api_group, namespace, family, publisher)
    with _api(kubeconfig) as api:
        for d in applying.diff(api, catalogs):
            click.echo(f"{d.kind}/{d.name}: {'unchanged' if d.action == 'unchanged' else d.action}")
            if d.diff:
                click.echo(d.diff, nl=False)


@catalog.command("apply")
@_common
@_kubeconfig_option
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None)
@exits
def apply_cmd(
    *,
    published: Path,
    api_group: str,
    namespace: str | None,
    family: str,
    publisher: str,
    kubeconfig: Path | None,
    output: Path | None,
) -> None:
    """Verify every image, then server-side apply each changed catalog."""
    catalogs = _catalogs(published, api_group, namespace, family, publisher)
    with _api(kubeconfig) as api:
        results = applying.apply(api, catalogs)
    if output is not None:
        write_catalogs(catalogs, output)
    for r in results:
        click.echo(f"{r.kind}/{r.name}: {r.action} (resourceVersion {r.resource_version})")


@catalog.command("crds")
@click.option("--output", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--api-group", default=DEFAULT_GROUP, show_default=True)
@exits
def crds_cmd(output: Path, api_group: str) -> None:
    """Write the ImageCatalog / ClusterImageCatalog CRDs and their kustomization.

    Other YAML files already in the directory (the operator's CRDs) are kept and listed
    in the kustomization too.
    """
    try:
        output.mkdir(parents=True, exist_ok=True)
        ours = set(crd_files(api_group)) - {"kustomization.yaml"}
        extra = sorted(p.name for p in output.glob("*.yaml") if p.name not in ours)
        extra = [n for n in extra if n != "kustomization.yaml"]
        for name, text in crd_files(api_group, extra).items():
            (output / name).write_text(text, encoding="utf-8")
            click.echo(str(output / name))
    except OSError as err:
        raise CatalogError(f"cannot write CRDs to {output}: {err}") from err


def register(main: click.Group) -> None:
    main.add_command(catalog)
