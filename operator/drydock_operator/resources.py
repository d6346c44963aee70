"""Pure object specs for what a Cluster owns besides its instances: RBAC, Secrets, config, Services.

Each function returns the dictionary to send to the API and nothing else happens here,
so the unit tests can pin exact RBAC rules. The instance pods and PVCs are in
`instances.py`. Names follow
CloudNativePG (`<cluster>-app`, `-superuser`, `-ca`, `-server`, `-replication`, services
`-rw`/`-ro`/`-r`, one Pod and one PVC per instance named `<cluster>-<serial>`), so tools
written for CloudNativePG find them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from drydock_operator.config import OperatorSettings
from drydock_operator.model import Cluster

MANAGED_BY = "drydock-operator"
POSTGRES_UID = 26
POSTGRES_GID = 26
PORT_POSTGRESQL = 5432
PORT_STATUS = 8000
PORT_METRICS = 9187
CONTAINER = "postgres"
PGDATA_MOUNT = "/var/lib/postgresql/data"
PGDATA = f"{PGDATA_MOUNT}/pgdata"
SOCKET_DIR = "/var/run/postgresql"
APP_USER = "app"
APP_DATABASE = "app"
REPLICATION_USER = "streaming_replica"

Obj = dict[str, Any]


# --- names -------------------------------------------------------------------------------


def app_secret_name(cluster: Cluster) -> str:
    """The owner's credentials: the user's `bootstrap.initdb.secret`, else generated."""
    return cluster.initdb.secret or f"{cluster.name}-app"


def superuser_secret_name(cluster: Cluster) -> str:
    """`postgres`'s credentials: the user's `superuserSecret`, else generated."""
    return cluster.superuser_secret or f"{cluster.name}-superuser"


def ca_secret_name(cluster: Cluster) -> str:
    return f"{cluster.name}-ca"


def server_secret_name(cluster: Cluster) -> str:
    return f"{cluster.name}-server"


def replication_secret_name(cluster: Cluster) -> str:
    return f"{cluster.name}-replication"


def config_map_name(cluster: Cluster) -> str:
    return f"{cluster.name}-config"


def service_names(cluster: Cluster) -> tuple[str, str, str]:
    return (f"{cluster.name}-rw", f"{cluster.name}-ro", f"{cluster.name}-r")


def instance_secret_names(cluster: Cluster) -> tuple[str, ...]:
    """The Secrets an instance may read: its own certificates and credentials only."""
    names = [
        ca_secret_name(cluster),
        server_secret_name(cluster),
        replication_secret_name(cluster),
        app_secret_name(cluster),
    ]
    if cluster.enable_superuser_access:
        names.append(superuser_secret_name(cluster))
    return tuple(names)


def server_dns_names(cluster: Cluster) -> tuple[str, ...]:
    """Every name a client may use to reach the cluster's services (server cert SANs)."""
    names: list[str] = []
    for svc in service_names(cluster):
        names += [
            svc,
            f"{svc}.{cluster.namespace}",
            f"{svc}.{cluster.namespace}.svc",
            f"{svc}.{cluster.namespace}.svc.cluster.local",
        ]
    return tuple(names)


# --- metadata ----------------------------------------------------------------------------


def cluster_labels(cluster: Cluster, settings: OperatorSettings) -> dict[str, str]:
    return {
        f"{settings.label_prefix}/cluster": cluster.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/name": "postgresql",
        "app.kubernetes.io/instance": cluster.name,
    }


def owner_reference(cluster: Cluster, settings: OperatorSettings) -> Obj:
    return {
        "apiVersion": settings.api_version_full,
        "kind": "Cluster",
        "name": cluster.name,
        "uid": cluster.uid,
        "controller": True,
    }


def object_meta(cluster: Cluster, settings: OperatorSettings, name: str, **extra: Any) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": cluster.namespace,
        "labels": cluster_labels(cluster, settings),
        "ownerReferences": [owner_reference(cluster, settings)],
    }
    meta.update(extra)
    return meta


# --- RBAC for the instances ----------------------------------------------------------------


def service_account(cluster: Cluster, settings: OperatorSettings) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(cluster, settings, cluster.name),
    }


def role_rules(cluster: Cluster, settings: OperatorSettings) -> list[Obj]:
    """Exactly the instance manager's permissions as the security guide lists them.

    ConfigMaps and Secrets are readable by name only, and only the Cluster's own; the
    Cluster itself can be read and its status written; Backups can be listed, read and
    deleted and their status written; events can be posted. Nothing else: no catalogs,
    no pods, no other Cluster. CloudNativePG's `pkg/specs/roles.go` also grants get/watch
    on clusters/status and get on backups/status; those add nothing (reading the parent
    resource returns the status) so they are left out.
    """
    group = settings.api_group
    return [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["get", "watch"],
            "resourceNames": [config_map_name(cluster)],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get", "watch"],
            "resourceNames": list(instance_secret_names(cluster)),
        },
        {
            "apiGroups": [group],
            "resources": ["clusters"],
            "verbs": ["get", "list", "watch"],
            "resourceNames": [cluster.name],
        },
        {
            "apiGroups": [group],
            "resources": ["clusters/status"],
            "verbs": ["update", "patch"],
            "resourceNames": [cluster.name],
        },
        {
            "apiGroups": [group],
            "resources": ["backups"],
            "verbs": ["list", "get", "delete"],
        },
        {
            "apiGroups": [group],
            "resources": ["backups/status"],
            "verbs": ["update", "patch"],
        },
        {
            "apiGroups": [""],
            "resources": ["events"],
            "verbs": ["create", "patch"],
        },
    ]


