"""A stand-in for the kubelet the dev control plane does not have.

The local control plane stores and admits pods but nothing runs them, so an instance pod
would never become Ready and a rolling update would stop after its first step. This plays
the one part of a kubelet the operator depends on: once a pod's image can be pulled (its
registry serves it at that digest or tag), the pod is reported Running and Ready through
the `pods/status` subresource, as a kubelet does once its readiness probe passes. A pod
whose image is not in its registry stays pending, with the reason printed once.

Only pods labelled `app.kubernetes.io/managed-by=drydock-operator` are touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.catalog.registry import RegistryCheck
from pipeline.errors import PublishError
from pipeline.publish.sign import split_reference
from pipeline.tools.kubeapi import KubeAPI

MANAGED = "app.kubernetes.io/managed-by=drydock-operator"
MERGE_PATCH = "application/merge-patch+json"

ImageCheck = Callable[[str], str | None]  # image -> None when pullable, else why not


@dataclass(frozen=True)
class Transition:
    namespace: str
    pod: str
    image: str
    ready: bool
    reason: str = ""

    def __str__(self) -> str:
        if self.ready:
            return f"{self.namespace}/{self.pod}: {self.image} pulled, Ready"
        return f"{self.namespace}/{self.pod}: waiting: {self.reason}"


def is_ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def pending(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pods a kubelet would still have to start: not Ready and not being deleted."""
    return [
        p for p in pods if not is_ready(p) and not p.get("metadata", {}).get("deletionTimestamp")
    ]


def registry_check(check: RegistryCheck | None = None) -> ImageCheck:
    """Pullable means: the image's registry serves that repository at that digest or tag."""
    reg = check or RegistryCheck(timeout=5.0, attempts=2)

    def pullable(image: str) -> str | None:
        try:
            registry, repository, reference = split_reference(image)
        except PublishError as err:
            return str(err)
        if reg.exists(registry, repository, reference):
            return None
        return f"{image}: not found in {registry}"

    return pullable


def always_pullable(_image: str) -> str | None:
    return None


def ready_status() -> dict[str, Any]:
    return {
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
                {"type": "Ready", "status": "True"},
            ],
        }
    }


def sync_once(api: KubeAPI, check: ImageCheck) -> list[Transition]:
    """One pass over every managed pod: mark the pullable ones Ready; say why the others wait."""
    listing = api.request("GET", "/api/v1/pods", params={"labelSelector": MANAGED}).json()
    changes: list[Transition] = []
    for pod in pending(listing.get("items", [])):
        meta = pod["metadata"]
        image = str(pod["spec"]["containers"][0]["image"])
        why = check(image)
        if why is None:
            api.request(
                "PATCH",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                body=json.dumps(ready_status()).encode(),
                content_type=MERGE_PATCH,
                accept=frozenset({200, 404, 409}),  # gone or replaced meanwhile: next pass
            )
        changes.append(Transition(meta["namespace"], meta["name"], image, why is None, why or ""))
    return changes
