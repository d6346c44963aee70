"""When a switchover's or failover's target promotes (drydock_instance.handover)."""

from __future__ import annotations

import pytest
from drydock_instance.handover import (
    QUIET_RECEIVER_CHECKS,
    STOPPED,
    STOPPING,
    UNCLEAN,
    Demotion,
    Verdict,
    decide,
    lsn_value,
)

ME, OLD = "pg-2", "pg-1"
SHUTDOWN = "0/5000028"


def verdict(
    demotion: Demotion | None,
    received: str = "0/6000000",
    receiver: str = "",
    quiet: int = 1,
    waited: float = 0.0,
    current: str = OLD,
) -> Verdict:
    return decide(ME, current, demotion, receiver, received, quiet, waited, 60.0).verdict


def test_lsns_compare_as_numbers_not_strings() -> None:
    assert lsn_value("0/A0") > lsn_value("0/9F")  # "0/A0" < "0/9F" as text
    assert lsn_value("1/0") > lsn_value("0/FFFFFFFF")
    for bad in ("", "16", "/1", "x/1"):
        with pytest.raises(ValueError):
            lsn_value(bad)


def test_a_planned_handover_promotes_only_past_the_shutdown_checkpoint() -> None:
    stopped = Demotion(OLD, ME, STOPPED, SHUTDOWN)
    assert verdict(stopped, received="0/5000100") is Verdict.PROMOTE
    # At or before the checkpoint's start: its record (and what precedes it) is not all
    # here, whatever the receiver says and however long it has been quiet.
    for received in ("0/5000028", "0/4FFFFFF", ""):
        assert verdict(stopped, received=received, quiet=99) is Verdict.WAIT
    assert verdict(stopped, received="0/5000028", quiet=99, waited=61) is Verdict.ABORT


def test_a_planned_handover_waits_for_the_old_primary_to_stop_then_gives_up() -> None:
    stopping = Demotion(OLD, ME, STOPPING)
    assert verdict(stopping, quiet=QUIET_RECEIVER_CHECKS + 5) is Verdict.WAIT
    assert verdict(stopping, waited=60) is Verdict.ABORT


def test_an_unclean_shutdown_is_never_promoted_over() -> None:
    unclean = Demotion(OLD, ME, UNCLEAN)
    assert verdict(unclean, received="F/0", quiet=99) is Verdict.WAIT
    decision = decide(ME, OLD, unclean, "", "F/0", 99, 60.0, 60.0)
    assert decision.verdict is Verdict.ABORT
    assert "did not shut down cleanly" in decision.reason


def test_a_failover_promotes_after_quiet_checks() -> None:
    assert verdict(None, receiver="streaming", quiet=0) is Verdict.WAIT
    assert verdict(None, quiet=QUIET_RECEIVER_CHECKS - 1) is Verdict.WAIT
    assert verdict(None, quiet=QUIET_RECEIVER_CHECKS) is Verdict.PROMOTE


@pytest.mark.parametrize(
    "stale",
    [
        Demotion(OLD, "pg-3", STOPPED, SHUTDOWN),  # a handover to another instance
        Demotion("pg-3", ME, STOPPED, SHUTDOWN),  # from an instance that is not the primary
        Demotion(ME, OLD, STOPPED, SHUTDOWN),  # this instance's own, from an earlier move
    ],
)
def test_a_record_of_another_handover_is_a_failover(stale: Demotion) -> None:
    assert verdict(stale, received="0/1", quiet=QUIET_RECEIVER_CHECKS) is Verdict.PROMOTE
    assert verdict(stale, received="0/1", waited=999, quiet=1) is Verdict.WAIT


def test_the_status_form_round_trips_and_rejects_partial_records() -> None:
    record = Demotion(OLD, ME, STOPPED, SHUTDOWN)
    assert Demotion.from_status(record.as_status()) == record
    assert Demotion.from_status({"from": OLD}) is None
    assert Demotion.from_status(None) is None
    assert Demotion.from_status({"from": OLD, "to": ME}) == Demotion(OLD, ME, STOPPING)
