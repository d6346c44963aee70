"""Offline validation of catalog objects: the CRD's openAPIV3Schema, the CEL rule, metadata.

Nothing is written (to disk or to a cluster) before every catalog passes here, so a bad
catalog is caught in the pipeline with file, field and reason rather than by an API server
halfway through a run. The schema is the one in crd.py (jsonschema ignores the
`x-kubernetes-*` keywords); the CEL rule "majors are unique" and the metadata rules the API
server applies (DNS names, label syntax) are checked in Python.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from pipeline.catalog.crd import KINDS, VERSION, object_schema
from pipeline.catalog.generate import Catalog
from pipeline.errors import InputError, Problem

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DIGEST_REF = re.compile(r"^[^@\s]+:[^@\s:/]+@sha256:[a-f0-9]{64}$")


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "-"


def _metadata_problems(obj: Mapping[str, Any], file: str) -> list[Problem]:
    problems: list[Problem] = []
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return [Problem(file, "metadata", "missing")]
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        problems.append(Problem(file, "metadata.name", f"{name!r} is not a DNS subdomain"))
    namespace = meta.get("namespace")
    if obj.get("kind") == "ImageCatalog":
        if not isinstance(namespace, str) or len(namespace) > 63 or not DNS_LABEL.match(namespace):
            problems.append(
                Problem(file, "metadata.namespace", f"{namespace!r} is not a DNS label")
            )
    elif namespace is not None:
        problems.append(Problem(file, "metadata.namespace", "a cluster-scoped kind has none"))
    labels = meta.get("labels") or {}
    if not isinstance(labels, Mapping):
        return [*problems, Problem(file, "metadata.labels", "not a mapping")]
    for key, value in labels.items():
        prefix, _, label = str(key).rpartition("/")
        if (
            (prefix and not DNS_SUBDOMAIN.match(prefix))
            or len(label) > 63
            or not LABEL_NAME.match(label)
        ):
            problems.append(Problem(file, f"metadata.labels[{key}]", "invalid label key"))
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            problems.append(Problem(file, f"metadata.labels[{key}]", f"invalid value {value!r}"))
    return problems


def problems_in(obj: Mapping[str, Any], file: str, *, require_digest: bool = True) -> list[Problem]:
    """Every reason the API server (with the catalog CRD) would reject obj, and a few more."""
    kind = obj.get("kind")
    if kind not in KINDS:
        return [Problem(file, "kind", f"{kind!r} is not one of {', '.join(KINDS)}")]
    problems: list[Problem] = []
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str) or not api_version.endswith(f"/{VERSION}"):
        problems.append(Problem(file, "apiVersion", f"{api_version!r} is not <group>/{VERSION}"))
    validator = Draft202012Validator(object_schema(str(kind)))
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(Problem(file, _path(err.absolute_path), err.message))
    problems += _metadata_problems(obj, file)
    images = obj.get("spec", {}).get("images") if isinstance(obj.get("spec"), Mapping) else None
    if isinstance(images, list):
        majors = Counter(i.get("major") for i in images if isinstance(i, Mapping))
        for major, count in sorted(majors.items(), key=lambda kv: str(kv[0])):
            if count > 1:
                problems.append(
                    Problem(
                        file, "spec.images", f"major {major} appears {count} times (must be unique)"
                    )
                )
        if require_digest:
            for i, entry in enumerate(images):
                ref = entry.get("image") if isinstance(entry, Mapping) else None
                if isinstance(ref, str) and not DIGEST_REF.match(ref):
                    problems.append(
                        Problem(
                            file, f"spec.images[{i}].image", "not pinned as repo:tag@sha256:..."
                        )
                    )
    return problems


def validate(catalogs: Iterable[Catalog]) -> None:
    """Raise InputError listing every problem in any catalog; return quietly when all pass."""
    problems: list[Problem] = []
    seen: set[tuple[str, str | None, str]] = set()
    for catalog in catalogs:
        problems += problems_in(catalog.manifest(), catalog.filename)
        key = (catalog.kind, catalog.namespace, catalog.name)
        if key in seen:
            problems.append(Problem(catalog.filename, "metadata.name", "generated twice"))
        seen.add(key)
    if problems:
        raise InputError(problems)
