"""Pure specs of the instances: one Pod and one PersistentVolumeClaim each, no StatefulSet.

Like CloudNativePG, the operator owns each instance directly, so a rolling update can
choose the order (replicas first, primary last) instead of a StatefulSet's fixed one.
Every pod passes Pod Security "restricted": never root (uid/gid 26, the operand images'
postgres user), read-only root filesystem with emptyDirs where PostgreSQL must write, no
privilege escalation, no capabilities, RuntimeDefault seccomp.
"""

from __future__ import annotations

from drydock_operator.config import OperatorSettings
from drydock_operator.model import APPARMOR_PREFIX, Cluster
from drydock_operator.resources import (
    CONTAINER,
    PGDATA,
    PGDATA_MOUNT,
    PORT_METRICS,
    PORT_POSTGRESQL,
    PORT_STATUS,
    POSTGRES_GID,
    POSTGRES_UID,
    SOCKET_DIR,
    Obj,
    cluster_labels,
    object_meta,
)

BOOTSTRAP_CONTROLLER = "bootstrap-controller"
INITDB = "initdb"
JOIN = "join"
CONTROLLER_DIR = "/controller"
MANAGER_FILE = "manager.pyz"
OPERATOR_MANAGER = "/opt/operator/manager.pyz"  # where the operator image keeps it


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


def pod_security_context(cluster: Cluster, settings: OperatorSettings) -> Obj:
    """Pod level: never root; `postgresUID`/`postgresGID` (default 26, the operand images'
    postgres user), or none at all where the platform assigns UIDs (OpenShift's restricted
    SCC sets them from the namespace's range and refuses pods that name their own)."""
    context: Obj = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if not settings.assigned_uids:
        context.update(
            {
                "runAsUser": cluster.postgres_uid,
                "runAsGroup": cluster.postgres_gid,
                "fsGroup": cluster.postgres_gid,
                # Only a fresh volume is handed to the group: a recursive pass on every
                # re-created pod would make the data directory group-writable, which
                # PostgreSQL refuses.
                "fsGroupChangePolicy": "OnRootMismatch",
            }
        )
    return context


