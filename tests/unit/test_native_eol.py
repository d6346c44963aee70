"""DD-POSTGRESQL-EOL: a PostgreSQL major past its end of life fails DISA 2.15 (pure)."""

from __future__ import annotations

import datetime as dt

from compliance_helpers import dpkg_status, file, image_fs

from pipeline.compliance.native import NativeInputs, NativeResult, run_native_checks
from pipeline.compliance.native_eol import CHECKS
from pipeline.models.compliance import NativeSettings, ran_native

EOL = ((13, dt.date(2025, 11, 13)), (15, dt.date(2027, 11, 11)))
TODAY = dt.date(2026, 12, 2)


def _run(
    *packages: tuple[str, str], eol: tuple[tuple[int, dt.date], ...] | None = EOL
) -> NativeResult:
    fs = image_fs(None, [file("var/lib/dpkg/status", dpkg_status(*packages))])
    return run_native_checks(
        fs, NativeSettings(), NativeInputs(postgres_eol=eol, today=TODAY), CHECKS
    )


def test_a_major_past_its_end_of_life_is_a_finding_naming_the_date() -> None:
    result = _run(("postgresql-13", "13.16-0+deb11u1"), ("libpq5", "13.16-0+deb11u1"))
    [finding] = result.findings
    assert finding.id == "DD-POSTGRESQL-EOL"
    assert finding.evidence == (
        "postgresql-13 13.16-0+deb11u1: PostgreSQL 13 reached end of life on 2025-11-13",
    )


def test_a_supported_major_and_client_libraries_are_not() -> None:
    result = _run(("postgresql-15", "15.20-0+deb12u1"), ("postgresql-client-13", "13.1"))
    assert result.findings == ()
    assert ran_native("DD-POSTGRESQL-EOL") in result.ran


def test_the_last_supported_day_still_passes() -> None:
    last_day = ((13, TODAY),)
    assert _run(("postgresql-13", "13.16"), eol=last_day).findings == ()


def test_without_dates_the_check_does_not_run() -> None:
    result = _run(("postgresql-13", "13.16"), eol=None)
    assert result.findings == () and not result.ran
