"""Helpers for the tests on the real node: a small web image, restricted pods, waits.

The image is built here, FROM Drydock's own Debian base (drydock/debian:bookworm, built by
Drydock's base builder when missing) with Debian's busybox added, pushed to the local
registry and named by digest: it serves HTTP (busybox httpd) and fetches it (busybox wget).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from catalog_support import REGISTRY
from operator_support import wait_for

from pipeline.build.events import Silent
from pipeline.build.executor import build_plan
from pipeline.descriptors.load import load_plan
from pipeline.settings import Settings, default_cache
from pipeline.tools import docker
from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, resource_path

REPO = Path(__file__).parents[2]
BASE = "drydock/debian:bookworm"
WEB_REPOSITORY = "drydock-e2e/node-web"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
DOCKERFILE = f"""FROM {BASE}
RUN apt-get update && apt-get install -y --no-install-recommends busybox \\
 && rm -rf /var/lib/apt/lists/*
USER 26:26
ENTRYPOINT ["busybox"]
"""
# What the web pod serves: facts it can only know from inside the restricted container.
WEB_SCRIPT = (
    "mkdir -p /tmp/www && cd /tmp/www"
    " && { echo uid=$(id -u); grep -E '^(Seccomp|CapEff):' /proc/self/status;"
    " if touch /probe 2>/dev/null; then echo rootfs=rw; else echo rootfs=ro; fi; } > index.html"
    " && exec busybox httpd -f -v -p 8080 -h /tmp/www"
)


def web_image(work: Path) -> str:
    """Build and push the web image; returns `registry/repo@sha256:...`."""
    if docker.inspect(BASE) is None:
        plan = load_plan(REPO / "images", REPO / "dockerfiles").select(("base-bookworm",))
        build_plan(plan, Settings(root=REPO, cache=default_cache(), jobs=1), Silent())
    context = work / "web-image"
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(DOCKERFILE, encoding="utf-8")
    local = "drydock-e2e/node-web:latest"
    builder = docker.detect_builder()
    docker.build(builder, context, local, build_args={}, labels={}, on_line=lambda _line: None)
    ref = f"{REGISTRY}/{WEB_REPOSITORY}:{int(time.time())}"
    docker.tag(local, ref)
    try:
        digest = docker.push(ref)
    finally:
        docker.untag(ref)
    assert digest.startswith("sha256:"), digest
    return f"{REGISTRY}/{WEB_REPOSITORY}@{digest}"


def restricted_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 26,
        "runAsGroup": 26,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod(name: str, image: str, args: list[str], **spec: Any) -> dict[str, Any]:
    """A pod whose one container runs `busybox ARGS` under the restricted profile."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "args": args,
                    "securityContext": restricted_context(),
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}],
            **spec,
        },
    }


def namespace(api: KubeAPI, name: str, labels: dict[str, str]) -> None:
    """Create the namespace and wait for its `default` ServiceAccount (admission needs it)."""
    api.apply(
        resource_path("v1", "namespaces", name),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
    )
    wait_for(
        f"ServiceAccount {name}/default",
        lambda: api.get(resource_path("v1", "serviceaccounts", "default", name)),
    )


def create(api: KubeAPI, ns: str, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
    plural = {"Pod": "pods", "Service": "services"}[obj["kind"]]
    path = resource_path("v1", plural, namespace=ns)
    resp = api.request(
        "POST",
        path,
        params={"dryRun": "All"} if dry_run else None,
        body=json.dumps(obj).encode(),
        content_type="application/json",
    )
    data: dict[str, Any] = resp.json()
    return data


def refused(api: KubeAPI, ns: str, obj: dict[str, Any]) -> str:
    """The API server's message when it refuses to create obj (fails if it is accepted)."""
    try:
        create(api, ns, obj, dry_run=True)
    except KubeAPIError as err:
        assert err.status == 403, err
        return err.message
    pytest.fail(f"{obj['metadata']['name']} was admitted into {ns}")


def get_pod(api: KubeAPI, ns: str, name: str) -> dict[str, Any]:
    return api.get(resource_path("v1", "pods", name, ns)) or {}


def pod_ready(p: dict[str, Any]) -> bool:
    conditions = p.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def container_state(p: dict[str, Any]) -> dict[str, Any]:
    statuses = p.get("status", {}).get("containerStatuses") or [{}]
    state: dict[str, Any] = statuses[0].get("state", {})
    return state
