"""What the instance should be, read from its Cluster, ConfigMap and Secrets; and reports back.

In a pod the objects come from the API server through `KubeTransport`, authenticated as
the Cluster's ServiceAccount: the Role the operator wrote lets it read exactly these
objects by name, patch its Cluster's status and post events, nothing else. `DirTransport`
reads the same API objects from JSON files and merges status patches into the Cluster's
file (under a lock), so the manager can run beside a plain Docker engine with the
operator's real object specs; the decisions made from them are the same code either way.
"""

from __future__ import annotations

import base64
import datetime
import fcntl
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from drydock_instance.config import Settings
from drydock_instance.handover import Demotion
from drydock_instance.kubeclient import ApiError, KubeClient, path

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class SourceError(Exception):
    """The desired state cannot be read (yet): an object is missing or unreachable."""


class Certs(NamedTuple):
    ca: str
    """The CA that signed the server's certificate: replicas verify the primary with it."""
    server_crt: str
    server_key: str
    client_crt: str
    client_key: str
    client_ca: str = ""
    """The CA of client certificates (PostgreSQL's ssl_ca_file); "" means `ca`."""


def tls_secret_names(cluster_name: str, spec: Obj) -> tuple[str, str]:
    """(server TLS, replication TLS) Secret names: the ones `spec.certificates` names
    (CloudNativePG's serverTLSSecret, replicationTLSSecret), else the operator's own. The
    CAs always come from `<cluster>-ca`, where the operator publishes the certificates
    (never the keys) of the CAs in use, its own or the ones spec.certificates names."""
    raw = spec.get("certificates")
    given = raw if isinstance(raw, dict) else {}
    return (
        str(given.get("serverTLSSecret") or f"{cluster_name}-server"),
        str(given.get("replicationTLSSecret") or f"{cluster_name}-replication"),
    )


class Desired(NamedTuple):
    """Everything the manager applies, as one comparable value."""

    target_primary: str
    current_primary: str
    superuser_enabled: bool
    custom_conf: str
    hba: str
    ident: str
    app_user: str
    app_database: str
    app_password: str
    superuser_password: str | None
    certs: Certs
    demotion: Demotion | None = None
    """`status.demotion`: what a primary stepping down wrote (see `handover`)."""


class Transport(Protocol):
    def get(self, plural: str, name: str) -> Obj | None: ...

    def patch_status(self, patch: Obj) -> None: ...

    def post_event(self, event: Obj) -> None: ...


