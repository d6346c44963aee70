"""One reconciliation of one Cluster: read what exists, ask `reconcile.py`, write through `k8s.py`.

This is the imperative shell around the pure decisions. It is level-triggered and
idempotent: it may run for a Cluster event, an instance pod event, a catalog change or
the periodic resync, in any order and as often as it likes, and it writes only what
differs from what it read. Per-Cluster locks keep two threads from planning the same
Cluster at once, so one step of a rolling update is never taken twice.
"""

from __future__ import annotations

import base64
import datetime
import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from drydock_operator import instances, k8s, pki, probe, reconcile, resources, topology
from drydock_operator.config import ENV_OPERATOR_IMAGE, OperatorSettings, SettingsError
from drydock_operator.model import Cluster, Instance, parse_catalog, parse_cluster, parse_instance

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class ClusterLocks:
    """One lock per Cluster (namespace, name), created on first use."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    def lock(self, namespace: str, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((namespace, name), threading.Lock())


def reconcile_cluster(
    kube: k8s.Kube, settings: OperatorSettings, locks: ClusterLocks, namespace: str, name: str
) -> topology.Plan | None:
    """Re-read the Cluster and take the next step; None when it is gone or in error."""
    with locks.lock(namespace, name):
        body = kube.get(k8s.clusters_kind(settings), namespace, name)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return None
        return _reconcile(kube, settings, body)


def _reconcile(kube: k8s.Kube, settings: OperatorSettings, body: Obj) -> topology.Plan | None:
    cluster = parse_cluster(body)
    catalog = None
    if cluster.catalog_ref is not None:
        kind = k8s.catalog_kind(settings, cluster.catalog_ref.kind)
        raw = kube.get(kind, cluster.namespace, cluster.catalog_ref.name)
        catalog = parse_catalog(raw) if raw is not None else None
    decision = reconcile.resolve_image(cluster, catalog, settings.api_group)
    current_status: Mapping[str, Any] = body.get("status") or {}

    if decision.error is not None or decision.image is None:
        if reconcile.should_warn(cluster, decision):
            log.warning("Cluster %s/%s: %s", cluster.namespace, cluster.name, decision.error)
            kube.post_event(
                body,
                event_type="Warning",
                reason=reconcile.EVENT_REASON_IMAGE,
                message=decision.error or "",
            )
        _write_status(
            kube,
            settings,
            cluster,
            current=current_status,
            decision=decision,
            plan=None,
            observed=[],
        )
        return None

    ensure_cluster_objects(kube, settings, cluster)
    prefix = settings.label_prefix
    labels = {
        f"{prefix}/cluster": cluster.name,
        f"{prefix}/podRole": "instance",
        "app.kubernetes.io/managed-by": resources.MANAGED_BY,
    }
    pods = kube.list(k8s.PODS, cluster.namespace, labels)
    observed = [parse_instance(p, resources.CONTAINER, f"{prefix}/instanceRole") for p in pods]
    target = reconcile.primary_of(cluster)
    topo = topology.Topology(
        cluster=cluster.name,
        count=cluster.instances,
        image=decision.image,
        target_primary=target,
        current_primary=cluster.current_primary,
        observed=observed,
        reports=probe.reports(observed),
        supervised=cluster.primary_update_strategy == "supervised",
    )
    plan = topology.plan(topo)
    log.info(
        "Cluster %s/%s: %s %s (%s)",
        cluster.namespace,
        cluster.name,
        plan.step.value,
        ",".join(plan.instances) or "-",
        plan.reason,
    )
    _label_roles(kube, cluster, settings, topo)
    if plan.step is topology.Step.CREATE:
        for instance in plan.instances:
            kube.create(instances.pvc(cluster, settings, instance))
            kube.create(
                instances.pod(cluster, settings, instance, decision.image, instance == target)
            )
    elif plan.step is topology.Step.DELETE:
        uids = {i.name: i.uid for i in observed}
        for instance in plan.instances:
            kube.delete(k8s.PODS, cluster.namespace, instance, uids.get(instance))
    elif plan.step is topology.Step.PROMOTE:
        (chosen,) = plan.instances
        kube.patch_status(
            k8s.clusters_kind(settings),
            cluster.namespace,
            cluster.name,
            {"targetPrimary": chosen, "targetPrimaryTimestamp": _now()},
        )
        kube.post_event(
            body,
            event_type="Normal",
            reason="SwitchoverStarted" if plan.phase == topology.PHASE_SWITCHOVER else "Failover",
            message=f"{plan.reason}: promoting {chosen}",
        )
        cluster = replace(cluster, target_primary=chosen)
    _write_status(
        kube,
        settings,
        cluster,
        current=current_status,
        decision=decision,
        plan=plan,
        observed=observed,
    )
    return plan


def _label_roles(
    kube: k8s.Kube, cluster: Cluster, settings: OperatorSettings, topo: topology.Topology
) -> None:
    """Keep each pod's instanceRole label on the role its manager confirmed: the -rw and
    -ro Services select on it."""
    key = f"{settings.label_prefix}/instanceRole"
    current = {i.name: i.role for i in topo.observed}
    for name, role in topology.role_labels(topo).items():
        if current.get(name) != role:
            kube.patch_labels(k8s.PODS, cluster.namespace, name, {key: role})


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_status(
    kube: k8s.Kube,
    settings: OperatorSettings,
    cluster: Cluster,
    *,
    current: Mapping[str, Any],
    decision: reconcile.ImageDecision,
    plan: topology.Plan | None,
    observed: list[Instance],
) -> None:
    desired = reconcile.desired_status(cluster, decision, plan, observed)
    if "instances" in desired:  # the scale subresource's labelSelectorPath
        desired["selector"] = f"{settings.label_prefix}/cluster={cluster.name}"
    patch = reconcile.status_patch(current, desired)
    if patch:
        kube.patch_status(k8s.clusters_kind(settings), cluster.namespace, cluster.name, patch)


def ensure_cluster_objects(kube: k8s.Kube, settings: OperatorSettings, cluster: Cluster) -> None:
    """Everything a Cluster owns except its instances; writes only what is missing or stale."""
    ns = cluster.namespace
    if kube.get(k8s.SERVICE_ACCOUNTS, ns, cluster.name) is None:
        kube.create(resources.service_account(cluster, settings))
    _ensure_exact(kube, resources.role(cluster, settings), "rules")
    if kube.get(k8s.ROLE_BINDINGS, ns, cluster.name) is None:
        kube.create(resources.role_binding(cluster, settings))
    _ensure_exact(kube, resources.config_map(cluster, settings), "data")
    _ensure_credentials(kube, settings, cluster)
    _ensure_certificates(kube, settings, cluster)
    for service in resources.services(cluster, settings):
        if kube.get(k8s.SERVICES, ns, service["metadata"]["name"]) is None:
            kube.create(service)


def _ensure_exact(kube: k8s.Kube, desired: Obj, field: str) -> None:
    """Create `desired`, or replace it when `field` drifted (Role rules, ConfigMap data)."""
    meta = desired["metadata"]
    existing = kube.get(k8s.KIND_OF_OBJECT[desired["kind"]], meta["namespace"], meta["name"])
    if existing is None:
        kube.create(desired)
    elif (existing.get(field) or {}) != desired[field]:
        kube.replace(desired, existing["metadata"]["resourceVersion"])


def _ensure_credentials(kube: k8s.Kube, settings: OperatorSettings, cluster: Cluster) -> None:
    ns = cluster.namespace
    # The user's own Secret (bootstrap.initdb.secret) is theirs to create.
    own = cluster.initdb.secret is not None
    if not own and kube.get(k8s.SECRETS, ns, resources.app_secret_name(cluster)) is None:
        kube.create(resources.app_secret(cluster, settings, pki.new_password()))
    if cluster.superuser_secret is not None:
        return  # the user's Secret: never generated, never deleted
    superuser = kube.get(k8s.SECRETS, ns, resources.superuser_secret_name(cluster))
    existing = None
    if superuser is not None:
        meta = superuser["metadata"]
        existing = reconcile.ExistingSecret(
            managed_by=(meta.get("labels") or {}).get("app.kubernetes.io/managed-by"),
            owner_uids=tuple(o.get("uid", "") for o in meta.get("ownerReferences") or []),
        )
    action = reconcile.superuser_secret_action(cluster, existing, resources.MANAGED_BY)
    if action is reconcile.SecretAction.CREATE:
        kube.create(resources.superuser_secret(cluster, settings, pki.new_password()))
    elif action is reconcile.SecretAction.DELETE and superuser is not None:
        meta = superuser["metadata"]
        kube.delete(k8s.SECRETS, ns, meta["name"], meta.get("uid"))


def _ensure_certificates(kube: k8s.Kube, settings: OperatorSettings, cluster: Cluster) -> None:
    ns = cluster.namespace
    server_name = resources.server_secret_name(cluster)
    replication_name = resources.replication_secret_name(cluster)
    need_server = kube.get(k8s.SECRETS, ns, server_name) is None
    need_replication = kube.get(k8s.SECRETS, ns, replication_name) is None
    ca_obj = kube.get(k8s.SECRETS, ns, resources.ca_secret_name(cluster))
    if ca_obj is None:
        ca = pki.new_ca(f"{cluster.name}.{ns}")
        if kube.create(resources.ca_secret(cluster, settings, ca.cert_pem, ca.key_pem)) is None:
            return  # another reconcile made a CA first; sign with it next time
        need_server = need_replication = True
    elif need_server or need_replication:
        data = ca_obj.get("data") or {}
        ca = pki.KeyPair(_b64(data.get("ca.crt")), _b64(data.get("ca.key")))
    else:
        return
    if need_server:
        pair = pki.new_server_cert(ca, resources.server_dns_names(cluster))
        kube.create(
            resources.tls_secret(cluster, settings, server_name, pair.cert_pem, pair.key_pem)
        )
    if need_replication:
        pair = pki.new_client_cert(ca, resources.REPLICATION_USER)
        kube.create(
            resources.tls_secret(cluster, settings, replication_name, pair.cert_pem, pair.key_pem)
        )


def _b64(value: object) -> str:
    return base64.b64decode(str(value or "")).decode()


def clusters_for_catalog(
    kube: k8s.Kube, settings: OperatorSettings, catalog_body: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """(namespace, name) of every Cluster that references this catalog by kind and name."""
    catalog = parse_catalog(catalog_body)
    namespace = catalog.namespace if catalog.kind == "ImageCatalog" else None
    found = []
    for raw in kube.list(k8s.clusters_kind(settings), namespace, {}):
        ref = (raw.get("spec") or {}).get("imageCatalogRef") or {}
        if ref.get("kind") == catalog.kind and ref.get("name") == catalog.name:
            meta = raw["metadata"]
            found.append((str(meta["namespace"]), str(meta["name"])))
    return found


def with_operator_image(
    kube: k8s.Kube, settings: OperatorSettings, env: Mapping[str, str]
) -> OperatorSettings:
    """Settings that name this operator's own image, which every instance pod's
    bootstrap-controller runs: DRYDOCK_OPERATOR_IMAGE, or else the image the operator's
    own pod runs (by digest when the node reports one), found through POD_NAME and
    POD_NAMESPACE. Without either the operator cannot create instances: SettingsError."""
    if settings.operator_image:
        return settings
    name, namespace = env.get("POD_NAME", ""), env.get("POD_NAMESPACE", "")
    image = kube.own_image(namespace, name) if name and namespace else None
    if not image:
        raise SettingsError(
            f"{ENV_OPERATOR_IMAGE} is not set and the operator's own pod is unknown "
            "(set POD_NAME and POD_NAMESPACE from the downward API)"
        )
    log.info("instance pods will copy the instance manager from %s", image)
    return replace(settings, operator_image=image)


def all_clusters(kube: k8s.Kube, settings: OperatorSettings) -> list[tuple[str, str]]:
    return [
        (str(c["metadata"]["namespace"]), str(c["metadata"]["name"]))
        for c in kube.list(k8s.clusters_kind(settings), None, {})
    ]
