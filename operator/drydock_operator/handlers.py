"""kopf registrations, and nothing else: each handler hands over to `controller.py`.

Run with `kopf run --all-namespaces -m drydock_operator.handlers`. The handlers react to
Cluster events, to instance pod events (a pod became Ready or went away: the next step
of a rolling update may be due), and to ImageCatalog/ClusterImageCatalog events (a new
digest for some major: every Cluster referencing the catalog is reconciled). A resync
task re-reconciles every Cluster periodically, so an API error in one event handler is
repaired without storing retry state on the Cluster. Only event handlers are used, so
the operator never adds finalizers or kopf annotations to objects it does not own.

`register()` takes the registry and settings explicitly; importing this module registers
on kopf's default registry with settings read from the environment, which is what
`kopf run -m` needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from drydock_operator import controller, k8s, metrics, resources, webhooks
from drydock_operator.config import OperatorSettings, load_settings

log = logging.getLogger(__name__)


def _reconcile_one(memo: kopf.Memo, target: tuple[str, str]) -> None:
    namespace, name = target
    with memo.metrics.timed() as ok:
        try:
            controller.reconcile_cluster(
                memo.kube,
                memo.settings,
                memo.locks,
                namespace,
                name,
                on_image=memo.metrics.set_image,
            )
            ok[0] = True
        except (k8s.ApiError, ValueError) as err:
            if isinstance(err, k8s.ApiError) and err.not_found and _gone(memo, namespace, name):
                # Deleted while it was being reconciled (its status write found nothing):
                # nothing failed, the deletion event ends it.
                log.info("Cluster %s/%s: deleted during its reconcile", namespace, name)
                ok[0] = True
                return
            log.error("Cluster %s/%s: reconcile failed: %s", namespace, name, err)


def _gone(memo: kopf.Memo, namespace: str, name: str) -> bool:
    try:
        body = memo.kube.get(k8s.clusters_kind(memo.settings), namespace, name)
    except k8s.ApiError:
        return False
    return body is None or bool(body.get("metadata", {}).get("deletionTimestamp"))


def _reconcile_many(memo: kopf.Memo, targets: list[tuple[str, str]]) -> None:
    """Reconcile each (namespace, name), up to `workers` at once (a catalog shared by many
    Clusters reaches all of them sooner); one Cluster failing does not stop the others."""
    if len(targets) <= 1 or memo.settings.workers == 1:
        for target in targets:
            _reconcile_one(memo, target)
        return
    with ThreadPoolExecutor(max_workers=memo.settings.workers) as pool:
        list(pool.map(lambda target: _reconcile_one(memo, target), targets))


async def _resync(memo: kopf.Memo, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            targets = await asyncio.to_thread(controller.all_clusters, memo.kube, memo.settings)
        except k8s.ApiError as err:
            log.error("resync: cannot list Clusters: %s", err)
            continue
        await asyncio.to_thread(_reconcile_many, memo, targets)


def register(registry: kopf.OperatorRegistry, operator_settings: OperatorSettings) -> None:
    """Register every handler for `operator_settings.api_group` on `registry`."""
    group, version = operator_settings.api_group, operator_settings.api_version
    prefix = operator_settings.label_prefix
    instance_labels = {
        "app.kubernetes.io/managed-by": resources.MANAGED_BY,
        f"{prefix}/podRole": "instance",
    }

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.peering.standalone = True
        settings.posting.enabled = False  # events are posted deliberately, in k8s.py
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        memo.kube = k8s.Kube(k8s.load_configuration(os.environ), operator_settings)
        settings.admission.server = webhooks.server(
            lambda: memo.kube, operator_settings, os.environ
        )
        settings.admission.managed = None  # the manifests ship the configurations (webhooks.py)
        memo.settings = await asyncio.to_thread(
            controller.with_operator_image, memo.kube, operator_settings, os.environ
        )
        memo.locks = controller.ClusterLocks()
        memo.metrics = metrics.Metrics()
        memo.metrics_server = metrics.MetricsServer(
            memo.metrics, operator_settings.metrics_host, operator_settings.metrics_port
        )
        memo.resync = asyncio.get_running_loop().create_task(
            _resync(memo, operator_settings.resync_seconds)
        )

    @kopf.on.cleanup(registry=registry)
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        memo.resync.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await memo.resync
        memo.metrics_server.close()
        memo.kube.close()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        cfg = k8s.load_configuration(os.environ)
        header = cfg.get_api_key_with_prefix("BearerToken") or ""
        scheme, _sep, token = header.partition(" ")
        return kopf.ConnectionInfo(
            server=cfg.host,
            ca_path=cfg.ssl_ca_cert,
            insecure=not cfg.verify_ssl,
            scheme=scheme if token else None,
            token=token or scheme or None,
            certificate_path=cfg.cert_file,
            private_key_path=cfg.key_file,
        )

    webhooks.register(registry, operator_settings)

    @kopf.on.event(group, version, "clusters", registry=registry)
    def cluster_changed(
        type: str, namespace: str | None, name: str, memo: kopf.Memo, **_: Any
    ) -> None:
        if type == "DELETED" and namespace:
            memo.metrics.forget(namespace, name)
        elif namespace:
            _reconcile_many(memo, [(namespace, name)])

    @kopf.on.event("", "v1", "pods", labels=instance_labels, registry=registry)
    def instance_changed(
        namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any
    ) -> None:
        cluster = labels.get(f"{prefix}/cluster")
        if cluster and namespace:
            _reconcile_many(memo, [(namespace, cluster)])

    @kopf.on.event(group, version, "imagecatalogs", registry=registry)
    @kopf.on.event(group, version, "clusterimagecatalogs", registry=registry)
    def catalog_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        try:
            targets = controller.clusters_for_catalog(memo.kube, memo.settings, body)
        except (k8s.ApiError, ValueError) as err:
            log.error("catalog %s: cannot find its Clusters: %s", body.get("metadata"), err)
            return
        _reconcile_many(memo, targets)


register(kopf.get_default_registry(), load_settings(os.environ))
