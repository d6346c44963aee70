"""Native checks on accounts: who the container runs as, passwords, duplicate ids.

CIS 4.1 / DISA 2.2 want a non-root user that exists (PostgreSQL's initdb refuses a uid with
no passwd entry, and Kubernetes' runAsNonRoot can only verify a numeric USER). Empty
passwords and duplicate UIDs/GIDs are OS STIG items (DISA 2.16), checked by Dockle as
DKL-LI-0001/0002; we check them too so the gate does not depend on one tool.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pipeline.compliance.imagefs import ImageFilesystem
from pipeline.compliance.native_base import CheckContext, CheckSpec, NativeCheck, hit
from pipeline.models.findings import Finding, Severity

ROOT_USER = CheckSpec("DD-ROOT-USER", "The container runs as root", Severity.HIGH)
USER_UNKNOWN = CheckSpec(
    "DD-USER-UNKNOWN", "The container user has no /etc/passwd entry", Severity.HIGH
)
USER_NOT_NUMERIC = CheckSpec(
    "DD-USER-NOT-NUMERIC",
    "USER is a name, so Kubernetes runAsNonRoot cannot verify it",
    Severity.MEDIUM,
)
EMPTY_PASSWORD = CheckSpec(
    "DD-EMPTY-PASSWORD", "An account has an empty password", Severity.CRITICAL
)
DUPLICATE_ID = CheckSpec("DD-DUPLICATE-ID", "Duplicate UID or GID", Severity.HIGH)


@dataclass(frozen=True)
class Account:
    name: str
    password: str
    uid: int
    gid: int


def parse_passwd(text: str) -> tuple[Account, ...]:
    """/etc/passwd lines `name:password:uid:gid:gecos:home:shell`; bad lines are skipped."""
    accounts = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 4 or line.startswith("#"):
            continue
        try:
            accounts.append(Account(fields[0], fields[1], int(fields[2]), int(fields[3])))
        except ValueError:
            continue
    return tuple(accounts)


def parse_group(text: str) -> tuple[tuple[str, int], ...]:
    groups = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 3 or line.startswith("#"):
            continue
        try:
            groups.append((fields[0], int(fields[2])))
        except ValueError:
            continue
    return tuple(groups)


def check_user(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    user = fs.config.user.strip()
    name = user.split(":", 1)[0]
    accounts = parse_passwd(fs.text("etc/passwd"))
    if not name:
        return hit(ROOT_USER, ["config User is empty: the container runs as root (uid 0)"])
    if name.isdigit():
        uid = int(name)
        if uid == 0:
            return hit(ROOT_USER, [f"config User {user!r} is uid 0"])
        if not any(a.uid == uid for a in accounts):
            return hit(USER_UNKNOWN, [f"config User {user!r}: no /etc/passwd entry has uid {uid}"])
        return []
    found = [a for a in accounts if a.name == name]
    if not found:
        return hit(USER_UNKNOWN, [f"config User {user!r}: no /etc/passwd entry named {name!r}"])
    if found[0].uid == 0:
        return hit(ROOT_USER, [f"config User {user!r} is uid 0 in /etc/passwd"])
    if ctx.settings.require_numeric_user:
        return hit(
            USER_NOT_NUMERIC,
            [f"config User {user!r}: use the numeric uid ({found[0].uid}) instead"],
        )
    return []


def check_empty_password(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = []
    for line in fs.text("etc/shadow").splitlines():
        fields = line.split(":")
        if len(fields) >= 2 and fields[0] and not fields[1]:
            evidence.append(f"/etc/shadow: {fields[0]} has an empty password")
    for account in parse_passwd(fs.text("etc/passwd")):
        if not account.password:
            evidence.append(f"/etc/passwd: {account.name} has an empty password field")
    return hit(EMPTY_PASSWORD, evidence)


def _duplicates(pairs: tuple[tuple[str, int], ...], what: str, where: str) -> list[str]:
    by_id: dict[int, list[str]] = defaultdict(list)
    for name, number in pairs:
        by_id[number].append(name)
    return [
        f"{where}: {what} {number} is shared by {', '.join(names)}"
        for number, names in sorted(by_id.items())
        if len(names) > 1
    ]


def check_duplicate_ids(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    users = tuple((a.name, a.uid) for a in parse_passwd(fs.text("etc/passwd")))
    evidence = _duplicates(users, "uid", "/etc/passwd")
    evidence += _duplicates(parse_group(fs.text("etc/group")), "gid", "/etc/group")
    return hit(DUPLICATE_ID, evidence)


CHECKS = (
    NativeCheck((ROOT_USER, USER_UNKNOWN, USER_NOT_NUMERIC), check_user),
    NativeCheck((EMPTY_PASSWORD,), check_empty_password),
    NativeCheck((DUPLICATE_ID,), check_duplicate_ids),
)
