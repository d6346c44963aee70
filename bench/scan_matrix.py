"""Benchmark: `drydock scan` over the built matrix against the raw scanner invocations.

Both sides scan the same local images, in one process, one after the other:

  * raw      - what a person runs by hand, sequentially: `docker save -o TAR`, then
               `dockle --input TAR --format json` and `trivy image --input TAR --format json`
               with the argv and environment Drydock's wrappers use (same offline flags,
               same local Trivy DB and cache), after one `trivy image --download-db-only`;
  * drydock  - pipeline.stages.scan.scan_images with the default scanners and --jobs 2,
               as `drydock scan` runs it: Dockle, Trivy, a CycloneDX SBOM, the apt upgrade
               simulation (CIS 4.4), the native checks and the gate; then every report
               format is rendered (the CLI renders one).

The images are the matrix images already in the local engine (built with `drydock build`
only when none exist). Each is first given a `drydock-bench/...` tag, so a concurrent
rebuild of the shared tag cannot change what is measured half way; the tags are removed
at the end. The machine is shared: the load average at start and end is recorded.

Figures go to bench/results/scan_matrix.json and .md. Not a test: run it on demand.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.cli.scan_cmd import scan_settings  # noqa: E402
from pipeline.compliance.config import load_policy  # noqa: E402
from pipeline.descriptors.load import load_plan  # noqa: E402
from pipeline.models.compliance import ImageScan  # noqa: E402
from pipeline.models.targets import Kind, Target  # noqa: E402
from pipeline.report.formats import render  # noqa: E402
from pipeline.scan.base import VulnDbSpec  # noqa: E402
from pipeline.scan.scanners import DEFAULT_SCANNERS, make_scanners  # noqa: E402
from pipeline.scan.trivy import TrivyScanner  # noqa: E402
from pipeline.settings import Settings, default_cache  # noqa: E402
from pipeline.stages.scan import (  # noqa: E402
    ScanConfig,
    ScanTarget,
    image_inventory,
    scan_images,
)
from pipeline.stages.vulndb import vuln_db_spec  # noqa: E402
from pipeline.tools import docker  # noqa: E402
from pipeline.tools import trivy as trivy_tool  # noqa: E402
from pipeline.tools.dockle import DEFAULT_TIMEOUT as DOCKLE_TIMEOUT  # noqa: E402
from pipeline.tools.dockle import dockle_argv  # noqa: E402
from pipeline.tools.locate import locate  # noqa: E402
from pipeline.tools.runner import run  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BENCH_REPO = "drydock-bench"
FORMATS = ("json", "sarif", "markdown", "junit", "html")
DOCKLE_ENV = {
    "DOCKER_CONTENT_TRUST": "0",
    "DOCKLE_IGNORES": "",
    "DOCKLE_DEBUG": "false",
    "NO_COLOR": "1",
}


class DbFetched(logging.Handler):
    """Notes when scan_images' Trivy DB fetch (which precedes every scan) has finished."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.at: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.at is None and record.getMessage().startswith("trivy DB fetched"):
            self.at = time.monotonic()


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def matrix_images(settings: Settings) -> list[Target]:
    """The operand and operator targets whose local tag is in the engine."""
    plan = load_plan(settings.descriptors, settings.templates)
    targets = [t for t in plan if t.kind is not Kind.BASE]
    present = [t for t in targets if docker.inspect(t.local_tag) is not None]
    if not present:  # nothing built yet: build the matrix once (not timed)
        run(
            [str(ROOT / ".venv" / "bin" / "drydock"), "build", *(t.name for t in targets)],
            timeout=7200,
            cwd=ROOT,
        )
        present = [t for t in targets if docker.inspect(t.local_tag) is not None]
    return present


@contextmanager
def snapshot(targets: list[Target]) -> Iterator[dict[str, str]]:
    """Tag each image `drydock-bench/<repo>:<tag>` for the duration; yields name -> tag."""
    tags: dict[str, str] = {}
    try:
        for target in targets:
            repo, _, tag = target.local_tag.rpartition(":")
            bench_tag = f"{BENCH_REPO}/{repo.rsplit('/', 1)[-1]}:{tag}"
            docker.tag(target.local_tag, bench_tag)
            tags[target.name] = bench_tag
        yield tags
    finally:
        for bench_tag in tags.values():
            run(["docker", "image", "rm", bench_tag], timeout=60, check=False)


