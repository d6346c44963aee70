"""Pure: the NetworkPolicy a Cluster asks for with `spec.networkPolicy` (a Drydock extension).

CloudNativePG writes no network policies; Drydock's operator writes one per Cluster when
`spec.networkPolicy.enabled` is true (off by default, so a CloudNativePG manifest behaves
as it does there). The policy selects the Cluster's instance pods and isolates their
ingress, then opens exactly the ports of the security guide's exposed-ports table:

- 5432 (PostgreSQL) from the Cluster's own instances (replication, pg_rewind, the join
  init container) and from the peers listed in `applications`;
- 8000 (the instance manager's status port) from the operator's namespace, plus any
  `operator_source_cidrs` the operator is configured with (an operator that runs outside
  the pod network, such as the e2e tests' in-process one on the node's host);
- 9187 (metrics) from the peers listed in `monitoring`.

Everything else to the instances is denied. A rule with no peers is left out rather than
written with an empty `from` (which Kubernetes reads as "from anywhere"). Traffic from the
instance's own node (the kubelet's probes) is allowed by every enforcing implementation,
as the NetworkPolicy API specifies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drydock_operator.config import OperatorSettings
from drydock_operator.model import Cluster, ParseError
from drydock_operator.resources import (
    PORT_METRICS,
    PORT_POSTGRESQL,
    PORT_STATUS,
    object_meta,
)

Obj = dict[str, Any]
PEER_KEYS = ("podSelector", "namespaceSelector")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class NetworkPolicySpec:
    """`spec.networkPolicy`: whether to write the policy, and who may connect."""

    enabled: bool = False
    applications: tuple[Obj, ...] = ()
    """NetworkPolicyPeers (podSelector and/or namespaceSelector) allowed on 5432."""
    monitoring: tuple[Obj, ...] = ()
    """NetworkPolicyPeers allowed on 9187."""


def _peers(value: object, where: str) -> tuple[Obj, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ParseError(f"{where}: expected a list of peers")
    peers = []
    for index, peer in enumerate(value):
        if not isinstance(peer, Mapping) or not peer:
            raise ParseError(f"{where}[{index}]: expected podSelector and/or namespaceSelector")
        unknown = sorted(set(peer) - set(PEER_KEYS))
        if unknown:
            raise ParseError(f"{where}[{index}]: {', '.join(unknown)} not supported")
        for key in PEER_KEYS:
            if key in peer and not isinstance(peer[key], Mapping):
                raise ParseError(f"{where}[{index}].{key}: expected a label selector")
        peers.append({k: dict(peer[k]) for k in PEER_KEYS if k in peer})
    return tuple(peers)


def parse(body: Mapping[str, Any]) -> NetworkPolicySpec:
    """`spec.networkPolicy` of a Cluster body; absent means disabled."""
    raw = (body.get("spec") or {}).get("networkPolicy")
    if raw is None:
        return NetworkPolicySpec()
    if not isinstance(raw, Mapping):
        raise ParseError("spec.networkPolicy: expected an object")
    return NetworkPolicySpec(
        enabled=bool(raw.get("enabled", False)),
        applications=_peers(raw.get("applications"), "spec.networkPolicy.applications"),
        monitoring=_peers(raw.get("monitoring"), "spec.networkPolicy.monitoring"),
    )


def policy_name(cluster: Cluster) -> str:
    return f"{cluster.name}-instances"


def instance_selector(cluster: Cluster, settings: OperatorSettings) -> dict[str, str]:
    prefix = settings.label_prefix
    return {f"{prefix}/cluster": cluster.name, f"{prefix}/podRole": "instance"}


def _rule(port: int, peers: list[Obj]) -> Obj:
    return {"ports": [{"protocol": "TCP", "port": port}], "from": peers}


def ingress_rules(
    cluster: Cluster, settings: OperatorSettings, spec: NetworkPolicySpec
) -> list[Obj]:
    """The allowed ingress, one rule per port; a port nobody may reach has no rule."""
    own = {"podSelector": {"matchLabels": instance_selector(cluster, settings)}}
    operator: list[Obj] = [
        {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: settings.namespace}}}
    ]
    operator += [{"ipBlock": {"cidr": cidr}} for cidr in settings.operator_source_cidrs]
    rules = [
        _rule(PORT_POSTGRESQL, [own, *spec.applications]),
        _rule(PORT_STATUS, operator),
    ]
    if spec.monitoring:
        rules.append(_rule(PORT_METRICS, list(spec.monitoring)))
    return rules


def network_policy(cluster: Cluster, settings: OperatorSettings, spec: NetworkPolicySpec) -> Obj:
    """The Cluster's NetworkPolicy: its instances isolated for ingress, the rules above."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(cluster, settings, policy_name(cluster)),
        "spec": {
            "podSelector": {"matchLabels": instance_selector(cluster, settings)},
            "policyTypes": ["Ingress"],
            "ingress": ingress_rules(cluster, settings, spec),
        },
    }
