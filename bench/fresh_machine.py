"""Benchmark: a fresh machine's first `drydock run`, from nothing built to the first publish.

What a new user's first `make build-images` does after the host packages and the venv
(measured apart: see the README), with everything Drydock builds or downloads cold:

  * a Drydock cache of its own (no Go tools, no wheelhouse, no kept apt answers) and a Go
    build and module cache of its own (GOCACHE, GOMODCACHE): every pinned tool the run
    needs is compiled from the module proxy, as on a fresh machine;
  * Debian bases of its own (the descriptors are copied with every repository renamed
    under drydock/freshbench-*), bootstrapped from the archive;
  * a private registry started empty (`docker-registry` on a free loopback port).

The run is `drydock run --clair-url local` as `make build-images` runs it, from a copy of
the repository's descriptors, templates and scan configuration, so the tools (Clair's
too) compile in the background while the bases and images build
(pipeline.tools.provision), and the scan step starts the local Clair (in the bench's own
cache, stopped and removed at the end). Recorded: the time to the first published
image, to the end of the run, and each tool's cold build time (tools.sh's own log).

Only the engine's layer cache for other people's images is warm here, and the Debian
mirror and the module proxy are as near as they are. Figures go to
bench/results/fresh_machine.json and .md with the load average at start and end. Not a
test: run it on demand (`python bench/fresh_machine.py`); it takes 15-30 minutes.
"""

from __future__ import annotations

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

from pipeline.errors import ToolError  # noqa: E402
from pipeline.tools import docker  # noqa: E402
from pipeline.tools.registry_server import RegistryServer  # noqa: E402
from pipeline.tools.runner import run, stream  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PREFIX = "freshbench"
DRYDOCK = Path(sys.executable).with_name("drydock")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def fresh_root(dest: Path) -> Path:
    """The repository's descriptors, templates, scan configuration and operator, with every
    repository renamed (bases included, so they are bootstrapped, not reused)."""
    for folder in ("dockerfiles", "scan-config", "operator"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("build"))
    shutil.copytree(ROOT / "images", dest / "images")
    for path in (dest / "images").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        text = text.replace("repository: drydock/debian", f"repository: drydock/{PREFIX}-debian")
        text = text.replace("repository: postgresql", f"repository: {PREFIX}-postgresql")
        path.write_text(text, encoding="utf-8")
    return dest


def tool_times(cache: Path) -> dict[str, str]:
    path = cache / "tool-build-times.tsv"
    rows = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return {r.split("\t")[0]: r.split("\t")[2] for r in rows if r.count("\t") == 2}


def main() -> None:
    load_start = loadavg()
    marks: dict[str, float] = {}
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fresh-machine-") as tmp_name:
        tmp = Path(tmp_name)
        root = fresh_root(tmp / "root")
        cache, go = tmp / "cache", tmp / "go"
        with RegistryServer(tmp / "registry") as registry:
            env = {
                "DRYDOCK_CACHE": str(cache),
                "GOCACHE": str(go / "cache"),
                "GOMODCACHE": str(go / "mod"),
                "DRYDOCK_REGISTRY": registry.address,
                "DRYDOCK_CLAIR_URL": "local",
            }
            start = time.monotonic()

            def seen(line: str) -> None:
                now = time.monotonic() - start
                lines.append(f"{now:7.1f} {line.replace(tmp_name, '$BENCH_TMP')}")
                if "published " in line and "first_publish" not in marks:
                    marks["first_publish"] = now
                for event, needle in (
                    ("first_base_built", ": built with debuerreotype"),
                    ("first_image_built", ": built with buildkit"),
                    ("scan_started", "scanning "),
                    ("clair_ready", "local Clair ready"),
                ):
                    if needle in line and event not in marks:
                        marks[event] = now

            argv = [str(DRYDOCK), "run", "--jobs", "2", "--out", str(tmp / "out")]
            try:
                done = stream(argv, timeout=7200, on_line=seen, env=env, cwd=root)
                exit_code = done.returncode
            except ToolError as err:
                exit_code = err.returncode if err.returncode is not None else -1
            marks["run_end"] = time.monotonic() - start
            summary = (
                (tmp / "out" / "summary.md").read_text(encoding="utf-8")
                if (tmp / "out" / "summary.md").is_file()
                else ""
            )
            tools = tool_times(cache)
            clair_down = [str(DRYDOCK), "dev", "clair", "down", "--purge"]
            run(clair_down, timeout=300, check=False, env=env, cwd=root)
        writable(go)  # Go's module cache is read-only: make it removable with the rest
        for image in docker_images(PREFIX):
            docker.remove(image)
    figures: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "seconds": {k: round(v, 1) for k, v in marks.items()},
        "exit_code": exit_code,
        "tool_build_seconds": tools,
        "summary": summary,
        "load_start": load_start,
        "load_end": loadavg(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fresh_machine.json").write_text(json.dumps(figures, indent=2) + "\n")
    (RESULTS / "fresh_machine.log").write_text("\n".join(lines) + "\n")
    md = [
        f"# Fresh machine to first publish ({figures['when']}, {figures['machine']})",
        "",
        "`drydock run --clair-url local` (as `make build-images` runs it) with a cold Drydock "
        "cache, cold Go caches, bases of its own and an empty private registry (host "
        "packages and venv not included).",
        f"Load average (1, 5, 15 min): start {load_start}, end {figures['load_end']}.",
        "",
        "| mark | seconds |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in figures["seconds"].items()),
        "",
        "Cold tool builds (in the background, as the run reached them): "
        + ", ".join(f"{k} {v}" for k, v in tools.items()),
        "",
        f"Exit code {exit_code}.",
        "",
        summary,
    ]
    text = "\n".join(md) + "\n"
    (RESULTS / "fresh_machine.md").write_text(text)
    print(text)


def writable(top: Path) -> None:
    for path in [top, *top.rglob("*")] if top.exists() else []:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)


def docker_images(prefix: str) -> list[str]:
    out = run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], timeout=120, check=False
    ).stdout
    return [line for line in out.splitlines() if prefix in line]


if __name__ == "__main__":
    main()
