"""The node's own images (the pod sandbox "pause" and CoreDNS), built here and pushed locally.

Why: no image can be pulled from the internet, and a real node pulls every image, the
sandbox included, from a registry by digest. Both binaries are built by scripts/tools.sh
from upstream sources at pinned versions (pause.c from the k8s.io/kubernetes module,
CoreDNS from the Go module proxy); each becomes a one-layer image FROM scratch, as
upstream's own Dockerfiles do, and is pushed with crane to the local registry. The layer is
written byte-for-byte reproducibly (fixed mtime, owner and mode), so the same binary always
gives the same digest and a warm start pushes nothing.
"""

from __future__ import annotations

import io
import json
import logging
import platform
import tarfile
from dataclasses import dataclass
from pathlib import Path

import requests

from pipeline.errors import ToolError
from pipeline.tools.locate import locate
from pipeline.tools.runner import run

log = logging.getLogger(__name__)

PUSH_TIMEOUT = 300.0
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


@dataclass(frozen=True)
class ScratchImage:
    """A binary as the only file of an image, how it starts and as whom."""

    name: str  # repository under drydock/node/
    binary: Path
    path_in_image: str  # e.g. "/pause"
    user: str  # "uid:gid"
    tag: str


def go_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def layer_bytes(binary: Path, path_in_image: str) -> bytes:
    """A tar with the binary at path_in_image: root-owned, 0755, mtime 0 (reproducible)."""
    data = binary.read_bytes()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(path_in_image.lstrip("/"))
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _present(registry: str, repository: str, digest: str) -> bool:
    try:
        resp = requests.head(
            f"http://{registry}/v2/{repository}/manifests/{digest}",
            headers={"Accept": MANIFEST_TYPES},
            timeout=10.0,
        )
    except requests.RequestException:
        return False
    return resp.status_code == 200


def ensure_image(image: ScratchImage, registry: str, work: Path) -> str:
    """Push image unless the registry has it already; returns `registry/repo@sha256:...`.

    `work/<name>.json` remembers the digest a binary was pushed as.
    """
    if not image.binary.is_file():
        raise ToolError(
            [str(image.binary)],
            None,
            "",
            f"not found: build it with `bash scripts/tools.sh {image.binary.name}`",
        )
    repository = f"drydock/node/{image.name}"
    stat = image.binary.stat()
    memo = work / f"{image.name}.json"
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    # The binary's size and mtime stand for its content here (tools.sh writes a new file
    # per version); what was pushed is still checked against the registry.
    key = f"{stat.st_size} {stat.st_mtime_ns} {image.path_in_image} {image.user} {image.tag}"
    digest = known.get(key) if isinstance(known, dict) else None
    if isinstance(digest, str) and _present(registry, repository, digest):
        return f"{registry}/{repository}@{digest}"
    layer = layer_bytes(image.binary, image.path_in_image)
    work.mkdir(parents=True, exist_ok=True)
    tarball = work / f"{image.name}-layer.tar"
    tarball.write_bytes(layer)
    crane = str(locate("crane").path)
    ref = f"{registry}/{repository}:{image.tag}"
    run([crane, "append", "--oci-empty-base", "-f", str(tarball), "-t", ref], timeout=PUSH_TIMEOUT)
    run(
        [
            crane,
            "mutate",
            ref,
            f"--entrypoint={image.path_in_image}",
            f"--user={image.user}",
            f"--set-platform=linux/{go_arch()}",
            "-t",
            ref,
        ],
        timeout=PUSH_TIMEOUT,
    )
    digest = run([crane, "digest", ref], timeout=60.0).stdout.strip()
    if not digest.startswith("sha256:"):
        raise ToolError([crane, "digest", ref], None, digest, "no digest")
    tarball.unlink()
    memo.write_text(json.dumps({key: digest}) + "\n", encoding="utf-8")
    log.info("pushed %s@%s", ref, digest)
    return f"{registry}/{repository}@{digest}"
