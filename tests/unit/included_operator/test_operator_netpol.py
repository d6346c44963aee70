"""The per-Cluster NetworkPolicy (`spec.networkPolicy`, a Drydock extension).

Aspects: off unless asked; it selects only this Cluster's instances and isolates their
ingress; 5432 from the Cluster's own instances and the named applications only; 8000 from
the operator's namespace (and the operator's configured addresses) only; 9187 only from
the named monitoring peers, and no rule at all (so denied) when none are named, because an
empty `from` would mean "from anywhere"; bad peers are refused with the field named.
"""

from __future__ import annotations

from typing import Any

import pytest
from drydock_operator import netpol
from drydock_operator.config import EDB_GROUP, OperatorSettings, load_settings
from drydock_operator.model import ParseError, parse_cluster
from operator_samples import cluster_body

SETTINGS = OperatorSettings()
WEB = {"podSelector": {"matchLabels": {"app": "web"}}}
PROMETHEUS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app": "prometheus"}},
}


def policy(settings: OperatorSettings = SETTINGS, **network_policy: Any) -> dict[str, Any]:
    body = cluster_body(networkPolicy={"enabled": True, **network_policy})
    return netpol.network_policy(parse_cluster(body), settings, netpol.parse(body))


def rules_by_port(doc: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    for rule in doc["spec"]["ingress"]:
        (port,) = rule["ports"]
        assert port["protocol"] == "TCP"
        assert rule["from"], "an empty from would admit every source"
        found[port["port"]] = rule["from"]
    return found


def test_off_by_default_and_when_disabled() -> None:
    assert netpol.parse(cluster_body()).enabled is False
    assert netpol.parse(cluster_body(networkPolicy={"enabled": False})).enabled is False
    assert netpol.parse(cluster_body(networkPolicy={"enabled": True})).enabled is True


def test_selects_the_clusters_instances_and_isolates_ingress() -> None:
    doc = policy()
    assert doc["kind"] == "NetworkPolicy" and doc["apiVersion"] == "networking.k8s.io/v1"
    assert doc["metadata"]["name"] == "pg-instances"
    assert doc["metadata"]["namespace"] == "db"
    assert doc["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert doc["spec"]["podSelector"] == {
        "matchLabels": {"cnpg.io/cluster": "pg", "cnpg.io/podRole": "instance"}
    }
    assert doc["spec"]["policyTypes"] == ["Ingress"]
    assert "egress" not in doc["spec"]


def test_each_port_of_the_guide_is_open_to_its_peers_only() -> None:
    ports = rules_by_port(policy(applications=[WEB], monitoring=[PROMETHEUS]))
    assert sorted(ports) == [5432, 8000, 9187]
    own = {"podSelector": {"matchLabels": {"cnpg.io/cluster": "pg", "cnpg.io/podRole": "instance"}}}
    assert ports[5432] == [own, WEB]
    assert ports[8000] == [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "postgresql-operator-system"}
            }
        }
    ]
    assert ports[9187] == [PROMETHEUS]


def test_without_monitoring_peers_9187_has_no_rule_and_is_denied() -> None:
    ports = rules_by_port(policy(applications=[WEB]))
    assert sorted(ports) == [5432, 8000]


def test_without_applications_only_the_instances_reach_5432() -> None:
    ports = rules_by_port(policy())
    assert ports[5432] == [
        {"podSelector": {"matchLabels": {"cnpg.io/cluster": "pg", "cnpg.io/podRole": "instance"}}}
    ]


def test_the_operators_namespace_and_addresses_come_from_its_settings() -> None:
    settings = load_settings(
        {
            "POD_NAMESPACE": "pg-operator",
            "DRYDOCK_OPERATOR_SOURCE_CIDRS": "10.250.0.1, 10.99.0.0/16",
        }
    )
    ports = rules_by_port(policy(settings))
    assert ports[8000] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "pg-operator"}}},
        {"ipBlock": {"cidr": "10.250.0.1/32"}},
        {"ipBlock": {"cidr": "10.99.0.0/16"}},
    ]
    explicit = load_settings({"POD_NAMESPACE": "a", "DRYDOCK_OPERATOR_NAMESPACE": "b"})
    assert explicit.namespace == "b"


def test_enterprisedb_group_labels() -> None:
    doc = policy(OperatorSettings(api_group=EDB_GROUP))
    assert doc["spec"]["podSelector"]["matchLabels"] == {
        "k8s.enterprisedb.io/cluster": "pg",
        "k8s.enterprisedb.io/podRole": "instance",
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("yes", "spec.networkPolicy: expected an object"),
        ({"applications": {"app": "web"}}, "spec.networkPolicy.applications: expected a list"),
        ({"applications": [{}]}, "spec.networkPolicy.applications[0]: expected podSelector"),
        (
            {"monitoring": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]},
            "spec.networkPolicy.monitoring[0]: ipBlock not supported",
        ),
        (
            {"applications": [{"podSelector": "app=web"}]},
            "spec.networkPolicy.applications[0].podSelector: expected a label selector",
        ),
    ],
)
def test_bad_peers_are_refused_naming_the_field(raw: Any, message: str) -> None:
    with pytest.raises(ParseError, match=message.replace("[", r"\[").replace("]", r"\]")):
        netpol.parse(cluster_body(networkPolicy=raw))


def test_bad_operator_addresses_are_refused() -> None:
    with pytest.raises(ValueError, match="DRYDOCK_OPERATOR_SOURCE_CIDRS: 'nowhere'"):
        load_settings({"DRYDOCK_OPERATOR_SOURCE_CIDRS": "nowhere"})