def raw_side(
    images: list[str], opts: trivy_tool.TrivyOptions, dockle: Path, download: bool
) -> dict[str, Any]:
    """docker save + dockle + trivy per image, one after the other."""
    per_image: dict[str, dict[str, float]] = {}
    start = time.monotonic()
    # A DB Trivy fetches (public, mirror) is fetched; the debian-archive DB is already in
    # the cache directory the probe prepared, as a hand-run `trivy --skip-db-update` sees it.
    db = run(trivy_tool.download_db_argv(opts), timeout=opts.timeout).seconds if download else 0.0
    with tempfile.TemporaryDirectory(prefix="drydock-bench-raw-") as tmp:
        for image in images:
            tar = Path(tmp) / "image.tar"
            steps = {
                "save": run(["docker", "save", "-o", str(tar), image], timeout=600).seconds,
                "dockle": run(
                    dockle_argv(dockle, tar, DOCKLE_TIMEOUT),
                    timeout=DOCKLE_TIMEOUT,
                    env=DOCKLE_ENV,
                    cwd=Path(tmp),
                ).seconds,
                "trivy": run(trivy_tool.scan_argv(tar, opts), timeout=opts.timeout).seconds,
            }
            tar.unlink()
            per_image[image] = {k: round(v, 1) for k, v in steps.items()}
            per_image[image]["total"] = round(sum(steps.values()), 1)
    return {
        "seconds": round(time.monotonic() - start, 1),
        "db_download_seconds": round(db, 1),
        "per_image": per_image,
    }


def db_spec(settings: Settings) -> VulnDbSpec:
    """The DB `drydock scan` would choose here (the policy's source, auto: debian-archive)."""
    return vuln_db_spec(None, settings, load_policy(settings.scan_config / "policy.yaml"))


def drydock_side(
    settings: Settings, targets: list[Target], tags: dict[str, str], jobs: int
) -> dict[str, Any]:
    """scan_images as `drydock scan --jobs N` runs it, then every report format."""
    start = time.monotonic()  # as `drydock scan`: the DB reference is part of the run
    scanners = make_scanners(DEFAULT_SCANNERS, scan_settings(settings, db_spec(settings), False))
    done: dict[str, tuple[int, float]] = {}
    lock = threading.Lock()

    def on_done(scan: ImageScan) -> None:
        with lock:
            done[scan.image] = (threading.get_ident(), time.monotonic())

    db_fetched = DbFetched()
    trivy_log = logging.getLogger(trivy_tool.__name__)
    trivy_log.addHandler(db_fetched)
    trivy_log.setLevel(logging.INFO)
    result = scan_images(
        [ScanTarget(tags[t.name], flavour=t.flavour or "") for t in targets],
        scanners,
        ScanConfig.in_dir(settings.scan_config),
        settings.work / "scan",
        jobs=jobs,
        today=dt.datetime.now(dt.UTC).date(),
        check_updates=True,
        on_done=on_done,
    )
    scanned = time.monotonic() - start
    trivy_log.removeHandler(db_fetched)
    scans_start = db_fetched.at or start
    render_start = time.monotonic()
    sizes = {fmt: len(render(result.report, fmt)) for fmt in FORMATS}
    rendered = time.monotonic() - render_start
    # Each worker scans its images one after the other, so an image's wall time is the
    # gap since the previous completion on the same worker (the first: since the DB fetch
    # that precedes every scan ended).
    per_worker: dict[int, list[tuple[float, str]]] = {}
    for image, (worker, when) in done.items():
        per_worker.setdefault(worker, []).append((when, image))
    wall: dict[str, float] = {}
    for items in per_worker.values():
        previous = scans_start
        for when, image in sorted(items):
            wall[image] = round(when - previous, 1)
            previous = when
    verdicts = {v.image: v for v in result.report.images}
    per_image: dict[str, dict[str, Any]] = {}
    for target in targets:
        image = tags[target.name]
        tools = {o.scanner: round(o.seconds, 1) for o in result.outputs.get(image, [])}
        verdict = verdicts.get(image)
        per_image[image] = {
            "wall": wall.get(image),
            **tools,
            "other": round((wall.get(image) or 0) - sum(tools.values()), 1),
            "findings": len(verdict.findings) if verdict else None,
            "verdict": str(verdict.status) if verdict else "missing",
            "reasons": list(verdict.reasons[:3]) if verdict else [],
            "sbom": image in result.sboms,
        }
    return {
        "seconds": round(scanned + rendered, 1),
        "scan_images_seconds": round(scanned, 1),
        "db_prepare_seconds": round(scans_start - start, 1),
        "render_all_formats_seconds": round(rendered, 2),
        "report_bytes": sizes,
        "gate": "pass" if result.report.passed else "fail",
        "per_image": per_image,
    }


