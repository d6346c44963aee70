"""What every report format says about the evidence's origin: scanners, versions, the DB.

One place renders it so the JSON, SARIF, Markdown, JUnit and HTML reports (and the run
record, which embeds the JSON form) can never disagree about which scanner version or
which vulnerability DB, of which age, a verdict rests on. Pure.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pipeline.models.compliance import GateReport, ImageVerdict
from pipeline.models.provenance import VulnDbInfo, hours


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat(timespec="seconds") if when is not None else None


def _stamp(when: dt.datetime | None) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC" if when is not None else "unknown"


def db_document(db: VulnDbInfo, report: GateReport) -> dict[str, Any]:
    now = report.provenance.generated_at if report.provenance else None
    age = db.age(now) if now is not None else None
    return {
        "source": db.source,
        "reference": db.reference,
        "built_at": _iso(db.built_at),
        "current_at": _iso(db.current_at),
        "age_hours": round(age.total_seconds() / 3600, 2) if age is not None else None,
        "max_age_hours": round(report.policy.max_db_age.total_seconds() / 3600, 2),
        "advisories": db.advisories,
        "platforms": dict(db.platforms),
        "detail": list(db.detail),
    }


def document(report: GateReport) -> dict[str, Any]:
    """The provenance as JSON-able data (also the run record's `provenance`)."""
    prov = report.provenance
    if prov is None:
        return {"generated_at": None, "scanners": [], "vulnerability_db": None}
    return {
        "generated_at": _iso(prov.generated_at),
        "scanners": [{"name": t.name, "version": t.version} for t in prov.scanners],
        "vulnerability_db": db_document(prov.vuln_db, report) if prov.vuln_db else None,
    }


def scanners_text(report: GateReport) -> str:
    prov = report.provenance
    if prov is None or not prov.scanners:
        return "Scanners: not recorded."
    return "Scanners: " + ", ".join(f"{t.name} {t.version}" for t in prov.scanners) + "."


def db_text(report: GateReport) -> str:
    """One sentence: source, build time, currency, age against the maximum, contents."""
    prov = report.provenance
    db = prov.vuln_db if prov is not None else None
    if prov is None or db is None:
        return "Vulnerability DB: none recorded (vulnerability controls cannot pass)."
    platforms = ", ".join(f"{p}: {n}" for p, n in db.platforms) or "no platform"
    age = hours(db.age(prov.generated_at))
    return (
        f"Vulnerability DB: {db.source} ({db.reference}), built {_stamp(db.built_at)}, "
        f"current as of {_stamp(db.current_at)}, age {age} (policy maximum "
        f"{hours(report.policy.max_db_age)}), {db.advisories} advisories ({platforms})."
    )


def lines(report: GateReport) -> list[str]:
    """The provenance as sentences, for the text formats."""
    return [scanners_text(report), db_text(report)]


def os_text(verdict: ImageVerdict) -> str:
    """What Trivy saw of an image's OS ("not scanned by Trivy" when it did not run)."""
    if verdict.os is None:
        return "OS: not scanned by Trivy"
    eol = ", past end of support" if verdict.os.eosl else ""
    return f"OS: {verdict.os.describe()}{eol}"
