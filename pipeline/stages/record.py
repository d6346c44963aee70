"""The run record (run.json) and its summary (summary.md): everything a run decided.

A later run, a report or a person reads these to see why each target was built, kept,
re-gated, rebuilt, published or withdrawn, and with which scanners and vulnerability DB,
without re-running anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.report import provenance

if TYPE_CHECKING:
    from pipeline.stages.run import RunOutcome


def record_document(run: RunOutcome) -> dict[str, Any]:
    return {
        "seconds": round(run.seconds, 1),
        "exit_code": run.exit_code,
        "targets": {
            name: {
                "decision": o.decision,
                "reason": o.reason,
                "package_delta": o.package_delta,
                "staged": o.staged,
                "published": o.published,
                "signed": o.signed,
                "size_bytes": o.size or None,
            }
            for name, o in sorted(run.outcomes.items())
        },
        "build_record": str(run.build.record) if run.build and run.build.record else "",
        "regate": {
            name: {
                "reference": r.reference,
                "outcome": r.outcome,
                "reasons": list(r.reasons),
                "fixable": list(r.fixable),
            }
            for name, r in sorted(run.regate.items())
        },
        "regate_provenance": provenance.document(run.regate_report) if run.regate_report else None,
        "withdrawn": run.withdrawn,
        "gate": ("pass" if run.gate.passed else "fail") if run.gate else "not run",
        "provenance": provenance.document(run.gate) if run.gate else None,
        "catalogs": run.catalogs,
        "applied": run.applied,
        "errors": run.errors,
        "gate_failed": run.gate_failed,
    }


def summary_markdown(run: RunOutcome) -> str:
    lines = [
        "# Drydock run",
        "",
        f"{len(run.outcomes)} target(s) in {run.seconds:.0f}s; exit code {run.exit_code}.",
        "",
        "| target | decision | size | published | why |",
        "|---|---|---|---|---|",
    ]
    for name, o in sorted(run.outcomes.items()):
        why = "; ".join(
            part
            for part in (o.regate, o.reason, ", ".join(o.package_delta) if o.package_delta else "")
            if part
        )
        size = f"{o.size / 1_000_000:.0f} MB" if o.size else "-"
        published = o.published or o.staged or "-"
        lines.append(f"| {name} | {o.decision} | {size} | {published} | {why} |")
    if run.withdrawn:
        lines += ["", "Withdrawn from the catalogs (failed today's gate with fixable findings):"]
        lines += [f"- {line}" for line in run.withdrawn]
    for label, report in (("Gate of this run's builds", run.gate), ("Re-gate", run.regate_report)):
        if report is not None:
            lines += ["", f"{label}:  ", *(f"{line}  " for line in provenance.lines(report))]
    if run.applied:
        lines += ["", "Catalogs: " + ", ".join(f"{a['name']} {a['action']}" for a in run.applied)]
    if run.errors:
        lines += ["", "Errors:", *[f"- {e}" for e in run.errors]]
    return "\n".join(lines) + "\n"


def write_record(run: RunOutcome, out_dir: Path) -> tuple[Path, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "run.json"
    path.write_text(
        json.dumps(record_document(run), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    summary = summary_markdown(run)
    (out_dir / "summary.md").write_text(summary, encoding="utf-8")
    return path, summary
