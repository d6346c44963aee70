"""What a scan needs besides the local image: a registry copy and the image's source lines.

* Clair reads images from a registry, by digest. `drydock run` stages every built image
  before it scans (pipeline.stages.run); `drydock scan` of local images pushes each one
  to `<registry>/staging/scan/<repository>:<image id>` first (`stage_for_scan`), reads its
  digest back over the registry API, and hands Clair that reference.
* Code scanning anchors results in the repository: `attach_sources` adds, for every image
  built from a plan target, the descriptor and template lines it comes from.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence

from pipeline.descriptors.anchors import image_sources
from pipeline.descriptors.load import load_plan
from pipeline.errors import DrydockError, InputError, Problem, RegistryError, ToolError
from pipeline.models.targets import Kind, Plan
from pipeline.settings import Settings
from pipeline.stages.scan import ScanRun, ScanTarget
from pipeline.tools import docker
from pipeline.tools.registry import RegistryClient

log = logging.getLogger(__name__)

SCAN_STAGING = "staging/scan"


def _repository(image: str) -> str:
    name = image.split("@", 1)[0]
    head, sep, tail = name.rpartition(":")
    if sep and "/" not in tail:
        name = head
    name = name.split("/", 1)[1] if "." in name.split("/", 1)[0] else name
    return re.sub(r"[^a-z0-9._/-]+", "-", name.lower()).strip("/") or "image"


def stage_for_scan(targets: Sequence[ScanTarget], registry: str) -> list[ScanTarget]:
    """Push each local image (not staged yet) to the registry; returns them with `remote`."""
    client = RegistryClient.from_environment(registry)
    staged: list[ScanTarget] = []
    for target in targets:
        if target.remote:
            staged.append(target)
            continue
        inspected = docker.inspect(target.image)
        if inspected is None:
            staged.append(target)  # scan_one reports it missing
            continue
        repository = f"{SCAN_STAGING}/{_repository(target.label)}"
        tag = str(inspected["Id"]).removeprefix("sha256:")[:12]
        ref = client.location.image(repository, tag=tag)
        try:
            docker.tag(target.image, ref)
            try:
                docker.push(ref)
            finally:
                docker.untag(ref)
            digest = client.digest(repository, tag)
        except (ToolError, RegistryError) as err:
            log.warning("%s: could not stage for registry scanners: %s", target.image, err)
            staged.append(target)  # registry scanners then report it unstaged: fail closed
            continue
        if digest is None:
            staged.append(target)
            continue
        log.info("staged %s as %s@%s for registry scanners", target.image, ref, digest)
        staged.append(dataclasses.replace(target, remote=f"{ref}@{digest}"))
    return staged


def own_bases(plan: Plan | None) -> tuple[str, ...]:
    """The bases an image built by this plan may start with: Drydock's own (their local
    tags) and the registry bases the descriptors pin by digest."""
    if plan is None:
        return ()
    refs = [t.local_tag for t in plan if t.kind is Kind.BASE]
    refs += [t.base for t in plan if "@sha256:" in t.base]
    return tuple(dict.fromkeys(refs))


def check_trusted(refs: Sequence[str]) -> None:
    """Every --trusted-base must be in the local engine (InputError, exit 2, otherwise)."""
    problems = [
        Problem("--trusted-base", ref, "is not in the local engine (pull or build it first)")
        for ref in refs
        if docker.inspect(ref) is None
    ]
    if problems:
        raise InputError(problems)


def built_dockerfile(settings: Settings, target: str) -> str | None:
    """The Dockerfile the build stage rendered for a plan target, when it is still there."""
    path = settings.work / "contexts" / target / "Dockerfile"
    if not target or not path.is_file():
        return None
    return path.read_text(encoding="utf-8")


def attach_sources(run: ScanRun, settings: Settings) -> None:
    """Give the report the descriptor/template lines of every image the plan knows."""
    try:
        plan = load_plan(settings.descriptors, settings.templates)
    except DrydockError as err:
        log.warning("no source lines for the report (the plan does not load: %s)", err)
        return
    sources = image_sources(settings.root, plan, settings.templates, run.targets)
    run.report = dataclasses.replace(run.report, sources=sources)
