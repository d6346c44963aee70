"""Desired catalogs from published images: pure, deterministic, newest gated digest per major.

For every flavour x Debian release among the published operand images this builds one
ClusterImageCatalog (and, on request, a namespaced ImageCatalog) named like CloudNativePG's
(`postgresql-minimal-bookworm`) with its labels (`images.cnpg.io/{family,type,os,date,
publisher}`). Each entry points at the newest *gated* image of that major, by digest
(`registry/repo:tag@sha256:...`). Same input, in any order, gives the same bytes: the date
label comes from the images' build times, never from the clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.catalog.crd import DEFAULT_GROUP, MIN_MAJOR, VERSION, dump
from pipeline.errors import InputError, Problem
from pipeline.models.publish import PublishedImage

log = logging.getLogger(__name__)

LABEL_PREFIX = "images.cnpg.io"
TAG_TIMESTAMP = re.compile(r"-(\d{12})-")


@dataclass(frozen=True)
class CatalogSettings:
    """Choices that shape the generated catalogs."""

    api_group: str = DEFAULT_GROUP
    family: str = "postgresql"
    publisher: str = "drydock"
    namespace: str | None = None  # also emit a namespaced ImageCatalog in this namespace
    label_prefix: str = LABEL_PREFIX


@dataclass(frozen=True)
class CatalogEntry:
    """One major and the published image chosen for it."""

    major: int
    image: PublishedImage

    @property
    def reference(self) -> str:
        return self.image.reference


@dataclass(frozen=True)
class Catalog:
    """One desired catalog object."""

    kind: str  # "ClusterImageCatalog" or "ImageCatalog"
    api_group: str
    name: str
    namespace: str | None
    flavour: str
    release: str
    labels: tuple[tuple[str, str], ...]
    entries: tuple[CatalogEntry, ...]
    filename: str

    @property
    def api_version(self) -> str:
        return f"{self.api_group}/{VERSION}"

    def spec(self) -> dict[str, Any]:
        return {"images": [{"major": e.major, "image": e.reference} for e in self.entries]}

    def manifest(self) -> dict[str, Any]:
        """The Kubernetes object, keys in CloudNativePG's order."""
        metadata: dict[str, Any] = {"name": self.name}
        if self.namespace:
            metadata["namespace"] = self.namespace
        metadata["labels"] = dict(self.labels)
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": metadata,
            "spec": self.spec(),
        }

    def render(self) -> str:
        return dump(self.manifest())


def _when(image: PublishedImage) -> dt.datetime | None:
    """Build time: `created` (RFC 3339), else the 12-digit timestamp in the tag."""
    if image.created:
        try:
            when = dt.datetime.fromisoformat(image.created)
        except ValueError:
            return None
        return when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)
    found = TAG_TIMESTAMP.search(image.tag)
    if found:
        return dt.datetime.strptime(found.group(1), "%Y%m%d%H%M").replace(tzinfo=dt.UTC)
    return None


def _check(images: Iterable[PublishedImage], source: str) -> list[Problem]:
    problems: list[Problem] = []
    for i, img in enumerate(images):
        parts = {"major": img.major, "flavour": img.flavour, "release": img.release}
        given = [k for k, v in parts.items() if v is not None]
        if given and len(given) != len(parts):
            missing = ", ".join(k for k in parts if k not in given)
            problems.append(Problem(source, f"[{i}]", f"operand image without {missing}"))
            continue
        if not given:
            continue  # the operator image, or anything else that is not an operand
        if img.major is not None and img.major < MIN_MAJOR:
            problems.append(Problem(source, f"[{i}].major", f"{img.major} is below {MIN_MAJOR}"))
        if _when(img) is None:
            problems.append(
                Problem(source, f"[{i}].created", "no RFC 3339 time and no timestamp in the tag")
            )
    return problems


def _newest_key(image: PublishedImage) -> tuple[dt.datetime, str, str]:
    when = _when(image)
    assert when is not None  # noqa: S101 - _check rejected images without a time
    return (when, image.tag, image.digest)


def _filename(settings: CatalogSettings, kind: str, flavour: str, release: str) -> str:
    stem = "catalog" if settings.family == "postgresql" else settings.family
    if kind == "ImageCatalog":
        return f"imagecatalog-{settings.namespace}-{flavour}-{release}.yaml"
    return f"{stem}-{flavour}-{release}.yaml"


def generate(
    images: Iterable[PublishedImage],
    settings: CatalogSettings | None = None,
    source: str = "<published>",
) -> tuple[Catalog, ...]:
    """Desired catalogs, sorted by file name. InputError on bad or empty input."""
    settings = settings or CatalogSettings()
    images = tuple(images)
    problems = _check(images, source)
    if problems:
        raise InputError(problems)
    groups: dict[tuple[str, str], dict[int, PublishedImage]] = {}
    for img in images:
        if img.major is None or img.flavour is None or img.release is None:
            continue
        if not img.gated:
            log.info("not cataloguing %s: it did not pass its gate", img.reference)
            continue
        majors = groups.setdefault((img.flavour, img.release), {})
        current = majors.get(img.major)
        if current is None or _newest_key(img) > _newest_key(current):
            majors[img.major] = img
    if not groups:
        raise InputError([Problem(source, "-", "no gated operand image: nothing to catalog")])
    kinds = ["ClusterImageCatalog"] + (["ImageCatalog"] if settings.namespace else [])
    catalogs: list[Catalog] = []
    for (flavour, release), majors in groups.items():
        entries = tuple(CatalogEntry(m, majors[m]) for m in sorted(majors))
        newest = max(_newest_key(e.image)[0] for e in entries)
        p = settings.label_prefix
        labels = (
            (f"{p}/family", settings.family),
            (f"{p}/type", flavour),
            (f"{p}/os", release),
            (f"{p}/date", newest.strftime("%Y%m%d")),
            (f"{p}/publisher", settings.publisher),
        )
        for kind in kinds:
            catalogs.append(
                Catalog(
                    kind=kind,
                    api_group=settings.api_group,
                    name=f"{settings.family}-{flavour}-{release}",
                    namespace=settings.namespace if kind == "ImageCatalog" else None,
                    flavour=flavour,
                    release=release,
                    labels=labels,
                    entries=entries,
                    filename=_filename(settings, kind, flavour, release),
                )
            )
    return tuple(sorted(catalogs, key=lambda c: c.filename))


def kustomization(catalogs: Iterable[Catalog]) -> str:
    """kustomization.yaml listing every catalog file, sorted."""
    doc = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(c.filename for c in catalogs),
    }
    return dump(doc)


def render_all(catalogs: Iterable[Catalog]) -> Mapping[str, str]:
    """File name -> content for the catalogs and their kustomization.yaml."""
    catalogs = tuple(catalogs)
    files = {c.filename: c.render() for c in catalogs}
    files["kustomization.yaml"] = kustomization(catalogs)
    return dict(sorted(files.items()))
