"""Helpers for the Clusters that run PostgreSQL on the real node: images, clients, waits.

Images: the operator image (whose manager.pyz every instance pod's bootstrap-controller
copies) and the operand `postgresql-15-minimal-bookworm` are built by Drydock's own
executor and pushed to the local registry, where the node pulls them BY DIGEST. A "new
digest" for a roll is the same operand with one more label, pushed again: a different
image in the registry, as a nightly rebuild would publish.

Clients are pods: a one-shot restricted pod in the Cluster's namespace runs psql from the
operand image against a Service, with credentials from the Cluster's Secrets (secretKeyRef)
and the Cluster's CA to verify the server by name; what psql prints is its termination
message.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from catalog_support import REGISTRY
from node_support import restricted_context
from operator_support import wait_until

from pipeline.build.events import Silent
from pipeline.build.executor import build_plan
from pipeline.descriptors.load import load_plan
from pipeline.errors import ToolError
from pipeline.models.publish import PublishedImage
from pipeline.settings import Settings, default_cache
from pipeline.tools import docker
from pipeline.tools.kubeapi import KubeAPI, resource_path

log = logging.getLogger(__name__)
REPO = Path(__file__).parents[2]
OPERAND = "postgresql-15-minimal-bookworm"
CATALOG = "postgresql-minimal-bookworm"
E2E_REPOSITORY = "drydock-e2e"
CLIENT_TIMEOUT = 120.0
CA = "ca.crt"


@dataclass(frozen=True)
class Images:
    operator: str  # registry/repo@sha256:...
    operand: str
    operand_id: str  # the local image id
    operand_local: str  # a local name held for the session: others' rebuilds move
    # drydock/postgresql:15-minimal-bookworm, and an image with no name can be removed


def push(image_id: str, repository: str, tag: str = "") -> str:
    """Push a local image (under `tag`, or a fresh one); `registry/repository@sha256:...`."""
    ref = f"{REGISTRY}/{E2E_REPOSITORY}/{repository}:{tag or uuid.uuid4().hex[:12]}"
    docker.tag(image_id, ref)
    try:
        digest = docker.push(ref)
    finally:
        _untag_quietly(ref)
    assert digest.startswith("sha256:"), f"no digest pushing {ref}"
    return f"{REGISTRY}/{E2E_REPOSITORY}/{repository}@{digest}"


def _untag_quietly(ref: str) -> None:
    """Drop a name this module gave; the shared engine may refuse (a container of someone
    else's uses the image), and a leftover unique name harms nobody."""
    try:
        docker.untag(ref)
    except ToolError as err:
        log.warning("left %s in the engine: %s", ref, err)


def build_and_push() -> Images:
    """The operator and operand images built by Drydock, in the registry by digest."""
    plan = load_plan(REPO / "images", REPO / "dockerfiles").select(("operator", OPERAND))
    built = build_plan(plan, Settings(root=REPO, cache=default_cache(), jobs=2), Silent())
    operator, operand = built.images["operator"], built.images[OPERAND]
    local = f"drydock-e2e/postgresql-operand:{uuid.uuid4().hex[:12]}"
    docker.tag(operand.image_id, local)
    return Images(
        operator=push(operator.image_id, "postgresql-operator"),
        operand=push(operand.image_id, "postgresql"),
        operand_id=operand.image_id,
        operand_local=local,
    )


def new_digest(images: Images, work: Path, label: str, tag: str = "") -> str:
    """The same operand as a different image (one more label), pushed: a new digest."""
    context = work / f"rebuild-{label}"
    context.mkdir(parents=True, exist_ok=True)
    # FROM the session's local name (BuildKit reads `FROM sha256:...` as a Docker Hub image).
    (context / "Dockerfile").write_text(
        f"FROM {images.operand_local}\nLABEL io.drydock.e2e.rebuild={label}\n", encoding="utf-8"
    )
    local = f"drydock-e2e/postgresql-rebuild:{label}"
    image_id = docker.build(
        docker.detect_builder(),
        context,
        local,
        build_args={},
        labels={},
        on_line=lambda _line: None,
    )
    try:
        return push(image_id, "postgresql", tag)
    finally:
        _untag_quietly(local)


def published_record(ref: str, tag: str, stamp: str) -> PublishedImage:
    """How `drydock run` records a promoted operand: the input of `drydock catalog apply`."""
    created = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:12]}:00Z"
    return PublishedImage(
        target=OPERAND,
        registry=REGISTRY,
        repository=f"{E2E_REPOSITORY}/postgresql",
        tag=tag,
        digest=ref.rsplit("@", 1)[1],
        gated=True,
        major=15,
        flavour="minimal",
        release="bookworm",
        created=created,
    )


