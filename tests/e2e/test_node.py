"""The real node: pods run, Services and DNS answer, PodSecurity refuses, and it cleans up.

Aspects, each on the session's real node (kubelet, containerd, kube-proxy, CoreDNS):
- a pod under the "restricted" profile (uid 26, read-only root, drop ALL, RuntimeDefault
  seccomp), from an image built here and pulled BY DIGEST from the local registry, runs and
  serves; what it serves is what it sees from inside (its uid, Seccomp mode, capabilities,
  whether / is writable), so a laxer security context would show in the answer;
- another pod reaches it through its Service's ClusterIP and through its DNS name, but not
  the registry the node pulls from;
- the host reaches pods by IP, the API server proxies to them and reads their logs from the
  kubelet, and in-cluster clients (CoreDNS) reach the API with an automounted token;
- a claim of the default class gets a local volume the pod writes to as uid 26 (with its
  fsGroup), and the volume and its directory go when the claim does;
- a pod naming a digest the registry does not have never starts (ErrImagePull/BackOff);
- a privileged container is refused by the API server (--allow-privileged=false), and a pod
  in the host's network namespace with NET_ADMIN, as root, is refused by a restricted
  namespace and admitted (dry run) by one that does not enforce "restricted";
- the host shows none of the node's pod plumbing while it runs (it is all inside the node's
  namespace), and after its daemons are SIGKILLed and `down` runs, the host is exactly as it
  was before the node first started; the node then starts again (warm).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from catalog_support import REGISTRY
from node_support import (
    RESTRICTED,
    WEB_REPOSITORY,
    WEB_SCRIPT,
    container_state,
    create,
    get_pod,
    namespace,
    pod,
    pod_ready,
    refused,
    web_image,
)
from operator_support import wait_for, wait_until

from pipeline.tools import node, node_host, node_leftovers
from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, load_kubeconfig, resource_path
from pipeline.tools.node import NodeSettings

pytestmark = pytest.mark.e2e
log = logging.getLogger(__name__)

NS = "e2e-node"
OPEN_NS = "e2e-node-unenforced"
POD_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> str:
    return web_image(tmp_path_factory.mktemp("node-image"))


@pytest.fixture(scope="module")
def api(node_settings: NodeSettings) -> Iterator[KubeAPI]:
    started = node.up(node_settings)
    with KubeAPI(load_kubeconfig(started.control_plane.kubeconfig)) as admin:
        namespace(admin, NS, RESTRICTED)
        yield admin


@pytest.fixture(scope="module")
def served(api: KubeAPI, web: str) -> dict[str, Any]:
    """The web pod (Ready) and its Service."""
    spec = pod("web", web, ["sh", "-c", WEB_SCRIPT])
    spec["spec"]["containers"][0]["readinessProbe"] = {
        "httpGet": {"path": "/", "port": 8080},
        "periodSeconds": 1,
    }
    create(api, NS, spec)
    service = create(
        api,
        NS,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    ready = wait_until(
        "web pod Ready", lambda: get_pod(api, NS, "web"), pod_ready, timeout=POD_TIMEOUT
    )
    return {"pod": ready, "service": service}


def run_to_completion(api: KubeAPI, name: str, image: str, script: str) -> dict[str, Any]:
    create(api, NS, pod(name, image, ["sh", "-c", script], restartPolicy="Never"))
    return wait_until(
        f"pod {name} finished",
        lambda: get_pod(api, NS, name),
        lambda p: p.get("status", {}).get("phase") in {"Succeeded", "Failed"},
        timeout=POD_TIMEOUT,
    )


def test_restricted_pod_from_a_digest_serves_through_its_service_and_dns_name(
    api: KubeAPI, served: dict[str, Any], web: str, node_settings: NodeSettings
) -> None:
    web_pod = served["pod"]
    status = web_pod["status"]["containerStatuses"][0]
    digest = web.split("@", 1)[1]
    assert web_pod["spec"]["containers"][0]["image"] == web
    assert status["imageID"].endswith(digest), status["imageID"]
    cluster_ip = served["service"]["spec"]["clusterIP"]
    registry = f"http://{node.layout(node_settings).host_ip}:{REGISTRY.rsplit(':', 1)[1]}/v2/"
    script = (
        "set -e; {"
        f" echo via-cluster-ip; timeout 10 busybox wget -q -O - http://{cluster_ip}/;"
        f" echo via-dns; timeout 10 busybox wget -q -O - http://web.{NS}.svc.cluster.local/;"
        f" if timeout 3 busybox wget -q -O - {registry}; then echo registry=reachable;"
        " else echo registry=unreachable; fi;"
        " } > /dev/termination-log 2>&1"
    )
    done = run_to_completion(api, "client", web, script)
    terminated = container_state(done)["terminated"]
    message = terminated.get("message", "")
    assert done["status"]["phase"] == "Succeeded", message
    # The node's containerd pulls from the registry over the link; its pods cannot reach it.
    assert "registry=unreachable" in message, message
    via_ip, via_dns = message.split("via-dns")
    for answer in (via_ip, via_dns):
        # What the web container saw from inside: the restricted profile, really applied.
        assert "uid=26" in answer, message
        assert "Seccomp:\t2" in answer, message  # 2 = a seccomp filter (RuntimeDefault)
        assert "CapEff:\t0000000000000000" in answer, message
        assert "rootfs=ro" in answer, message


def test_the_host_and_the_api_server_reach_pods_as_in_a_cluster(
    api: KubeAPI, served: dict[str, Any]
) -> None:
    # The host routes the node's pod CIDR (an operator run from a checkout polls pods so).
    pod_ip = served["pod"]["status"]["podIP"]
    assert "uid=26" in requests.get(f"http://{pod_ip}:8080/", timeout=10).text
    # The API server proxies to the pod, and reads its log from the kubelet (client cert,
    # webhook authorization on the kubelet's side).
    proxied = api.request("GET", f"/api/v1/namespaces/{NS}/pods/web:8080/proxy/")
    assert "uid=26" in proxied.text
    logs = api.request("GET", f"/api/v1/namespaces/{NS}/pods/web/log").text
    assert "response:200" in logs, logs
    # In-cluster clients reach the API through the `kubernetes` Service with an automounted
    # token: CoreDNS is Ready only once its kubernetes plugin has listed Services that way.
    dns = api.request(
        "GET", "/api/v1/namespaces/kube-system/pods", params={"labelSelector": "k8s-app=kube-dns"}
    ).json()["items"]
    assert dns and all(pod_ready(p) for p in dns)
    volumes = [v["name"] for v in dns[0]["spec"]["volumes"]]
    assert any(v.startswith("kube-api-access-") for v in volumes), volumes


def test_a_claim_gets_a_local_volume_that_goes_with_it(api: KubeAPI, web: str) -> None:
    claims = resource_path("v1", "persistentvolumeclaims", namespace=NS)
    api.create(
        claims,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "16Mi"}},
            },
        },
    )
    spec = pod(
        "writer",
        web,
        ["sh", "-c", "id -u > /data/proof && ls -ln /data > /dev/termination-log"],
        restartPolicy="Never",
    )
    spec["spec"]["securityContext"]["fsGroup"] = 26
    spec["spec"]["containers"][0]["volumeMounts"].append({"name": "data", "mountPath": "/data"})
    spec["spec"]["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": "data"}})
    create(api, NS, spec)
    done = wait_until(
        "the writer finished",
        lambda: get_pod(api, NS, "writer"),
        lambda p: p.get("status", {}).get("phase") in {"Succeeded", "Failed"},
        timeout=POD_TIMEOUT,
    )
    assert done["status"]["phase"] == "Succeeded", container_state(done)
    claim = api.get(f"{claims}/data") or {}
    assert claim["spec"]["storageClassName"] == "drydock-local"  # the default class
    volume = api.get(resource_path("v1", "persistentvolumes", claim["spec"]["volumeName"])) or {}
    folder = Path(volume["spec"]["local"]["path"])
    assert (folder / "proof").read_text().strip() == "26"  # written by the pod, as uid 26
    assert (folder / "proof").stat().st_gid == 26  # the kubelet applied the pod's fsGroup
    api.delete(resource_path("v1", "pods", "writer", NS))
    api.delete(f"{claims}/data")
    api.wait_gone(
        resource_path("v1", "persistentvolumes", volume["metadata"]["name"]), timeout=POD_TIMEOUT
    )
    assert not folder.exists()


def test_a_digest_the_registry_does_not_have_never_starts(api: KubeAPI) -> None:
    missing = f"{REGISTRY}/{WEB_REPOSITORY}@sha256:{'0' * 64}"
    create(api, NS, pod("missing", missing, ["true"]))
    waiting = wait_until(
        "the missing image's pull to fail",
        lambda: container_state(get_pod(api, NS, "missing")).get("waiting", {}),
        lambda w: w.get("reason") in {"ErrImagePull", "ImagePullBackOff"},
        timeout=POD_TIMEOUT,
    )
    current = get_pod(api, NS, "missing")
    assert not pod_ready(current)
    assert "running" not in container_state(current)
    assert "not found" in waiting.get("message", ""), waiting


def test_a_restricted_namespace_refuses_privileged_pods(api: KubeAPI, web: str) -> None:
    # `privileged: true` is refused by the API server itself (--allow-privileged=false) ...
    privileged = pod("privileged", web, ["true"])
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    with pytest.raises(KubeAPIError) as err:
        create(api, NS, privileged, dry_run=True)
    assert err.value.status == 422 and "disallowed by cluster policy" in err.value.message

    # ... so the namespace is tested with what the cluster allows but "restricted" does not:
    # the host's network namespace, an added NET_ADMIN capability, root.
    host_level = pod("host-level", web, ["true"], hostNetwork=True)
    host_level["spec"]["securityContext"] = {}
    host_level["spec"]["containers"][0]["securityContext"] = {
        "capabilities": {"add": ["NET_ADMIN"]}
    }
    message = refused(api, NS, host_level)
    assert 'violates PodSecurity "restricted:latest"' in message, message
    for violation in ("host namespaces", "NET_ADMIN", "runAsNonRoot", "seccompProfile"):
        assert violation in message, message
    # The same pod is admitted where "restricted" is not enforced: the label is what refuses.
    namespace(api, OPEN_NS, {})
    admitted = create(api, OPEN_NS, host_level, dry_run=True)
    assert admitted["metadata"]["name"] == "host-level"


def test_the_node_stays_in_its_namespaces_and_down_leaves_the_host_as_it_was(
    node_settings: NodeSettings, host_before_node: list[str], served: dict[str, Any]
) -> None:
    assert pod_ready(served["pod"])  # a running pod: the crash below leaves containers behind
    running = node.up(node_settings)
    layout = running.layout
    during = node_leftovers.host_view(layout)
    # The view does see the node (so an empty diff below means something) ...
    assert f"netns {layout.netns}" in during and f"link {layout.host_if}" in during
    # ... but no pod plumbing on the host: chains, bridges, pod netns are inside the node.
    leaked = [e for e in during if "KUBE-" in e or "CNI-" in e or "cni-" in e or "kubepods" in e]
    assert not leaked, leaked
    inside = node_leftovers.inside_view(layout)
    assert "iptables nat chain KUBE-SERVICES" in inside, inside
    assert any(e.startswith("iptables nat chain CNI-") for e in inside), inside

    # A crash: the node's daemons die at once, its containers and shims live on.
    for part in ("kubelet", "kube-proxy", "containerd"):
        os.kill(running.pids[part], signal.SIGKILL)
    time.sleep(0.5)
    orphans = node_host.cgroup_pids(layout)
    assert orphans, "no container survived the daemons: the crash left nothing to clean"

    node.down(node_settings)
    after = node_leftovers.host_view(layout)
    assert after == host_before_node, {
        "appeared": sorted(set(after) - set(host_before_node)),
        "vanished": sorted(set(host_before_node) - set(after)),
    }

    warm = node.up(node_settings)
    log.warning("node restarted (warm) in %.1fs", warm.started_seconds)
    assert warm.started_seconds > 0
    with KubeAPI(load_kubeconfig(warm.control_plane.kubeconfig)) as api:
        wait_for(
            "the web pod Ready again after the restart",
            lambda: pod_ready(get_pod(api, NS, "web")),
            timeout=POD_TIMEOUT,
        )
