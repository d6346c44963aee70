"""A published image's pass stands without a scan only while nothing it rested on moved."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.descriptors.load import load_plan
from pipeline.models.publish import PublishedImage
from pipeline.publish.current import Current
from pipeline.stages.regate import ERROR, PASS, regate_published
from pipeline.stages.regate_ledger import MAX_SKIP, Judged, Ledger, evidence_key, valid_until
from pipeline.stages.scan import ScanConfig

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 12, 2)
DIGEST = "sha256:" + "c" * 64
PARTS = [("archive", "bookworm-security Packages 84d8"), ("scanners", "trivy 0.74.0")]


def test_the_key_changes_with_any_part_and_not_with_their_order() -> None:
    key = evidence_key(PARTS)
    assert evidence_key(list(reversed(PARTS))) == key
    assert evidence_key([PARTS[0], ("scanners", "trivy 0.75.0")]) != key
    assert evidence_key([("archive", "bookworm-security Packages 84d9"), PARTS[1]]) != key


def test_a_date_that_can_change_the_verdict_ends_the_record() -> None:
    waiver_expires, eol = TODAY + dt.timedelta(days=3), TODAY + dt.timedelta(days=200)
    assert valid_until(TODAY, [waiver_expires, eol]) == waiver_expires
    assert valid_until(TODAY, [TODAY - dt.timedelta(days=1), TODAY]) == TODAY + MAX_SKIP
    assert valid_until(TODAY, []) == TODAY + MAX_SKIP


def test_a_recorded_pass_stands_only_for_the_same_evidence_and_in_time(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    judged = Judged(evidence_key(PARTS), TODAY + dt.timedelta(days=3))
    assert ledger.standing(DIGEST, judged, TODAY) is None  # nothing recorded
    ledger.record(DIGEST, judged, TODAY)
    tomorrow = TODAY + dt.timedelta(days=1)
    assert ledger.standing(DIGEST, judged, tomorrow) == TODAY
    assert ledger.standing("sha256:" + "d" * 64, judged, tomorrow) is None  # another image
    other = Judged(evidence_key([PARTS[0], ("scanners", "trivy 0.75.0")]), judged.valid_until)
    assert ledger.standing(DIGEST, other, tomorrow) is None
    assert ledger.standing(DIGEST, judged, judged.valid_until) is None  # the waiver expired
    assert ledger.standing(DIGEST, judged, TODAY - dt.timedelta(days=1)) is None  # clock back
    ledger.forget(DIGEST)
    assert ledger.standing(DIGEST, judged, tomorrow) is None


@pytest.mark.parametrize("content", ["", "{", '{"key": 1}', '{"key": "k", "gated_on": "x"}'])
def test_an_unreadable_record_means_gating_again(tmp_path: Path, content: str) -> None:
    ledger = Ledger(tmp_path)
    (tmp_path / f"{DIGEST.replace(':', '-')}.json").write_text(content, encoding="utf-8")
    assert ledger.standing(DIGEST, Judged("k", TODAY + MAX_SKIP), TODAY) is None


def _published(name: str, digest: str) -> Current:
    # A registry no one listens on: an image that is not skipped cannot be pulled.
    image = PublishedImage(name, "127.0.0.1:9", "drydock/postgresql", "15-1", digest, True)
    return Current(image, "fingerprint", "")


def test_the_re_gate_pulls_nothing_for_a_standing_pass_and_everything_else(
    tmp_path: Path,
) -> None:
    plan = load_plan(ROOT / "images", today=TODAY)
    names = [t.name for t in plan if t.major is not None][:2]
    ledger = Ledger(tmp_path / "ledger")
    judged = {
        name: Judged(evidence_key([*PARTS, ("target", name)]), TODAY + MAX_SKIP) for name in names
    }
    ledger.record(DIGEST, judged[names[0]], TODAY - dt.timedelta(days=1))
    other = "sha256:" + "e" * 64
    _, outcomes = regate_published(
        {names[0]: _published(names[0], DIGEST), names[1]: _published(names[1], other)},
        plan,
        [],
        ScanConfig.in_dir(ROOT / "scan-config"),
        tmp_path / "work",
        jobs=1,
        today=TODAY,
        known_bases=None,
        check_updates=True,
        ledger=ledger,
        judged=judged,
    )
    assert outcomes[names[0]].outcome == PASS
    assert outcomes[names[0]].standing_since == TODAY - dt.timedelta(days=1)
    assert "stands" in outcomes[names[0]].describe()
    assert outcomes[names[1]].outcome == ERROR  # really tried to pull it
    assert ledger.standing(other, judged[names[1]], TODAY) is None  # a failure records nothing
