"""Typed views of the Kubernetes objects the operator reads, parsed at the edge.

The API hands back JSON dictionaries. They are turned into frozen dataclasses here, once,
so that the decision code (`reconcile.py`) and the object specs (`resources.py`) work on
named fields with known types and never dig through raw dictionaries themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
CATALOG_KINDS = ("ImageCatalog", "ClusterImageCatalog")


class ParseError(ValueError):
    """An object does not have the shape its schema promises."""


@dataclass(frozen=True)
class CatalogRef:
    """`spec.imageCatalogRef`: which catalog, and which major in it."""

    api_group: str
    kind: str
    name: str
    major: int

    @property
    def identifier(self) -> str:
        """`Kind/name`, as CloudNativePG names a catalog in messages."""
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class ImageInfo:
    """`status.pgDataImageInfo`: the image the data directory was last set up for."""

    image: str
    major: int


@dataclass(frozen=True)
class Resources:
    """Container requests and limits, passed through to the instance pods unchanged."""

    requests: tuple[tuple[str, str], ...] = ()
    limits: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Initdb:
    """`spec.bootstrap.initdb`: the application database, its owner, and the owner's
    Secret (the user's; none: the operator generates `<cluster>-app`)."""

    database: str = "app"
    owner: str = "app"
    secret: str | None = None


@dataclass(frozen=True)
class Affinity:
    """`spec.affinity`, the part this operator maps onto the instance pods."""

    enable_pod_anti_affinity: bool = True
    topology_key: str = "kubernetes.io/hostname"
    pod_anti_affinity_type: str = "preferred"
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL Cluster: what was asked (spec) and what was last recorded (status)."""

    name: str
    namespace: str
    uid: str
    instances: int
    image_name: str | None
    catalog_ref: CatalogRef | None
    enable_superuser_access: bool = False
    parameters: tuple[tuple[str, str], ...] = ()
    pg_hba: tuple[str, ...] = ()
    pg_ident: tuple[str, ...] = ()
    storage_size: str = "1Gi"
    storage_class: str | None = None
    resources: Resources = field(default_factory=Resources)
    apparmor: tuple[tuple[str, str], ...] = ()
    status_image: str | None = None
    status_phase: str | None = None
    status_phase_reason: str | None = None
    current_primary: str | None = None
    target_primary: str | None = None
    image_info: ImageInfo | None = None
    superuser_secret: str | None = None
    """`spec.superuserSecret.name`: the user's Secret for `postgres` (none generated)."""
    initdb: Initdb = field(default_factory=Initdb)
    postgres_uid: int = 26
    postgres_gid: int = 26
    primary_update_strategy: str = "unsupervised"
    affinity: Affinity = field(default_factory=Affinity)


def parse_initdb(spec: Mapping[str, Any]) -> Initdb:
    raw = _mapping(_mapping(spec.get("bootstrap"), "spec.bootstrap").get("initdb"), "initdb")
    database = str(raw.get("database") or "app")
    secret = _mapping(raw.get("secret"), "spec.bootstrap.initdb.secret").get("name")
    return Initdb(database, str(raw.get("owner") or database), str(secret) if secret else None)


def parse_affinity(spec: Mapping[str, Any]) -> Affinity:
    raw = _mapping(spec.get("affinity"), "spec.affinity")
    tolerations = raw.get("tolerations") or []
    if not isinstance(tolerations, list) or not all(isinstance(t, Mapping) for t in tolerations):
        raise ParseError("spec.affinity.tolerations: expected a list of objects")
    return Affinity(
        enable_pod_anti_affinity=bool(raw.get("enablePodAntiAffinity", True)),
        topology_key=str(raw.get("topologyKey") or "kubernetes.io/hostname"),
        pod_anti_affinity_type=str(raw.get("podAntiAffinityType") or "preferred"),
        node_selector=_str_items(raw.get("nodeSelector"), "spec.affinity.nodeSelector"),
        tolerations=tuple(tolerations),
    )


@dataclass(frozen=True)
class Catalog:
    """An ImageCatalog or ClusterImageCatalog: major -> image."""

    kind: str
    name: str
    namespace: str | None
    images: tuple[tuple[int, str], ...]

    def image_for(self, major: int) -> str | None:
        for entry_major, image in self.images:
            if entry_major == major:
                return image
        return None


@dataclass(frozen=True)
class Instance:
    """An instance pod as observed: its image, readiness, role label and address."""

    name: str
    image: str
    ready: bool
    deleting: bool = False
    role: str = ""
    ip: str = ""
    uid: str = ""


@dataclass(frozen=True)
class InstanceReport:
    """What an instance manager says about itself on its status port (`/pg/status`)."""

    name: str
    primary: bool
    in_recovery: bool
    lsn: int
    """The last WAL position written (primary) or received (standby), as a number."""
    streaming: bool
    ready: bool


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ParseError(f"{where}: expected an object")
    return value


def _str_items(value: object, where: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in _mapping(value, where).items()))


