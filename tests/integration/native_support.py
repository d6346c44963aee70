"""Helpers for the native-check integration tests: a Debian base, builds, docker save.

Everything goes through `pipeline.tools` (the lead's docker wrapper and the runner), so
these tests exercise the same engine calls the pipeline makes. The base is the pipeline's
`drydock/debian:bookworm` when it exists; otherwise a debootstrap minbase is built once
and kept under its own tag, so later runs reuse it.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.tools import docker
from pipeline.tools.runner import run

log = logging.getLogger(__name__)

PIPELINE_BASE = "drydock/debian:bookworm"
FALLBACK_BASE = "drydock-test/debian-minbase:bookworm"
APT_SOURCES = Path("/etc/apt")


def mirror_url(apt_dir: Path = APT_SOURCES) -> str:
    """The Debian mirror this machine's apt sources name (not the security archive)."""
    candidates: list[str] = []
    for path in sorted(apt_dir.glob("sources.list.d/*.sources")):
        candidates += re.findall(r"^URIs:\s*(\S+)", path.read_text(encoding="utf-8"), re.M)
    for path in [apt_dir / "sources.list", *sorted(apt_dir.glob("sources.list.d/*.list"))]:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            candidates += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M)
    for url in candidates:
        if url.rstrip("/").endswith("/debian"):
            return url
    raise ToolError(["debootstrap"], None, "", f"no Debian mirror found in {apt_dir}")


def bootstrap_base(tag: str = FALLBACK_BASE, release: str = "bookworm") -> str:
    """debootstrap --variant=minbase + docker import; returns the image id."""
    work = Path(tempfile.mkdtemp(prefix="drydock-minbase-"))
    try:
        rootfs, tarball = work / "rootfs", work / "rootfs.tar"
        run(["debootstrap", "--variant=minbase", release, str(rootfs), mirror_url()], timeout=1200)
        for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()  # debootstrap keeps the downloaded packages; an image should not
        run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], timeout=600)
        return docker.import_rootfs(tarball, tag, ['CMD ["bash"]'])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def base_image() -> tuple[str, str]:
    """(reference, image id) of a Debian bookworm base to build the test images on."""
    for ref in (PIPELINE_BASE, FALLBACK_BASE):
        inspected = docker.inspect(ref)
        if inspected is not None:
            return ref, str(inspected["Id"])
    log.info("no %s image: bootstrapping %s", PIPELINE_BASE, FALLBACK_BASE)
    bootstrap_base()
    inspected = docker.inspect(FALLBACK_BASE)
    if inspected is None:
        raise ToolError(["docker", "import"], None, "", f"{FALLBACK_BASE} missing after import")
    return FALLBACK_BASE, str(inspected["Id"])


def build_image(
    builder: docker.Builder,
    work: Path,
    tag: str,
    dockerfile: str,
    files: Mapping[str, bytes] | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Build a Dockerfile (plus context files) as tag; returns the image id."""
    context = work / re.sub(r"[^A-Za-z0-9]+", "-", tag)
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    for name, data in (files or {}).items():
        target = context / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return docker.build(
        builder,
        context,
        tag,
        build_args={},
        labels=dict(labels or {}),
        on_line=lambda line: log.debug("%s: %s", tag, line),
        timeout=900,
    )


def save_image(ref: str, dest: Path) -> Path:
    return docker.save(ref, dest)
