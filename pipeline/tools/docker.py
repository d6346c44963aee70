"""The Docker engine: one way to reach it, the Docker SDK for queries, the CLI where needed.

Engine queries and image moves (inspect, save, load, pull, tag, untag, remove, RepoDigests)
go through the Docker SDK (docker-py) over the engine's socket: no process, typed errors.
The CLI is used where only it does the job: builds (pipeline.tools.docker_build, BuildKit's
client lives in the CLI), `docker push` (prints the pushed digest and uses the credentials
`docker login` stored), `docker import` and throwaway `docker run` containers. Every CLI call
goes through pipeline.tools.runner with a timeout, and `cli()` is the one place the binary
is found.
"""

from __future__ import annotations

import io
import logging
import tarfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors

from pipeline.errors import ToolError
from pipeline.tools.docker_build import Builder, build, detect_builder, docker_clis
from pipeline.tools.runner import run

log = logging.getLogger(__name__)

QUICK_TIMEOUT = 60.0
PULL_TIMEOUT = 1800.0
PUSH_TIMEOUT = 1800.0

# Builds live in docker_build; callers reach them through this module, the engine's one face.
__all__ = ["Builder", "build", "detect_builder"]


def cli() -> str:
    """The docker CLI (first on PATH), or a ToolError saying how to get one."""
    found = docker_clis()
    if not found:
        raise ToolError(["docker"], None, "", "not found on PATH (run scripts/host.sh up)")
    return found[0]


def _client(timeout: float = QUICK_TIMEOUT) -> docker.DockerClient:
    try:
        return docker.from_env(timeout=int(timeout))
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
    argv = [cli(), "import"]
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
    argv = [cli(), "run", "--rm", "--network=none"]
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
    """Give the local image `ref` the additional name `new` (`repo:tag`)."""
    repository, _, version = new.rpartition(":") if ":" in new.rsplit("/", 1)[-1] else (new, "", "")
    client = _client()
    try:
        if not client.api.tag(ref, repository, version or "latest"):
            raise ToolError(["docker", "tag", ref, new], None, "", "the engine refused the tag")
    except docker.errors.DockerException as err:
        raise ToolError(["docker", "tag", ref, new], None, str(err)) from err
    finally:
        client.close()


def untag(ref: str, *, prune: bool = False) -> None:
    """Remove the local name `ref`; the image stays while other names point at it (and,
    unless `prune`, its untagged parent layers stay too)."""
    client = _client()
    try:
        client.api.remove_image(ref, noprune=not prune)
    except docker.errors.DockerException as err:
        raise ToolError(["docker", "image", "rm", "--no-prune", ref], None, str(err)) from err
    finally:
        client.close()


def remove(ref: str) -> None:
    """Remove an image by name or id, forcefully; absent images are fine."""
    client = _client()
    try:
        client.api.remove_image(ref, force=True)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.DockerException as err:
        log.warning("could not remove %s: %s", ref, err)
    finally:
        client.close()


def push(ref: str, *, timeout: float = PUSH_TIMEOUT) -> str:
    """`docker push ref`; returns the digest the CLI reported ("" when it printed none)."""
    done = run([cli(), "push", ref], timeout=timeout)
    for line in done.stdout.splitlines():
        # "<tag>: digest: sha256:... size: 528"
        if "digest: sha256:" in line:
            return "sha256:" + line.split("digest: sha256:", 1)[1].split()[0]
    return ""


def repo_digests(ref: str) -> tuple[str, ...]:
    """The `name@sha256:...` entries the engine recorded for the image `ref` names."""
    found = inspect(ref)
    if found is None:
        raise ToolError(["docker", "image", "inspect", ref], None, "", "no such image")
    return tuple(str(d) for d in found.get("RepoDigests") or ())


def image_id(ref: str) -> str:
    """The local image id ("sha256:...") `ref` names."""
    found = inspect(ref)
    if found is None:
        raise ToolError(["docker", "image", "inspect", ref], None, "", "no such image")
    return str(found["Id"])


def pull(ref: str, auth: Mapping[str, str] | None = None, *, timeout: float = PULL_TIMEOUT) -> str:
    """Pull `ref` (by tag or digest) into the engine; returns the local image id."""
    repository, version = ref.split("@", 1) if "@" in ref else ref.rsplit(":", 1)
    client = _client(timeout)
    try:
        for event in client.api.pull(
            repository,
            tag=version,
            auth_config=dict(auth) if auth else None,
            stream=True,
            decode=True,
        ):
            if isinstance(event, dict) and event.get("error"):
                raise ToolError(["docker", "pull", ref], None, str(event["error"]))
    except docker.errors.DockerException as err:
        raise ToolError(["docker", "pull", ref], None, str(err)) from err
    finally:
        client.close()
    return image_id(ref)