def _lines(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParseError(f"{where}: expected a list of strings")
    return tuple(value)


def parse_catalog_ref(raw: Mapping[str, Any]) -> CatalogRef:
    try:
        ref = CatalogRef(
            api_group=str(raw.get("apiGroup") or ""),
            kind=str(raw["kind"]),
            name=str(raw["name"]),
            major=int(raw["major"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ParseError(f"spec.imageCatalogRef: {err}") from err
    if ref.kind not in CATALOG_KINDS:
        raise ParseError(f"spec.imageCatalogRef.kind: {ref.kind!r} is not one of {CATALOG_KINDS}")
    return ref


def parse_cluster(body: Mapping[str, Any]) -> Cluster:
    """Parse a Cluster object as returned by the API (or handed over by kopf)."""
    meta = _mapping(body.get("metadata"), "metadata")
    spec = _mapping(body.get("spec"), "spec")
    status = _mapping(body.get("status"), "status")
    postgresql = _mapping(spec.get("postgresql"), "spec.postgresql")
    storage = _mapping(spec.get("storage"), "spec.storage")
    resources = _mapping(spec.get("resources"), "spec.resources")
    ref_raw = spec.get("imageCatalogRef")
    info_raw = _mapping(status.get("pgDataImageInfo"), "status.pgDataImageInfo")
    annotations = _mapping(meta.get("annotations"), "metadata.annotations")
    superuser_ref = _mapping(spec.get("superuserSecret"), "spec.superuserSecret")
    try:
        return Cluster(
            name=str(meta["name"]),
            namespace=str(meta["namespace"]),
            uid=str(meta.get("uid") or ""),
            instances=int(spec.get("instances", 1)),
            image_name=str(spec["imageName"]) if spec.get("imageName") else None,
            catalog_ref=parse_catalog_ref(_mapping(ref_raw, "spec.imageCatalogRef"))
            if ref_raw
            else None,
            enable_superuser_access=bool(spec.get("enableSuperuserAccess", False)),
            parameters=_str_items(postgresql.get("parameters"), "spec.postgresql.parameters"),
            pg_hba=_lines(postgresql.get("pg_hba"), "spec.postgresql.pg_hba"),
            pg_ident=_lines(postgresql.get("pg_ident"), "spec.postgresql.pg_ident"),
            storage_size=str(storage.get("size") or "1Gi"),
            storage_class=str(storage["storageClass"]) if storage.get("storageClass") else None,
            resources=Resources(
                requests=_str_items(resources.get("requests"), "spec.resources.requests"),
                limits=_str_items(resources.get("limits"), "spec.resources.limits"),
            ),
            apparmor=tuple(
                (k, str(v)) for k, v in sorted(annotations.items()) if k.startswith(APPARMOR_PREFIX)
            ),
            status_image=str(status["image"]) if status.get("image") else None,
            status_phase=str(status["phase"]) if status.get("phase") else None,
            status_phase_reason=str(status["phaseReason"]) if status.get("phaseReason") else None,
            current_primary=str(status["currentPrimary"]) if status.get("currentPrimary") else None,
            target_primary=str(status["targetPrimary"]) if status.get("targetPrimary") else None,
            image_info=ImageInfo(str(info_raw["image"]), int(info_raw["majorVersion"]))
            if info_raw.get("image") and info_raw.get("majorVersion")
            else None,
            superuser_secret=str(superuser_ref["name"]) if superuser_ref.get("name") else None,
            initdb=parse_initdb(spec),
            postgres_uid=int(spec.get("postgresUID") or 26),
            postgres_gid=int(spec.get("postgresGID") or 26),
            primary_update_strategy=str(spec.get("primaryUpdateStrategy") or "unsupervised"),
            affinity=parse_affinity(spec),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ParseError(f"Cluster: {err}") from err


def parse_catalog(body: Mapping[str, Any]) -> Catalog:
    """Parse an ImageCatalog or ClusterImageCatalog."""
    meta = _mapping(body.get("metadata"), "metadata")
    spec = _mapping(body.get("spec"), "spec")
    entries = spec.get("images") or []
    if not isinstance(entries, list):
        raise ParseError("spec.images: expected a list")
    try:
        images = tuple((int(e["major"]), str(e["image"])) for e in entries)
        return Catalog(
            kind=str(body.get("kind") or ""),
            name=str(meta["name"]),
            namespace=str(meta["namespace"]) if meta.get("namespace") else None,
            images=images,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ParseError(f"catalog: {err}") from err


def parse_instance(
    body: Mapping[str, Any], container: str = "postgres", role_label: str = ""
) -> Instance:
    """Parse an instance pod: the image of its PostgreSQL container and its readiness."""
    meta = _mapping(body.get("metadata"), "metadata")
    labels = _mapping(meta.get("labels"), "metadata.labels")
    spec = _mapping(body.get("spec"), "spec")
    status = _mapping(body.get("status"), "status")
    image = ""
    for c in spec.get("containers") or []:
        if c.get("name") == container:
            image = str(c.get("image") or "")
    ready = any(
        cond.get("type") == "Ready" and cond.get("status") == "True"
        for cond in status.get("conditions") or []
    )
    return Instance(
        name=str(meta.get("name") or ""),
        image=image,
        ready=ready,
        deleting=bool(meta.get("deletionTimestamp")),
        role=str(labels.get(role_label) or "") if role_label else "",
        ip=str(status.get("podIP") or ""),
        uid=str(meta.get("uid") or ""),
    )


def lsn_value(lsn: str) -> int:
    """`16/B374D848` as a number; 0 when absent or malformed."""
    high, sep, low = lsn.partition("/")
    try:
        return (int(high, 16) << 32) + int(low, 16) if sep else 0
    except ValueError:
        return 0


def parse_report(name: str, body: Mapping[str, Any]) -> InstanceReport:
    """The JSON of `/pg/status` (drydock_instance.status.as_json)."""
    return InstanceReport(
        name=name,
        primary=bool(body.get("isPrimary")),
        in_recovery=bool(body.get("inRecovery")),
        lsn=lsn_value(str(body.get("lsn") or "")),
        streaming=body.get("walReceiver") == "streaming",
        ready=bool(body.get("ready")),
    )
