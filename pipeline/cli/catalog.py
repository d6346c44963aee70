"""`drydock catalog generate|diff|apply|sign|verify|crds`: ImageCatalogs from published images.

The images come from the release repository as it is now (`--registry`, default the local
one: every operand's current image), or from a `published.json` record (`--published`).
generate writes the catalog files (validated first); diff shows what apply would change in
a cluster; apply verifies every image (gated, in the registry at its digest) and then
server-side applies each changed catalog. sign signs catalog files with cosign (keyless in
CI, a key pair elsewhere) and verify checks them. crds writes the CRD manifests of the
included operator from the schema in pipeline/catalog/crd.py.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
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
from pipeline.cli.common import settings_from
from pipeline.errors import CatalogError, InputError, Problem, VerificationFailed
from pipeline.publish.sign import default_key_dir, make_signer, sign_files, verify_files
from pipeline.stages.catalogs import published_now
from pipeline.tools.cosign import locate_cosign
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig

F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F) -> F:
    options = [
        click.option(
            "--published",
            "published",
            default=None,
            type=click.Path(dir_okay=False, path_type=Path),
            help="JSON list of PublishedImage records (default: read the registry).",
        ),
        click.option(
            "--registry",
            envvar="DRYDOCK_REGISTRY",
            default=None,
            help="Without --published: the release registry to read, host[:port][/namespace] "
            "(default 127.0.0.1:5000; env DRYDOCK_REGISTRY).",
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

    @functools.wraps(func)
    def wrapper(
        *,
        published: Path | None,
        registry: str | None,
        api_group: str,
        namespace: str | None,
        family: str,
        publisher: str,
        **rest: Any,
    ) -> Any:
        selection = Selection(published, registry, api_group, namespace, family, publisher)
        return func(selection=selection, **rest)

    decorated: F = wrapper  # type: ignore[assignment]
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def _kubeconfig_option(func: F) -> F:
    return click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Kubeconfig (default: $KUBECONFIG, else ~/.kube/config).",
    )(func)


@dataclass(frozen=True)
class Selection:
    """Which images the catalogs list (a record file, else the registry) and how to name them."""

    published: Path | None
    registry: str | None
    api_group: str
    namespace: str | None
    family: str
    publisher: str

    def catalogs(self) -> tuple[Catalog, ...]:
        settings = CatalogSettings(
            api_group=self.api_group,
            family=self.family,
            publisher=self.publisher,
            namespace=self.namespace,
        )
        if self.published is not None:
            images, source = load_published(self.published), str(self.published)
        else:
            run_settings = settings_from(registry=self.registry)
            images, source = tuple(published_now(run_settings)), run_settings.registry
            if not images:
                raise CatalogError(f"{source}: no published operand image found (nothing to list)")
        catalogs = generate(images, settings, source=source)
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
    selection: Selection,
    output: Path,
) -> None:
    """Write one catalog file per flavour x release, and kustomization.yaml."""
    catalogs = selection.catalogs()
    for path in write_catalogs(catalogs, output):
        click.echo(str(path))


@catalog.command("diff")
@_common
@_kubeconfig_option
@exits
def diff_cmd(
    *,
    selection: Selection,
    kubeconfig: Path | None,
) -> None:
    """Show what `apply` would change (reads the cluster, writes nothing)."""
    catalogs = selection.catalogs()
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
    selection: Selection,
    kubeconfig: Path | None,
    output: Path | None,
) -> None:
    """Verify every image, then server-side apply each changed catalog."""
    catalogs = selection.catalogs()
    with _api(kubeconfig) as api:
        results = applying.apply(api, catalogs)
    if output is not None:
        write_catalogs(catalogs, output)
    for r in results:
        click.echo(f"{r.kind}/{r.name}: {r.action} (resourceVersion {r.resource_version})")


def _catalog_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.glob("*.yaml") if p.name != "kustomization.yaml")
    if not files:
        raise InputError([Problem(str(folder), "-", "holds no catalog files (*.yaml)")])
    return files


@catalog.command("sign")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--keyless", is_flag=True, envvar="DRYDOCK_KEYLESS", help="Sign with CI's OIDC.")
@click.option("--signing-key", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@exits
def sign_cmd(folder: Path, keyless: bool, signing_key: Path | None) -> None:
    """Sign each catalog file in FOLDER: `<file>.sig` (and `<file>.pem` when keyless)."""
    cosign = locate_cosign()
    signer = make_signer(cosign, keyless=keyless, private=signing_key)
    for path in sign_files(cosign, _catalog_files(folder), signer):
        click.echo(str(path))


@catalog.command("verify")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--key",
    "public_key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Public key (default: the cached key pair's cosign.pub).",
)
@exits
def verify_cmd(folder: Path, public_key: Path | None) -> None:
    """Check every catalog file in FOLDER against its `.sig` (exit 1 if one fails)."""
    cosign = locate_cosign()
    key = public_key or default_key_dir() / "cosign.pub"
    problems = verify_files(cosign, _catalog_files(folder), key)
    if problems:
        raise VerificationFailed("\n".join(problems))
    click.echo(f"{folder}: every catalog signature verifies under {key}")


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
