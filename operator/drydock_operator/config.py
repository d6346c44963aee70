"""Operator settings: one frozen value, read once from the environment at start-up.

The API group is configurable because the same Cluster/ImageCatalog shapes are served as
`postgresql.cnpg.io` by CloudNativePG and as `postgresql.k8s.enterprisedb.io` by EDB's
distribution. Everything that depends on the group (label prefix, the Role's apiGroups)
derives from this one value, so switching is a single environment variable.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

CNPG_GROUP = "postgresql.cnpg.io"
EDB_GROUP = "postgresql.k8s.enterprisedb.io"
SUPPORTED_GROUPS = (CNPG_GROUP, EDB_GROUP)

ENV_API_GROUP = "DRYDOCK_OPERATOR_API_GROUP"
ENV_REQUEST_TIMEOUT = "DRYDOCK_OPERATOR_REQUEST_TIMEOUT"
ENV_RESYNC_SECONDS = "DRYDOCK_OPERATOR_RESYNC_SECONDS"
ENV_WORKERS = "DRYDOCK_OPERATOR_WORKERS"
ENV_OPERATOR_IMAGE = "DRYDOCK_OPERATOR_IMAGE"
ENV_METRICS_BIND_ADDRESS = "DRYDOCK_OPERATOR_METRICS_BIND_ADDRESS"
ENV_OPERATOR_SOURCE_CIDRS = "DRYDOCK_OPERATOR_SOURCE_CIDRS"
ENV_CERT_DURATION = "DRYDOCK_OPERATOR_CERT_DURATION_SECONDS"
ENV_CERT_RENEW_BEFORE = "DRYDOCK_OPERATOR_CERT_RENEW_BEFORE_SECONDS"
ENV_DEFAULT_IMAGE = "DRYDOCK_OPERATOR_DEFAULT_IMAGE"
ENV_NAMESPACE = "DRYDOCK_OPERATOR_NAMESPACE"
ENV_WEBHOOK_PORT = "DRYDOCK_OPERATOR_WEBHOOK_PORT"
ENV_WEBHOOK_HOST = "DRYDOCK_OPERATOR_WEBHOOK_HOST"
ENV_ASSIGNED_UIDS = "DRYDOCK_OPERATOR_ASSIGNED_UIDS"
DEFAULT_NAMESPACE = "postgresql-operator-system"
DAY = 86400.0


class SettingsError(ValueError):
    """The environment asks for something this operator cannot do."""


@dataclass(frozen=True)
class OperatorSettings:
    """What the operator needs to know about its environment."""

    api_group: str = CNPG_GROUP
    """The group serving Cluster, ImageCatalog and ClusterImageCatalog."""

    api_version: str = "v1"
    """The served version of that group."""

    request_timeout: float = 10.0
    """Seconds allowed for each Kubernetes API request before it counts as failed."""

    resync_seconds: float = 30.0
    """How often every Cluster is reconciled even without an event (level-triggered)."""

    workers: int = 4
    """Clusters reconciled at once after a catalog change or on resync (API round trips
    overlap; each Cluster still has its own lock)."""

    field_manager: str = "drydock-operator"
    """The name written as the manager of every field the operator sets."""

    operator_image: str = ""
    """This operator's own image: each instance pod's bootstrap-controller copies the
    instance manager out of it (as CloudNativePG's does), so instances run the manager
    that matches the operator."""

    metrics_host: str = ""
    """Where the Prometheus endpoint listens ("" = every address, as in a pod)."""

    metrics_port: int = 8080
    """Its port (0 = any free port, for tests that run several operators on one host)."""

    operator_source_cidrs: tuple[str, ...] = ()
    """Addresses the operator also connects from (an operator outside the cluster's pod
    network, such as the in-process one of the e2e tests on the node's host)."""

    cert_duration_seconds: float = 90 * DAY
    """Lifetime of the server and replication certificates the operator signs."""

    cert_renew_before_seconds: float = 7 * DAY
    """Renew a certificate when less than this remains (CloudNativePG: 7 days)."""

    default_image: str = ""
    """The image of a Cluster that names neither `imageName` nor `imageCatalogRef` (as
    CloudNativePG's default image); empty: such a Cluster is refused at admission."""

    namespace: str = DEFAULT_NAMESPACE
    """The operator's own namespace: its webhook CA Secret and Service live there, and
    Cluster network policies let it reach the instances' 8000."""

    webhook_port: int = 9443
    """Where the admission webhook server listens (0: any free port, for tests)."""

    webhook_host: str = ""
    """Outside a cluster (dev, in-process tests): the address the API server reaches the
    webhook server at, written as a URL into the webhook configurations. Empty: in a pod,
    the configurations name the operator's Service."""

    assigned_uids: bool = False
    """The platform assigns UIDs (OpenShift's restricted SCC): instance pods then carry
    no runAsUser/runAsGroup/fsGroup of their own."""

    @property
    def label_prefix(self) -> str:
        """`cnpg.io` or `k8s.enterprisedb.io`, as the matching operator labels its pods."""
        return self.api_group.removeprefix("postgresql.")

    @property
    def api_version_full(self) -> str:
        return f"{self.api_group}/{self.api_version}"


def _positive_float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as err:
        raise SettingsError(f"{key}={raw!r} is not a number") from err
    if value <= 0:
        raise SettingsError(f"{key}={raw!r} must be positive")
    return value


def load_settings(env: Mapping[str, str]) -> OperatorSettings:
    """Build settings from an environment mapping (pass `os.environ`)."""
    group = env.get(ENV_API_GROUP) or CNPG_GROUP
    if group not in SUPPORTED_GROUPS:
        raise SettingsError(f"{ENV_API_GROUP}={group!r}: expected one of {SUPPORTED_GROUPS}")
    host, port = _bind_address(env)
    duration = _positive_float(env, ENV_CERT_DURATION, 90 * DAY)
    renew = _positive_float(env, ENV_CERT_RENEW_BEFORE, 7 * DAY)
    if renew >= duration:
        raise SettingsError(
            f"{ENV_CERT_RENEW_BEFORE}={renew:g} must be less than {ENV_CERT_DURATION}={duration:g}"
        )
    return OperatorSettings(
        api_group=group,
        request_timeout=_positive_float(env, ENV_REQUEST_TIMEOUT, 10.0),
        resync_seconds=_positive_float(env, ENV_RESYNC_SECONDS, 30.0),
        workers=_workers(env),
        operator_image=env.get(ENV_OPERATOR_IMAGE, ""),
        metrics_host=host,
        metrics_port=port,
        operator_source_cidrs=_cidrs(env),
        cert_duration_seconds=duration,
        cert_renew_before_seconds=renew,
        default_image=env.get(ENV_DEFAULT_IMAGE, ""),
        namespace=env.get(ENV_NAMESPACE) or env.get("POD_NAMESPACE") or DEFAULT_NAMESPACE,
        webhook_port=_port(env),
        webhook_host=env.get(ENV_WEBHOOK_HOST, ""),
        assigned_uids=_flag(env, ENV_ASSIGNED_UIDS),
    )


def _bind_address(env: Mapping[str, str]) -> tuple[str, int]:
    """`host:port` or `:port` (controller-runtime's --metrics-bind-address form)."""
    raw = env.get(ENV_METRICS_BIND_ADDRESS) or ":8080"
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise SettingsError(f"{ENV_METRICS_BIND_ADDRESS}={raw!r}: expected HOST:PORT or :PORT")
    return host.strip("[]"), int(port)


def _cidrs(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get(ENV_OPERATOR_SOURCE_CIDRS) or ""
    found = []
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as err:
            raise SettingsError(f"{ENV_OPERATOR_SOURCE_CIDRS}: {item!r} is not a CIDR") from err
    return tuple(found)


def _port(env: Mapping[str, str]) -> int:
    raw = env.get(ENV_WEBHOOK_PORT) or "9443"
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise SettingsError(f"{ENV_WEBHOOK_PORT}={raw!r} must be a port number (0: any free one)")
    return int(raw)


def _flag(env: Mapping[str, str], key: str) -> bool:
    raw = (env.get(key) or "false").lower()
    if raw not in ("true", "false"):
        raise SettingsError(f"{key}={raw!r} must be true or false")
    return raw == "true"


def _workers(env: Mapping[str, str]) -> int:
    raw = env.get(ENV_WORKERS) or "4"
    if not raw.isdigit() or not 1 <= int(raw) <= 32:
        raise SettingsError(f"{ENV_WORKERS}={raw!r} must be a whole number from 1 to 32")
    return int(raw)
