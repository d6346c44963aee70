"""When a published image need not be re-gated: nothing its last verdict rested on changed.

The nightly re-gate (pipeline.stages.regate) pulls every published image and scans it
again, because the world around an unchanged image moves: a new advisory, a new point
release, a waiver that expired. On a night when none of that moved, the scan can only
repeat yesterday's pass, and it is most of a no-op night's time (38.6 s of ~45 s for the
matrix, bench/vulnfeed.py). So a pass is recorded with everything it rested on, and the
next night skips the scan when all of it is the same:

  * the image itself (the record is kept per manifest digest);
  * the archive: the hashes of the Packages and Sources indices of the image's release,
    -updates and -security suites, as their verified InRelease names them (the
    debian-archive feed and Clair's feed are derived from them, and the pending-updates
    check reads them; an InRelease re-signed with nothing uploaded changes none of them).
    Only in `debian-archive` mode: Trivy's public DB or a mirror of it changes on its own
    schedule, so those runs always re-gate;
  * the judges: each scanner and its version, the scan configuration (controls, policy,
    waivers) and the code of the checks and the gate, and the trusted bases;
  * the calendar: a waiver expiring or the image's PostgreSQL major reaching its end of
    life changes the verdict without any file changing, so a record is good only until the
    first such date, and never longer than MAX_SKIP (a week), so anything judged by date
    inside a scanner (Trivy's end-of-support table) is seen within a week.

Anything that cannot be read (the archive unreachable, a record unreadable) means: gate
again. Only passes are recorded; a failing image is always scanned again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAX_SKIP = dt.timedelta(days=7)
# The code whose change can change a verdict: the scanners' adapters, the checks, the gate.
JUDGING_CODE = ("compliance", "scan", "stages/scan.py", "stages/scan_context.py")


@dataclass(frozen=True)
class Judged:
    """What one image's verdict rests on, besides the image: `key` hashes it all."""

    key: str
    valid_until: dt.date  # the first day on which a date could change the verdict


def evidence_key(parts: Sequence[tuple[str, str]]) -> str:
    """A stable hash of (name, value) pairs; order-independent."""
    text = json.dumps(sorted(parts), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def valid_until(today: dt.date, dates: Iterable[dt.date]) -> dt.date:
    """The first date after today at which a date-based judgement may change, capped."""
    later = [d for d in dates if d > today]
    return min([today + MAX_SKIP, *later])


def files_digest(paths: Iterable[Path]) -> str:
    """sha256 over the names and contents of `paths` (directories: their *.py files)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


class Ledger:
    """The passes of published images and what they rested on: one JSON file per digest."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, digest: str) -> Path:
        return self.folder / f"{digest.replace(':', '-')}.json"

    def standing(self, digest: str, judged: Judged, today: dt.date) -> dt.date | None:
        """The day of the recorded pass that still stands for `judged`, else None."""
        try:
            doc = json.loads(self._path(digest).read_text(encoding="utf-8"))
            key, day, until = doc["key"], doc["gated_on"], doc["valid_until"]
            gated_on, good_until = dt.date.fromisoformat(day), dt.date.fromisoformat(until)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("re-gate record of %s unreadable (%s): gating it again", digest, err)
            return None
        if key != judged.key or not gated_on <= today < good_until:
            return None
        return gated_on

    def record(self, digest: str, judged: Judged, today: dt.date) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        doc = {
            "key": judged.key,
            "gated_on": today.isoformat(),
            "valid_until": judged.valid_until.isoformat(),
        }
        tmp = self._path(digest).with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
        tmp.replace(self._path(digest))

    def recorded(self, digest: str) -> bool:
        return self._path(digest).is_file()

    def forget(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)
