"""`docker tag`, `docker push` and the RepoDigests read-back, through the project's runner.

Publication pushes with the engine's own CLI so the engine records the pushed manifest's
digest in the image's RepoDigests; that local digest is later compared with the one the
registry reports. Each function is one process with a timeout; a failure is a ToolError
and retrying is the caller's decision.
"""

from __future__ import annotations

import json
import logging
import shutil

from pipeline.errors import ToolError
from pipeline.tools.runner import run

log = logging.getLogger(__name__)

QUICK_TIMEOUT = 60.0
PUSH_TIMEOUT = 1800.0


def cli() -> str:
    """The docker CLI on PATH, or a ToolError saying how to get one."""
    found = shutil.which("docker")
    if not found:
        raise ToolError(["docker"], None, "", "not found on PATH (run scripts/host.sh up)")
    return found


def tag(source: str, target: str) -> None:
    """Give the local image `source` the additional name `target`."""
    run([cli(), "tag", source, target], timeout=QUICK_TIMEOUT)


def untag(ref: str) -> None:
    """Remove the local name `ref` (the image stays while other names point at it)."""
    run([cli(), "image", "rm", "--no-prune", ref], timeout=QUICK_TIMEOUT)


def push(ref: str, *, timeout: float = PUSH_TIMEOUT) -> str:
    """Push `ref`; returns the digest the CLI reported ("" when it printed none)."""
    done = run([cli(), "push", ref], timeout=timeout)
    for line in done.stdout.splitlines():
        # "<tag>: digest: sha256:... size: 528"
        if "digest: sha256:" in line:
            return "sha256:" + line.split("digest: sha256:", 1)[1].split()[0]
    return ""


def repo_digests(ref: str) -> tuple[str, ...]:
    """The `name@sha256:...` entries the engine recorded for the image `ref` names."""
    done = run(
        [cli(), "image", "inspect", "--format", "{{json .RepoDigests}}", ref],
        timeout=QUICK_TIMEOUT,
    )
    try:
        parsed = json.loads(done.stdout.strip() or "[]")
    except ValueError as err:
        raise ToolError(done.argv, 0, done.stdout[-300:], "printed unparsable RepoDigests") from err
    return tuple(str(d) for d in parsed or ())


def image_id(ref: str) -> str:
    """The local image id ("sha256:...") `ref` names."""
    done = run([cli(), "image", "inspect", "--format", "{{.Id}}", ref], timeout=QUICK_TIMEOUT)
    return done.stdout.strip()
