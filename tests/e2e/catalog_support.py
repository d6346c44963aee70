"""Helpers for the catalog e2e tests: CRD sets, real images in the local registry."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from pipeline.catalog.crd import KINDS, crd
from pipeline.models.publish import PublishedImage
from pipeline.tools.controlplane import cache_dir
from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, resource_path
from pipeline.tools.runner import run

REPO = Path(__file__).parents[2]
CNPG = REPO / "tests" / "fixtures" / "cnpg"
REGISTRY = "127.0.0.1:5000"
E2E_REPOSITORY = "drydock-e2e/postgresql"
CRD_COLLECTION = resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions")


def crd_set(which: str) -> list[dict[str, Any]]:
    """CloudNativePG's own CRDs (verbatim fixtures) or Drydock's (operator/manifests/crds)."""
    if which == "cnpg":
        return [
            yaml.safe_load((CNPG / f"postgresql.cnpg.io_{k.lower()}s.yaml").read_text())
            for k in KINDS
        ]
    files = sorted((REPO / "operator" / "manifests" / "crds").glob("postgresql.cnpg.io_*.yaml"))
    docs = [yaml.safe_load(p.read_text()) for p in files]
    assert docs == [crd("ClusterImageCatalog"), crd("ImageCatalog")]
    return docs


def install_crds(api: KubeAPI, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        path = f"{CRD_COLLECTION}/{doc['metadata']['name']}"
        live = api.get(path)
        if live is not None and live["metadata"].get("deletionTimestamp"):
            api.wait_gone(path, timeout=120)  # another module's CRD set is still going away
        api.apply(path, doc)
    for doc in docs:
        api.wait_crd_established(doc["metadata"]["name"])


def remove_crds(api: KubeAPI, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        api.delete(f"{CRD_COLLECTION}/{doc['metadata']['name']}")
    for doc in docs:
        path = f"{CRD_COLLECTION}/{doc['metadata']['name']}"
        try:
            api.wait_gone(path, timeout=120)
        except KubeAPIError as err:
            live = api.get(path) or {}
            conditions = live.get("status", {}).get("conditions", [])
            raise AssertionError(f"{path} not gone: {conditions}") from err


def require_registry() -> None:
    try:
        requests.get(f"http://{REGISTRY}/v2/", timeout=5).raise_for_status()
    except requests.RequestException as err:
        pytest.fail(f"registry {REGISTRY} not answering ({err}): run scripts/host.sh up")


def crane() -> Path:
    path = cache_dir() / "bin" / "crane"
    if not path.is_file():
        pytest.fail(f"{path} missing: build it with `bash scripts/tools.sh crane`")
    return path


def _layer(path: Path, content: str) -> None:
    data = content.encode()
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("etc/drydock-e2e")
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))


def push_image(work: Path, tag: str, content: str) -> str:
    """Push a one-layer image to the local registry; returns its digest."""
    layer = work / f"{tag}.tar"
    _layer(layer, content)
    ref = f"{REGISTRY}/{E2E_REPOSITORY}:{tag}"
    run([str(crane()), "append", "-f", str(layer), "-t", ref], timeout=120)
    digest = run([str(crane()), "digest", ref], timeout=60).stdout.strip()
    assert digest.startswith("sha256:")
    return digest


def published(
    work: Path,
    stamp: str,
    majors: tuple[int, ...] = (16, 17),
    flavours: tuple[str, ...] = ("minimal", "standard"),
) -> list[PublishedImage]:
    """Real images (one per flavour x major, bookworm) pushed now, as publish would record them."""
    out = []
    for flavour in flavours:
        for major in majors:
            tag = f"{major}.1-{stamp}-{flavour}-bookworm"
            digest = push_image(work, tag, f"{tag}\n")
            created = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:12]}:00Z"
            out.append(
                PublishedImage(
                    target=f"postgresql-{major}-{flavour}-bookworm",
                    registry=REGISTRY,
                    repository=E2E_REPOSITORY,
                    tag=tag,
                    digest=digest,
                    gated=True,
                    major=major,
                    flavour=flavour,
                    release="bookworm",
                    created=created,
                )
            )
    return out
