"""Apply Kubernetes manifests with server-side apply: what `kubectl apply -f` does here.

The resource (plural) and scope of each kind are found through the API server's discovery
documents, so any kind the server serves works, custom resources included. Every document
is checked before the first write: a file that is not YAML, a document without apiVersion,
kind or metadata.name, or a kind the server does not serve is reported as
`file: field: reason` and nothing is applied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import InputError, Problem
from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, resource_path

FIELD_MANAGER = "drydock"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Document:
    source: str  # "file#index" for messages
    body: Mapping[str, Any]

    @property
    def api_version(self) -> str:
        return str(self.body["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


def load_documents(paths: Iterable[Path]) -> list[Document]:
    """Every non-empty YAML document of every file, or InputError listing all problems."""
    docs: list[Document] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            loaded = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except OSError as err:
            problems.append(Problem(str(path), "-", f"cannot read: {err.strerror}"))
            continue
        except yaml.YAMLError as err:
            problems.append(Problem(str(path), "-", f"not YAML: {err}".splitlines()[0]))
            continue
        for index, body in enumerate(loaded):
            if body is None:
                continue
            source = f"{path}#{index}"
            if not isinstance(body, dict):
                problems.append(Problem(source, "-", "a document must be a mapping"))
                continue
            missing = [key for key in ("apiVersion", "kind") if not isinstance(body.get(key), str)]
            meta = body.get("metadata")
            if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
                missing.append("metadata.name")
            for key in missing:
                problems.append(Problem(source, key, "required"))
            if not missing:
                docs.append(Document(source, body))
    if problems:
        raise InputError(problems)
    return docs


def _discovery_path(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


class Resources:
    """kind -> (plural, namespaced), per apiVersion, from the server's discovery documents."""

    def __init__(self, api: KubeAPI) -> None:
        self.api = api
        self._known: dict[str, dict[str, tuple[str, bool]]] = {}

    def lookup(self, api_version: str, kind: str) -> tuple[str, bool] | None:
        if api_version not in self._known:
            found = self.api.get(_discovery_path(api_version)) or {}
            self._known[api_version] = {
                str(r["kind"]): (str(r["name"]), bool(r.get("namespaced")))
                for r in found.get("resources", [])
                if "/" not in str(r.get("name", ""))  # subresources
            }
        return self._known[api_version].get(kind)


@dataclass(frozen=True)
class Resolved:
    path: str
    body: Mapping[str, Any]  # with metadata.namespace filled in for namespaced kinds
    description: str  # `Kind/name` or `Kind/name in ns`


def resolve(resources: Resources, doc: Document, default_namespace: str) -> Resolved:
    """Where the document goes; InputError when the server does not serve its kind."""
    found = resources.lookup(doc.api_version, doc.kind)
    if found is None:
        raise InputError([Problem(doc.source, "kind", f"{doc.api_version} {doc.kind}: not served")])
    plural, namespaced = found
    if not namespaced:
        path = resource_path(doc.api_version, plural, doc.name)
        return Resolved(path, doc.body, f"{doc.kind}/{doc.name}")
    namespace = str(doc.body["metadata"].get("namespace") or default_namespace)
    body = {**doc.body, "metadata": {**doc.body["metadata"], "namespace": namespace}}
    path = resource_path(doc.api_version, plural, doc.name, namespace)
    return Resolved(path, body, f"{doc.kind}/{doc.name} in {namespace}")


@dataclass(frozen=True)
class Applied:
    description: str
    warnings: tuple[str, ...] = ()


def apply_checked(
    api: KubeAPI, docs: list[Document], default_namespace: str = "default"
) -> list[Applied]:
    """Server-side apply every document with strict field validation, after a dry run of all.

    The dry run goes through the API server's schema, strict field validation and
    admission webhooks for every document first: an unknown field or a refusal is
    reported as `file: field: reason` (InputError) and nothing is written. Namespaces in
    the list are applied before anything else, so a file may create the namespace its
    objects live in (an object cannot be dry-run into a namespace that does not exist
    yet: that one is checked by its real apply). Returns each object with the warnings
    the API server gave.
    """
    resources = Resources(api)
    ordered = sorted(docs, key=lambda d: d.kind != "Namespace")
    resolved = [resolve(resources, d, default_namespace) for d in ordered]  # all before any
    new_namespaces = {d.name for d in ordered if d.kind == "Namespace"}
    problems: list[Problem] = []
    for doc, item in zip(ordered, resolved, strict=True):
        try:
            api.apply_strict(item.path, item.body, field_manager=FIELD_MANAGER, dry_run=True)
        except KubeAPIError as err:
            namespace = str(item.body["metadata"].get("namespace") or "")
            if err.status == 404 and namespace in new_namespaces:
                continue
            if err.status is None or err.status >= 500 or err.status in (401, 403):
                raise
            problems.append(Problem(doc.source, "-", f"{doc.kind}/{doc.name}: {err.message}"))
    if problems:
        raise InputError(problems)
    return [
        Applied(
            item.description,
            tuple(api.apply_strict(item.path, item.body, field_manager=FIELD_MANAGER)),
        )
        for item in resolved
    ]


def apply_documents(
    api: KubeAPI, docs: list[Document], default_namespace: str = "default"
) -> list[str]:
    """`apply_checked`, one line per applied object (warnings logged)."""
    lines = []
    for applied in apply_checked(api, docs, default_namespace):
        for warning in applied.warnings:
            log.warning("%s: %s", applied.description, warning)
        lines.append(applied.description)
    return lines
