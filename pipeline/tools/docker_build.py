"""Image builds through the best builder the machine's Docker CLIs offer.

Three ways to build, best first, detected once per run:
  * `buildx`   - a CLI with the buildx plugin (`docker buildx build --load`);
  * `buildkit` - a pre-23 CLI (Debian's 20.10) whose built-in BuildKit client works with
                 DOCKER_BUILDKIT=1 (cache mounts, --iidfile);
  * `legacy`   - the classic builder, which every engine has.
Builds go through the CLI (and so through pipeline.tools.runner, with its timeout and
streamed output) because only the CLI carries BuildKit's client; everything else talks to
the engine through the Docker SDK in pipeline.tools.docker. python-on-whales, which the
first design named for builds, was dropped: it shells out to the same CLI but outside the
runner, so its builds would have no timeout and no ToolError, and buildx is not installed
on these machines anyway.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.tools.runner import run, stream

BUILD_TIMEOUT = 3600.0
QUICK_TIMEOUT = 60.0


@dataclass(frozen=True)
class Builder:
    kind: str  # "buildx", "buildkit" or "legacy"
    cli: str  # path of the docker CLI to use

    @property
    def buildkit(self) -> bool:
        return self.kind != "legacy"


def docker_clis() -> list[str]:
    """Every distinct `docker` executable on PATH, in PATH order (the first is `cli()`)."""
    seen: list[str] = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(entry) / "docker"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            real = str(candidate.resolve())
            if real not in [str(Path(s).resolve()) for s in seen]:
                seen.append(str(candidate))
    return seen


def detect_builder(prefer: str = "auto") -> Builder:
    """Pick buildx, else a CLI with built-in BuildKit, else the legacy builder."""
    clis = docker_clis()
    if not clis:
        raise ToolError(["docker"], None, "", "not found on PATH (run scripts/host.sh up)")
    if prefer == "legacy":
        return Builder("legacy", clis[0])
    for cli in clis:
        if run([cli, "buildx", "version"], timeout=QUICK_TIMEOUT, check=False).returncode == 0:
            return Builder("buildx", cli)
    for cli in clis:
        done = run(
            [cli, "version", "--format", "{{.Client.Version}}"], timeout=QUICK_TIMEOUT, check=False
        )
        major = done.stdout.strip().split(".", 1)[0]
        if major.isdigit() and int(major) < 23:
            return Builder("buildkit", cli)
    if prefer in ("buildx", "buildkit"):
        raise ToolError([clis[0], "build"], None, "", f"builder '{prefer}' is not available here")
    return Builder("legacy", clis[0])


def build(
    builder: Builder,
    context: Path,
    tag: str,
    *,
    build_args: Mapping[str, str],
    labels: Mapping[str, str],
    on_line: Callable[[str], None],
    timeout: float = BUILD_TIMEOUT,
) -> str:
    """Build context/Dockerfile as tag; returns the image id ("sha256:...")."""
    iidfile = context / ".iid"
    argv: list[str] = [builder.cli]
    env: dict[str, str] = {}
    if builder.kind == "buildx":
        argv += ["buildx", "build", "--load", "--progress=plain"]
    else:
        argv += ["build"]
        env["DOCKER_BUILDKIT"] = "1" if builder.kind == "buildkit" else "0"
        if builder.kind == "buildkit":
            argv += ["--progress=plain"]
    argv += ["--pull=false", "--tag", tag, "--iidfile", str(iidfile)]
    for key, value in sorted(build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    for key, value in sorted(labels.items()):
        argv += ["--label", f"{key}={value}"]
    argv.append(str(context))
    stream(argv, timeout=timeout, on_line=on_line, env=env)
    try:
        return iidfile.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ToolError(argv, 0, "", "left no image id file") from err
