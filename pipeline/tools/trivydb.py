"""Build a Trivy vulnerability DB with the trivy-db builder and push it with oras.

Trivy can only scan offline against a DB it can pull as an OCI artifact (or find in its
cache). These wrappers run the two tools that make one from advisory files: `trivy-db
build` (advisories -> trivy.db + metadata.json) and `oras push` (tarball -> registry).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.tools.locate import locate
from pipeline.tools.runner import run

log = logging.getLogger(__name__)

BUILD_TIMEOUT = 300.0
ORAS_TIMEOUT = 120.0
ARTIFACT_TYPE = "application/vnd.aquasec.trivy.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"


def build_db(vuln_cache: Path, output_dir: Path, sources: tuple[str, ...] = ("debian",)) -> None:
    """`trivy-db build`: read <vuln_cache>/vuln-list-*/..., write trivy.db + metadata.json."""
    exe = locate("trivy-db").path
    output_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(exe),
        "build",
        "--cache-dir",
        str(vuln_cache),
        "--output-dir",
        str(output_dir),
        "--only-update",
        ",".join(sources),
    ]
    # The builder reads an optional overrides/ directory from its working directory.
    with tempfile.TemporaryDirectory(prefix="drydock-trivy-db-") as workdir:
        done = run(argv, timeout=BUILD_TIMEOUT, cwd=Path(workdir))
    for name in ("trivy.db", "metadata.json"):
        if not (output_dir / name).is_file():
            raise ToolError(argv, 0, done.stderr[-2000:], f"wrote no {name}")
    log.info("trivy-db built in %.1fs", done.seconds)


def _plain_http(plain_http: bool) -> list[str]:
    return ["--plain-http"] if plain_http else []


def push(ref: str, archive: Path, *, plain_http: bool, image_spec: str | None = None) -> str:
    """`oras push` the DB archive as Trivy expects it; returns oras' output."""
    exe = locate("oras").path
    argv = [str(exe), "push", *_plain_http(plain_http), "--artifact-type", ARTIFACT_TYPE]
    if image_spec:
        argv += ["--image-spec", image_spec]
    # A relative file name: oras records it as the layer's title annotation.
    argv += [ref, f"{archive.name}:{LAYER_MEDIA_TYPE}"]
    return run(argv, timeout=ORAS_TIMEOUT, cwd=archive.parent).stdout


def exists(ref: str, *, plain_http: bool) -> bool:
    """True when the registry has a manifest for ref (False on "not found")."""
    exe = locate("oras").path
    argv = [str(exe), "manifest", "fetch", *_plain_http(plain_http), "--descriptor", ref]
    done = run(argv, timeout=ORAS_TIMEOUT, check=False)
    if done.returncode == 0:
        return True
    if "not found" in (done.stderr + done.stdout).lower():
        return False
    raise ToolError(argv, done.returncode, done.stderr[-2000:])
