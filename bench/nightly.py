"""Benchmark: the nightly with nothing to do against a full run of the same targets.

One process, one private registry (`docker-registry` on a free loopback port with a
temporary root, via pipeline.tools.registry_server), so the shared registry is untouched:

  * full   - run_pipeline from an empty registry: every target is built (or, when the
             local engine already holds an image with the same input fingerprint, that
             image is reused: the results say which; --rebuild builds every one, and
             resolves the operator's wheelhouse, as a night on which everything changed),
             scanned, gated, staged, promoted, signed (unless --no-sign) and catalogued;
  * no-op  - run_pipeline again with nothing changed: every target should be "unchanged"
             (its inputs still give the published fingerprint) and nothing is pushed.

Each run starts as `drydock run` does: the local Trivy DB reference (built and pushed to
the private registry on the first run, found there on the second) and fresh scanners.
The run cache (contexts, scan tarballs, records, Trivy cache) is a temporary directory
too, so concurrent runs by others cannot race on it. The machine is shared: the load
average at start and end is recorded.

Figures go to bench/results/nightly.json and .md. Not a test: run it on demand
(`python bench/nightly.py [--all] [--rebuild] [--no-sign]`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.build.events import Silent  # noqa: E402
from pipeline.compliance.config import load_policy  # noqa: E402
from pipeline.descriptors.load import load_plan  # noqa: E402
from pipeline.models.targets import Kind  # noqa: E402
from pipeline.scan.base import ScanSettings  # noqa: E402
from pipeline.scan.scanners import DEFAULT_SCANNERS, make_scanners  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.stages.run import RunOptions, RunOutcome, run_pipeline  # noqa: E402
from pipeline.stages.vulndb import vuln_db_spec  # noqa: E402
from pipeline.tools.git import revision  # noqa: E402
from pipeline.tools.registry import RegistryClient  # noqa: E402
from pipeline.tools.registry_server import RegistryServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
REDUCED = ("operator", "postgresql-15-minimal-bookworm", "postgresql-17-minimal-trixie")


def own_images(dest: Path) -> Path:
    """images/ with the image repositories renamed (nightlybench-*): the local tags are the
    bench's own, so another user's build on the shared engine never replaces an image
    between its build and its push (which would change what the no-op compares with)."""
    shutil.copytree(ROOT / "images", dest)
    for path in dest.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace("repository: postgresql", "repository: nightlybench-postgresql")
        )
    return dest


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def registry_state(address: str) -> dict[str, dict[str, str]]:
    """repository -> {tag: digest}: everything the private registry holds."""
    client = RegistryClient(address)
    reply = requests.get(f"http://{address}/v2/_catalog?n=1000", timeout=30)
    reply.raise_for_status()
    state: dict[str, dict[str, str]] = {}
    for repo in reply.json().get("repositories") or []:
        state[repo] = {tag: client.digest(repo, tag) or "" for tag in client.list_tags(repo)}
    return state


def one_run(
    settings: Settings, targets: tuple[str, ...], out: Path, sign: bool, rebuild: bool = False
) -> tuple[RunOutcome, float, float]:
    """(outcome, seconds for the whole run, of which the Trivy DB reference)."""
    start = time.monotonic()
    db = vuln_db_spec(None, settings, load_policy(settings.scan_config / "policy.yaml"))
    db_seconds = time.monotonic() - start
    scanners = make_scanners(
        DEFAULT_SCANNERS, ScanSettings(cache_dir=settings.cache / "trivy", vuln_db=db)
    )
    options = RunOptions(
        out_dir=out, scanners=scanners, targets=targets, sign=sign, rebuild=rebuild
    )
    outcome = run_pipeline(settings, options, Silent())
    return outcome, time.monotonic() - start, db_seconds


def summary(outcome: RunOutcome, seconds: float, db_seconds: float) -> dict[str, Any]:
    images = outcome.build.images if outcome.build else {}
    return {
        "seconds": round(seconds, 1),
        "pipeline_seconds": round(outcome.seconds, 1),
        "trivy_db_seconds": round(db_seconds, 1),
        "build_seconds": round(outcome.build.seconds, 1) if outcome.build else None,
        "exit_code": outcome.exit_code,
        "gate": ("pass" if outcome.gate.passed else "fail") if outcome.gate else "not run",
        "decisions": {name: o.decision for name, o in sorted(outcome.outcomes.items())},
        "reasons": {name: o.reason for name, o in sorted(outcome.outcomes.items()) if o.reason},
        "regate": {name: o.regate for name, o in sorted(outcome.outcomes.items()) if o.regate},
        "signed": sorted(name for name, o in outcome.outcomes.items() if o.signed),
        "reused_local_image": sorted(
            name
            for name, img in images.items()
            if name in outcome.outcomes and img.reused and not img.published
        ),
        "rebuilt": sorted(
            name for name, img in images.items() if name in outcome.outcomes and not img.reused
        ),
        "bases_reused": sorted(
            name for name, img in images.items() if name not in outcome.outcomes and img.reused
        ),
        "per_target_build_seconds": {
            name: round(img.seconds, 1) for name, img in sorted(images.items())
        },
        "published": len(outcome.published),
        "catalogs": len(outcome.catalogs),
        "errors": outcome.errors,
        "gate_failed": outcome.gate_failed,
    }


def markdown(figures: dict[str, Any]) -> str:
    full, noop = figures["full"], figures["noop"]
    pushed = "nothing" if figures["noop_pushed_nothing"] else "SOMETHING (see json)"
    lines = [
        f"# Nightly benchmark ({figures['when']}, {figures['machine']})",
        "",
        f"Targets: {', '.join(figures['targets'])} ({figures['target_set']}).",
        f"Private registry from empty; signing: {figures['signing']}; jobs {figures['jobs']}.",
        f"Load average (1, 5, 15 min): start {figures['loadavg_start']},"
        f" end {figures['loadavg_end']} (shared machine: figures are noisy).",
        "",
        "| run | seconds | of which build | exit | pushed |",
        "|---|---|---|---|---|",
        f"| full (empty registry{', --rebuild' if figures.get('full_rebuild') else ''})"
        f" | {full['seconds']} | {full['build_seconds']}"
        f" | {full['exit_code']} | {full['published']} image(s) |",
        f"| no-op (nothing changed) | {noop['seconds']} | {noop['build_seconds']}"
        f" | {noop['exit_code']} | {pushed} |",
        "",
        f"No-op / full: **{noop['seconds'] / full['seconds']:.1%}** (goal: at most 5%).",
        "",
        "| target | full | no-op | no-op's re-gate of the published image |",
        "|---|---|---|---|",
    ]
    for name in figures["targets"]:
        lines.append(
            f"| {name} | {full['decisions'].get(name)} | {noop['decisions'].get(name)}"
            f" | {noop.get('regate', {}).get(name, '-')} |"
        )
    lines += [
        "",
        "Full run: local images reused by input fingerprint (not rebuilt): "
        + (", ".join(full["reused_local_image"]) or "none")
        + "; rebuilt: "
        + (", ".join(full["rebuilt"]) or "none")
        + ".",
        f"Bases reused: {', '.join(full['bases_reused']) or 'none'}."
        " The run cache is a fresh temporary directory; local images are the shared engine's.",
        f"Choosing the vulnerability DB took {full['trivy_db_seconds']}s on the full run and"
        f" {noop['trivy_db_seconds']}s on the no-op; preparing it (feed update, DB build when"
        " the feed changed) is part of the scan stage.",
    ]
    for name, decision in noop["decisions"].items():
        if decision == "failed-gate":
            lines.append(
                f"{name} failed its gate ({noop['reasons'][name].split(';')[0]}), so it is not"
                " published and every nightly scans it again (and re-stages the same digest)."
            )
    floor = figures["noop_published_targets_only"]
    if floor:
        lines += [
            "",
            f"No-op over only the targets the full run published ({', '.join(floor['targets'])}):"
            f" {floor['seconds']}s (build stage {floor['build_seconds']}s), decisions"
            f" {', '.join(f'{n} {d}' for n, d in floor['decisions'].items())};"
            f" pushed {'nothing' if floor['pushed_nothing'] else 'SOMETHING (see json)'}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("drydock.progress").setLevel(logging.INFO)
    sign = "--no-sign" not in sys.argv
    rebuild = "--rebuild" in sys.argv
    load_start = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="drydock-bench-nightly-"))
    try:
        with RegistryServer(tmp / "registry") as server:
            settings = Settings(
                root=ROOT,
                cache=tmp / "cache",
                registry=server.address,
                jobs=2,
                revision=revision(ROOT),
                images_dir=own_images(tmp / "images"),
            )
            plan = load_plan(settings.descriptors, settings.templates)
            everything = tuple(t.name for t in plan if t.kind is not Kind.BASE)
            targets = everything if "--all" in sys.argv else REDUCED

            full, full_s, full_db = one_run(
                settings, targets, tmp / "out-full", sign, rebuild=rebuild
            )
            before = registry_state(server.address)
            noop, noop_s, noop_db = one_run(settings, targets, tmp / "out-noop", sign)
            after = registry_state(server.address)
            # A target that failed its gate is not published, so every nightly redoes it:
            # the no-op again over only the targets that were published shows the floor.
            passing = tuple(t for t in targets if full.outcomes[t].decision == "built")
            floor: dict[str, Any] | None = None
            if passing and passing != targets:
                again, again_s, again_db = one_run(settings, passing, tmp / "out-floor", sign)
                floor = summary(again, again_s, again_db)
                floor["targets"] = list(passing)
                floor["pushed_nothing"] = registry_state(server.address) == after
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    figures: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "targets": list(targets),
        "target_set": "full matrix" if targets == everything else "reduced list",
        "jobs": settings.jobs,
        "signing": "cosign, key in the Drydock cache" if sign else "off (--no-sign)",
        "full_rebuild": rebuild,
        "trivy_db": "the policy's source (auto: debian-archive on these machines)",
        "full": summary(full, full_s, full_db),
        "noop": summary(noop, noop_s, noop_db),
        "noop_all_unchanged": all(o.decision == "unchanged" for o in noop.outcomes.values()),
        "noop_pushed_nothing": before == after and not noop.published,
        "registry_tags_after_full": sum(len(tags) for tags in before.values()),
        "speedup": round(full_s / noop_s, 1) if noop_s else None,
        "noop_published_targets_only": floor,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "nightly.json").write_text(json.dumps(figures, indent=2) + "\n")
    text = markdown(figures)
    (RESULTS / "nightly.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
