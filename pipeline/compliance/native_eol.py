"""Native check: no PostgreSQL major past its end of life in the image (DISA 2.15).

The guide's "do not build from an outdated base" covers the software an image exists to
run: a PostgreSQL major the PostgreSQL Global Development Group no longer supports gets no
security fixes from anyone, whatever the vulnerability DB says today. Trivy reports the
OS release's end of support; this check reads the server packages from dpkg's database
(`postgresql-<major>`) and judges their major by the dates kept in images/postgresql.yaml.
"""

from __future__ import annotations

import re

from pipeline.compliance.imagefs import ImageFilesystem
from pipeline.compliance.native_base import CheckContext, CheckSpec, NativeCheck, hit
from pipeline.compliance.native_packages import parse_dpkg_status
from pipeline.models.findings import Finding, Severity

POSTGRESQL_EOL = CheckSpec(
    "DD-POSTGRESQL-EOL", "A PostgreSQL major past its end of life is installed", Severity.HIGH
)
_SERVER = re.compile(r"^postgresql-(\d+)$")


def check_postgresql_eol(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding] | None:
    eol, today = ctx.inputs.postgres_eol, ctx.inputs.today
    if eol is None or today is None:
        return None  # no dates to judge by: the check did not run
    dates = dict(eol)
    evidence = []
    for package in parse_dpkg_status(fs.text("var/lib/dpkg/status")):
        match = _SERVER.match(package.name)
        if not match:
            continue
        major = int(match.group(1))
        ended = dates.get(major)
        if ended is not None and ended < today:
            evidence.append(
                f"{package.name} {package.version}: PostgreSQL {major} reached end of life "
                f"on {ended.isoformat()}"
            )
    return hit(POSTGRESQL_EOL, evidence)


CHECKS = (NativeCheck((POSTGRESQL_EOL,), check_postgresql_eol),)
