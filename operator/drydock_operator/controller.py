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
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from drydock_operator import (
    certs,
    instances,
    k8s,
    netpol,
    pki,
    probe,
    reconcile,
    resources,
    topology,
)
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


IssueFn = Callable[[pki.KeyPair], pki.KeyPair]
"""Issues a leaf certificate with the CA it is given."""
Leaf = tuple[str, str, str, pki.KeyPair, str, tuple[str, ...], IssueFn]
"""(the user's Secret, its field, the operator's Secret, the CA, its Secret, names, issue)."""

ImageObserver = Callable[[str, str, str, int | None], None]
"""Told (namespace, cluster, image, major) whenever a Cluster's image is resolved."""


def reconcile_cluster(
    kube: k8s.Kube,
    settings: OperatorSettings,
    locks: ClusterLocks,
    namespace: str,
    name: str,
    on_image: ImageObserver | None = None,
) -> topology.Plan | None:
    """Re-read the Cluster and take the next step; None when it is gone or in error."""
    with locks.lock(namespace, name):
        body = kube.get(k8s.clusters_kind(settings), namespace, name)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return None
        return _reconcile(kube, settings, body, on_image)


def _reconcile(
    kube: k8s.Kube, settings: OperatorSettings, body: Obj, on_image: ImageObserver | None = None
) -> topology.Plan | None:
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

    if on_image is not None:
        on_image(cluster.namespace, cluster.name, decision.image, decision.major)
    spec_certs = certs.parse(body)
    in_place, not_renewed = ensure_cluster_objects(kube, settings, cluster, spec_certs)
    _ensure_network_policy(kube, settings, cluster, netpol.parse(body))
    cert_status = certs.status_of(spec_certs, in_place, not_renewed)
    if in_place and current_status.get("certificates") != cert_status:
        kube.patch_status(
            k8s.clusters_kind(settings),
            cluster.namespace,
            cluster.name,
            {"certificates": {**cert_status, "notRenewed": cert_status.get("notRenewed")}},
        )
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


