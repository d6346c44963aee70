"""The HTML checklist in a real headless browser (Debian's `chromium` package).

The page must render offline (no network: the browser is started with background
networking off) and the DOM the browser builds must hold a row for every control of every
image. A screenshot is written too, for a person to look at. Installs nothing: a missing
chromium fails the test, it is never skipped.
"""

from __future__ import annotations

import datetime as dt
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipeline.compliance.config import load_controls, load_policy
from pipeline.compliance.gate import evaluate
from pipeline.compliance.native import catalogue
from pipeline.models.compliance import (
    RAN_DOCKLE,
    GateReport,
    ImageScan,
    ScannerError,
    Waiver,
    ran_by,
    ran_native,
)
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.report import render
from pipeline.tools.runner import Completed, run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 11, 27)
EVERYTHING = frozenset({RAN_DOCKLE, *ran_by(Source.TRIVY), *(ran_native(i) for i in catalogue())})
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def chromium(args: list[str], profile: Path) -> Completed:
    """Run Debian's chromium headless with a throwaway profile (through the runner)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed (Debian package: chromium)")
    return run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        timeout=120,
    )


def report() -> GateReport:
    controls = load_controls(ROOT / "scan-config" / "controls.yaml")
    policy = load_policy(ROOT / "scan-config" / "policy.yaml")
    cve = Finding(
        "CVE-2026-0001",
        Source.TRIVY,
        Kind.VULNERABILITY,
        Severity.CRITICAL,
        "heap overflow in libfoo",
        package="libfoo1",
        installed_version="1.0-1",
        fixed_version="1.0-2",
        status=Status.FIXED,
    )
    setuid = Finding(
        "DD-SETUID",
        Source.NATIVE,
        Kind.CHECKPOINT,
        Severity.MEDIUM,
        "Files with setuid or setgid permissions",
        evidence=("/usr/bin/su 4755 (setuid)", "/usr/bin/chage 2755 (setgid)"),
    )
    health = Finding(
        "DD-NO-HEALTHCHECK",
        Source.NATIVE,
        Kind.CHECKPOINT,
        Severity.LOW,
        "The image has no HEALTHCHECK",
        evidence=("config Healthcheck is not set",),
    )
    waivers = (
        Waiver("runs as a one-shot job", "platform-team", dt.date(2026, 12, 31), control="CIS-4.6"),
        Waiver(
            "runs as a one-shot job", "platform-team", dt.date(2026, 12, 31), control="DISA-2.6"
        ),
        Waiver("fix not yet in the archive", "security-team", dt.date(2026, 10, 1), finding=cve.id),
    )
    scans = [
        ImageScan("drydock/postgresql:15-minimal-bookworm", ran=EVERYTHING),
        ImageScan("drydock/postgresql:17-standard-trixie", (cve, setuid), EVERYTHING),
        ImageScan("drydock/operator:1.0-job", (health,), EVERYTHING),
        ImageScan(
            "drydock/postgresql:13-system-bullseye",
            ran=EVERYTHING - ran_by(Source.TRIVY),
            errors=(ScannerError(Source.TRIVY, "timed out after 600s"),),
        ),
    ]
    return evaluate(scans, controls, policy, waivers, TODAY)


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: set[tuple[str | None, str | None, str | None]] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and "data-control" in found:
            self.rows.add(
                (found.get("data-image"), found.get("data-control"), found.get("data-status"))
            )


def test_every_control_of_every_image_is_a_row_in_the_browser_dom(tmp_path: Path) -> None:
    gate = report()
    page = tmp_path / "checklist.html"
    page.write_text(render(gate, "html"), encoding="utf-8")
    done = chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    assert "Drydock compliance checklist" in done.stdout
    parser = _Rows()
    parser.feed(done.stdout)
    expected = {(v.image, r.control.id, r.status.value) for v in gate.images for r in v.controls}
    assert parser.rows == expected
    assert len(expected) == 4 * len(gate.images[0].controls)


def test_a_screenshot_of_the_checklist(tmp_path: Path) -> None:
    page = tmp_path / "checklist.html"
    page.write_text(render(report(), "html"), encoding="utf-8")
    shot = tmp_path / "checklist.png"
    chromium(
        [f"--screenshot={shot}", "--window-size=1400,2400", page.as_uri()], tmp_path / "profile"
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000  # a rendered page, not a blank canvas
