"""Benchmark: Clair v4 scanning the matrix, side by side with Trivy, cold and warm.

What Clair costs a run, measured with the real tools on the images `drydock build` made:

  * Clair's start: a private instance in a fresh state dir (initdb of its PostgreSQL,
    Clair's migrations, /readyz), then its updater run: until the Debian updater has
    stored the feed (Drydock's feed front, written from the same archive-derived feed the
    debian-archive Trivy DB is built from, for the matrix images' packages);
  * staging: each image pushed to the registry and its digest read back (Clair reads
    registries, not tarballs; `drydock run` stages every image anyway before it scans);
  * Clair cold: the first scan of each manifest (Clair fetches and indexes every layer,
    then matches); Clair warm: the same scans again (index reports are kept; matching
    only);
  * Trivy cold: `trivy image --input` on a `docker save` tarball with an empty cache of
    its own (the debian-archive DB installed into it first); Trivy warm: again.
    `docker save` is timed apart (Trivy and Dockle share one tarball per image).

One image at a time, sequentially, on a shared 2-core machine (the load average at start
and end is recorded). Figures go to bench/results/clair_matrix.json and .md.
"""

from __future__ import annotations

import datetime as dt
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
sys.path.insert(0, str(ROOT / "bench"))

from scan_matrix import loadavg, matrix_images, snapshot  # noqa: E402

from pipeline.archive.feed import Feed, current_feed  # noqa: E402
from pipeline.models.compliance import Policy  # noqa: E402
from pipeline.scan.base import ScanSettings, VulnDbSpec  # noqa: E402
from pipeline.scan.clair import ClairScanner  # noqa: E402
from pipeline.scan.clair_local import client_for, wait_for_updater, write_front  # noqa: E402
from pipeline.scan.trivy import TrivyScanner  # noqa: E402
from pipeline.settings import Settings, default_cache  # noqa: E402
from pipeline.stages.scan import ScanTarget, image_inventory  # noqa: E402
from pipeline.stages.scan_context import stage_for_scan  # noqa: E402
from pipeline.stages.vulndb import vuln_db_spec  # noqa: E402
from pipeline.tools import clair_service, docker  # noqa: E402
from pipeline.tools.clair_service import ClairSettings  # noqa: E402

RESULTS = ROOT / "bench" / "results"
REGISTRY = "127.0.0.1:5000"


def start_clair(state: Path, feed: Feed, spec: VulnDbSpec) -> tuple[ClairSettings, dict[str, Any]]:
    """A private Clair serving the archive-derived feed the Trivy DB was built from."""
    assert spec.archive is not None
    written = write_front(state, feed, spec.archive.mirrors.archive)
    clair_settings = ClairSettings(state_dir=state, start_timeout=300)
    t0 = time.monotonic()
    status = clair_service.up(clair_settings)
    t1 = time.monotonic()
    wait_for_updater(client_for(status), written.generated, 300)
    t2 = time.monotonic()
    return clair_settings, {
        "start": round(t1 - t0, 1),
        "updater_run": round(t2 - t1, 1),
        "feed_entries": written.vulnerabilities,
    }


def timed(call: Any, *args: Any) -> tuple[Any, float]:
    start = time.monotonic()
    value = call(*args)
    return value, round(time.monotonic() - start, 1)


def measure(
    target: ScanTarget, tar: Path, trivy: TrivyScanner, clair: ClairScanner
) -> dict[str, Any]:
    """One image: save, Trivy cold then warm, Clair cold then warm."""
    _, save = timed(docker.save, target.image, tar)
    cold_t, trivy_cold = timed(trivy.scan, tar, target.image)
    _, trivy_warm = timed(trivy.scan, tar, target.image)
    cold_c, clair_cold = timed(clair.scan, tar, target.remote)
    _, clair_warm = timed(clair.scan, tar, target.remote)
    tar.unlink()
    return {
        "save": save,
        "trivy_cold": trivy_cold,
        "trivy_warm": trivy_warm,
        "clair_cold": clair_cold,
        "clair_warm": clair_warm,
        "trivy_vulnerabilities": sum(1 for f in cold_t.findings if f.kind.value == "vulnerability"),
        "clair_vulnerabilities": len(cold_c.findings),
        "clair_blind": "; ".join(r for _, r in cold_c.blind),
    }