class KubeTransport:
    """The API server, as the pod's ServiceAccount."""

    def __init__(self, client: KubeClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def _path(self, plural: str, name: str = "") -> str:
        group = self.settings.api_group if plural == "clusters" else ""
        return path(group, "v1", plural, self.settings.namespace, name)

    def get(self, plural: str, name: str) -> Obj | None:
        return self.client.get(self._path(plural, name))

    def patch_status(self, patch: Obj) -> None:
        target = self._path("clusters", self.settings.cluster) + "/status"
        self.client.request("PATCH", target, body=patch, content_type=MERGE_PATCH)

    def post_event(self, event: Obj) -> None:
        self.client.request("POST", path("", "v1", "events", self.settings.namespace), event)


class DirTransport:
    """API objects as files: `<root>/<plural>/<name>.json`; events in `events.jsonl`."""

    def __init__(self, root: str, settings: Settings) -> None:
        self.root = Path(root)
        self.settings = settings

    def _file(self, plural: str, name: str) -> Path:
        return self.root / plural / f"{name}.json"

    def get(self, plural: str, name: str) -> Obj | None:
        try:
            data = json.loads(self._file(plural, name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise SourceError(f"{plural}/{name}: {err}") from err
        return data if isinstance(data, dict) else None

    def patch_status(self, patch: Obj) -> None:
        target = self._file("clusters", self.settings.cluster)
        with (self.root / ".lock").open("a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            body = json.loads(target.read_text(encoding="utf-8"))
            tmp = target.with_name(f"{target.name}.{self.settings.pod}.tmp")
            tmp.write_text(json.dumps(merge_patch(body, patch), indent=1), encoding="utf-8")
            tmp.replace(target)

    def post_event(self, event: Obj) -> None:
        with (self.root / "events.jsonl").open("a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write(json.dumps(event) + "\n")


def transport_for(settings: Settings, env: Mapping[str, str]) -> Transport:
    if settings.source.startswith("dir:"):
        return DirTransport(settings.source[len("dir:") :], settings)
    if settings.source != "kubernetes":
        raise SourceError(f"DRYDOCK_INSTANCE_SOURCE={settings.source!r}: kubernetes or dir:PATH")
    try:
        return KubeTransport(KubeClient.in_cluster(env), settings)
    except ApiError as err:
        raise SourceError(str(err)) from err


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies it."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# --- reading the desired state -------------------------------------------------------------


def _need(transport: Transport, plural: str, name: str) -> Obj:
    try:
        obj = transport.get(plural, name)
    except ApiError as err:
        raise SourceError(f"{plural}/{name}: {err}") from err
    if obj is None:
        raise SourceError(f"{plural}/{name} does not exist (yet)")
    return obj


def _secret(transport: Transport, name: str, *keys: str) -> tuple[str, ...]:
    data = _need(transport, "secrets", name).get("data") or {}
    try:
        return tuple(base64.b64decode(data[k]).decode() for k in keys)
    except (KeyError, ValueError) as err:
        raise SourceError(f"secrets/{name}: no usable key {err}") from err


class SecretNames:
    """Where the owner's and the superuser's passwords are: the user's own Secrets
    (`bootstrap.initdb.secret`, `superuserSecret`, as in CloudNativePG) or the generated
    `<cluster>-app` / `<cluster>-superuser`."""

    def __init__(self, app: str, superuser: str) -> None:
        self.app = app
        self.superuser = superuser


def _obj(value: object) -> Obj:
    return value if isinstance(value, dict) else {}


def secret_names(cluster: str, spec: Obj) -> SecretNames:
    initdb = _obj(_obj(spec.get("bootstrap")).get("initdb"))
    app = str(_obj(initdb.get("secret")).get("name") or f"{cluster}-app")
    superuser = str(_obj(spec.get("superuserSecret")).get("name") or f"{cluster}-superuser")
    return SecretNames(app, superuser)


def fetch(transport: Transport, settings: Settings) -> Desired:
    """Read the Cluster, its ConfigMap and Secrets; SourceError if any is missing."""
    c = settings.cluster
    cluster = _need(transport, "clusters", c)
    spec = cluster.get("spec") or {}
    status = cluster.get("status") or {}
    config = _need(transport, "configmaps", f"{c}-config").get("data") or {}
    superuser = bool(spec.get("enableSuperuserAccess", False))
    names = secret_names(c, spec)
    initdb = _obj(_obj(spec.get("bootstrap")).get("initdb"))
    database = str(initdb.get("database") or "app")
    user = str(initdb.get("owner") or database)
    (password,) = _secret(transport, names.app, "password")
    su_password = _secret(transport, names.superuser, "password")[0] if superuser else None
    server_name, client_name = tls_secret_names(c, spec)
    ca_data = _need(transport, "secrets", f"{c}-ca").get("data") or {}
    (ca,) = _secret(transport, f"{c}-ca", "ca.crt")
    client_ca = (
        base64.b64decode(ca_data["client-ca.crt"]).decode() if ca_data.get("client-ca.crt") else ""
    )
    server = _secret(transport, server_name, "tls.crt", "tls.key")
    client = _secret(transport, client_name, "tls.crt", "tls.key")
    first = f"{c}-1"
    current = str(status.get("currentPrimary") or "")
    return Desired(
        target_primary=str(status.get("targetPrimary") or current or first),
        current_primary=current,
        superuser_enabled=superuser,
        custom_conf=str(config.get("postgresql.conf", "")),
        hba=str(config.get("pg_hba.conf", "")),
        ident=str(config.get("pg_ident.conf", "")),
        app_user=user,
        app_database=database,
        app_password=password,
        superuser_password=su_password,
        certs=Certs(ca, server[0], server[1], client[0], client[1], client_ca),
        demotion=Demotion.from_status(status.get("demotion")),
    )


def cluster_reference(transport: Transport, settings: Settings) -> Obj:
    """The Cluster as an event's involvedObject."""
    cluster = _need(transport, "clusters", settings.cluster)
    meta = cluster.get("metadata") or {}
    return {
        "apiVersion": str(cluster.get("apiVersion") or f"{settings.api_group}/v1"),
        "kind": "Cluster",
        "name": settings.cluster,
        "namespace": settings.namespace,
        "uid": str(meta.get("uid") or ""),
    }


def event(involved: Obj, settings: Settings, event_type: str, reason: str, message: str) -> Obj:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{settings.cluster}.", "namespace": settings.namespace},
        "involvedObject": involved,
        "type": event_type,
        "reason": reason,
        "message": f"{settings.pod}: {message}"[:1024],
        "source": {"component": "instance-manager", "host": settings.pod},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
