"""Benchmark: Drydock's build of the whole matrix against a plain sequential loop.

Both sides build the same rendered Dockerfiles on the same fresh bases, in one process,
one after the other, each starting from an empty build cache:

  * plain    - `docker build --no-cache` over the rendered contexts, one at a time, with
               the engine's default CLI (the legacy builder here), as a shell loop would;
  * drydock  - build_plan with the detected builder (BuildKit + apt cache mounts when
               available) and --jobs parallelism;
  * no-op    - drydock again with nothing changed (fingerprints match, nothing builds).

Figures go to bench/results/build_matrix.json and .md. Not a test: run it on demand
(`make bench`); it takes several minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.build.events import Silent  # noqa: E402
from pipeline.build.executor import build_plan  # noqa: E402
from pipeline.descriptors.load import load_plan  # noqa: E402
from pipeline.models.targets import Kind  # noqa: E402
from pipeline.settings import Settings, default_cache  # noqa: E402
from pipeline.tools import docker  # noqa: E402
from pipeline.tools.runner import run  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def prune() -> None:
    run(["docker", "builder", "prune", "--all", "--force"], timeout=600, check=False)


def plain_loop(settings: Settings, names: list[str]) -> dict[str, float]:
    """A sequential `docker build` per rendered context (as Drydock left them), with the
    same builder Drydock detected, so both sides build the very same Dockerfiles."""
    builder = docker.detect_builder(settings.builder)
    env = {"DOCKER_BUILDKIT": "1" if builder.buildkit else "0"}
    times: dict[str, float] = {}
    for name in names:
        context = settings.work / "contexts" / name
        start = time.monotonic()
        run(
            [
                builder.cli,
                "build",
                "--no-cache",
                "--quiet",
                "-t",
                f"bench/plain:{name}",
                str(context),
            ],
            timeout=3600,
            env=env,
        )
        times[name] = round(time.monotonic() - start, 1)
        docker.remove(f"bench/plain:{name}")
    return times


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    settings = Settings(root=ROOT, cache=default_cache(), jobs=jobs)
    plan = load_plan(ROOT / "images", ROOT / "dockerfiles")
    names = [t.name for t in plan if t.kind is not Kind.BASE]

    # Bases and contexts first (not timed): both sides build on the same bases.
    build_plan(plan, settings, Silent())

    prune()
    start = time.monotonic()
    per_image = plain_loop(settings, names)
    plain = round(time.monotonic() - start, 1)

    prune()
    start = time.monotonic()
    result = build_plan(plan, settings, Silent(), rebuild=True)
    drydock = round(time.monotonic() - start, 1)

    start = time.monotonic()
    noop_result = build_plan(plan, settings, Silent())
    noop = round(time.monotonic() - start, 1)
    assert all(img.reused for n, img in noop_result.images.items() if n in names)

    figures = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "images": len(names),
        "jobs": jobs,
        "builder": result.builder,
        "plain_sequential_seconds": plain,
        "plain_per_image_seconds": per_image,
        "drydock_seconds": drydock,
        "drydock_per_image_seconds": {
            n: round(img.seconds, 1) for n, img in result.images.items() if n in names
        },
        "drydock_noop_seconds": noop,
        "speedup": round(plain / drydock, 2) if drydock else None,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "build_matrix.json").write_text(json.dumps(figures, indent=2) + "\n")
    md = [
        f"# Build benchmark ({figures['when']}, {figures['machine']})",
        "",
        f"{len(names)} images, same rendered Dockerfiles, same bases, empty build cache each.",
        "",
        "| run | seconds |",
        "|---|---|",
        f"| plain sequential `docker build --no-cache` loop | {plain} |",
        f"| `drydock build` ({result.builder}, --jobs {jobs}) | {drydock} |",
        f"| `drydock build` again, nothing changed | {noop} |",
        "",
        f"Speed-up: {figures['speedup']}x",
    ]
    (RESULTS / "build_matrix.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
