"""Apply catalogs to a cluster: verified first, one atomic server-side apply per catalog.

Order of work, fail closed:
1. validate every catalog offline (schema, unique majors, metadata);
2. check every image every catalog names: gated, and present in its registry at that
   digest (HEAD on the registry API). One failure refuses the whole apply, nothing written;
3. per catalog, read the live object; when its spec and Drydock's labels already match,
   do not write at all (resourceVersion stays unchanged); otherwise one server-side apply
   (`PATCH application/apply-patch+yaml`, fieldManager=drydock, force=true).
Each catalog is one object and one write, never delete-then-create, so a failure at any
point leaves each catalog either as it was or fully updated, and the next apply converges.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.catalog.crd import dump, plural
from pipeline.catalog.generate import Catalog
from pipeline.catalog.registry import RegistryCheck
from pipeline.catalog.validate import validate
from pipeline.errors import CatalogError
from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, resource_path

log = logging.getLogger(__name__)

FIELD_MANAGER = "drydock"
Action = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class ApplyResult:
    kind: str
    name: str
    namespace: str | None
    action: Action
    resource_version: str


@dataclass(frozen=True)
class CatalogDiff:
    kind: str
    name: str
    namespace: str | None
    action: Action
    diff: str  # unified diff of spec and labels, live -> desired; "" when unchanged


def object_path(catalog: Catalog) -> str:
    return resource_path(catalog.api_version, plural(catalog.kind), catalog.name, catalog.namespace)


def unverified_images(catalogs: Iterable[Catalog], registry: RegistryCheck) -> list[str]:
    """Why each image that may not be catalogued fails (ungated, or not in the registry)."""
    reasons: list[str] = []
    checked: dict[str, bool] = {}
    for catalog in catalogs:
        for entry in catalog.entries:
            img = entry.image
            if not img.gated:
                reasons.append(f"{catalog.filename}: {img.reference}: did not pass its gate")
                continue
            if img.reference not in checked:
                checked[img.reference] = registry.exists(img.registry, img.repository, img.digest)
            if not checked[img.reference]:
                reasons.append(
                    f"{catalog.filename}: {img.reference}: digest not found in the registry"
                )
    return reasons


def _live_view(live: Mapping[str, Any] | None, catalog: Catalog) -> dict[str, Any]:
    """The part of the live object Drydock owns: spec and Drydock's label keys."""
    if live is None:
        return {}
    labels = live.get("metadata", {}).get("labels") or {}
    return {
        "labels": {k: labels[k] for k, _ in catalog.labels if k in labels},
        "spec": live.get("spec"),
    }


def _desired_view(catalog: Catalog) -> dict[str, Any]:
    return {"labels": dict(catalog.labels), "spec": catalog.spec()}


def compare(live: Mapping[str, Any] | None, catalog: Catalog) -> CatalogDiff:
    """Compare one desired catalog with the live object (None when there is none)."""
    have, want = _live_view(live, catalog), _desired_view(catalog)
    action: Action = "created" if live is None else "unchanged" if have == want else "updated"
    text = ""
    if action != "unchanged":
        text = "".join(
            difflib.unified_diff(
                dump(have).splitlines(keepends=True) if have else [],
                dump(want).splitlines(keepends=True),
                fromfile=f"live/{catalog.kind}/{catalog.name}",
                tofile=f"desired/{catalog.kind}/{catalog.name}",
            )
        )
    return CatalogDiff(catalog.kind, catalog.name, catalog.namespace, action, text)


def diff(api: KubeAPI, catalogs: Iterable[Catalog]) -> list[CatalogDiff]:
    """What an apply would change, catalog by catalog (reads only)."""
    return [compare(api.get(object_path(c)), c) for c in catalogs]


def apply(
    api: KubeAPI,
    catalogs: Iterable[Catalog],
    *,
    registry: RegistryCheck | None = None,
    before_write: Callable[[Catalog], None] | None = None,
) -> list[ApplyResult]:
    """Verify, then apply each catalog that differs from the live object.

    `before_write` is called just before each write (fault injection in tests, progress).
    Raises CatalogError when an image is unverified (nothing is written) or a write fails
    (catalogs already written stay written; the failed one is unchanged).
    """
    catalogs = tuple(catalogs)
    validate(catalogs)
    reasons = unverified_images(catalogs, registry or RegistryCheck())
    if reasons:
        raise CatalogError(
            "refusing to apply: not every image is gated and in the registry:\n  "
            + "\n  ".join(reasons)
        )
    results: list[ApplyResult] = []
    for catalog in catalogs:
        path = object_path(catalog)
        try:
            live = api.get(path)
            state = compare(live, catalog)
            if state.action == "unchanged":
                rv = str((live or {}).get("metadata", {}).get("resourceVersion", ""))
                log.info("%s/%s unchanged", catalog.kind, catalog.name)
                results.append(
                    ApplyResult(catalog.kind, catalog.name, catalog.namespace, "unchanged", rv)
                )
                continue
            if before_write is not None:
                before_write(catalog)
            written = api.apply(path, catalog.manifest(), field_manager=FIELD_MANAGER, force=True)
        except KubeAPIError as err:
            raise CatalogError(f"applying {catalog.kind}/{catalog.name} failed: {err}") from err
        rv = str(written.get("metadata", {}).get("resourceVersion", ""))
        log.info("%s/%s %s (resourceVersion %s)", catalog.kind, catalog.name, state.action, rv)
        results.append(ApplyResult(catalog.kind, catalog.name, catalog.namespace, state.action, rv))
    return results