def container_security_context(
    settings: OperatorSettings, uid: int = POSTGRES_UID, gid: int = POSTGRES_GID
) -> Obj:
    """Container level: what Pod Security Standards `restricted` asks, and a read-only root."""
    context: Obj = {"runAsNonRoot": True}
    if not settings.assigned_uids:
        context.update({"runAsUser": uid, "runAsGroup": gid})
    context.update(
        {
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    )
    return context


def affinity(cluster: Cluster, settings: OperatorSettings) -> Obj:
    """CloudNativePG's `spec.affinity`: instances of one Cluster kept apart by
    `topologyKey` (preferred or required), plus nodeSelector and tolerations."""
    out: Obj = {}
    spec = cluster.affinity
    if spec.enable_pod_anti_affinity:
        term = {
            "labelSelector": {
                "matchExpressions": [
                    {
                        "key": f"{settings.label_prefix}/cluster",
                        "operator": "In",
                        "values": [cluster.name],
                    }
                ]
            },
            "topologyKey": spec.topology_key,
        }
        if spec.pod_anti_affinity_type == "required":
            anti: Obj = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
        else:
            anti = {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "podAffinityTerm": term}
                ]
            }
        out["affinity"] = {"podAntiAffinity": anti}
    if spec.node_selector:
        out["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        out["tolerations"] = [dict(t) for t in spec.tolerations]
    return out


def container_ports() -> list[Obj]:
    return [
        {"name": "postgresql", "containerPort": PORT_POSTGRESQL, "protocol": "TCP"},
        {"name": "status", "containerPort": PORT_STATUS, "protocol": "TCP"},
        {"name": "metrics", "containerPort": PORT_METRICS, "protocol": "TCP"},
    ]


def _resources(cluster: Cluster) -> Obj:
    out: Obj = {}
    if cluster.resources.requests:
        out["requests"] = dict(cluster.resources.requests)
    if cluster.resources.limits:
        out["limits"] = dict(cluster.resources.limits)
    return out


def init_container_name(primary: bool) -> str:
    """`initdb` creates a new Cluster's first data directory, `join` clones a replica's.
    Both do nothing when the PVC already holds one (a re-created pod)."""
    return INITDB if primary else JOIN


def container_names(primary: bool) -> tuple[str, ...]:
    """The pod's containers, named as the security guide's AppArmor section lists them."""
    return (BOOTSTRAP_CONTROLLER, init_container_name(primary), CONTAINER)


def _env(cluster: Cluster, settings: OperatorSettings) -> list[Obj]:
    field = {"valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    return [
        {"name": "PGDATA", "value": PGDATA},
        {"name": "PGHOST", "value": SOCKET_DIR},
        {"name": "CLUSTER_NAME", "value": cluster.name},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NAMESPACE", **field},
        {"name": "DRYDOCK_API_GROUP", "value": settings.api_group},
        {"name": "DRYDOCK_CONTROLLER_DIR", "value": CONTROLLER_DIR},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]


def _mounts(*names: str) -> list[Obj]:
    paths = {
        "pgdata": PGDATA_MOUNT,
        "scratch-data": CONTROLLER_DIR,
        "run": SOCKET_DIR,
        # Writable emptyDirs under a read-only root, not the host's directories.
        "tmp": "/tmp",  # noqa: S108
        "shm": "/dev/shm",  # noqa: S108
    }
    return [{"name": n, "mountPath": paths[n]} for n in names]


def pod(
    cluster: Cluster,
    settings: OperatorSettings,
    instance: str,
    image: str,
    primary: bool,
) -> Obj:
    """One instance: the instance manager runs PostgreSQL on the instance's own PVC.

    `bootstrap-controller` (the operator image) copies the manager into the scratch
    emptyDir; `initdb` or `join` (the operand image) prepares the data directory; the
    `postgres` container runs the manager as PID 1. The manager reads its configuration,
    passwords and certificates from the API as the Cluster's ServiceAccount, so nothing
    secret is mounted except that account's token.
    """
    prefix = settings.label_prefix
    labels = {
        **cluster_labels(cluster, settings),
        f"{prefix}/instanceName": instance,
        f"{prefix}/instanceRole": "primary" if primary else "replica",
        f"{prefix}/podRole": "instance",
    }
    names = container_names(primary)
    annotations = {
        key: value for key, value in cluster.apparmor if key.removeprefix(APPARMOR_PREFIX) in names
    }
    meta = object_meta(cluster, settings, instance, labels=labels)
    if annotations:
        meta["annotations"] = annotations
    manager = ["python3", f"{CONTROLLER_DIR}/{MANAGER_FILE}"]
    env = _env(cluster, settings)
    operand_mounts = _mounts("pgdata", "scratch-data", "run", "tmp", "shm")
    operand_context = container_security_context(
        settings, cluster.postgres_uid, cluster.postgres_gid
    )
    container: Obj = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [*manager, "run"],
        "env": env,
        "ports": container_ports(),
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "status"},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "securityContext": operand_context,
        "volumeMounts": operand_mounts,
    }
    resources = _resources(cluster)
    if resources:
        container["resources"] = resources
    init_containers = [
        {
            "name": BOOTSTRAP_CONTROLLER,
            "image": settings.operator_image,
            "imagePullPolicy": "IfNotPresent",
            "command": [
                "python3",
                OPERATOR_MANAGER,
                "bootstrap",
                f"{CONTROLLER_DIR}/{MANAGER_FILE}",
            ],
            "securityContext": container_security_context(
                settings, cluster.postgres_uid, cluster.postgres_gid
            ),
            "volumeMounts": _mounts("scratch-data"),
        },
        {
            "name": init_container_name(primary),
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "command": [*manager, init_container_name(primary)],
            "env": env,
            "securityContext": operand_context,
            "volumeMounts": operand_mounts,
        },
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "hostname": instance,
            "serviceAccountName": cluster.name,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 30,
            "securityContext": pod_security_context(cluster, settings),
            **affinity(cluster, settings),
            "initContainers": init_containers,
            "containers": [container],
            "volumes": [
                {"name": "pgdata", "persistentVolumeClaim": {"claimName": instance}},
                {"name": "scratch-data", "emptyDir": {}},
                {"name": "run", "emptyDir": {}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "shm", "emptyDir": {"medium": "Memory"}},
            ],
        },
    }
