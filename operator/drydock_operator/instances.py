"""Pure specs of the instances: one Pod and one PersistentVolumeClaim each, no StatefulSet.

Like CloudNativePG, the operator owns each instance directly, so a rolling update can
choose the order (replicas first, primary last) instead of a StatefulSet's fixed one.
Every pod passes Pod Security "restricted": never root (uid/gid 26, the operand images'
postgres user), read-only root filesystem with emptyDirs where PostgreSQL must write, no
privilege escalation, no capabilities, RuntimeDefault seccomp.
"""

from __future__ import annotations

from drydock_operator.config import OperatorSettings
from drydock_operator.model import Cluster
from drydock_operator.resources import (
    CERTS_DIR,
    CONFIG_DIR,
    CONTAINER,
    PGDATA,
    PGDATA_MOUNT,
    PORT_METRICS,
    PORT_POSTGRESQL,
    PORT_STATUS,
    POSTGRES_GID,
    POSTGRES_UID,
    SECRET_FILE_MODE,
    SOCKET_DIR,
    Obj,
    ca_secret_name,
    cluster_labels,
    config_map_name,
    object_meta,
    replication_secret_name,
    server_secret_name,
)


def pvc(cluster: Cluster, settings: OperatorSettings, instance: str) -> Obj:
    spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": cluster.storage_size}},
    }
    if cluster.storage_class:
        spec["storageClassName"] = cluster.storage_class
    labels = {
        **cluster_labels(cluster, settings),
        f"{settings.label_prefix}/instanceName": instance,
    }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_meta(cluster, settings, instance, labels=labels),
        "spec": spec,
    }


def pod_security_context() -> Obj:
    """Pod level: never root, uid/gid 26 (the operand images' postgres user)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": POSTGRES_UID,
        "runAsGroup": POSTGRES_GID,
        "fsGroup": POSTGRES_GID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Obj:
    """Container level: what Pod Security Standards `restricted` asks, and a read-only root."""
    return {
        "runAsNonRoot": True,
        "runAsUser": POSTGRES_UID,
        "runAsGroup": POSTGRES_GID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_ports() -> list[Obj]:
    return [
        {"name": "postgresql", "containerPort": PORT_POSTGRESQL, "protocol": "TCP"},
        {"name": "status", "containerPort": PORT_STATUS, "protocol": "TCP"},
        {"name": "metrics", "containerPort": PORT_METRICS, "protocol": "TCP"},
    ]


def _secret_volume(name: str, secret: str, items: tuple[str, ...]) -> Obj:
    return {
        "name": name,
        "secret": {
            "secretName": secret,
            "defaultMode": SECRET_FILE_MODE,
            "items": [{"key": k, "path": k} for k in items],
        },
    }


def _resources(cluster: Cluster) -> Obj:
    out: Obj = {}
    if cluster.resources.requests:
        out["requests"] = dict(cluster.resources.requests)
    if cluster.resources.limits:
        out["limits"] = dict(cluster.resources.limits)
    return out


def pod(
    cluster: Cluster, settings: OperatorSettings, instance: str, image: str, primary: bool
) -> Obj:
    """One instance: the PostgreSQL container on its own PVC, restricted and read-only."""
    prefix = settings.label_prefix
    labels = {
        **cluster_labels(cluster, settings),
        f"{prefix}/instanceName": instance,
        f"{prefix}/instanceRole": "primary" if primary else "replica",
        f"{prefix}/podRole": "instance",
    }
    annotations = dict(cluster.apparmor)
    meta = object_meta(cluster, settings, instance, labels=labels)
    if annotations:
        meta["annotations"] = annotations
    container: Obj = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["postgres"],
        "args": ["-D", PGDATA, "-c", f"config_file={CONFIG_DIR}/postgresql.conf"],
        "env": [
            {"name": "PGDATA", "value": PGDATA},
            {"name": "PGHOST", "value": SOCKET_DIR},
            {"name": "CLUSTER_NAME", "value": cluster.name},
            {"name": "POD_NAME", "value": instance},
            {
                "name": "NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
        ],
        "ports": container_ports(),
        "readinessProbe": {
            "exec": {"command": ["pg_isready", "-q", "-h", SOCKET_DIR]},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
        },
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "pgdata", "mountPath": PGDATA_MOUNT},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "server-tls", "mountPath": f"{CERTS_DIR}/server", "readOnly": True},
            {"name": "ca", "mountPath": f"{CERTS_DIR}/ca", "readOnly": True},
            {"name": "replication-tls", "mountPath": f"{CERTS_DIR}/replication", "readOnly": True},
            {"name": "run", "mountPath": SOCKET_DIR},
            # Writable emptyDirs under a read-only root, not the host's directories.
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
            {"name": "shm", "mountPath": "/dev/shm"},  # noqa: S108
        ],
    }
    resources = _resources(cluster)
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "hostname": instance,
            "serviceAccountName": cluster.name,
            "enableServiceLinks": False,
            "securityContext": pod_security_context(),
            "containers": [container],
            "volumes": [
                {"name": "pgdata", "persistentVolumeClaim": {"claimName": instance}},
                {"name": "config", "configMap": {"name": config_map_name(cluster)}},
                _secret_volume("server-tls", server_secret_name(cluster), ("tls.crt", "tls.key")),
                _secret_volume("ca", ca_secret_name(cluster), ("ca.crt",)),
                _secret_volume(
                    "replication-tls", replication_secret_name(cluster), ("tls.crt", "tls.key")
                ),
                {"name": "run", "emptyDir": {}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "shm", "emptyDir": {"medium": "Memory"}},
            ],
        },
    }
