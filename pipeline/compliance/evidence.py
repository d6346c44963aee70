"""Which evidence sources of an image could actually see a problem (pure).

A scanner that ran is not yet evidence. Trivy's vulnerability scan proves nothing when it
found no OS or no package database in the image, when its DB is older than the policy
allows, or when its DB holds no advisories for the image's OS release; Dockle's tag check
proves nothing on a `docker save` archive (there is no tag to judge). This module turns
what the scanners reported (`ImageScan.ran`, `.os`, `.blind`) and what the run knows about
its DB (`ScanProvenance`) into the set of sources that count, and a reason for each one
that does not, so a control that needs it is `unverified` and the report says why.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pipeline.models.compliance import (
    RAN_DOCKLE,
    RAN_TRIVY_PACKAGES,
    Control,
    ImageScan,
    Policy,
    TrivyClass,
    ran_dockle,
    ran_trivy,
)
from pipeline.models.provenance import ScanProvenance, hours

TRIVY_VULN = ran_trivy(TrivyClass.VULNERABILITY)


@dataclass(frozen=True)
class Observed:
    """What can count as evidence for one image: keys that ran and could see, and why
    the others could not."""

    ran: frozenset[str]
    blind: tuple[tuple[str, str], ...] = ()

    def why(self, key: str) -> str:
        return dict(self.blind).get(key, "")

    def dockle_sees(self, codes: tuple[str, ...]) -> bool:
        """Dockle ran and can evaluate at least one of these checkpoints."""
        if RAN_DOCKLE not in self.ran:
            return False
        return any(not self.why(ran_dockle(code)) for code in codes)

    def has(self, key: str, control: Control) -> bool:
        if key == RAN_DOCKLE:
            return self.dockle_sees(control.evidence.dockle or ("",))
        return key in self.ran


def _db_problem(platform: str, provenance: ScanProvenance | None, policy: Policy) -> str:
    db = provenance.vuln_db if provenance is not None else None
    if db is None or provenance is None:
        return "the run names no vulnerability DB, so what it could see is unknown"
    age = db.age(provenance.generated_at)
    if age is None:
        return f"the {db.source} vulnerability DB has no build time, so its age is unknown"
    if age > policy.max_db_age:
        return (
            f"the {db.source} vulnerability DB is {hours(age)} old, more than the policy's "
            f"max_db_age of {hours(policy.max_db_age)}"
        )
    if age < -dt.timedelta(hours=1):
        return f"the {db.source} vulnerability DB claims to be from the future ({hours(age)})"
    if db.holds(platform) <= 0:
        return f"the {db.source} vulnerability DB holds no advisories for {platform}"
    return ""


def observe(scan: ImageScan, provenance: ScanProvenance | None, policy: Policy) -> Observed:
    """The evidence that counts for this image (pure)."""
    ran = set(scan.ran)
    blind = dict(scan.blind)
    if TRIVY_VULN in ran:
        os = scan.os
        problem = ""
        if os is None or not os.family:
            problem = "Trivy detected no operating system in the image"
        elif os.packages <= 0:
            problem = f"Trivy found {os.family} {os.version} but no package database"
        else:
            ran.add(RAN_TRIVY_PACKAGES)
            problem = _db_problem(os.platform, provenance, policy)
        if problem:
            ran.discard(TRIVY_VULN)
            blind[TRIVY_VULN] = problem
        if RAN_TRIVY_PACKAGES not in ran:
            blind[RAN_TRIVY_PACKAGES] = problem
    return Observed(frozenset(ran), tuple(sorted(blind.items())))
