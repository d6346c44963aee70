"""Object specs the operator writes: the instance Role, pod security, services, config.

Aspects: the Role grants exactly the instance manager's permissions and names only the
Cluster's own ConfigMap, Secrets and Cluster; the superuser Secret is readable only when
enabled; every instance pod passes Pod Security "restricted" with a read-only root and
uid/gid 26; named ports; AppArmor annotations pass through; PostgreSQL requires SCRAM and
TLS 1.3; the API group switch reaches labels and RBAC.
"""

from __future__ import annotations

from typing import Any

from drydock_operator import instances, resources
from drydock_operator.config import EDB_GROUP, OperatorSettings
from drydock_operator.model import parse_cluster
from operator_samples import cluster_body

SETTINGS = OperatorSettings()


def cluster(**spec: Any) -> Any:
    return parse_cluster(cluster_body(**spec))


def test_role_has_exactly_the_instance_manager_rules() -> None:
    rules = resources.role_rules(cluster(), SETTINGS)
    g = "postgresql.cnpg.io"
    assert rules == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["get", "watch"],
            "resourceNames": ["pg-config"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get", "watch"],
            "resourceNames": ["pg-ca", "pg-server", "pg-replication", "pg-app"],
        },
        {
            "apiGroups": [g],
            "resources": ["clusters"],
            "verbs": ["get", "list", "watch"],
            "resourceNames": ["pg"],
        },
        {
            "apiGroups": [g],
            "resources": ["clusters/status"],
            "verbs": ["update", "patch"],
            "resourceNames": ["pg"],
        },
        {"apiGroups": [g], "resources": ["backups"], "verbs": ["list", "get", "delete"]},
        {"apiGroups": [g], "resources": ["backups/status"], "verbs": ["update", "patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    ]


def test_role_never_grants_write_on_secrets_or_access_to_catalogs() -> None:
    for rule in resources.role_rules(cluster(enableSuperuserAccess=True), SETTINGS):
        assert not {"imagecatalogs", "clusterimagecatalogs", "pods"} & set(rule["resources"])
        if rule["resources"] in (["secrets"], ["configmaps"]):
            assert rule["verbs"] == ["get", "watch"]
            assert rule["resourceNames"]


def test_superuser_secret_is_readable_only_when_enabled() -> None:
    off = resources.instance_secret_names(cluster())
    on = resources.instance_secret_names(cluster(enableSuperuserAccess=True))
    assert "pg-superuser" not in off
    assert set(on) - set(off) == {"pg-superuser"}


def test_role_binding_binds_the_cluster_service_account() -> None:
    c = cluster()
    binding = resources.role_binding(c, SETTINGS)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "pg",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pg", "namespace": "db"}]
    assert resources.service_account(c, SETTINGS)["metadata"]["name"] == "pg"


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The Pod Security Standards "restricted" checks, as the admission plugin applies them."""
    spec = pod["spec"]
    psc = spec.get("securityContext", {})
    problems = []
    for c in spec["containers"] + spec.get("initContainers", []):
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{c['name']}: allowPrivilegeEscalation")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append(f"{c['name']}: capabilities")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            problems.append(f"{c['name']}: runAsNonRoot")
        seccomp = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{c['name']}: seccomp")
        if sc.get("privileged"):
            problems.append(f"{c['name']}: privileged")
    allowed = {"configMap", "secret", "persistentVolumeClaim", "emptyDir", "projected"}
    for v in spec.get("volumes", []):
        if not set(v) - {"name"} <= allowed:
            problems.append(f"volume {v['name']}")
    for key, value in pod["metadata"].get("annotations", {}).items():
        if key.startswith("container.apparmor") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            problems.append(f"apparmor {key}")
    return problems


def test_instance_pod_is_restricted_read_only_and_runs_as_26() -> None:
    pod = instances.pod(cluster(), SETTINGS, "pg-1", "img@sha256:1", primary=True)
    assert restricted_violations(pod) == []
    (container,) = pod["spec"]["containers"]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 26,
        "runAsGroup": 26,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 26,
        "runAsGroup": 26,
        "fsGroup": 26,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["spec"]["serviceAccountName"] == "pg"
    assert container["image"] == "img@sha256:1"


def test_instance_pod_ports_are_named() -> None:
    pod = instances.pod(cluster(), SETTINGS, "pg-1", "img", primary=True)
    ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert ports == {"postgresql": 5432, "status": 8000, "metrics": 9187}


def test_instance_pod_has_one_pvc_and_writable_dirs_only_where_needed() -> None:
    pod = instances.pod(cluster(), SETTINGS, "pg-2", "img", primary=False)
    claims = [v for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [{"name": "pgdata", "persistentVolumeClaim": {"claimName": "pg-2"}}]
    pvc = instances.pvc(cluster(), SETTINGS, "pg-2")
    assert pvc["metadata"]["name"] == "pg-2"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
    labels = pod["metadata"]["labels"]
    assert labels["cnpg.io/instanceRole"] == "replica"
    assert labels["cnpg.io/cluster"] == "pg"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_apparmor_annotations_pass_through_to_pods() -> None:
    body = cluster_body()
    body["metadata"]["annotations"] = {
        "container.apparmor.security.beta.kubernetes.io/postgres": "runtime/default",
        "unrelated": "x",
    }
    pod = instances.pod(parse_cluster(body), SETTINGS, "pg-1", "img", primary=True)
    assert pod["metadata"]["annotations"] == {
        "container.apparmor.security.beta.kubernetes.io/postgres": "runtime/default"
    }
    assert restricted_violations(pod) == []


def test_resources_pass_through() -> None:
    c = cluster(resources={"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}})
    container = instances.pod(c, SETTINGS, "pg-1", "img", primary=True)["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "2Gi"},
    }


def test_services_select_primary_replicas_and_any() -> None:
    rw, ro, r = resources.services(cluster(), SETTINGS)
    assert [s["metadata"]["name"] for s in (rw, ro, r)] == ["pg-rw", "pg-ro", "pg-r"]
    assert rw["spec"]["selector"]["cnpg.io/instanceRole"] == "primary"
    assert ro["spec"]["selector"]["cnpg.io/instanceRole"] == "replica"
    assert "cnpg.io/instanceRole" not in r["spec"]["selector"]
    assert rw["spec"]["ports"][0]["targetPort"] == "postgresql"


def test_postgresql_requires_scram_and_tls13_and_takes_the_clusters_parameters() -> None:
    cm = resources.config_map(
        cluster(
            postgresql={
                "parameters": {"work_mem": "8MB", "search_path": "'$user', public"},
                "pg_hba": ["hostssl app app 10.0.0.0/8 scram-sha-256"],
                "pg_ident": ["m a b"],
            }
        ),
        SETTINGS,
    )
    conf = cm["data"]["postgresql.conf"].splitlines()
    assert conf[:2] == [
        "password_encryption = 'scram-sha-256'",
        "ssl_min_protocol_version = 'TLSv1.3'",
    ]
    assert "work_mem = '8MB'" in conf
    assert "search_path = '''$user'', public'" in conf
    assert cm["data"]["pg_ident.conf"] == "m a b\n"
    assert cm["metadata"]["name"] == "pg-config"


def test_a_cluster_parameter_overrides_a_default_by_coming_later() -> None:
    conf = resources.postgresql_conf(
        cluster(postgresql={"parameters": {"ssl_min_protocol_version": "TLSv1.2"}})
    ).splitlines()
    assert conf.index("ssl_min_protocol_version = 'TLSv1.2'") > conf.index(
        "password_encryption = 'scram-sha-256'"
    )
    assert "ssl_min_protocol_version = 'TLSv1.3'" not in conf


def test_pg_hba_fixed_rules_come_before_the_users_lines() -> None:
    """A user line can never shadow the manager's socket access or replication by
    certificate: PostgreSQL uses the first matching line."""
    user = ["hostssl all streaming_replica all reject", "local all all reject"]
    hba = resources.pg_hba_lines(cluster(postgresql={"pg_hba": user}))
    fixed = [
        "local all all peer",
        "hostssl postgres streaming_replica all cert",
        "hostssl replication streaming_replica all cert",
    ]
    assert list(hba[:3]) == fixed
    assert list(hba[3:5]) == user
    assert hba[-1] == "host all all all scram-sha-256"
    assert len(hba) == 6


def test_secrets_hold_credentials_and_certificates() -> None:
    c = cluster()
    app = resources.app_secret(c, SETTINGS, "p@ss:w/rd")
    assert app["type"] == "kubernetes.io/basic-auth"
    assert app["stringData"] == {
        "username": "app",
        "password": "p@ss:w/rd",
        "host": "pg-rw",
        "port": "5432",
        "dbname": "app",
        "uri": "postgresql://app:p%40ss%3Aw%2Frd@pg-rw.db:5432/app",
        "pgpass": "pg-rw:5432:app:app:p@ss:w/rd\n",
    }
    su = resources.superuser_secret(c, SETTINGS, "pw2")
    assert (su["metadata"]["name"], su["stringData"]["username"]) == ("pg-superuser", "postgres")
    tls = resources.tls_secret(c, SETTINGS, "pg-server", "C", "K")
    assert tls["type"] == "kubernetes.io/tls"
    assert tls["stringData"] == {"tls.crt": "C", "tls.key": "K"}


def test_enterprisedb_group_reaches_labels_and_rbac() -> None:
    edb = OperatorSettings(api_group=EDB_GROUP)
    c = cluster()
    pod = instances.pod(c, edb, "pg-1", "img", primary=True)
    assert pod["metadata"]["labels"]["k8s.enterprisedb.io/cluster"] == "pg"
    assert pod["metadata"]["ownerReferences"][0]["apiVersion"] == f"{EDB_GROUP}/v1"
    groups = {g for rule in resources.role_rules(c, edb) for g in rule["apiGroups"]}
    assert groups == {"", EDB_GROUP}


def test_instance_pods_have_the_guides_containers_and_run_the_manager() -> None:
    settings = OperatorSettings(operator_image="reg/operator@sha256:1")
    primary = instances.pod(cluster(), settings, "pg-1", "reg/pg@sha256:2", primary=True)
    replica = instances.pod(cluster(), settings, "pg-2", "reg/pg@sha256:2", primary=False)
    for pod, step in ((primary, "initdb"), (replica, "join")):
        init = pod["spec"]["initContainers"]
        assert [(c["name"], c["image"]) for c in init] == [
            ("bootstrap-controller", "reg/operator@sha256:1"),
            (step, "reg/pg@sha256:2"),
        ]
        assert init[0]["command"] == [
            "python3",
            "/opt/operator/manager.pyz",
            "bootstrap",
            "/controller/manager.pyz",
        ]
        assert init[1]["command"] == ["python3", "/controller/manager.pyz", step]
        (postgres,) = pod["spec"]["containers"]
        assert postgres["name"] == "postgres"
        assert postgres["command"] == ["python3", "/controller/manager.pyz", "run"]
        assert postgres["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "status"}
        assert restricted_violations(pod) == []
        # Nothing secret is mounted: the manager reads the Secrets as its ServiceAccount.
        assert not [v for v in pod["spec"]["volumes"] if "secret" in v or "configMap" in v]
        env = {e["name"]: e for e in postgres["env"]}
        assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["CLUSTER_NAME"]["value"] == "pg"


def test_apparmor_annotations_only_for_the_containers_a_pod_has() -> None:
    body = cluster_body()
    prefix = "container.apparmor.security.beta.kubernetes.io/"
    body["metadata"]["annotations"] = {
        f"{prefix}{c}": "runtime/default"
        for c in ("bootstrap-controller", "initdb", "join", "postgres", "full-recovery")
    }
    c = parse_cluster(body)
    primary = instances.pod(c, SETTINGS, "pg-1", "img", primary=True)["metadata"]["annotations"]
    replica = instances.pod(c, SETTINGS, "pg-2", "img", primary=False)["metadata"]["annotations"]
    assert set(primary) == {f"{prefix}{n}" for n in ("bootstrap-controller", "initdb", "postgres")}
    assert set(replica) == {f"{prefix}{n}" for n in ("bootstrap-controller", "join", "postgres")}