def role(cluster: Cluster, settings: OperatorSettings) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": object_meta(cluster, settings, cluster.name),
        "rules": role_rules(cluster, settings),
    }


def role_binding(cluster: Cluster, settings: OperatorSettings) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": object_meta(cluster, settings, cluster.name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": cluster.name},
        "subjects": [
            {"kind": "ServiceAccount", "name": cluster.name, "namespace": cluster.namespace}
        ],
    }


# --- Secrets --------------------------------------------------------------------------------


def _basic_auth_secret(
    cluster: Cluster, settings: OperatorSettings, name: str, user: str, password: str
) -> Obj:
    host = service_names(cluster)[0]
    port = str(PORT_POSTGRESQL)
    owner = user != "postgres"
    dbname = cluster.initdb.database if owner else "*"
    uri_db = cluster.initdb.database if owner else "postgres"
    uri = (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{host}.{cluster.namespace}:{port}/{uri_db}"
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(cluster, settings, name),
        "type": "kubernetes.io/basic-auth",
        "stringData": {
            "username": user,
            "password": password,
            "host": host,
            "port": port,
            "dbname": dbname,
            "uri": uri,
            "pgpass": f"{host}:{port}:{dbname}:{user}:{password}\n",
        },
    }


def app_secret(cluster: Cluster, settings: OperatorSettings, password: str) -> Obj:
    """The application owner's credentials (always present)."""
    return _basic_auth_secret(
        cluster, settings, app_secret_name(cluster), cluster.initdb.owner, password
    )


def superuser_secret(cluster: Cluster, settings: OperatorSettings, password: str) -> Obj:
    """The `postgres` superuser's credentials (only with enableSuperuserAccess)."""
    return _basic_auth_secret(
        cluster, settings, superuser_secret_name(cluster), "postgres", password
    )


def tls_secret(
    cluster: Cluster, settings: OperatorSettings, name: str, cert_pem: str, key_pem: str
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(cluster, settings, name),
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert_pem, "tls.key": key_pem},
    }


# --- PostgreSQL configuration ---------------------------------------------------------------

# The instance manager owns these (they describe the pod: ports, paths, certificates,
# replication plumbing) and writes them after the Cluster's parameters; the CRD refuses
# them too (tests pin the CRD's list to drydock_instance.pgfiles.fixed_parameters).
FIXED_PARAMETERS = (
    "cluster_name",
    "data_directory",
    "dynamic_shared_memory_type",
    "hba_file",
    "hot_standby",
    "ident_file",
    "listen_addresses",
    "log_destination",
    "logging_collector",
    "port",
    "primary_conninfo",
    "recovery_target_timeline",
    "ssl",
    "ssl_ca_file",
    "ssl_cert_file",
    "ssl_key_file",
    "unix_socket_directories",
    "wal_level",
    "wal_log_hints",
)


def default_parameters() -> dict[str, str]:
    """The operator's defaults, before the Cluster's own: SCRAM passwords, TLS 1.3 only."""
    return {"password_encryption": "scram-sha-256", "ssl_min_protocol_version": "TLSv1.3"}


def conf_value(value: str) -> str:
    """A postgresql.conf string literal (PostgreSQL accepts quoted numbers and units)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def postgresql_conf(cluster: Cluster) -> str:
    """The ConfigMap's postgresql.conf: defaults, then the Cluster's parameters (last wins)."""
    params = {**default_parameters(), **dict(cluster.parameters)}
    return "".join(f"{k} = {conf_value(v)}\n" for k, v in params.items())


def pg_hba_lines(cluster: Cluster) -> tuple[str, ...]:
    """CloudNativePG's order: fixed local and replication rules, the user's, then SCRAM.

    The fixed rules come first so that no user line can lock out the manager (peer over
    the socket) or the standbys (streaming_replica by certificate).
    """
    return (
        "local all all peer",
        f"hostssl postgres {REPLICATION_USER} all cert",
        f"hostssl replication {REPLICATION_USER} all cert",
        *cluster.pg_hba,
        "host all all all scram-sha-256",
    )


def config_map(cluster: Cluster, settings: OperatorSettings) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(cluster, settings, config_map_name(cluster)),
        "data": {
            "postgresql.conf": postgresql_conf(cluster),
            "pg_hba.conf": "\n".join(pg_hba_lines(cluster)) + "\n",
            "pg_ident.conf": "".join(f"{line}\n" for line in cluster.pg_ident),
        },
    }


# --- Services ---------------------------------------------------------------------------------


def services(cluster: Cluster, settings: OperatorSettings) -> list[Obj]:
    """`-rw` reaches the primary, `-ro` the replicas, `-r` any instance."""
    prefix = settings.label_prefix
    base = {f"{prefix}/cluster": cluster.name, f"{prefix}/podRole": "instance"}
    selectors: tuple[Mapping[str, str], ...] = (
        {**base, f"{prefix}/instanceRole": "primary"},
        {**base, f"{prefix}/instanceRole": "replica"},
        base,
    )
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": object_meta(cluster, settings, name),
            "spec": {
                "type": "ClusterIP",
                "selector": dict(selector),
                "ports": [
                    {
                        "name": "postgres",
                        "port": PORT_POSTGRESQL,
                        "targetPort": "postgresql",
                        "protocol": "TCP",
                    }
                ],
            },
        }
        for name, selector in zip(service_names(cluster), selectors, strict=True)
    ]
