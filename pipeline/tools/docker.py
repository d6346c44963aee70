"""The Docker engine: builds through the best available builder, and image inspection.

Three ways to build, best first, detected once per run:
  * `buildx`   - a CLI with the buildx plugin (`docker buildx build --load`);
  * `buildkit` - a pre-23 CLI (Debian's 20.10) whose built-in BuildKit client works with
                 DOCKER_BUILDKIT=1 (cache mounts, --iidfile);
  * `legacy`   - the classic builder, which every engine has.
Image inspection and `docker save` go through docker-py over the engine's socket, so no
extra process is needed for them.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from pipeline.errors import ToolError
from pipeline.tools.runner import run, stream

log = logging.getLogger(__name__)

BUILD_TIMEOUT = 3600.0
QUICK_TIMEOUT = 60.0


@dataclass(frozen=True)
class Builder:
    kind: str  # "buildx", "buildkit" or "legacy"
    cli: str  # path of the docker CLI to use

    @property
    def buildkit(self) -> bool:
        return self.kind != "legacy"


def _docker_clis() -> list[str]:
    """Every distinct `docker` executable on PATH, in PATH order."""
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
    clis = _docker_clis()
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


def _client() -> docker.DockerClient:
    try:
        return docker.from_env(timeout=int(QUICK_TIMEOUT))
    except docker.errors.DockerException as err:
        raise ToolError(["docker"], None, str(err), "engine not reachable") from err


def inspect(ref: str) -> dict[str, Any] | None:
    """The engine's inspect document for an image, or None when it does not exist."""
    client = _client()
    try:
        attrs: dict[str, Any] = client.api.inspect_image(ref)
        return attrs
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as err:
        raise ToolError(["docker", "image", "inspect", ref], None, str(err)) from err
    finally:
        client.close()


def save(ref: str, dest: Path) -> Path:
    """`docker save` ref into dest (a docker-archive tarball), streamed."""
    client = _client()
    try:
        # The low-level call saves exactly `ref` (the archive's RepoTags name it); the
        # high-level Image.save(named=True) would name whichever tag the image lists first.
        with dest.open("wb") as fh:
            for chunk in client.api.get_image(ref):
                fh.write(chunk)
    except docker.errors.DockerException as err:
        raise ToolError(["docker", "save", ref], None, str(err)) from err
    finally:
        client.close()
    return dest


def read_files(ref: str, paths: Sequence[str]) -> dict[str, bytes]:
    """The content of regular files in an image, without running it: a container is
    created (never started), each path copied out of it, and the container removed.
    Paths that do not exist (or are not regular files) are left out of the result."""
    client = _client()
    found: dict[str, bytes] = {}
    try:
        container = client.api.create_container(ref, command=["/nonexistent"], user="0")
    except docker.errors.DockerException as err:
        client.close()
        raise ToolError(["docker", "create", ref], None, str(err)) from err
    try:
        for path in paths:
            try:
                stream_, _stat = client.api.get_archive(container["Id"], path)
            except docker.errors.NotFound:
                continue
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream_))) as tar:
                member = next((m for m in tar.getmembers() if m.isfile()), None)
                handle = tar.extractfile(member) if member is not None else None
                if handle is not None:
                    found[path] = handle.read()
    except (docker.errors.DockerException, tarfile.TarError) as err:
        raise ToolError(["docker", "cp", ref], None, str(err)) from err
    finally:
        try:
            client.api.remove_container(container["Id"], force=True)
        finally:
            client.close()
    return found


def import_rootfs(tarball: Path, tag: str, changes: Sequence[str]) -> str:
    """`docker import` a rootfs tarball with Dockerfile-style changes; returns the image id."""
    argv = ["docker", "import"]
    for change in changes:
        argv += ["--change", change]
    argv += [str(tarball), tag]
    done = run(argv, timeout=600)
    return done.stdout.strip().splitlines()[-1]


def run_container(
    image: str,
    command: Sequence[str],
    *,
    timeout: float,
    user: str | None = None,
    entrypoint: str | None = None,
    extra: Sequence[str] = (),
    check: bool = True,
) -> str:
    """Run a throwaway container (`docker run --rm`) and return its stdout."""
    argv = ["docker", "run", "--rm", "--network=none"]
    if user is not None:
        argv += ["--user", user]
    if entrypoint is not None:
        argv += ["--entrypoint", entrypoint]
    argv += [*extra, image, *command]
    return run(argv, timeout=timeout, check=check).stdout


def installed_packages(image: str) -> list[tuple[str, str, str]]:
    """(package, version, source package) for every package dpkg lists as installed."""
    out = run_container(
        image,
        ["-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${source:Package}\n"],
        entrypoint="dpkg-query",
        timeout=120,
    )
    rows = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0].startswith("ii"):
            rows.append((parts[1], parts[2], parts[3]))
    return rows


def tag(ref: str, new: str) -> None:
    run(["docker", "tag", ref, new], timeout=QUICK_TIMEOUT)


def remove(ref: str) -> None:
    run(["docker", "image", "rm", "--force", ref], timeout=QUICK_TIMEOUT, check=False)


def labels_of(inspected: Mapping[str, Any]) -> dict[str, str]:
    config = inspected.get("Config") or {}
    return dict(config.get("Labels") or {})


def apt_simulation(image: str, *, timeout: float = 300.0) -> str:
    """What `apt-get upgrade` would install in image now (CIS 4.4), via a throwaway container.

    Runs as root in the container with the network (apt must refresh its lists, which the
    image does not keep); the container is removed afterwards and the image is untouched.
    """
    script = "apt-get update -qq >/dev/null && apt-get -s -o Debug::NoLocking=1 upgrade"
    argv = ["docker", "run", "--rm", "--user", "0", "--entrypoint", "sh", image, "-c", script]
    return run(argv, timeout=timeout).stdout


def apt_install_simulation(image: str, packages: Sequence[str], *, timeout: float = 300.0) -> str:
    """`apt-get -s install` of packages in image, after a list refresh: what apt would
    install right now, with versions. Also lists pending upgrades of what is installed."""
    script = (
        "apt-get update -qq >/dev/null && "
        "apt-get -s -o Debug::NoLocking=1 dist-upgrade && "
        'apt-get -s -o Debug::NoLocking=1 install --no-install-recommends "$@"'
    )
    argv = ["docker", "run", "--rm", "--user", "0", "--entrypoint", "sh", image, "-c", script, "sh"]
    return run([*argv, *packages], timeout=timeout).stdout