def ensure_cluster_objects(
    kube: k8s.Kube,
    settings: OperatorSettings,
    cluster: Cluster,
    certificates: certs.CertificatesSpec | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Everything a Cluster owns except its instances; writes only what is missing or stale.
    Returns the leaf certificates in place by Secret name, and those not renewed."""
    ns = cluster.namespace
    if kube.get(k8s.SERVICE_ACCOUNTS, ns, cluster.name) is None:
        kube.create(resources.service_account(cluster, settings))
    role = certs.with_user_secrets(
        resources.role(cluster, settings), certificates or certs.CertificatesSpec()
    )
    _ensure_exact(kube, role, "rules")
    if kube.get(k8s.ROLE_BINDINGS, ns, cluster.name) is None:
        kube.create(resources.role_binding(cluster, settings))
    _ensure_exact(kube, resources.config_map(cluster, settings), "data")
    _ensure_credentials(kube, settings, cluster)
    state = _ensure_certificates(kube, settings, cluster, certificates)
    for service in resources.services(cluster, settings):
        if kube.get(k8s.SERVICES, ns, service["metadata"]["name"]) is None:
            kube.create(service)
    return state


def _ensure_network_policy(
    kube: k8s.Kube, settings: OperatorSettings, cluster: Cluster, spec: netpol.NetworkPolicySpec
) -> None:
    """Write the Cluster's NetworkPolicy while `spec.networkPolicy.enabled`; remove the one
    this operator wrote for this Cluster once it is turned off (a namesake is left alone)."""
    if spec.enabled:
        _ensure_exact(kube, netpol.network_policy(cluster, settings, spec), "spec")
        return
    existing = kube.get(k8s.NETWORK_POLICIES, cluster.namespace, netpol.policy_name(cluster))
    if existing is None:
        return
    meta = existing["metadata"]
    owners = tuple(o.get("uid", "") for o in meta.get("ownerReferences") or [])
    labels = meta.get("labels") or {}
    if labels.get("app.kubernetes.io/managed-by") == resources.MANAGED_BY and reconcile.owned_by(
        owners, cluster
    ):
        kube.delete(k8s.NETWORK_POLICIES, cluster.namespace, meta["name"], meta.get("uid"))


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


def _ensure_certificates(
    kube: k8s.Kube,
    settings: OperatorSettings,
    cluster: Cluster,
    spec: certs.CertificatesSpec | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """The CAs (the keys kept from instances), then the server and replication certificates:
    the user's when `spec.certificates` names them, else issued and renewed when due
    (`certs.renewal_reason`). Returns the leaf certificates in place by Secret name, and
    those the operator will not renew with the reason."""
    spec = spec or certs.CertificatesSpec()
    own = None
    if not (spec.server_ca_secret and spec.client_ca_secret):
        own = _ensure_own_ca(kube, settings, cluster)
        if own is None:
            return {}, {}
    server_ca = _user_ca(kube, cluster, spec.server_ca_secret, "serverCASecret") or own
    client_ca = _user_ca(kube, cluster, spec.client_ca_secret, "clientCASecret") or own
    assert server_ca is not None and client_ca is not None  # noqa: S101 - own covers either
    ca_name = resources.ca_secret_name(cluster)
    _ensure_data(
        kube,
        certs.ca_cert_secret(cluster, settings, ca_name, server_ca.cert_pem, client_ca.cert_pem),
    )
    names = certs.server_names(resources.server_dns_names(cluster), spec)
    lifetime = datetime.timedelta(seconds=settings.cert_duration_seconds)
    leaves: tuple[Leaf, ...] = (
        (
            spec.server_tls_secret,
            "serverTLSSecret",
            resources.server_secret_name(cluster),
            server_ca,
            spec.server_ca_secret or ca_name,
            names,
            lambda ca: pki.new_server_cert(ca, names, lifetime),
        ),
        (
            spec.replication_tls_secret,
            "replicationTLSSecret",
            resources.replication_secret_name(cluster),
            client_ca,
            spec.client_ca_secret or ca_name,
            (),
            lambda ca: pki.new_client_cert(ca, resources.REPLICATION_USER, lifetime),
        ),
    )
    renew_before = datetime.timedelta(seconds=settings.cert_renew_before_seconds)
    now = datetime.datetime.now(datetime.UTC)
    in_place: dict[str, str] = {}
    not_renewed: dict[str, str] = {}
    for given, field, name, ca, ca_secret, dns_names, issue in leaves:
        if given:
            data = _secret_data(kube, cluster, given, f"spec.certificates.{field}")
            in_place[given] = data.get("tls.crt", "")
            not_renewed[given] = f"user-provided ({field}): the operator does not renew it"
            continue
        existing = kube.get(k8s.SECRETS, cluster.namespace, name)
        current = _b64((existing or {}).get("data", {}).get("tls.crt")) if existing else ""
        reason = None
        if existing is not None:
            reason = certs.renewal_reason(current, ca.cert_pem, dns_names, renew_before, now)
            if reason is None:
                in_place[name] = current
                if not ca.key_pem:
                    not_renewed[name] = f"{ca_secret} has no ca.key: the operator cannot renew it"
                continue
        if not ca.key_pem:
            raise certs.CertificateError(
                f"Cluster {cluster.namespace}/{cluster.name}: cannot issue {name} "
                f"({reason or 'missing'}): {ca_secret} has no ca.key; name a "
                f"spec.certificates.{field} or give the CA's key"
            )
        if reason:
            log.info(
                "Cluster %s/%s: renewing %s: %s", cluster.namespace, cluster.name, name, reason
            )
        pair = issue(ca)
        desired = resources.tls_secret(cluster, settings, name, pair.cert_pem, pair.key_pem)
        if existing is None:
            kube.create(desired)
        else:
            kube.replace(desired, existing["metadata"]["resourceVersion"])
        in_place[name] = pair.cert_pem
    return in_place, not_renewed


def _secret_data(kube: k8s.Kube, cluster: Cluster, name: str, field: str) -> dict[str, str]:
    found = kube.get(k8s.SECRETS, cluster.namespace, name)
    if found is None:
        raise certs.CertificateError(f"{field}: Secret {cluster.namespace}/{name} not found")
    return {k: _b64(v) for k, v in (found.get("data") or {}).items()}


def _user_ca(kube: k8s.Kube, cluster: Cluster, name: str, field: str) -> pki.KeyPair | None:
    """A CA `spec.certificates` names: its certificate, and its key when it has one."""
    if not name:
        return None
    data = _secret_data(kube, cluster, name, f"spec.certificates.{field}")
    if not data.get("ca.crt"):
        raise certs.CertificateError(f"spec.certificates.{field}: Secret {name} has no ca.crt")
    return pki.KeyPair(data["ca.crt"], data.get("ca.key", ""))


def _ensure_data(kube: k8s.Kube, desired: Obj) -> None:
    """Create a Secret, or replace it when its data differs from `stringData`."""
    meta = desired["metadata"]
    existing = kube.get(k8s.SECRETS, meta["namespace"], meta["name"])
    want = {k: base64.b64encode(v.encode()).decode() for k, v in desired["stringData"].items()}
    if existing is None:
        kube.create(desired)
    elif (existing.get("data") or {}) != want:
        kube.replace(desired, existing["metadata"]["resourceVersion"])


def _ensure_own_ca(
    kube: k8s.Kube, settings: OperatorSettings, cluster: Cluster
) -> pki.KeyPair | None:
    """The operator's CA for this Cluster, its key in `-ca-key` (operator only). A `-ca`
    that still holds the key (an older operator's) gives it up to `-ca-key` here; `-ca`
    is rewritten with certificates only afterwards. None when another reconcile is
    creating it."""
    ns = cluster.namespace
    key_obj = kube.get(k8s.SECRETS, ns, certs.ca_key_secret_name(cluster))
    if key_obj is not None:
        data = key_obj.get("data") or {}
        return pki.KeyPair(_b64(data.get("ca.crt")), _b64(data.get("ca.key")))
    ca_obj = kube.get(k8s.SECRETS, ns, resources.ca_secret_name(cluster))
    legacy = (ca_obj or {}).get("data") or {}
    if legacy.get("ca.key"):
        ca = pki.KeyPair(_b64(legacy.get("ca.crt")), _b64(legacy.get("ca.key")))
    else:
        ca = pki.new_ca(f"{cluster.name}.{ns}")
    if kube.create(certs.ca_key_secret(cluster, settings, ca.cert_pem, ca.key_pem)) is None:
        return None  # another reconcile made one first; use it next time
    return ca


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
