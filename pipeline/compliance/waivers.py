"""Which waiver applies to a finding or a control of an image, and which ones have expired.

A waiver names a finding id or a control id, optionally narrowed to image name globs and a
package, and is valid up to and including its `expires` date. An expired waiver never
applies; when it would have matched, the report says "expired on <date>" so the owner
knows why the gate suddenly fails.

A waiver must also survive an audit (checked when waivers.yaml is read): a justification
in real words, not a placeholder, and an approver who is somebody.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.models.compliance import Waiver
from pipeline.models.findings import Finding


@dataclass(frozen=True)
class Match:
    """The active waiver (if any) and the expired ones that would otherwise have matched."""

    active: Waiver | None
    expired: tuple[Waiver, ...]


def in_scope(waiver: Waiver, image: str) -> bool:
    return not waiver.images or any(fnmatch.fnmatchcase(image, g) for g in waiver.images)


def _pick(candidates: Sequence[Waiver], today: dt.date) -> Match:
    active = [w for w in candidates if not w.expired(today)]
    expired = tuple(w for w in candidates if w.expired(today))
    # The waiver that lasts longest wins, so the report shows the most useful date.
    best = max(active, key=lambda w: w.expires) if active else None
    return Match(best, expired)


def for_finding(waivers: Sequence[Waiver], image: str, finding: Finding, today: dt.date) -> Match:
    candidates = [
        w
        for w in waivers
        if w.finding == finding.id
        and in_scope(w, image)
        and (not w.package or fnmatch.fnmatchcase(finding.package, w.package))
    ]
    return _pick(candidates, today)


def for_control(waivers: Sequence[Waiver], image: str, control_id: str, today: dt.date) -> Match:
    candidates = [w for w in waivers if w.control == control_id and in_scope(w, image)]
    return _pick(candidates, today)


def active_note(waiver: Waiver) -> str:
    return f"waiver for {waiver.describe()}, valid until {waiver.expires.isoformat()}"


def expired_note(waiver: Waiver) -> str:
    return f"waiver for {waiver.describe()} expired on {waiver.expires.isoformat()}"


def all_expired(waivers: Sequence[Waiver], today: dt.date) -> tuple[str, ...]:
    return tuple(expired_note(w) for w in waivers if w.expired(today))


# Words that mark a text as not written yet, wherever they appear ...
PLACEHOLDERS = frozenset({"todo", "tbd", "tba", "fixme", "xxx", "placeholder", "n/a", "lorem"})
# ... and texts that say nothing when they are all there is.
EMPTY_TEXTS = frozenset(
    {
        "none",
        "na",
        "-",
        "?",
        "...",
        "later",
        "test",
        "wip",
        "justification",
        "approver",
        "nobody",
        "someone",
        "me",
        "unknown",
        "tbc",
    }
)
_WORD = re.compile(r"[^\W\d_]{2,}")
MIN_WORDS = 4


def justification_problem(text: str) -> str:
    """Why a waiver's justification would not survive an audit ("" when it would)."""
    stripped = " ".join(text.split())
    if not stripped:
        return "is blank"
    tokens = {t.strip(".,:;!()[]").lower() for t in stripped.split()}
    if tokens & PLACEHOLDERS:
        found = ", ".join(sorted(tokens & PLACEHOLDERS))
        return f"contains a placeholder ({found}): say why the risk is accepted"
    words = _WORD.findall(stripped)
    if len(words) < MIN_WORDS:
        return f"needs real words (at least {MIN_WORDS}), got {stripped!r}"
    return ""


def approver_problem(text: str) -> str:
    stripped = text.strip()
    if not stripped:
        return "is blank: name the person or team who accepted the risk"
    lowered = stripped.lower()
    if lowered in PLACEHOLDERS | EMPTY_TEXTS or not _WORD.search(stripped):
        return f"{stripped!r} names nobody"
    return ""