def load(tarball: Path, *, timeout: float = PULL_TIMEOUT) -> tuple[str, ...]:
    """`docker load` a docker-save tarball; returns the ids of the images it held."""
    client = _client(timeout)
    try:
        with tarball.open("rb") as fh:
            events = list(client.api.load_image(fh))
    except docker.errors.DockerException as err:
        raise ToolError(["docker", "load", "-i", str(tarball)], None, str(err)) from err
    finally:
        client.close()
    ids: list[str] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        if event.get("error"):
            raise ToolError(["docker", "load", "-i", str(tarball)], None, str(event["error"]))
        text = str(event.get("stream", ""))
        for prefix in ("Loaded image ID: ", "Loaded image: "):
            if text.startswith(prefix):
                ids.append(image_id(text.removeprefix(prefix).strip()))
    return tuple(dict.fromkeys(ids))


def labels_of(inspected: Mapping[str, Any]) -> dict[str, str]:
    config = inspected.get("Config") or {}
    return dict(config.get("Labels") or {})


APT_SIMULATION = r"""
set -e
apt-get update -qq -o APT::Update::Error-Mode=any >/dev/null
ls /var/lib/apt/lists/ | grep -q '_Packages' || { echo "apt has no package lists" >&2; exit 1; }
echo "@@drydock-held $(apt-mark showhold | tr '\n' ' ')"
apt list --installed 2>/dev/null | grep -F '[installed,local]' | sed 's/^/@@drydock-local /' || true
apt-get -s -o Debug::NoLocking=1 --ignore-hold dist-upgrade
"""


def apt_simulation(image: str, *, timeout: float = 300.0) -> str:
    """What `apt-get dist-upgrade` would install in image now (CIS 4.4), via a throwaway
    container: held packages are counted (`--ignore-hold`, and named), installed
    packages no archive offers are listed, and any error of `apt-get update` is an error.

    Runs as root in the container with the network (apt must refresh its lists, which the
    image does not keep); the container is removed afterwards and the image is untouched.
    On a timeout the container is removed by name, so a hung one does not outlive the call.
    """
    name = f"drydock-aptsim-{uuid.uuid4().hex[:12]}"
    argv = [cli(), "run", "--rm", "--name", name, "--user", "0", "--entrypoint", "sh", image]
    try:
        return run([*argv, "-c", APT_SIMULATION], timeout=timeout).stdout
    except ToolError:
        kill_container(name)
        raise


def kill_container(name: str, attempts: int = 3) -> None:
    """Remove a container by name, forcefully; an absent one is fine. A CLI killed while
    the engine was still creating the container can leave it appearing just after the
    first removal, so look again (bounded)."""
    for attempt in range(attempts):
        run([cli(), "rm", "-f", name], timeout=QUICK_TIMEOUT, check=False)
        left = run(
            [cli(), "ps", "-aq", "--filter", f"name=^{name}$"], timeout=QUICK_TIMEOUT, check=False
        )
        if not left.stdout.strip():
            return
        if attempt < attempts - 1:
            time.sleep(1.0)
    log.warning("container %s could not be removed", name)


SET_MARK = "@@drydock-set"
_SIMULATIONS = r"""
set -f
apt-get update -qq >/dev/null || exit 1
echo "@@drydock-set dist-upgrade"
apt-get -s -o Debug::NoLocking=1 dist-upgrade || exit 1
n=0; pkgs=
for arg in "$@"; do
  if [ "$arg" = "@@" ]; then
    echo "@@drydock-set $n"
    apt-get -s -o Debug::NoLocking=1 install --no-install-recommends $pkgs || exit 1
    n=$((n + 1)); pkgs=
  else
    pkgs="$pkgs $arg"
  fi
done
"""


def apt_simulations(
    image: str, sets: Sequence[Sequence[str]], *, timeout: float = 300.0
) -> tuple[str, list[str]]:
    """What apt would do in `image` right now, after one list refresh: the output of
    `apt-get -s dist-upgrade` (pending upgrades of what is installed) and, per package
    set, of `apt-get -s install --no-install-recommends SET` (every version it would
    install). One throwaway container answers for every set. Package names reach the
    script as arguments (never as script text) with globbing off; the descriptors only
    admit Debian package names."""
    argv = [cli(), "run", "--rm", "--user", "0", "--entrypoint", "sh", image, "-c"]
    args: list[str] = []
    for packages in sets:
        args += [*packages, "@@"]
    out = run([*argv, _SIMULATIONS, "sh", *args], timeout=timeout).stdout
    return split_simulations(out, len(sets), argv)


def split_simulations(
    out: str, count: int, argv: Sequence[str] = ("apt-get",)
) -> tuple[str, list[str]]:
    """The dist-upgrade section and `count` install sections of apt_simulations' output;
    a ToolError when any is missing (apt stopped early: never a partial answer)."""
    sections: dict[str, list[str]] = {}
    current = ""
    for line in out.splitlines():
        if line.startswith(SET_MARK + " "):
            current = line.removeprefix(SET_MARK + " ").strip()
            sections[current] = []
        elif current:
            sections[current].append(line)
    if "dist-upgrade" not in sections or any(str(n) not in sections for n in range(count)):
        raise ToolError(list(argv), 0, out[-2000:], "apt simulation output is incomplete")
    return (
        "\n".join(sections["dist-upgrade"]),
        ["\n".join(sections[str(n)]) for n in range(count)],
    )
