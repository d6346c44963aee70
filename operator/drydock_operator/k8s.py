"""The one module that reads from and writes to the Kubernetes API.

It speaks plain JSON dictionaries over the official client's authenticated connection
(in-cluster service account or kubeconfig, exec plugins included) and nothing more: the
generated model classes are skipped, so a Cluster or Pod goes out exactly as
`resources.py` built it. Every request carries a timeout. Failures become `ApiError`
with the HTTP status, which callers test (404 absent, 409 already there) instead of
parsing messages.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes import client, config

from drydock_operator.config import OperatorSettings

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A request the API server answered with an error (or did not answer in time)."""

    def __init__(self, status: int, reason: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: {status} {reason}")
        self.status = status
        self.reason = reason

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


@dataclass(frozen=True)
class Kind:
    """Where a resource lives in the API: group, version, plural, scope."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        if sub:
            base += f"/{sub}"
        return base


PODS = Kind("", "v1", "pods")
PVCS = Kind("", "v1", "persistentvolumeclaims")
SECRETS = Kind("", "v1", "secrets")
CONFIGMAPS = Kind("", "v1", "configmaps")
SERVICES = Kind("", "v1", "services")
SERVICE_ACCOUNTS = Kind("", "v1", "serviceaccounts")
EVENTS = Kind("", "v1", "events")
ROLES = Kind("rbac.authorization.k8s.io", "v1", "roles")
ROLE_BINDINGS = Kind("rbac.authorization.k8s.io", "v1", "rolebindings")
NETWORK_POLICIES = Kind("networking.k8s.io", "v1", "networkpolicies")

KIND_OF_OBJECT = {
    "Pod": PODS,
    "PersistentVolumeClaim": PVCS,
    "Secret": SECRETS,
    "ConfigMap": CONFIGMAPS,
    "Service": SERVICES,
    "ServiceAccount": SERVICE_ACCOUNTS,
    "Role": ROLES,
    "RoleBinding": ROLE_BINDINGS,
    "NetworkPolicy": NETWORK_POLICIES,
}


def clusters_kind(settings: OperatorSettings) -> Kind:
    return Kind(settings.api_group, settings.api_version, "clusters")


def catalog_kind(settings: OperatorSettings, kind: str) -> Kind:
    """`ImageCatalog` (namespaced) or `ClusterImageCatalog` (cluster-scoped)."""
    if kind == "ClusterImageCatalog":
        return Kind(settings.api_group, settings.api_version, "clusterimagecatalogs", False)
    return Kind(settings.api_group, settings.api_version, "imagecatalogs")


def load_configuration(env: Mapping[str, str]) -> client.Configuration:
    """In-cluster service account first, then the kubeconfig named by $KUBECONFIG."""
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=env.get("KUBECONFIG"), client_configuration=cfg
        )
    cfg.connection_pool_maxsize = 32  # kopf's handler threads plus the reconcile workers
    return cfg


class Kube:
    """A thin JSON-in, JSON-out client with a timeout on every request."""

    def __init__(self, configuration: client.Configuration, settings: OperatorSettings) -> None:
        self._api = client.ApiClient(configuration)
        self._settings = settings

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Obj | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = list((query or {}).items())
        if method in ("POST", "PATCH", "PUT"):
            params.append(("fieldManager", self._settings.field_manager))
        serialized = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(
                *serialized, _request_timeout=self._settings.request_timeout
            )
            response.read()  # type: ignore[no-untyped-call]
        except client.ApiException as err:
            raise ApiError(int(err.status or 0), str(err.reason), method, path) from err
        except Exception as err:  # urllib3 connection and timeout errors have no common base
            raise ApiError(0, f"{type(err).__name__}: {err}", method, path) from err
        if response.status >= 400:
            reason = _status_message(response.data) or str(response.reason)
            raise ApiError(response.status, reason, method, path)
        if not response.data:
            return {}
        data = json.loads(response.data)
        return data if isinstance(data, dict) else {}

    # --- verbs -----------------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str | None, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self.request("GET", kind.path(namespace, name))
        except ApiError as err:
            if err.not_found:
                return None
            raise

    def list(self, kind: Kind, namespace: str | None, labels: Mapping[str, str]) -> list[Obj]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        data = self.request("GET", kind.path(namespace), query={"labelSelector": selector})
        items = data.get("items") or []
        return [i for i in items if isinstance(i, dict)]

    def create(self, obj: Obj) -> Obj | None:
        """Create `obj`; None when it already exists (another reconcile got there first)."""
        kind = KIND_OF_OBJECT[obj["kind"]]
        namespace = obj["metadata"].get("namespace")
        try:
            created = self.request("POST", kind.path(namespace), body=obj)
        except ApiError as err:
            if err.conflict:
                return None
            raise
        log.info("created %s %s/%s", obj["kind"], namespace, obj["metadata"]["name"])
        return created

    def replace(self, obj: Obj, resource_version: str) -> Obj:
        kind = KIND_OF_OBJECT[obj["kind"]]
        meta = obj["metadata"]
        body = {**obj, "metadata": {**meta, "resourceVersion": resource_version}}
        log.info("updating %s %s/%s", obj["kind"], meta.get("namespace"), meta["name"])
        return self.request("PUT", kind.path(meta.get("namespace"), meta["name"]), body=body)

    def delete(self, kind: Kind, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete by name (and uid when given, so a newer namesake is safe); False if gone."""
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", kind.path(namespace, name), body=body)
        except ApiError as err:
            if err.not_found or err.conflict:
                return False
            raise
        log.info("deleted %s %s/%s", kind.plural, namespace, name)
        return True

    def own_image(self, namespace: str, pod: str) -> str | None:
        """The image of a pod's first container, by digest once the node has pulled it."""
        data = self.request(
            "GET", PODS.path(namespace), query={"fieldSelector": f"metadata.name={pod}"}
        )
        items = [i for i in data.get("items") or [] if isinstance(i, dict)]
        if not items:
            return None
        statuses = (items[0].get("status") or {}).get("containerStatuses") or []
        image_id = str(statuses[0].get("imageID") or "") if statuses else ""
        if "@sha256:" in image_id:
            return image_id.split("://", 1)[-1]
        containers = (items[0].get("spec") or {}).get("containers") or []
        return str(containers[0].get("image") or "") if containers else None

    def patch_labels(self, kind: Kind, namespace: str, name: str, labels: dict[str, str]) -> Obj:
        """Merge `labels` into an object's labels (the instance pods' role label)."""
        log.info("labelling %s %s/%s %s", kind.plural, namespace, name, labels)
        return self.request(
            "PATCH",
            kind.path(namespace, name),
            body={"metadata": {"labels": labels}},
            content_type=MERGE_PATCH,
        )

    def patch_status(self, kind: Kind, namespace: str, name: str, status: Obj) -> Obj:
        return self.request(
            "PATCH",
            kind.path(namespace, name, "status"),
            body={"status": status},
            content_type=MERGE_PATCH,
        )

    def post_event(
        self,
        involved: Obj,
        *,
        event_type: str,
        reason: str,
        message: str,
    ) -> None:
        """A core/v1 Event about `involved`, as `kubectl describe` shows them."""
        meta = involved["metadata"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self._settings.field_manager},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.request("POST", EVENTS.path(meta["namespace"]), body=event)


def _status_message(data: bytes | None) -> str:
    if not data:
        return ""
    try:
        parsed = json.loads(data)
    except ValueError:
        return ""
    return str(parsed.get("message") or "") if isinstance(parsed, dict) else ""
