"""Pure: when a target primary that is still a standby may promote.

Two ways the primary moves, told apart by what the old primary wrote:

* **Planned** (a switchover: the old primary is alive and was told to step down). Before it
  shuts down, the old primary records `status.demotion = {from, to, state: stopping}`;
  after a clean shutdown it adds the LSN of its shutdown checkpoint (`state: stopped`),
  the last record it will ever write on that timeline. The target promotes only once it
  has received WAL past that LSN: then it holds every transaction the old primary
  committed, however far behind the stream was. If that does not happen within the
  timeout (the stream was cut, or the shutdown was not clean and no LSN can vouch for
  it), the target aborts the switchover by pointing `targetPrimary` back at the old
  primary, which starts again as primary with nothing lost.
* **Unplanned** (a failover: the old primary is gone and wrote nothing for this move).
  The target promotes once its WAL receiver has been quiet for a few checks in a row;
  what the old primary never sent is lost, as with any asynchronous replica.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, NamedTuple

QUIET_RECEIVER_CHECKS = 3
STOPPING = "stopping"
STOPPED = "stopped"
UNCLEAN = "unclean"


class Demotion(NamedTuple):
    """`status.demotion`, as the old primary wrote it."""

    former: str
    target: str
    state: str
    lsn: str = ""

    def as_status(self) -> dict[str, Any]:
        return {
            "from": self.former,
            "to": self.target,
            "state": self.state,
            "shutdownCheckpointLSN": self.lsn,
        }

    @classmethod
    def from_status(cls, value: object) -> Demotion | None:
        if not isinstance(value, dict) or not value.get("from") or not value.get("to"):
            return None
        return cls(
            former=str(value["from"]),
            target=str(value["to"]),
            state=str(value.get("state") or STOPPING),
            lsn=str(value.get("shutdownCheckpointLSN") or ""),
        )


def lsn_value(text: str) -> int:
    """`16/B374D848` as a number; ValueError for anything else."""
    high, sep, low = text.strip().partition("/")
    if not sep or not high or not low:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(high, 16) << 32) | int(low, 16)


class Verdict(Enum):
    WAIT = "wait"
    PROMOTE = "promote"
    ABORT = "abort"


class Decision(NamedTuple):
    verdict: Verdict
    reason: str


def decide(
    me: str,
    current_primary: str,
    demotion: Demotion | None,
    receiver: str,
    received_lsn: str,
    quiet_checks: int,
    waited: float,
    timeout: float,
) -> Decision:
    """What the target primary `me`, still in recovery, does on this check.

    `quiet_checks` counts the checks in a row (this one included) on which the WAL
    receiver was not streaming; `waited` is how long this planned handover has been seen.
    """
    planned = (
        demotion is not None
        and demotion.target == me
        and demotion.former == current_primary
        and demotion.former != me
    )
    if demotion is not None and planned:
        old = demotion.former
        if demotion.state == STOPPED and demotion.lsn and received_lsn:
            try:
                past = lsn_value(received_lsn) > lsn_value(demotion.lsn)
            except ValueError:
                past = False
            if past:
                return Decision(
                    Verdict.PROMOTE,
                    f"received WAL up to {received_lsn}, past {old}'s shutdown checkpoint "
                    f"{demotion.lsn}",
                )
        if demotion.state == UNCLEAN:
            why = f"{old} did not shut down cleanly: no checkpoint vouches for its last WAL"
        elif demotion.state == STOPPED:
            why = (
                f"waiting for WAL past {old}'s shutdown checkpoint {demotion.lsn} "
                f"(received {received_lsn or 'nothing'})"
            )
        else:
            why = f"waiting for {old} to shut down"
        if waited >= timeout:
            return Decision(Verdict.ABORT, f"{why}; gave up after {waited:.0f}s")
        return Decision(Verdict.WAIT, why)
    if receiver == "streaming":
        return Decision(Verdict.WAIT, "waiting for the old primary to stop streaming")
    if quiet_checks >= QUIET_RECEIVER_CHECKS:
        return Decision(
            Verdict.PROMOTE,
            f"no planned handover and the WAL receiver quiet for {quiet_checks} checks",
        )
    return Decision(Verdict.WAIT, "the WAL receiver is quiet: checking again")
