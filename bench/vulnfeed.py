"""Benchmark: the Debian-archive vulnerability DB cold and warm, and the nightly re-gate of
published images, side by side with a plain `trivy image` of the same images.

  * feed cold  - an empty feed cache: verify each suite of the matrix's releases, fetch and
                 parse their indices, read the changelogs of the source packages the matrix
                 images hold (out of their .deb files), build the Trivy DB with the real
                 trivy-db builder and install it where Trivy reads it (TrivyScanner.prepare);
  * feed warm  - the same again with nothing changed upstream: the InReleases are fetched
                 and verified, everything else comes from the cache, the DB is not rebuilt;
  * re-gate    - the matrix images pushed to a private registry as "published", then
                 `stages.regate.regate_published` as the nightly runs it: each pulled by
                 digest, scanned with Dockle and Trivy (warm DB), SBOM, apt simulation,
                 native checks and the gate, --jobs 2;
  * plain      - `trivy image --image-src remote REF@DIGEST --scanners vuln` per image,
                 sequentially, against the same DB (--skip-db-update): what a person runs
                 to check the published images by hand.

Figures go to bench/results/vulnfeed.json and .md, with the load average at start and end
(the machine is shared). Not a test: `python bench/vulnfeed.py`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.archive.mirrors import host_mirrors  # noqa: E402
from pipeline.build.events import Silent  # noqa: E402
from pipeline.build.executor import build_plan  # noqa: E402
from pipeline.descriptors.load import load_plan  # noqa: E402
from pipeline.models.provenance import VulnDbSource  # noqa: E402
from pipeline.models.publish import PublishedImage  # noqa: E402
from pipeline.models.targets import Kind  # noqa: E402
from pipeline.publish.current import Current  # noqa: E402
from pipeline.scan.base import (  # noqa: E402
    ArchiveFeedSettings,
    ScanSettings,
    VulnDbSpec,
)
from pipeline.scan.scanners import DEFAULT_SCANNERS, make_scanners  # noqa: E402
from pipeline.scan.trivy import TrivyScanner  # noqa: E402
from pipeline.settings import Settings, default_cache  # noqa: E402
from pipeline.stages.regate import regate_published  # noqa: E402
from pipeline.stages.scan import ScanConfig, image_inventory  # noqa: E402
from pipeline.tools import trivy as trivy_tool  # noqa: E402
from pipeline.tools.locate import locate  # noqa: E402
from pipeline.tools.registry import RegistryClient  # noqa: E402
from pipeline.tools.registry_server import RegistryServer  # noqa: E402
from pipeline.tools.runner import run  # noqa: E402

RESULTS = ROOT / "bench" / "results"
REPOSITORY = "bench/postgresql"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def prepared(feed_cache: Path, trivy_cache: Path, releases: tuple[str, ...]) -> TrivyScanner:
    spec = VulnDbSpec(
        VulnDbSource.DEBIAN_ARCHIVE,
        archive=ArchiveFeedSettings(feed_cache, host_mirrors(), releases),
    )
    scanner = make_scanners(("trivy",), ScanSettings(cache_dir=trivy_cache, vuln_db=spec))[0]
    assert isinstance(scanner, TrivyScanner)
    return scanner


def timed_prepare(scanner: TrivyScanner, inventory: dict[str, frozenset[str]]) -> float:
    start = time.monotonic()
    scanner.prepare(inventory)
    return time.monotonic() - start


def publish(registry: RegistryServer, images: dict[str, str]) -> dict[str, Current]:
    """Push each local image as a "published" one; name -> Current (by digest)."""
    client = RegistryClient(registry.address)
    published: dict[str, Current] = {}
    for name, local in images.items():
        tag = name.replace("postgresql-", "")
        remote = f"{registry.address}/{REPOSITORY}:{tag}"
        run(["docker", "tag", local, remote], timeout=60)  # local: an image id
        run(["docker", "push", "-q", remote], timeout=900)
        run(["docker", "image", "rm", remote], timeout=60, check=False)
        digest = client.digest(REPOSITORY, tag)
        assert digest, remote
        image = PublishedImage(name, registry.address, REPOSITORY, tag, digest, True)
        published[name] = Current(image, "", "")
    return published


def plain_trivy(published: dict[str, Current], scanner: TrivyScanner) -> dict[str, float]:
    opts = scanner.options
    exe = str(locate("trivy").path)
    seconds: dict[str, float] = {}
    for name, current in published.items():
        ref = f"{current.image.registry}/{current.image.repository}@{current.image.digest}"
        argv = [exe, "image", "--image-src", "remote", "--scanners", "vuln", "--format", "json"]
        argv += ["--skip-db-update", *trivy_tool.OFFLINE_FLAGS, "--cache-dir", str(opts.cache_dir)]
        argv += ["--cache-backend", "memory", ref]
        seconds[name] = round(run(argv, timeout=900).seconds, 1)
    return seconds


def main() -> None:
    load_start = loadavg()
    settings = Settings(root=ROOT, cache=default_cache(), jobs=2)
    plan = load_plan(settings.descriptors, settings.templates)
    # The minimal operands as Drydock builds them now (reused when their inputs match):
    # shared tags may hold anything another run left there.
    names = tuple(t.name for t in plan if t.kind is Kind.OPERAND and t.flavour == "minimal")
    built = build_plan(plan.select(names), settings, Silent())
    images = {name: built.images[name].image_id for name in names}
    inventory = image_inventory(list(images.values()))
    figures: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "loadavg_start": load_start,
        "images": sorted(images),
        "releases": list(plan.releases),
    }
    with tempfile.TemporaryDirectory(prefix="drydock-bench-feed-") as tmp:
        feed_cache, trivy_cache = Path(tmp) / "vulnfeed", Path(tmp) / "trivy"
        cold = prepared(feed_cache, trivy_cache, plan.releases)
        figures["feed_cold_seconds"] = round(timed_prepare(cold, inventory), 1)
        warm = prepared(feed_cache, trivy_cache, plan.releases)
        figures["feed_warm_seconds"] = round(timed_prepare(warm, inventory), 1)
        assert warm.db is not None and cold.db is not None
        assert warm.db.built_at == cold.db.built_at, "the warm run rebuilt the DB"
        figures["db"] = {
            "advisories": warm.db.advisories,
            "platforms": dict(warm.db.platforms),
            "reference": warm.db.reference,
        }
        figures["blobs_mb"] = round(
            sum(p.stat().st_size for p in (feed_cache / "blobs").rglob("*") if p.is_file()) / 1e6,
            1,
        )
        with RegistryServer(Path(tmp) / "registry") as registry:
            published = publish(registry, images)
            dockle_trivy = make_scanners(
                DEFAULT_SCANNERS,
                ScanSettings(cache_dir=trivy_cache, vuln_db=warm.spec),
            )
            start = time.monotonic()
            _, outcomes = regate_published(
                published,
                plan,
                dockle_trivy,
                ScanConfig.in_dir(settings.scan_config),
                Path(tmp) / "work",
                jobs=2,
                today=None,
                known_bases=None,
                check_updates=True,
            )
            figures["regate_seconds"] = round(time.monotonic() - start, 1)
            figures["regate_outcomes"] = {
                n: [r.outcome, *r.reasons[:2]] for n, r in outcomes.items()
            }
            start = time.monotonic()
            figures["plain_trivy_per_image"] = plain_trivy(published, warm)
            figures["plain_trivy_seconds"] = round(time.monotonic() - start, 1)
    figures["loadavg_end"] = loadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vulnfeed.json").write_text(json.dumps(figures, indent=2) + "\n")
    text = markdown(figures)
    (RESULTS / "vulnfeed.md").write_text(text)
    print(text)


def markdown(f: dict[str, Any]) -> str:
    ratio = f["regate_seconds"] / f["plain_trivy_seconds"] if f["plain_trivy_seconds"] else 0
    return "\n".join(
        [
            "# Debian-archive vulnerability DB and the nightly re-gate",
            "",
            f"{f['when']}, {f['machine']}, load average {f['loadavg_start']} at start, "
            f"{f['loadavg_end']} at end. Images: {', '.join(f['images'])} "
            f"(releases {', '.join(f['releases'])}).",
            "",
            "| step | seconds |",
            "|---|---|",
            f"| feed + DB, cold (empty cache: indices, changelogs, trivy-db build) | "
            f"{f['feed_cold_seconds']} |",
            f"| feed + DB, warm (nothing changed upstream: InReleases verified, DB reused) | "
            f"{f['feed_warm_seconds']} |",
            f"| nightly re-gate of the {len(f['images'])} published images (pull by digest, "
            f"Dockle, Trivy, SBOM, apt check, native checks, gate; --jobs 2) | "
            f"{f['regate_seconds']} |",
            f"| plain `trivy image --image-src remote --scanners vuln`, same images and DB, "
            f"one after the other | {f['plain_trivy_seconds']} |",
            "",
            f"The re-gate costs {ratio:.1f}x the plain Trivy run; the DB holds "
            f"{f['db']['advisories']} advisories ({f['db']['platforms']}); the cold cache "
            f"keeps {f['blobs_mb']} MB of verified indices. Re-gate outcomes: "
            f"{f['regate_outcomes']}.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