def main() -> None:
    load_start = loadavg()
    settings = Settings(root=ROOT, cache=default_cache(), jobs=1)
    targets = matrix_images(settings)
    work = Path(tempfile.mkdtemp(prefix="drydock-bench-clair-"))
    per_image: dict[str, dict[str, Any]] = {}
    try:
        spec = vuln_db_spec("debian-archive", settings, Policy())
        trivy = TrivyScanner(
            # An empty cache: the cold side starts from nothing but the derived DB.
            ScanSettings(cache_dir=work / "trivy-cache", vuln_db=spec)
        )
        inventory = image_inventory([t.local_tag for t in targets])
        _, trivy_db = timed(trivy.prepare, inventory)
        assert spec.archive is not None
        feed = current_feed(spec.archive.feed_cache)
        assert feed is not None
        clair_settings, clair_boot = start_clair(work / "clair", feed, spec)
        status = clair_service.status(clair_settings)
        clair = ClairScanner(
            ScanSettings(
                cache_dir=work,
                clair_url=status.url,
                clair_psk_file=clair_service.psk_file(status.state_dir),
            )
        )
        with snapshot(targets) as tags:
            images = [tags[t.name] for t in targets]
            staged, stage_seconds = timed(stage_for_scan, [ScanTarget(i) for i in images], REGISTRY)
            for target in staged:
                per_image[target.image] = measure(target, work / "image.tar", trivy, clair)
        clair_service.down(clair_settings, purge=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    totals = {
        key: round(sum(p[key] for p in per_image.values()), 1)
        for key in ("save", "trivy_cold", "trivy_warm", "clair_cold", "clair_warm")
    }
    figures: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "images": len(per_image),
        "clair": {**clair_boot, "stage_all_images": stage_seconds},
        "trivy_db_fetch": trivy_db,
        "totals": totals,
        "per_image": per_image,
        "date": dt.date.today().isoformat(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "clair_matrix.json").write_text(json.dumps(figures, indent=2) + "\n")
    text = markdown(figures)
    (RESULTS / "clair_matrix.md").write_text(text)
    print(text)


def markdown(figures: dict[str, Any]) -> str:
    c, t = figures["clair"], figures["totals"]
    lines = [
        f"# Clair beside Trivy ({figures['when']}, {figures['machine']})",
        "",
        f"{figures['images']} matrix images, one at a time; Clair's feed front and Trivy's",
        "debian-archive DB from the same archive-derived feed. Load average (1, 5, 15 min): start"
        f" {figures['loadavg_start']}, end {figures['loadavg_end']} (shared machine).",
        "",
        "| step | seconds |",
        "|---|---|",
        f"| Clair start (initdb, migrations, ready) | {c['start']} |",
        f"| Clair updater run (feed stored) | {c['updater_run']} |",
        f"| stage every image (push + digest read back) | {c['stage_all_images']} |",
        f"| Clair feed entries (package, CVE, release) | {c['feed_entries']} |",
        f"| Trivy debian-archive DB: feed update + install into an empty cache"
        f" | {figures['trivy_db_fetch']} |",
        f"| `docker save`, all images | {t['save']} |",
        f"| Trivy cold, all images | {t['trivy_cold']} |",
        f"| Trivy warm, all images | {t['trivy_warm']} |",
        f"| Clair cold (index + match), all images | {t['clair_cold']} |",
        f"| Clair warm (match only), all images | {t['clair_warm']} |",
        "",
        "| image | save | Trivy cold | Trivy warm | Clair cold | Clair warm"
        " | vulns Trivy / Clair |",
        "|---|---|---|---|---|---|---|",
    ]
    for image, p in figures["per_image"].items():
        lines.append(
            f"| {image} | {p['save']} | {p['trivy_cold']} | {p['trivy_warm']} | {p['clair_cold']}"
            f" | {p['clair_warm']} | {p['trivy_vulnerabilities']} / {p['clair_vulnerabilities']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
