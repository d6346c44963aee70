"""The objects a node needs in the API (pure specs): CoreDNS, the API server's endpoint, RBAC,
the default StorageClass.

Why: pods find Services by name through CoreDNS, and in-cluster clients (CoreDNS itself, an
instance manager) reach the API server through the `kubernetes` Service. Both are ordinary
API objects, applied by `node.up` with server-side apply; keeping their specs pure keeps
them reviewable and testable: CoreDNS runs under Pod Security "restricted" in kube-system,
as a Deployment of an image pinned by digest, with exactly the read access its kubernetes
plugin needs.

The control plane runs with `--endpoint-reconciler-type=none` (its loopback address cannot
be an endpoint), so the node publishes the `kubernetes` Service's endpoint itself: its link's
host address, where the host forwards the API server's port to loopback.
"""

from __future__ import annotations

from typing import Any

from pipeline.tools.node_layout import CLUSTER_DOMAIN, DNS_TARGET_PORT
from pipeline.tools.node_storage import PROVISIONER_USER, storage_class

JSON = dict[str, Any]
DNS_NAMESPACE = "kube-system"
DNS_NAME = "coredns"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
RBAC_GROUP = "rbac.authorization.k8s.io"
MANAGED_BY = {"app.kubernetes.io/managed-by": "drydock-node"}
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}

COREFILE = f""".:{DNS_TARGET_PORT} {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""


def kubernetes_endpoints(host_ip: str, port: int) -> list[tuple[str, str, str | None, JSON]]:
    """(api_version, plural, namespace, object) of the `kubernetes` Service's endpoint."""
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": "drydock-node",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [host_ip], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            # As the API server's own reconciler does: the slice above is the source.
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{"addresses": [{"ip": host_ip}], "ports": [{"name": "https", "port": port}]}],
    }
    return [
        ("discovery.k8s.io/v1", "endpointslices", "default", slice_),
        ("v1", "endpoints", "default", endpoints),
    ]


def kubelet_api_access() -> JSON:
    """Lets the API server's kubelet client read logs and exec (kubelet webhook authz)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "drydock:kube-apiserver-kubelet-client", "labels": MANAGED_BY},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "system:kubelet-api-admin",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KUBELET_CLIENT_USER}
        ],
    }


KUBE_ROUTER_USER = "system:kube-router"


def _user_cluster_role(
    name: str, user: str, rules: list[JSON]
) -> list[tuple[str, str, str | None, JSON]]:
    """A ClusterRole with `rules` and its binding to one certificate user."""
    rbac = "rbac.authorization.k8s.io/v1"
    role = {
        "apiVersion": rbac,
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": MANAGED_BY},
        "rules": rules,
    }
    binding = {
        "apiVersion": rbac,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": MANAGED_BY},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": user}],
    }
    return [(rbac, "clusterroles", None, role), (rbac, "clusterrolebindings", None, binding)]


def kube_router_access() -> list[tuple[str, str, str | None, JSON]]:
    """What kube-router's firewall reads (it writes nothing but events): the policies and
    the pods, namespaces and nodes they select, and the services it must leave reachable."""
    read = ["get", "list", "watch"]
    return _user_cluster_role(
        "drydock:kube-router",
        KUBE_ROUTER_USER,
        [
            {
                "apiGroups": [""],
                "resources": ["namespaces", "pods", "nodes", "services", "endpoints"],
                "verbs": read,
            },
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": read},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        ],
    )


def storage_objects() -> list[tuple[str, str, str | None, JSON]]:
    """The default StorageClass and what its provisioner may do: read claims, manage volumes."""
    access = _user_cluster_role(
        "drydock:local-provisioner",
        PROVISIONER_USER,
        [
            {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list"]},
            {
                "apiGroups": [""],
                "resources": ["persistentvolumes"],
                "verbs": ["get", "list", "create", "delete"],
            },
        ],
    )
    return [("storage.k8s.io/v1", "storageclasses", None, storage_class()), *access]


def _restricted_container(image: str) -> JSON:
    return {
        "name": "coredns",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [
            {"name": "dns", "containerPort": DNS_TARGET_PORT, "protocol": "UDP"},
            {"name": "dns-tcp", "containerPort": DNS_TARGET_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
    }


def coredns_objects(image: str, cluster_ip: str) -> list[tuple[str, str, str | None, JSON]]:
    """(api_version, plural, namespace, object) for CoreDNS, in the order they are applied."""
    ns, labels = DNS_NAMESPACE, {"k8s-app": "kube-dns", **MANAGED_BY}
    meta = {"name": DNS_NAME, "namespace": ns, "labels": labels}
    rbac = "rbac.authorization.k8s.io/v1"
    role_name = "drydock:coredns"
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ns, "labels": RESTRICTED},
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
    role = {
        "apiVersion": rbac,
        "kind": "ClusterRole",
        "metadata": {"name": role_name, "labels": MANAGED_BY},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["services", "namespaces"],
                "verbs": ["list", "watch"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
    }
    binding = {
        "apiVersion": rbac,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": role_name, "labels": MANAGED_BY},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role_name,
        },
        "subjects": [{"kind": "ServiceAccount", "name": DNS_NAME, "namespace": ns}],
    }
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {"Corefile": COREFILE},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": DNS_NAME,
                    "priorityClassName": "system-cluster-critical",
                    "dnsPolicy": "Default",
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [_restricted_container(image)],
                    "volumes": [{"name": "config", "configMap": {"name": DNS_NAME}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
        "spec": {
            "clusterIP": cluster_ip,
            "selector": {"k8s-app": "kube-dns"},
            "ports": [
                {"name": "dns", "port": 53, "targetPort": DNS_TARGET_PORT, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "targetPort": DNS_TARGET_PORT, "protocol": "TCP"},
            ],
        },
    }
    return [
        ("v1", "namespaces", None, namespace),
        ("v1", "serviceaccounts", ns, account),
        (rbac, "clusterroles", None, role),
        (rbac, "clusterrolebindings", None, binding),
        ("v1", "configmaps", ns, config),
        ("apps/v1", "deployments", ns, deployment),
        ("v1", "services", ns, service),
    ]
