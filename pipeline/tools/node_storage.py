"""Local volumes for the node: every claim of the default class gets a directory of its own.

Why: the operator gives each instance a PersistentVolumeClaim; a cluster without a
provisioner leaves the claims Pending and the pods unscheduled. This is the smallest
provisioner that follows the external-provisioner contract: the PV controller (in
kube-controller-manager) marks a claim of the class `drydock-local` with
`volume.kubernetes.io/storage-provisioner: drydock.io/local`; this creates a `local`
PersistentVolume on a new directory under the node's state dir, bound to the claim by
claimRef; a Released volume (reclaim policy Delete) is wiped and deleted. The kubelet
applies the pod's fsGroup to a local volume, as it would on any node.

It runs as its own process (`python -m pipeline.tools.node_storage`, started by node.up)
with a client certificate whose user may only read claims and manage volumes, and polls
once a second (a handful of claims, no watch needed). Each pass touches `<root>/.ready`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, load_kubeconfig, resource_path

log = logging.getLogger(__name__)

PROVISIONER = "drydock.io/local"
STORAGE_CLASS = "drydock-local"
PROVISIONER_USER = "drydock:local-provisioner"
CLAIM_ANNOTATIONS = (
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
)
JSON = dict[str, Any]


def storage_class() -> JSON:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def wants_volume(pvc: JSON) -> bool:
    """A pending Filesystem claim that the PV controller handed to this provisioner."""
    meta, spec = pvc.get("metadata", {}), pvc.get("spec", {})
    annotations = meta.get("annotations") or {}
    return (
        pvc.get("status", {}).get("phase") == "Pending"
        and not spec.get("volumeName")
        and spec.get("volumeMode", "Filesystem") == "Filesystem"
        and any(annotations.get(a) == PROVISIONER for a in CLAIM_ANNOTATIONS)
    )


def volume_for(pvc: JSON, node: str, root: Path) -> JSON:
    """The local PersistentVolume for a claim: its own directory, on this node only (pure)."""
    meta, spec = pvc["metadata"], pvc["spec"]
    name = f"pvc-{meta['uid']}"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": "Filesystem",
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "local": {"path": str(root / name)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [node],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


def reconcile(api: KubeAPI, node: str, root: Path) -> None:
    """One pass: a volume for each waiting claim, deletion of each released volume."""
    claims = api.request("GET", resource_path("v1", "persistentvolumeclaims")).json()
    for pvc in claims.get("items", []):
        if wants_volume(pvc):
            pv = volume_for(pvc, node, root)
            folder = Path(pv["spec"]["local"]["path"])
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o777)  # the pod's fsGroup narrows it; the state dir is root's only
            api.create(resource_path("v1", "persistentvolumes"), pv, exist_ok=True)
            claim = f"{pvc['metadata']['namespace']}/{pvc['metadata']['name']}"
            log.info("provisioned %s for %s", pv["metadata"]["name"], claim)
    volumes = api.request("GET", resource_path("v1", "persistentvolumes")).json()
    for pv in volumes.get("items", []):
        annotations = pv["metadata"].get("annotations") or {}
        released = pv.get("status", {}).get("phase") in {"Released", "Failed"}
        if annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER or not released:
            continue
        folder = root / pv["metadata"]["name"]
        if folder.parent == root and folder.name.startswith("pvc-"):
            shutil.rmtree(folder, ignore_errors=True)
        api.delete(resource_path("v1", "persistentvolumes", pv["metadata"]["name"]))
        log.info("deleted %s", pv["metadata"]["name"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    args.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with KubeAPI(load_kubeconfig(args.kubeconfig)) as api:
        while not stopping.is_set():
            try:
                reconcile(api, args.node, args.root)
                (args.root / ".ready").touch()
            except (KubeAPIError, OSError) as err:
                log.warning("pass failed, retrying: %s", err)
            stopping.wait(1.0)


if __name__ == "__main__":
    main()
