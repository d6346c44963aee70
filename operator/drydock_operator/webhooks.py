"""The admission webhooks: kopf's server on 9443, the CA behind it, the configurations.

`register()` adds kopf's validating and mutating handlers (their ids are the URL paths the
shipped webhook configurations name: `/validate-cluster`, `/mutate-cluster`,
`/validate-imagecatalog`, `/validate-clusterimagecatalog`) and `server()` is what kopf runs
as `settings.admission.server`: on each (re)start it

1. reads the CA from the Secret `postgresql-operator-ca` in the operator's namespace, or
   makes one (again when it nears its end, keeping the old certificate in the bundle);
2. signs a server certificate for the names the API server dials, written to a private
   temporary folder for kopf's `WebhookServer` (TLS, port 9443 or the configured one);
3. injects the CA bundle and the address into the two webhook configurations the
   manifests ship (`get` + `patch` on those two names only), keeping their rules;
4. serves until the certificate is due for renewal, then starts over.

The operator never creates the configurations (that would need `create` on any name):
they are installed with the manifests, `failurePolicy: Fail`, so no Cluster is admitted
unchecked while the operator is down. When they are absent (a development control plane
without them) it logs once and serves anyway.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ipaddress
import logging
import socket
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast

import kopf

from drydock_operator import admission, k8s, webhook_pki
from drydock_operator.config import ENV_WEBHOOK_PORT, OperatorSettings
from drydock_operator.pki import KeyPair

log = logging.getLogger(__name__)

VALIDATING_KIND = k8s.Kind(
    "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", False
)
MUTATING_KIND = k8s.Kind(
    "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", False
)
CONFIGURATIONS = (
    (VALIDATING_KIND, webhook_pki.VALIDATING),
    (MUTATING_KIND, webhook_pki.MUTATING),
)
MERGE_PATCH = "application/merge-patch+json"
IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"
SERVICE_PORT = 443


def in_pod(env: Mapping[str, str]) -> bool:
    return bool(env.get(IN_CLUSTER_ENV))


def target(settings: OperatorSettings, env: Mapping[str, str]) -> tuple[str, str, tuple[str, ...]]:
    """(listen address, URL host or "" for the Service, certificate names)."""
    if settings.webhook_host or not in_pod(env):
        host = settings.webhook_host or "127.0.0.1"
        addr = host if _is_ip(host) else "0.0.0.0"  # noqa: S104  (a named host: any interface)
        return addr, host, (host,)
    return "0.0.0.0", "", webhook_pki.dns_names(settings.namespace)  # noqa: S104  (in a pod)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# --- the CA Secret ------------------------------------------------------------------------


def _decode(data: Mapping[str, Any], key: str) -> str:
    raw = data.get(key)
    return base64.b64decode(raw).decode() if isinstance(raw, str) and raw else ""


def provision_ca(
    kube: k8s.Kube, settings: OperatorSettings, now: datetime.datetime
) -> tuple[KeyPair, str]:
    """The webhook CA and the previous CA certificate ("" if none), made or renewed here."""
    secret = kube.get(k8s.SECRETS, settings.namespace, webhook_pki.CA_SECRET)
    data = (secret or {}).get("data") or {}
    stored = KeyPair(_decode(data, "tls.crt"), _decode(data, "tls.key")) if secret else None
    if stored is not None and webhook_pki.ca_usable(stored, now):
        return stored, _decode(data, "previous.crt")
    ca = webhook_pki.fresh_ca()
    previous = stored.cert_pem if stored else ""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": webhook_pki.CA_SECRET,
            "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/name": "postgresql-operator"},
        },
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": ca.cert_pem, "tls.key": ca.key_pem, "previous.crt": previous},
    }
    if secret is None:
        if kube.create(body) is None:  # another operator replica made one first
            return provision_ca(kube, settings, now)
        log.info("webhook CA created in Secret %s/%s", settings.namespace, webhook_pki.CA_SECRET)
    else:
        kube.replace(body, str(secret["metadata"]["resourceVersion"]))
        log.info("webhook CA renewed in Secret %s/%s", settings.namespace, webhook_pki.CA_SECRET)
    return ca, previous


# --- the webhook configurations ----------------------------------------------------------


def client_config(
    webhook: Mapping[str, Any], settings: OperatorSettings, url_base: str, ca_bundle: str
) -> dict[str, Any]:
    """The clientConfig for one webhook of a shipped configuration: its path kept, the
    address (URL outside the cluster, Service inside) and CA bundle set."""
    shipped = webhook.get("clientConfig") or {}
    path = str((shipped.get("service") or {}).get("path") or "")
    if not path and shipped.get("url"):
        path = "/" + str(shipped["url"]).split("://", 1)[-1].split("/", 1)[-1]
    config: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle.encode()).decode()}
    if url_base:
        config["url"] = url_base + path
    else:
        config["service"] = {
            "namespace": settings.namespace,
            "name": webhook_pki.SERVICE,
            "path": path,
            "port": SERVICE_PORT,
        }
    return config


def inject(kube: k8s.Kube, settings: OperatorSettings, url_base: str, ca_bundle: str) -> int:
    """Write the address and CA into both configurations; how many were found."""
    found = 0
    for kind, name in CONFIGURATIONS:
        current = kube.get(kind, None, name)
        if current is None:
            log.info(
                "%s %s is not installed: the API server will not call this webhook",
                kind.plural,
                name,
            )
            continue
        found += 1
        webhooks = [
            {**w, "clientConfig": client_config(w, settings, url_base, ca_bundle)}
            for w in current.get("webhooks") or []
        ]
        body = {
            "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            "webhooks": webhooks,
        }
        kube.request("PATCH", kind.path(None, name), body=body, content_type=MERGE_PATCH)
        log.info("injected the webhook CA and address into %s %s", kind.plural, name)
    return found


# --- kopf's server, restarted on renewal --------------------------------------------------


def ensure_port_free(addr: str, port: int) -> None:
    """kopf binds with SO_REUSEPORT, so a second operator on the same port would share it
    silently (and answer with the wrong CA half the time): refuse to start instead."""
    if not port:
        return
    with socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET) as probe:
        try:
            probe.bind((addr, port))
        except OSError as err:
            raise RuntimeError(
                f"the webhook port {addr}:{port} is in use ({err.strerror}); "
                f"set {ENV_WEBHOOK_PORT} to another port"
            ) from err


def server(kube_of: Any, settings: OperatorSettings, env: Mapping[str, str]) -> Any:
    """kopf's `settings.admission.server`: an async generator of client configs.

    `kube_of` returns the operator's `k8s.Kube` (made at start-up, after this is set).
    """
    addr, host, names = target(settings, env)

    async def serve(fn: Any) -> AsyncIterator[Any]:
        ensure_port_free(addr, settings.webhook_port)
        with tempfile.TemporaryDirectory(prefix="drydock-webhook-") as folder:
            while True:
                now = datetime.datetime.now(datetime.UTC)
                kube = kube_of()
                ca, previous = await asyncio.to_thread(provision_ca, kube, settings, now)
                creds = webhook_pki.credentials(ca, previous, names, now)
                cert, key = Path(folder, "tls.crt"), Path(folder, "tls.key")
                key.touch(mode=0o600)
                key.write_text(creds.server.key_pem)
                cert.write_text(creds.server.cert_pem)
                inner = kopf.WebhookServer(
                    addr=addr,
                    port=settings.webhook_port or None,
                    host=host or None,
                    cadata=creds.ca_bundle.encode(),
                    certfile=str(cert),
                    pkeyfile=str(key),
                )
                configs = cast(AsyncGenerator[Any, None], inner(fn))
                try:
                    config = await configs.__anext__()
                    url = str(config.get("url") or "")
                    url_base = url.rstrip("/") if host else ""
                    await asyncio.to_thread(inject, kube, settings, url_base, creds.ca_bundle)
                    log.info(
                        "admission webhooks served at %s until %s", url, creds.renew_at.isoformat()
                    )
                    yield config
                    wait = (creds.renew_at - datetime.datetime.now(datetime.UTC)).total_seconds()
                    await asyncio.sleep(max(wait, 1.0))
                finally:
                    with contextlib.suppress(Exception):
                        await configs.aclose()

    return serve


# --- the handlers -------------------------------------------------------------------------


def _refuse(kind: str, name: str, refusals: list[admission.Refusal]) -> None:
    if refusals:
        raise kopf.AdmissionError(admission.message(kind, name, refusals), code=422)


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    group, version = settings.api_group, settings.api_version
    operations: list[kopf.Operation] = ["CREATE", "UPDATE"]

    @kopf.on.validate(
        group, version, "clusters", id="validate-cluster", operations=operations, registry=registry
    )
    def validate_cluster(body: kopf.Body, **kwargs: Any) -> None:
        refusals = admission.check_cluster(body, kwargs.get("old"), settings.default_image)
        _refuse("Cluster", str(body.get("metadata", {}).get("name")), refusals)

    @kopf.on.mutate(
        group, version, "clusters", id="mutate-cluster", operations=operations, registry=registry
    )
    def mutate_cluster(body: kopf.Body, patch: kopf.Patch, warnings: list[str], **_: Any) -> None:
        warnings.extend(admission.cluster_warnings(body.get("spec") or {}))
        for key, value in admission.cluster_defaults(
            body.get("spec") or {}, settings.default_image
        ).items():
            patch.setdefault("spec", {})[key] = value

    for plural, kind in (
        ("imagecatalogs", "ImageCatalog"),
        ("clusterimagecatalogs", "ClusterImageCatalog"),
    ):

        def validate_catalog(body: kopf.Body, catalog_kind: str = kind, **_: Any) -> None:
            name = str(body.get("metadata", {}).get("name"))
            _refuse(catalog_kind, name, admission.check_catalog(body))

        kopf.on.validate(
            group,
            version,
            plural,
            id=f"validate-{plural[:-1]}",
            operations=operations,
            registry=registry,
        )(validate_catalog)