# --- clients ---------------------------------------------------------------------------


def psql(
    api: KubeAPI,
    namespace: str,
    image: str,
    sql: str,
    *,
    secret: str,
    host: str = "pg-rw",
    dbname: str = "app",
    extra: str = "",
    ca_secret: str = "pg-ca",  # noqa: S107  (the name of the Cluster CA Secret)
) -> tuple[bool, str]:
    """Run psql in a one-shot restricted pod: (succeeded, what it printed)."""
    name = f"psql-{uuid.uuid4().hex[:8]}"
    conninfo = (
        f"host={host} port=5432 dbname={dbname} sslmode=verify-full "
        f"sslrootcert=/ca/ca.crt connect_timeout=10 {extra}"
    )
    script = (
        f'psql "{conninfo}" -X -q -A -t -v ON_ERROR_STOP=1 -c "$SQL" > /dev/termination-log 2>&1'
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "psql-client"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "psql",
                    "image": image,
                    "command": ["sh", "-c", script],
                    "env": [
                        {"name": "PGUSER", "valueFrom": _key(secret, "username")},
                        {"name": "PGPASSWORD", "valueFrom": _key(secret, "password")},
                        {"name": "SQL", "value": sql},
                    ],
                    "securityContext": restricted_context(),
                    "volumeMounts": [{"name": "ca", "mountPath": "/ca", "readOnly": True}],
                }
            ],
            "volumes": [
                {
                    "name": "ca",
                    "secret": {
                        "secretName": ca_secret,
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    },
                }
            ],
        },
    }
    path = resource_path("v1", "pods", namespace=namespace)
    api.create(path, pod)
    done = wait_until(
        f"client pod {name}",
        lambda: api.get(resource_path("v1", "pods", name, namespace)) or {},
        lambda p: p.get("status", {}).get("phase") in {"Succeeded", "Failed"},
        timeout=CLIENT_TIMEOUT,
    )
    statuses = done["status"].get("containerStatuses") or [{}]
    message = str(statuses[0].get("state", {}).get("terminated", {}).get("message", ""))
    api.delete(resource_path("v1", "pods", name, namespace))
    return done["status"]["phase"] == "Succeeded", message.strip()


def _key(secret: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": secret, "key": key}}


def temporary_secret(api: KubeAPI, namespace: str, data: dict[str, str]) -> str:
    """A Secret for a client that must offer credentials the Cluster did not issue."""
    name = f"client-{uuid.uuid4().hex[:8]}"
    api.create(
        resource_path("v1", "secrets", namespace=namespace),
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data},
    )
    return name


# --- instances ----------------------------------------------------------------------------


def manager_status(pod: dict[str, Any]) -> dict[str, Any]:
    """The instance manager's `/pg/status`, from the host (it routes the node's pods)."""
    ip = pod["status"]["podIP"]
    data: dict[str, Any] = requests.get(f"http://{ip}:8000/pg/status", timeout=5).json()
    return data


def metrics(pod: dict[str, Any]) -> str:
    return requests.get(f"http://{pod['status']['podIP']}:9187/metrics", timeout=5).text


def wait_healthy(
    get_cluster: Any, name: str, image: str, count: int, timeout: float
) -> dict[str, Any]:
    """The Cluster once it reports `count` Ready instances, healthy, on `image`."""
    return wait_until(
        f"{name} healthy on {image.rsplit('@', 1)[-1][:19]}",
        lambda: get_cluster(name),
        lambda c: (
            c.get("status", {}).get("phase") == "Cluster in healthy state"
            and c["status"].get("readyInstances") == count
            and c["status"].get("image") == image
        ),
        timeout=timeout,
    )
