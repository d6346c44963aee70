"""Benchmark: the nightly after one package changed rebuilds only the image that holds it.

The scenario of tests/integration/test_nightly_package_delta.py (whose helpers it uses),
timed: a signed apt repository of its own serves `drydock-marker` from inside a derived
base image; one operand installs it, one does not. Three runs of run_pipeline against a
private registry started empty (`docker-registry` on a free loopback port), no signing:

  * full   - both targets built, scanned, gated and published;
  * delta  - the repository now serves drydock-marker 1.1-1 (a new base digest): only the
             marked target is rebuilt, scanned and published, the other is `unchanged`;
  * no-op  - nothing changed: both `unchanged`.

Figures go to bench/results/package_delta.json and .md, with the load average at start
and end. Not a test: run it on demand (`python bench/package_delta.py`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import test_nightly_package_delta as scenario  # noqa: E402
from test_nightly_package_delta import (  # noqa: E402
    MARKED,
    MINIMAL,
    SigningKey,
    archive_db,
    build_marker_deb,
    build_test_base,
    gpg,
)

from pipeline.build.base import build_base  # noqa: E402
from pipeline.build.events import Silent  # noqa: E402
from pipeline.cli.scan_cmd import scan_settings  # noqa: E402
from pipeline.descriptors.load import load_plan  # noqa: E402
from pipeline.scan.scanners import DEFAULT_SCANNERS, make_scanners  # noqa: E402
from pipeline.settings import Settings, default_cache  # noqa: E402
from pipeline.stages.run import RunOptions, RunOutcome, run_pipeline  # noqa: E402
from pipeline.tools import docker  # noqa: E402
from pipeline.tools.registry_server import RegistryServer  # noqa: E402
from pipeline.tools.runner import run  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write_root(root: Path, marked_base: str | None) -> None:
    """The scenario's repository root, its image repositories renamed (deltabench-*) so
    the integration test, if it runs meanwhile, and this never share a local tag."""
    scenario.write_root(root, marked_base)
    for path in (root / "images").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("repository: nightly", "repository: deltabench-nightly"))


def signing_key(home: Path) -> SigningKey:
    home.chmod(0o700)
    gpg(home, "--quick-gen-key", "Drydock bench repository", "ed25519", "sign", "never")
    listing = gpg(home, "--with-colons", "--list-secret-keys")
    fingerprint = next(ln.split(":")[9] for ln in listing.splitlines() if ln[:4] == "fpr:")
    keyring = home / "drydock-test.gpg"
    gpg(home, "--output", keyring, "--export", fingerprint)
    return SigningKey(home, fingerprint, keyring)


def figures_of(outcome: RunOutcome, seconds: float) -> dict[str, Any]:
    built = outcome.build.images if outcome.build else {}
    return {
        "seconds": round(seconds, 1),
        "build_seconds": round(outcome.build.seconds, 1) if outcome.build else None,
        "exit_code": outcome.exit_code,
        "decisions": {n: o.decision for n, o in sorted(outcome.outcomes.items())},
        "package_delta": {
            n: o.package_delta for n, o in outcome.outcomes.items() if o.package_delta
        },
        "scanned": [v.image for v in outcome.gate.images] if outcome.gate else [],
        "rebuilt": sorted(
            n for n, img in built.items() if n in outcome.outcomes and not img.reused
        ),
        "apt_containers": outcome.build.apt_containers if outcome.build else None,
    }


def main() -> None:
    load_start = loadavg()
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="package-delta-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "gnupg").mkdir()
        key = signing_key(tmp / "gnupg")
        root, work = tmp / "root", tmp / "work"
        root.mkdir()
        work.mkdir()
        try:
            with RegistryServer(tmp / "registry") as registry:
                settings = Settings(
                    root=root, cache=tmp / "cache", registry=registry.address, jobs=2
                )
                (settings.cache / "bin").parent.mkdir(parents=True, exist_ok=True)
                (settings.cache / "bin").symlink_to(default_cache() / "bin")
                write_root(root, None)
                plan = load_plan(settings.descriptors, settings.templates)
                build_base(plan.get("base-bookworm"), work, plan.base_max_age_hours, lambda _: None)
                debs = [build_marker_deb("1.0-1", work)]

                bases: dict[str, str] = {}

                def timed(name: str, base_tag: str) -> None:
                    if base_tag not in bases:
                        bases[base_tag] = build_test_base(work, debs, key, registry, base_tag)
                    write_root(root, bases[base_tag])
                    options = RunOptions(
                        out_dir=tmp / f"out-{name}",
                        scanners=make_scanners(
                            DEFAULT_SCANNERS, scan_settings(settings, archive_db(settings), False)
                        ),
                        sign=False,
                    )
                    start = time.monotonic()
                    outcome = run_pipeline(settings, options, Silent())
                    runs[name] = figures_of(outcome, time.monotonic() - start)

                timed("full", "1")
                debs.append(build_marker_deb("1.1-1", work))
                timed("delta", "2")
                timed("noop", "2")
                for tag in ("1", "2"):
                    docker.remove(f"{registry.address}/drydock/test-base:{tag}")
        finally:
            run(
                ["gpgconf", "--homedir", tmp / "gnupg", "--kill", "gpg-agent"],
                timeout=30,
                check=False,
            )
    full, delta, noop = runs["full"]["seconds"], runs["delta"]["seconds"], runs["noop"]["seconds"]
    figures = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "targets": [MARKED, MINIMAL],
        "runs": runs,
        "delta_vs_full": round(delta / full, 2),
        "noop_vs_full": round(noop / full, 2),
        "load_start": load_start,
        "load_end": loadavg(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "package_delta.json").write_text(json.dumps(figures, indent=2) + "\n")
    lines = [
        f"# Package-delta benchmark ({figures['when']}, {figures['machine']})",
        "",
        f"Targets: {MARKED} (installs drydock-marker from the test's signed repository), "
        f"{MINIMAL} (does not). Private registry from empty, no signing.",
        f"Load average (1, 5, 15 min): start {load_start}, end {figures['load_end']}.",
        "",
        "| run | seconds | vs full | rebuilt | scanned | decisions |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("full", "delta", "noop"):
        r = runs[name]
        decisions = ", ".join(f"{n}: {d}" for n, d in r["decisions"].items())
        lines.append(
            f"| {name} | {r['seconds']} | {round(r['seconds'] / full, 2)} | "
            f"{', '.join(r['rebuilt']) or '-'} | {len(r['scanned'])} | {decisions} |"
        )
    lines += ["", f"Delta recorded: {runs['delta']['package_delta']}"]
    text = "\n".join(lines) + "\n"
    (RESULTS / "package_delta.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
