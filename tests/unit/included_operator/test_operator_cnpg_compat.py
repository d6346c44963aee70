"""CloudNativePG fields the operator implements rather than prunes.

Aspects: `superuserSecret` and `bootstrap.initdb.secret` are the user's Secrets (the
instance Role names them, the operator generates none, the manager reads them);
`bootstrap.initdb` names the database and owner; `postgresUID`/`postgresGID` reach every
container, and no uid at all is set where the platform assigns them; `affinity` becomes
pod anti-affinity, nodeSelector and tolerations; `primaryUpdateStrategy: supervised` stops
a roll before the switchover until the user moves the primary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drydock_instance import sources
from drydock_operator import instances, resources, topology
from drydock_operator.config import OperatorSettings, load_settings
from drydock_operator.model import Instance, parse_cluster
from drydock_operator.topology import Step, Topology
from instance_samples import secret, settings, write_objects
from operator_samples import cluster_body

SETTINGS = OperatorSettings()


def cluster(**spec: Any) -> Any:
    return parse_cluster(cluster_body(**spec))


def test_the_users_secrets_are_named_in_the_role_and_never_generated() -> None:
    c = cluster(
        enableSuperuserAccess=True,
        superuserSecret={"name": "my-postgres"},
        bootstrap={"initdb": {"database": "shop", "owner": "clerk", "secret": {"name": "my-app"}}},
    )
    names = resources.instance_secret_names(c)
    assert names == ("pg-ca", "pg-server", "pg-replication", "my-app", "my-postgres")
    assert (c.initdb.database, c.initdb.owner) == ("shop", "clerk")
    plain = cluster(enableSuperuserAccess=True)
    assert resources.instance_secret_names(plain)[-2:] == ("pg-app", "pg-superuser")


def test_the_generated_app_secret_follows_initdb() -> None:
    c = cluster(bootstrap={"initdb": {"database": "shop"}})
    data = resources.app_secret(c, SETTINGS, "pw")["stringData"]
    assert (data["username"], data["dbname"]) == ("shop", "shop")  # owner defaults to database
    assert data["uri"].endswith(":5432/shop")
    assert resources.app_secret(cluster(), SETTINGS, "pw")["stringData"]["username"] == "app"


def test_the_manager_reads_the_users_secrets_and_initdb_names(tmp_path: Path) -> None:
    write_objects(tmp_path, superuser=True)
    cluster_file = tmp_path / "clusters" / "pg.json"
    body = json.loads(cluster_file.read_text())
    body["spec"]["superuserSecret"] = {"name": "mine-su"}
    body["spec"]["bootstrap"] = {"initdb": {"database": "shop", "secret": {"name": "mine-app"}}}
    cluster_file.write_text(json.dumps(body))
    for name, value in (("mine-su", "su2"), ("mine-app", "pw2")):
        doc = secret(name, username="whoever", password=value)
        (tmp_path / "secrets" / f"{name}.json").write_text(json.dumps(doc))
    desired = sources.fetch(sources.DirTransport(str(tmp_path), settings()), settings())
    assert (desired.app_user, desired.app_database, desired.app_password) == ("shop", "shop", "pw2")
    assert desired.superuser_password == "su2"


def pod_of(c: Any, s: OperatorSettings = SETTINGS) -> dict[str, Any]:
    return instances.pod(c, s, "pg-1", "img", primary=True)


def contexts(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [c["securityContext"] for c in spec["initContainers"] + spec["containers"]]


def test_postgres_uid_and_gid_reach_every_container() -> None:
    pod = pod_of(cluster(postgresUID=1001, postgresGID=1002))
    ctx = pod["spec"]["securityContext"]
    assert (ctx["runAsUser"], ctx["runAsGroup"], ctx["fsGroup"]) == (1001, 1002, 1002)
    assert {(c["runAsUser"], c["runAsGroup"]) for c in contexts(pod)} == {(1001, 1002)}
    default = pod_of(cluster())
    assert {(c["runAsUser"], c["runAsGroup"]) for c in contexts(default)} == {(26, 26)}


def test_assigned_uids_leave_every_uid_to_the_platform() -> None:
    s = load_settings({"DRYDOCK_OPERATOR_ASSIGNED_UIDS": "true"})
    pod = pod_of(cluster(postgresUID=1001), s)
    found = [pod["spec"]["securityContext"], *contexts(pod)]
    for ctx in found:
        assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(ctx), ctx
        assert ctx["runAsNonRoot"] is True
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}


def test_affinity_maps_onto_the_pod() -> None:
    toleration = {"key": "dedicated", "operator": "Equal", "value": "pg", "effect": "NoSchedule"}
    c = cluster(
        affinity={
            "podAntiAffinityType": "required",
            "topologyKey": "topology.kubernetes.io/zone",
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [toleration],
        }
    )
    spec = pod_of(c)["spec"]
    (term,) = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "topology.kubernetes.io/zone"
    assert term["labelSelector"]["matchExpressions"][0]["values"] == ["pg"]
    assert spec["nodeSelector"] == {"disk": "ssd"}
    assert spec["tolerations"] == [toleration]
    preferred = pod_of(cluster())["spec"]["affinity"]["podAntiAffinity"]
    assert list(preferred) == ["preferredDuringSchedulingIgnoredDuringExecution"]
    off = pod_of(cluster(affinity={"enablePodAntiAffinity": False}))["spec"]
    assert "affinity" not in off and "nodeSelector" not in off


def rolled(supervised: bool, target: str = "pg-1", current: str = "pg-1") -> Topology:
    """Replicas already on the new image, the primary still on the old one."""
    pods = [
        Instance("pg-1", "old", ready=True),
        Instance("pg-2", "new", ready=True),
        Instance("pg-3", "new", ready=True),
    ]
    return Topology("pg", 3, "new", target, current, pods, {}, supervised=supervised)


def test_supervised_waits_for_a_manual_switchover() -> None:
    plan = topology.plan(rolled(supervised=True))
    assert (plan.step, plan.phase) == (Step.WAIT, topology.PHASE_WAITING_FOR_USER)
    assert topology.plan(rolled(supervised=False)).step is Step.PROMOTE
    # The user moved the primary (status.targetPrimary): the roll goes on with pg-1.
    after = topology.plan(rolled(supervised=True, target="pg-2", current="pg-2"))
    assert (after.step, after.instances) == (Step.DELETE, ("pg-1",))
    assert parse_cluster(cluster_body()).primary_update_strategy == "unsupervised"
