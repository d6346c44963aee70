"""Benchmark: how long the local node takes to start, to be re-checked, to stop and to restart.

One private cluster (control plane and node, pipeline.tools.node) in a temporary state dir:

  cold      `node.up` from nothing: etcd, kube-apiserver, namespaces, link and chains,
            scheduler, controller-manager, containerd, kubelet, kube-proxy, CoreDNS; until
            the Node is Ready and CoreDNS answers readiness (the pause and CoreDNS images
            come from the local registry; they are pushed there first when missing)
  again     `node.up` while everything runs (what `drydock dev cluster up` costs then)
  down      `node.down`: every process killed, namespaces, link, chains, cgroups removed,
            and the check that nothing is left
  warm      `node.up` after `down` (containerd's image store is kept: no pulls)

`again`, `down` and `warm` are repeated --runs times. Figures go to
bench/results/node_start.json and .md. Not a test: `python bench/node_start.py` (as root).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.tools import controlplane, node  # noqa: E402
from pipeline.tools.git import revision  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed(fn: Any) -> float:
    start = time.monotonic()
    fn()
    return round(time.monotonic() - start, 2)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# node_start",
        "",
        f"{result['date']}, revision {result['revision']}, {result['machine']}, "
        f"load average {result['load_start']} at start, {result['load_end']} at end.",
        "",
        "| step | seconds (each run) | median |",
        "|---|---|---|",
    ]
    for step in ("cold", "again", "down", "warm"):
        runs = result["seconds"][step]
        each = ", ".join(f"{s:.2f}" for s in runs)
        lines.append(f"| {step} | {each} | {statistics.median(runs):.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    load_start = loadavg()
    seconds: dict[str, list[float]] = {"cold": [], "again": [], "down": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="drydock-bench-node-") as tmp:
        settings = node.NodeSettings(
            control_plane=controlplane.ControlPlaneSettings(state_dir=Path(tmp) / "plane")
        )
        try:
            seconds["cold"].append(timed(lambda: node.up(settings)))
            for _ in range(args.runs):
                seconds["again"].append(timed(lambda: node.up(settings)))
                seconds["down"].append(timed(lambda: node.down(settings)))
                seconds["warm"].append(timed(lambda: node.up(settings)))
                print(json.dumps({k: v[-1] for k, v in seconds.items()}), flush=True)
        finally:
            node.down(settings)
            controlplane.down(settings.control_plane)
    result = {
        "benchmark": "node_start",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": revision(ROOT)[:12],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_start": load_start,
        "load_end": loadavg(),
        "seconds": seconds,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "node_start.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "node_start.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
