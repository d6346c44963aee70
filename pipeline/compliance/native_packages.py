"""Native checks on packages and apt: what is installed, where it came from, what is stale.

CIS 4.3 / DISA 2.12 (no unnecessary packages: a per-flavour deny list read against
/var/lib/dpkg/status), DISA 2.1 (no SSH server), CIS 4.11 / DISA 2.11 (apt only installs
signed packages: no `trusted=yes`, no insecure repositories, no AllowUnauthenticated) and
CIS 4.4 / DISA 2.15 (no pending security updates, from evidence the caller passes in:
`apt-get -s dist-upgrade` with holds ignored, so a held package's fix counts too).
Without a dpkg database nothing can see what is installed: the deny list and the pending
updates cannot be judged and say so (`unverified`), never "nothing found".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.compliance.imagefs import ImageFilesystem
from pipeline.compliance.native_base import CheckContext, CheckSpec, NativeCheck, NotRun, hit
from pipeline.models.findings import Finding, Severity

DENIED_PACKAGE = CheckSpec(
    "DD-DENIED-PACKAGE", "Packages on the flavour's deny list are installed", Severity.HIGH
)
SSHD = CheckSpec("DD-SSHD", "An SSH server is installed", Severity.HIGH)
APT_UNSIGNED = CheckSpec(
    "DD-APT-UNSIGNED", "apt is allowed to install unsigned or unverified packages", Severity.HIGH
)
PENDING_UPDATES = CheckSpec(
    "DD-PENDING-UPDATES", "Security updates were pending when the image was built", Severity.HIGH
)

SSHD_PACKAGES = ("openssh-server", "dropbear", "dropbear-bin", "tinysshd")
SSHD_PATHS = ("usr/sbin/sshd", "usr/sbin/dropbear", "usr/sbin/tinysshd")
_ONE_LINE_OPTS = re.compile(r"^\s*deb(?:-src)?\s+\[([^\]]*)\]")
_INSECURE_OPTS = re.compile(
    r"\b(trusted|allow-insecure|allow-weak|allow-downgrade-to-insecure)\s*=\s*(yes|true|1)\b",
    re.IGNORECASE,
)
_DEB822_INSECURE = re.compile(
    r"^\s*(Trusted|Allow-Insecure|Allow-Weak|Allow-Downgrade-To-Insecure)\s*:\s*(yes|true|1)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_APT_CONF_INSECURE = re.compile(
    r"(AllowUnauthenticated|AllowInsecureRepositories|AllowWeakRepositories|"
    r"AllowDowngradeToInsecureRepositories)\b[^;]*?\"?\b(true|yes|1|on)\b",
    re.IGNORECASE,
)
_HISTORY_INSECURE = re.compile(
    r"--allow-unauthenticated|--allow-insecure-repositories|--force-yes"
    r"|AllowUnauthenticated=(true|1|yes)|\[trusted=yes\]",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DpkgPackage:
    name: str
    version: str
    status: str


def parse_dpkg_status(text: str) -> tuple[DpkgPackage, ...]:
    """Installed packages from /var/lib/dpkg/status (paragraphs of `Field: value`)."""
    packages = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line[:1].isspace() or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        name, status = fields.get("Package", ""), fields.get("Status", "")
        state = status.split()[-1] if status else ""
        if name and state not in {"", "not-installed", "config-files"}:
            packages.append(DpkgPackage(name, fields.get("Version", ""), status))
    return tuple(packages)


STATUS = "var/lib/dpkg/status"


def installed(fs: ImageFilesystem) -> tuple[DpkgPackage, ...] | NotRun:
    """The installed packages, or why they cannot be known (no or empty dpkg database)."""
    if not fs.exists(STATUS):
        return NotRun(f"/{STATUS} is missing: nothing can see what is installed")
    packages = parse_dpkg_status(fs.text(STATUS))
    if not packages:
        return NotRun(f"/{STATUS} lists no installed package: nothing can see what is installed")
    return packages


def check_denied_packages(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding] | NotRun:
    packages = installed(fs)
    if isinstance(packages, NotRun):
        return packages
    denied = set(ctx.settings.denied_for(ctx.inputs.flavour))
    flavour = ctx.inputs.flavour or "default"
    evidence = [
        f"package {p.name} {p.version} is installed (denied for flavour {flavour})"
        for p in packages
        if p.name in denied
    ]
    return hit(DENIED_PACKAGE, sorted(evidence))


def check_sshd(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = [f"/{p} exists" for p in SSHD_PATHS if fs.exists(p)]
    evidence += [
        f"package {p.name} {p.version} is installed"
        for p in parse_dpkg_status(fs.text("var/lib/dpkg/status"))
        if p.name in SSHD_PACKAGES
    ]
    return hit(SSHD, evidence)


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def _apt_conf_text(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return "\n".join(line.split("//", 1)[0] for line in _strip_comments(text).splitlines())


def check_apt_signed(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = []
    for path, text in fs.texts_matching("etc/apt/sources.list*"):
        clean = _strip_comments(text)
        if path.endswith(".sources"):
            evidence += [f"/{path}: {m.group(0).strip()}" for m in _DEB822_INSECURE.finditer(clean)]
            continue
        for line in clean.splitlines():
            opts = _ONE_LINE_OPTS.match(line)
            if opts and _INSECURE_OPTS.search(opts.group(1)):
                evidence.append(f"/{path}: {line.strip()}")
    for pattern in ("etc/apt/apt.conf", "etc/apt/apt.conf.d/*"):
        for path, text in fs.texts_matching(pattern):
            evidence += [
                f"/{path}: {m.group(0).strip()}"
                for m in _APT_CONF_INSECURE.finditer(_apt_conf_text(text))
            ]
    for number, entry in enumerate(fs.config.history):
        found = _HISTORY_INSECURE.search(entry.created_by)
        if found:
            evidence.append(f"history[{number}]: uses {found.group(0)}")
    return hit(APT_UNSIGNED, evidence)


def check_pending_updates(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding] | NotRun | None:
    updates = ctx.inputs.updates
    if updates is None:
        problem = ctx.inputs.updates_problem
        return NotRun(problem) if problem else None  # no evidence: the check did not run
    packages = installed(fs)
    if isinstance(packages, NotRun):
        return packages  # apt cannot upgrade what its database does not list
    held = set(updates.held)
    evidence = [
        f"{u.package} {u.installed} -> {u.candidate} ({u.origin})"
        f"{' (held back)' if u.package in held else ''} [{updates.source}]"
        for u in updates.pending
        if u.security
    ]
    return hit(PENDING_UPDATES, evidence)


CHECKS = (
    NativeCheck((DENIED_PACKAGE,), check_denied_packages),
    NativeCheck((SSHD,), check_sshd),
    NativeCheck((APT_UNSIGNED,), check_apt_signed),
    NativeCheck((PENDING_UPDATES,), check_pending_updates),
)