def markdown(figures: dict[str, Any]) -> str:
    raw, dd = figures["raw"], figures["drydock"]
    lines = [
        f"# Scan benchmark ({figures['when']}, {figures['machine']})",
        "",
        f"{figures['images']} images already built, local Trivy DB, same tools and flags.",
        f"Load average (1, 5, 15 min): start {figures['loadavg_start']},"
        f" end {figures['loadavg_end']} (shared machine: figures are noisy).",
        f"Order: {figures['order']}.",
        "",
        "| run | seconds |",
        "|---|---|",
        f"| raw: `docker save` + `dockle` + `trivy image`, sequential | {raw['seconds']} |",
        f"| `drydock scan --jobs {figures['jobs']}` (scan_images + all 5 report formats)"
        f" | {dd['seconds']} |",
        "",
        "Per image (seconds; drydock's wall time is reconstructed per worker):",
        "",
        "| image | raw save | raw dockle | raw trivy | raw total | drydock wall"
        " | drydock dockle | drydock trivy | drydock other | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for image, r in raw["per_image"].items():
        d = dd["per_image"][image]
        lines.append(
            f"| {image} | {r['save']} | {r['dockle']} | {r['trivy']} | {r['total']}"
            f" | {d['wall']} | {d.get('dockle', '-')} | {d.get('trivy', '-')} | {d['other']}"
            f" | {d['verdict']} |"
        )
    lines += ["", f"Ratio drydock / raw: {figures['ratio']}", "", "What drydock adds:", ""]
    lines += [f"* {item}" for item in figures["drydock_adds"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    load_start = loadavg()
    settings = Settings(root=ROOT, cache=default_cache(), jobs=jobs)
    targets = matrix_images(settings)
    dockle = locate("dockle").path
    # The same DB and cache directory as drydock's Trivy scanner uses.
    spec = db_spec(settings)
    probe = make_scanners(("trivy",), scan_settings(settings, spec, False))[0]
    assert isinstance(probe, TrivyScanner)
    probe.prepare(image_inventory([t.local_tag for t in targets]))
    opts = dataclasses.replace(probe.options, binary=locate("trivy").path)
    with snapshot(targets) as tags:
        images = [tags[t.name] for t in targets]
        raw = raw_side(images, opts, dockle, download=spec.source != "debian-archive")
        dd = drydock_side(settings, targets, tags, jobs)
    figures: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "images": len(images),
        "image_names": images,
        "jobs": jobs,
        "order": "raw first, then drydock (both with the Trivy DB already in the cache)",
        "trivy_db": f"{spec.source} (as `drydock scan` chooses it here)",
        "raw": raw,
        "drydock": dd,
        "ratio": round(dd["seconds"] / raw["seconds"], 2) if raw["seconds"] else None,
        "drydock_adds": [
            "a CycloneDX SBOM per image (a second Trivy run)",
            "CIS 4.4: `apt-get update && apt-get -s upgrade` in a throwaway container",
            "native checks on the saved image (user, setuid/setgid, apt lists, labels, ...)",
            "the CIS/DISA gate with policy and waivers, one verdict per image",
            "reports: json, sarif, markdown, junit, html",
            "a version check of each pinned tool before every call",
            f"--jobs {jobs}: two images at a time",
        ],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scan_matrix.json").write_text(json.dumps(figures, indent=2) + "\n")
    text = markdown(figures)
    (RESULTS / "scan_matrix.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
