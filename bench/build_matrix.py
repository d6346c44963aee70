"""Benchmark: a cold build of the whole matrix, Drydock against plain `docker build` loops.

Three cold builds of the same images on the same Debian bases, one after the other, each
with a BuildKit cache namespace of its own (the apt download cache's id and so every
layer's cache key differ), so no side reuses what another downloaded or built and nobody
else's build cache on the shared engine is touched:

  * plain     - a sequential `docker build --no-cache` per image over self-contained
                Dockerfiles, as one writes them by hand: each image from its Debian base
                (the standard flavour installs the server itself). The issue's baseline.
  * plain-same - the same loop over Drydock's own rendered Dockerfiles, parents first
                (standard FROM minimal): what is left between it and Drydock is the
                orchestration (parallel builds, resolution, inventory).
  * drydock   - build_plan with --rebuild and a fresh Drydock cache: it also resolves every
                target's package versions with apt, fills the operator's wheelhouse, and
                reads each image's dpkg inventory for the record.
  * no-op     - drydock again with nothing changed (fingerprints match, nothing builds).

The plain loops get the operator's wheelhouse for free (it is filled before timing) and
lock no versions. Every image's size is recorded as the engine counts it (`docker images`).
The descriptors are copied with the repositories renamed (`drydock/speedbench-*`), so the
images of others on the shared engine are neither overwritten nor reused.

Figures go to bench/results/build_matrix.json and .md, with the load average at start and
end. Not a test: run it on demand (`python bench/build_matrix.py [JOBS]`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.build.events import Silent  # noqa: E402
from pipeline.build.executor import build_plan  # noqa: E402
from pipeline.build.inputs import context_files  # noqa: E402
from pipeline.build.resolve import root_of  # noqa: E402
from pipeline.descriptors.load import load_plan  # noqa: E402
from pipeline.models.targets import Kind, Plan, Target  # noqa: E402
from pipeline.render.context import write_context  # noqa: E402
from pipeline.render.dockerfile import RenderOptions, render  # noqa: E402
from pipeline.settings import Settings, default_cache  # noqa: E402
from pipeline.tools import docker  # noqa: E402
from pipeline.tools.runner import run  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PREFIX = "speedbench"
# CloudNativePG's published sizes for comparison (the issue; ENVIRONMENT.md).
CNPG_MB = {"17-minimal-trixie": 412, "18-minimal-trixie": 232}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bench_images(dest: Path) -> Path:
    """images/ with every repository renamed under drydock/speedbench-*."""
    shutil.copytree(ROOT / "images", dest)
    for path in dest.glob("*.yaml"):
        lines = path.read_text(encoding="utf-8").splitlines()
        renamed = [
            f"repository: {PREFIX}-{line.split(':', 1)[1].strip()}"
            if line.startswith("repository: ") and "debian" not in line
            else line
            for line in lines
        ]
        path.write_text("\n".join(renamed) + "\n", encoding="utf-8")
    return dest


def self_contained(target: Target, plan: Plan) -> Target:
    """A flavour built on another, rewritten to install everything on the Debian base."""
    if not target.parent:
        return target
    root = root_of(target, plan)
    return dataclasses.replace(
        target,
        parent="",
        parent_flavour="",
        base=root,
        depends_on=(root,),
        packages=(*target.inherited_packages, *target.packages),
        inherited_packages=(),
    )


def plain_loop(
    plan: Plan, settings: Settings, side: str, namespace: str, flatten: bool
) -> dict[str, Any]:
    """Render every image (untimed), then build them one by one with `docker build`."""
    builder = docker.detect_builder(settings.builder)
    names = [t.name for t in plan if t.kind is not Kind.BASE]
    tag = {n: f"{PREFIX}/{side}:{n}" for n in names}
    contexts: dict[str, Path] = {}
    for name in names:
        target = self_contained(plan.get(name), plan) if flatten else plan.get(name)
        base = (
            plan.get(target.base).local_tag if target.base.startswith("base-") else tag[target.base]
        )
        inputs = context_files(target, settings, plan.base_max_age_hours, refresh=False)
        options = RenderOptions(
            base, builder.buildkit, settings.source_url, inputs.requirement, namespace
        )
        text = render(target, options, settings.templates)
        contexts[name] = write_context(settings.work / side / name, text, inputs.files)
    env = {"DOCKER_BUILDKIT": "1" if builder.buildkit else "0"}
    per_image: dict[str, float] = {}
    start = time.monotonic()
    for name in names:
        began = time.monotonic()
        argv = [builder.cli, "build", "--no-cache", "--quiet", "-t", tag[name], str(contexts[name])]
        run(argv, timeout=3600, env=env)
        per_image[name] = round(time.monotonic() - began, 1)
    seconds = round(time.monotonic() - start, 1)
    sizes = {n: int((docker.inspect(tag[n]) or {}).get("Size", 0)) for n in names}
    return {"seconds": seconds, "per_image_seconds": per_image, "sizes": sizes, "tags": tag}


def mb(size: int) -> float:
    return round(size / 1_000_000, 1)


def markdown(figures: dict[str, Any]) -> str:
    sizes = figures["sizes_mb"]
    lines = [
        f"# Build benchmark ({figures['when']}, {figures['machine']})",
        "",
        f"{figures['images']} images, same Debian bases, each side cold (a BuildKit cache "
        "namespace of its own, nothing reused).",
        f"Load average (1, 5, 15 min): start {figures['load_start']}, "
        f"end {figures['load_end']} (shared machine: figures are noisy).",
        "",
        "| run | seconds | vs plain |",
        "|---|---|---|",
        f"| plain sequential `docker build --no-cache`, self-contained Dockerfiles "
        f"| {figures['plain']['seconds']} | 1.00 |",
        f"| plain sequential `docker build --no-cache`, Drydock's Dockerfiles "
        f"| {figures['plain_same']['seconds']} | {figures['ratio_plain_same']} |",
        f"| `drydock build --rebuild` ({figures['builder']}, --jobs {figures['jobs']}, "
        f"fresh cache) | {figures['drydock_seconds']} | **{figures['ratio']}** |",
        f"| `drydock build` again, nothing changed | {figures['drydock_noop_seconds']} | "
        f"{figures['ratio_noop']} |",
        "",
        f"apt asked in {figures['drydock_apt_containers']} container(s) by the cold build, "
        f"{figures['noop_apt_containers']} by the no-op.",
        "",
        "| image | plain (self-contained) MB | Drydock MB | CloudNativePG MB |",
        "|---|---|---|---|",
    ]
    for name in sorted(sizes["drydock"]):
        key = name.removeprefix("postgresql-")
        cnpg = CNPG_MB.get(key, "-")
        lines.append(
            f"| {name} | {sizes['plain'].get(name, '-')} | {sizes['drydock'][name]} | {cnpg} |"
        )
    lines += [
        "",
        f"CloudNativePG 18-minimal-trixie (JIT split out): {CNPG_MB['18-minimal-trixie']} MB.",
    ]
    return "\n".join(lines) + "\n"


def cleanup(tags: list[str], namespaces: list[str]) -> None:
    for tag in tags:
        docker.remove(tag)
    for namespace in namespaces:
        run(
            ["docker", "builder", "prune", "--force", "--filter", f"description~={namespace}"],
            timeout=600,
            check=False,
        )


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    load_start = loadavg()
    with tempfile.TemporaryDirectory(prefix="build-matrix-") as tmp:
        images = bench_images(Path(tmp) / "images")
        warm = Settings(root=ROOT, cache=Path(tmp) / "warm", jobs=jobs, images_dir=images)
        plan = load_plan(images, ROOT / "dockerfiles")
        names = [t.name for t in plan if t.kind is not Kind.BASE]
        # The bases (shared with everyone, reused while fresh) are ready before timing.
        bases = Plan(tuple(t for t in plan if t.kind is Kind.BASE), plan.base_max_age_hours)
        build_plan(bases, dataclasses.replace(warm, cache=default_cache()), Silent())

        spaces = {side: f"{PREFIX}-{side}-{stamp}-" for side in ("plain", "same", "drydock")}
        plain = plain_loop(plan, warm, "plain", spaces["plain"], flatten=True)
        same = plain_loop(plan, warm, "plain-same", spaces["same"], flatten=False)

        cold = dataclasses.replace(
            warm, cache=Path(tmp) / "cold", cache_namespace=spaces["drydock"]
        )
        start = time.monotonic()
        result = build_plan(plan, cold, Silent(), rebuild=True)
        drydock = round(time.monotonic() - start, 1)
        start = time.monotonic()
        noop = build_plan(plan, cold, Silent())
        noop_seconds = round(time.monotonic() - start, 1)
        assert all(noop.images[n].reused for n in names), "the no-op rebuilt something"

        figures: dict[str, Any] = {
            "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
            "images": len(names),
            "jobs": jobs,
            "builder": result.builder,
            "plain": {k: v for k, v in plain.items() if k != "tags"},
            "plain_same": {k: v for k, v in same.items() if k != "tags"},
            "drydock_seconds": drydock,
            "drydock_per_image_seconds": {
                n: round(img.seconds, 1) for n, img in result.images.items() if n in names
            },
            "drydock_apt_containers": result.apt_containers,
            "drydock_noop_seconds": noop_seconds,
            "noop_apt_containers": noop.apt_containers,
            "ratio": round(drydock / plain["seconds"], 2),
            "ratio_plain_same": round(same["seconds"] / plain["seconds"], 2),
            "ratio_noop": round(noop_seconds / plain["seconds"], 2),
            "sizes_mb": {
                "plain": {n: mb(s) for n, s in plain["sizes"].items()},
                "drydock": {n: mb(result.images[n].size) for n in names},
            },
            "load_start": load_start,
            "load_end": loadavg(),
        }
        cleanup(
            [
                *plain["tags"].values(),
                *same["tags"].values(),
                *(plan.get(n).local_tag for n in names),
            ],
            list(spaces.values()),
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "build_matrix.json").write_text(json.dumps(figures, indent=2) + "\n")
    text = markdown(figures)
    (RESULTS / "build_matrix.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
