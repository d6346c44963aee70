"""The ImageCatalog / ClusterImageCatalog CRDs, written once in Python, used twice.

The same schema serves the offline validation of generated catalogs (validate.py) and the
CRD manifests shipped for the included operator (operator/manifests/crds/, rendered by
`drydock catalog crds`; a unit test keeps the files equal to this module). It is
schema-compatible with CloudNativePG's CRDs: the same fields, 1..8 images, `major >= 10`,
the extension configuration, and the CEL rule that majors are unique, so a catalog valid
here is valid for CloudNativePG and the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

DEFAULT_GROUP = "postgresql.cnpg.io"
EDB_GROUP = "postgresql.k8s.enterprisedb.io"
VERSION = "v1"
KINDS = ("ClusterImageCatalog", "ImageCatalog")
UNIQUE_MAJORS_RULE = "self.all(e, self.filter(f, f.major==e.major).size() == 1)"
UNIQUE_MAJORS_MESSAGE = "Images must have unique major versions"
MIN_MAJOR = 10
MAX_IMAGES = 8

JSON = dict[str, Any]


def _strings(description: str) -> JSON:
    return {"description": description, "type": "array", "items": {"type": "string"}}


def extension_schema() -> JSON:
    """One extension image mounted into the PostgreSQL pods (CloudNativePG 1.27.4+)."""
    return {
        "description": "An extension image to mount into the PostgreSQL pods.",
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {
                "description": "Extension name.",
                "type": "string",
                "minLength": 1,
                "pattern": "^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$",
            },
            "image": {
                "description": "The OCI image or artifact holding the extension.",
                "type": "object",
                "properties": {
                    "reference": {"description": "Image reference.", "type": "string"},
                    "pullPolicy": {
                        "description": "Always, Never or IfNotPresent.",
                        "type": "string",
                    },
                },
            },
            "extension_control_path": _strings("Directories added to extension_control_path."),
            "dynamic_library_path": _strings("Directories added to dynamic_library_path."),
            "ld_library_path": _strings("Directories added to ld_library_path."),
        },
    }


def spec_schema() -> JSON:
    """`spec` shared by both kinds: a list of images, one per PostgreSQL major."""
    image = {
        "description": "The image for one PostgreSQL major.",
        "type": "object",
        "required": ["image", "major"],
        "properties": {
            "major": {
                "description": "PostgreSQL major version; unique within the catalog.",
                "type": "integer",
                "minimum": MIN_MAJOR,
            },
            "image": {
                "description": "Image reference, pinned by digest.",
                "type": "string",
            },
            "extensions": {
                "description": "Extension images for this major.",
                "type": "array",
                "items": extension_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
            },
        },
    }
    return {
        "description": "The images this catalog offers.",
        "type": "object",
        "required": ["images"],
        "properties": {
            "images": {
                "description": "One image per PostgreSQL major.",
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_IMAGES,
                "items": image,
                "x-kubernetes-validations": [
                    {"rule": UNIQUE_MAJORS_RULE, "message": UNIQUE_MAJORS_MESSAGE}
                ],
            }
        },
    }


def object_schema(kind: str) -> JSON:
    """openAPIV3Schema of a whole catalog object of this kind."""
    return {
        "description": f"{kind}: PostgreSQL operand images by major version.",
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "apiVersion": {"description": "Versioned schema of this object.", "type": "string"},
            "kind": {"description": "Kind of this object.", "type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
        },
    }


def plural(kind: str) -> str:
    return kind.lower() + "s"


def crd(kind: str, group: str = DEFAULT_GROUP) -> JSON:
    """The CustomResourceDefinition object for one kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown catalog kind {kind!r}")
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural(kind)}.{group}"},
        "spec": {
            "group": group,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural(kind),
                "singular": kind.lower(),
            },
            "scope": "Cluster" if kind == "ClusterImageCatalog" else "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": object_schema(kind)},
                    "subresources": {},
                    "additionalPrinterColumns": [
                        {
                            "name": "Age",
                            "type": "date",
                            "jsonPath": ".metadata.creationTimestamp",
                        }
                    ],
                }
            ],
        },
    }


def dump(obj: JSON) -> str:
    """Stable YAML for manifests: key order as built, block style, no aliases."""
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=100)


def crd_files(group: str = DEFAULT_GROUP, extra_resources: Iterable[str] = ()) -> dict[str, str]:
    """File name -> content of the catalog CRDs and a kustomization listing them.

    extra_resources: other CRD files sharing the directory (the operator's own CRDs),
    listed in the kustomization too.
    """
    files = {f"{group}_{plural(kind)}.yaml": dump(crd(kind, group)) for kind in KINDS}
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(set(files) | set(extra_resources)),
    }
    files["kustomization.yaml"] = dump(kustomization)
    return files
