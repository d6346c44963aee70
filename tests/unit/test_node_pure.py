"""The node's pure parts: its identity on the host, its daemons' files and flags, its chains.

These are the lines that keep several nodes apart on one host and keep each one locked
down; each test names what would break if the line changed.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.tools import node_addons, node_config, node_layout, node_storage, pki
from pipeline.tools.controlplane import ControlPlane, State, apiserver_args
from pipeline.tools.node_files import apiserver_overrides
from pipeline.tools.node_host import chain_rules, pod_rule
from pipeline.tools.node_layout import LINK_BLOCK, NodeLayout
from pipeline.tools.node_leftovers import iptables_lines
from pipeline.tools.node_parts import PARTS


@pytest.fixture
def layout(tmp_path: Path) -> NodeLayout:
    state = tmp_path / "devcluster" / "node"
    node_id = node_layout.node_id_for(state)
    return NodeLayout(node_id, node_layout.link_slot_for(node_id), state)


def test_identity_is_stable_per_state_dir_and_differs_between_them(tmp_path: Path) -> None:
    one, two = tmp_path / "a" / "node", tmp_path / "b" / "node"
    assert node_layout.node_id_for(one) == node_layout.node_id_for(one)
    assert node_layout.node_id_for(one) != node_layout.node_id_for(two)


def test_host_global_names_fit_the_kernel_and_carry_the_id(layout: NodeLayout) -> None:
    assert len(layout.host_if) <= 15 and len(f"{layout.host_if}-n") <= 15  # IFNAMSIZ - 1
    for name in (layout.netns, layout.host_if, layout.chain.lower(), layout.cgroup_root):
        assert layout.node_id in name
    assert len(layout.chain) <= 28  # iptables chain names


def test_the_link_is_a_slash_30_of_the_block_with_distinct_ends(layout: NodeLayout) -> None:
    assert layout.link.prefixlen == 30 and layout.link.subnet_of(LINK_BLOCK)
    host, node = ipaddress.ip_address(layout.host_ip), ipaddress.ip_address(layout.node_ip)
    assert host != node and host in layout.link and node in layout.link
    assert layout.pod_cidr.subnet_of(node_layout.POD_BLOCK) and layout.pod_cidr.prefixlen == 20
    assert not layout.pod_cidr.overlaps(layout.link)
    assert not layout.pod_cidr.overlaps(ipaddress.ip_network("10.0.0.0/16"))  # Services
    slots = {node_layout.link_slot_for(layout.node_id, a) for a in range(4)}
    assert len(slots) == 4  # a clash moves to another /30


def test_containerd_is_its_own_instance_with_restricted_oom_and_a_pinned_sandbox(
    layout: NodeLayout,
) -> None:
    sandbox = "127.0.0.1:5000/drydock/node/pause@sha256:" + "a" * 64
    doc = tomllib.loads(node_config.containerd_toml(layout, sandbox))
    assert doc["root"] == str(layout.containerd_root)
    assert doc["grpc"]["address"] == str(layout.containerd_socket)
    assert doc["state"] == "/run/containerd"  # a private tmpfs in the node's mount namespace
    cri = doc["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == sandbox
    assert cri["registry"]["config_path"] == str(layout.registry_hosts_dir)
    assert cri["cni"]["conf_dir"] == str(layout.cni_conf_dir)


def test_the_registry_is_reached_over_the_link_only(layout: NodeLayout) -> None:
    doc = tomllib.loads(node_config.registry_hosts_toml(layout, "127.0.0.1:5000"))
    url = f"http://{layout.host_ip}:5000"
    assert doc["server"] == url and list(doc["host"]) == [url]


def test_kubelet_is_locked_down_and_kept_to_its_own_cgroup_root(layout: NodeLayout) -> None:
    doc = yaml.safe_load(node_config.kubelet_config(layout, Path("/ca.crt"), "10.0.0.10"))
    assert doc["cgroupRoot"] == layout.cgroup_root and doc["cgroupDriver"] == "cgroupfs"
    assert doc["authentication"]["anonymous"]["enabled"] is False
    assert doc["authorization"]["mode"] == "Webhook"
    assert doc["readOnlyPort"] == 0
    assert doc["address"] == doc["healthzBindAddress"] == layout.node_ip
    assert doc["failCgroupV1"] is False and doc["failSwapOn"] is False
    assert doc["containerRuntimeEndpoint"] == f"unix://{layout.containerd_socket}"
    assert doc["clusterDNS"] == ["10.0.0.10"]


def test_kube_proxy_leaves_host_wide_conntrack_alone(layout: NodeLayout) -> None:
    doc = yaml.safe_load(node_config.kube_proxy_config(layout, Path("/k")))
    assert doc["mode"] == "iptables"
    assert doc["conntrack"]["maxPerCore"] == 0 and doc["conntrack"]["min"] == 0
    assert doc["bindAddress"] == layout.node_ip
    assert doc["clusterCIDR"] == str(layout.pod_cidr)


def test_every_part_is_recognised_by_a_flag_naming_this_nodes_own_file(
    layout: NodeLayout, tmp_path: Path
) -> None:
    cp = ControlPlane(
        tmp_path, tmp_path / "kc", "https://127.0.0.1:1", tmp_path / "ca", "http://x:2", 1, 2, 0.0
    )
    for part in PARTS:
        argv = part.argv(tmp_path / "bin", layout, cp)
        assert part.marker(layout) in argv
        assert str(layout.state_dir) in part.marker(layout)
        assert part.in_node == (part.name != "local-provisioner")  # only it runs on the host
    names = [p.name for p in PARTS]
    assert names.index("containerd") < names.index("kubelet") < names.index("kube-proxy")


def test_kube_router_only_enforces_network_policies_and_reads_only(
    layout: NodeLayout, tmp_path: Path
) -> None:
    argv = node_config.kube_router_argv(tmp_path / "kube-router", layout, "10.96.0.0/16")
    # The firewall alone: a router, service proxy or CNI of its own would fight the node's
    # bridge and kube-proxy (and the router is where v2.1.0's reported flaws are).
    for flag in ("--run-router=false", "--run-service-proxy=false", "--enable-cni=false"):
        assert flag in argv
    assert "--run-firewall=true" in argv
    assert f"--hostname-override={layout.name}" in argv
    assert "--service-cluster-ip-range=10.96.0.0/16" in argv
    assert [p.name for p in PARTS][-1] == "kube-router"  # after the addons gave it RBAC
    role, binding = (obj for _v, _p, _ns, obj in node_addons.kube_router_access())
    for rule in role["rules"]:
        if rule["resources"] != ["events"]:
            assert rule["verbs"] == ["get", "list", "watch"], rule
    assert binding["subjects"][0]["name"] == "system:kube-router"


def test_host_chains_accept_only_forwarded_ports_then_drop(layout: NodeLayout) -> None:
    rules = chain_rules(layout, (6443, 5000))
    dnat = [" ".join(r) for r in rules["nat"]]
    for line, port in zip(dnat, (6443, 5000), strict=True):
        assert line.endswith(f"--dport {port} -j DNAT --to-destination 127.0.0.1:{port}")
    assert all(f"-d {layout.host_ip}/32" in d and "-j DNAT" in d for d in dnat)
    filt = [" ".join(r) for r in rules["filter"]]
    assert filt[-1] == "-j DROP"  # last: anything not accepted before is dropped
    assert filt[:-1] == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-m conntrack --ctstate DNAT -j ACCEPT",
    ]


def test_pods_may_not_reach_the_registry_the_node_pulls_from(layout: NodeLayout) -> None:
    rule = " ".join(pod_rule(layout, 5000))
    assert rule == (
        f"-s {layout.pod_cidr} -d {layout.host_ip}/32 -p tcp -m tcp --dport 5000 -j DROP"
    )


def test_neighbouring_slots_get_disjoint_links_and_pod_cidrs(tmp_path: Path) -> None:
    a, b = NodeLayout("000001", 1, tmp_path), NodeLayout("000002", 2, tmp_path)
    assert not a.link.overlaps(b.link) and not a.pod_cidr.overlaps(b.pod_cidr)


def test_iptables_save_lines_of_a_node_are_found(layout: NodeLayout) -> None:
    save = "\n".join(
        [
            "*nat",
            ":PREROUTING ACCEPT [0:0]",
            ":DOCKER - [0:0]",
            f":{layout.chain} - [0:0]",
            ":KUBE-SERVICES - [0:0]",
            f"-A PREROUTING -i {layout.host_if} -j {layout.chain}",
            "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
            "COMMIT",
        ]
    )
    found = iptables_lines(save, "nat", layout)
    assert found == [
        f"iptables nat chain {layout.chain}",
        "iptables nat chain KUBE-SERVICES",
        f"iptables nat rule -A PREROUTING -i {layout.host_if} -j {layout.chain}",
    ]


def test_apiserver_overrides_replace_drop_and_add_flags(tmp_path: Path) -> None:
    base = apiserver_args(Path("kube-apiserver"), tmp_path, State(1, 2, 3))
    assert "--disable-admission-plugins=ServiceAccount" in base
    overrides = apiserver_overrides(tmp_path / "pki")
    args = apiserver_args(Path("kube-apiserver"), tmp_path, State(1, 2, 3), overrides)
    flags = [a.split("=", 1)[0] for a in args]
    assert len(flags) == len(set(flags))  # string-slice flags given twice would append
    assert "--authorization-mode=Node,RBAC" in args
    assert "--enable-admission-plugins=NodeRestriction,PodSecurity" in args
    assert not any(a.startswith("--disable-admission-plugins") for a in args)
    assert f"--client-ca-file={tmp_path / 'pki' / 'ca.crt'}" in args
    assert "--allow-privileged=true" not in args


def test_coredns_runs_restricted_with_read_only_access() -> None:
    objects = node_addons.coredns_objects("r/coredns@sha256:" + "b" * 64, "10.0.0.10")
    by_kind = {obj["kind"]: obj for _, _, _, obj in objects}
    labels = by_kind["Namespace"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    container = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    ctx = container["securityContext"]
    assert ctx["runAsNonRoot"] and ctx["readOnlyRootFilesystem"]
    assert ctx["capabilities"] == {"drop": ["ALL"]} and not ctx["allowPrivilegeEscalation"]
    assert container["image"].startswith("r/coredns@sha256:")
    verbs = {v for rule in by_kind["ClusterRole"]["rules"] for v in rule["verbs"]}
    assert verbs == {"list", "watch"}
    assert by_kind["Service"]["spec"]["clusterIP"] == "10.0.0.10"


def test_the_kubernetes_service_endpoint_is_the_links_host_end() -> None:
    docs = {obj["kind"]: obj for *_, obj in node_addons.kubernetes_endpoints("10.213.0.1", 3)}
    assert docs["EndpointSlice"]["endpoints"][0]["addresses"] == ["10.213.0.1"]
    assert docs["EndpointSlice"]["ports"][0] == {"name": "https", "port": 3, "protocol": "TCP"}
    assert docs["Endpoints"]["metadata"]["labels"] == {
        "endpointslice.kubernetes.io/skip-mirror": "true"
    }


def test_issued_certificates_name_the_user_its_groups_or_the_served_address(
    tmp_path: Path,
) -> None:
    ca_dir = tmp_path / "pki"
    pki.ensure(ca_dir)
    pki.issue(ca_dir, tmp_path / "out", "kubelet", "system:node:n1", orgs=("system:nodes",))
    pki.issue(ca_dir, tmp_path / "out", "serving", "n1", ips=("10.213.0.2",))
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    client = x509.load_pem_x509_certificate((tmp_path / "out" / "kubelet.crt").read_bytes())
    client.verify_directly_issued_by(ca)
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n1"
    orgs = client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == ["system:nodes"]
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    serving = x509.load_pem_x509_certificate((tmp_path / "out" / "serving.crt").read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.213.0.2")]
    assert (tmp_path / "out" / "kubelet.key").stat().st_mode & 0o077 == 0


def _claim(**changes: Any) -> dict[str, Any]:
    claim: dict[str, Any] = {
        "metadata": {
            "name": "pg-1",
            "namespace": "demo",
            "uid": "1234",
            "annotations": {"volume.kubernetes.io/storage-provisioner": node_storage.PROVISIONER},
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Pending"},
    }
    claim.update(changes)
    return claim


def test_the_provisioner_takes_only_pending_claims_handed_to_it() -> None:
    assert node_storage.wants_volume(_claim())
    assert not node_storage.wants_volume(_claim(status={"phase": "Bound"}))
    other = _claim()
    other["metadata"]["annotations"] = {"volume.kubernetes.io/storage-provisioner": "other.io/x"}
    assert not node_storage.wants_volume(other)
    block = _claim()
    block["spec"]["volumeMode"] = "Block"
    assert not node_storage.wants_volume(block)


def test_a_provisioned_volume_is_bound_to_its_claim_on_this_node_only(tmp_path: Path) -> None:
    pv = node_storage.volume_for(_claim(), "drydock-abc123", tmp_path)
    spec = pv["spec"]
    assert pv["metadata"]["name"] == "pvc-1234"
    ref = spec["claimRef"]
    assert (ref["namespace"], ref["name"], ref["uid"]) == ("demo", "pg-1", "1234")
    assert spec["local"]["path"] == str(tmp_path / "pvc-1234")
    assert (
        spec["capacity"] == {"storage": "1Gi"} and spec["persistentVolumeReclaimPolicy"] == "Delete"
    )
    term = spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term == {"key": "kubernetes.io/hostname", "operator": "In", "values": ["drydock-abc123"]}
    assert node_storage.storage_class()["provisioner"] == node_storage.PROVISIONER
