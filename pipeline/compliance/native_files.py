"""Native checks on the merged layer filesystem: modes, secrets on disk, leftovers.

These read the paths the image really ships (whiteouts applied), so a file deleted in a
later layer is not reported, and a file a Dockerfile never mentions is: setuid/setgid
bits (CIS 4.8, DISA 2.3), world-writable paths without the sticky bit (DISA 2.16), private
keys anywhere in a file (not only at its start: a key appended to a certificate bundle or
a config file counts) and credential files (CIS 4.10, DISA 2.18), apt lists and package
caches left behind (DISA 2.8), an SSH daemon (DISA 2.1), and files that have no business
in an image (CIS 4.3).
"""

from __future__ import annotations

import posixpath

from pipeline.compliance.imagefs import FileKind, ImageFilesystem
from pipeline.compliance.native_base import (
    CheckContext,
    CheckSpec,
    NativeCheck,
    hit,
    matches_any,
    mode_text,
)
from pipeline.models.findings import Finding, Severity

SETUID = CheckSpec("DD-SETUID", "Files with setuid or setgid permissions", Severity.MEDIUM)
WORLD_WRITABLE = CheckSpec(
    "DD-WORLD-WRITABLE",
    "World-writable files, or world-writable directories without the sticky bit",
    Severity.MEDIUM,
)
PRIVATE_KEY = CheckSpec("DD-PRIVATE-KEY", "Private key files in the image", Severity.CRITICAL)
CREDENTIAL_FILE = CheckSpec(
    "DD-CREDENTIAL-FILE", "Files named like credentials in the image", Severity.HIGH
)
APT_LISTS = CheckSpec(
    "DD-APT-LISTS", "Package index files left in /var/lib/apt/lists", Severity.LOW
)
APT_CACHE = CheckSpec(
    "DD-APT-CACHE", "Downloaded packages or apt caches left in the image", Severity.LOW
)
UNNECESSARY_FILES = CheckSpec(
    "DD-UNNECESSARY-FILES",
    "Files or directories that have no place in an image (VCS, caches, cloud credentials)",
    Severity.LOW,
)

MAX_EVIDENCE = 50
# Dockle CIS-DI-0010 (pkg/assessor/credential/credential.go): names and extensions.
CREDENTIAL_NAMES = frozenset(
    {
        "credentials.json",
        "credential.json",
        "credentials",
        "credential",
        "password.txt",
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "secret_token.rb",
        "carrierwave.rb",
        "omniauth.rb",
        "settings.py",
        "database.yml",
        "credentials.xml",
        ".env",
    }
)
CREDENTIAL_EXTENSIONS = frozenset(
    {
        ".secret",
        ".ovpn",
        ".private_key",
        ".cscfg",
        ".rdp",
        ".mdf",
        ".sdf",
        ".bek",
        ".tpm",
        ".fve",
        ".jks",
        ".psafe3",
        ".agilekeychain",
        ".keychain",
        ".pcap",
        ".gnucache",
    }
)
# Dockle DKL-LI-0003 (pkg/assessor/cache/cache.go).
SUSPICIOUS_DIRS = frozenset(
    {".cache", ".aws", ".azure", ".gcp", ".git", ".vscode", ".idea", ".npm"}
)
SUSPICIOUS_FILES = frozenset({"Dockerfile", "docker-compose.yml", ".vimrc", ".DS_Store"})
SKIP_TREES = ("proc/", "sys/", "dev/")


def _capped(evidence: list[str]) -> list[str]:
    if len(evidence) <= MAX_EVIDENCE:
        return evidence
    return [*evidence[:MAX_EVIDENCE], f"... and {len(evidence) - MAX_EVIDENCE} more"]


def _regular(kind: FileKind) -> bool:
    return kind in {FileKind.FILE, FileKind.HARDLINK}


def check_setuid(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = []
    for path, entry in sorted(fs.files.items()):
        if not _regular(entry.kind) or not entry.mode & 0o6000:
            continue
        if matches_any(path, ctx.settings.setuid_allow):
            continue
        bits = " + ".join(
            name for bit, name in ((0o4000, "setuid"), (0o2000, "setgid")) if entry.mode & bit
        )
        evidence.append(f"/{path} {mode_text(entry.mode)} ({bits})")
    return hit(SETUID, _capped(evidence))


def check_world_writable(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = []
    for path, entry in sorted(fs.files.items()):
        if path.startswith(SKIP_TREES) or not entry.mode & 0o002:
            continue
        if matches_any(path, ctx.settings.world_writable_allow):
            continue
        if entry.kind == FileKind.DIR and not entry.mode & 0o1000:
            evidence.append(f"/{path}/ {mode_text(entry.mode)} (directory without sticky bit)")
        elif _regular(entry.kind):
            evidence.append(f"/{path} {mode_text(entry.mode)} (world-writable file)")
    return hit(WORLD_WRITABLE, _capped(evidence))


def check_private_keys(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = []
    for path, entry in sorted(fs.files.items()):
        if not _regular(entry.kind) or matches_any(path, ctx.settings.secret_files_allow):
            continue
        if entry.private_key:
            evidence.append(f"/{path} (PEM private key)")
    return hit(PRIVATE_KEY, _capped(evidence))


def check_credential_files(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = []
    for path, entry in sorted(fs.files.items()):
        if not _regular(entry.kind) or matches_any(path, ctx.settings.secret_files_allow):
            continue
        base = posixpath.basename(path)
        if base in CREDENTIAL_NAMES or posixpath.splitext(base)[1] in CREDENTIAL_EXTENSIONS:
            evidence.append(f"/{path}")
    return hit(CREDENTIAL_FILE, _capped(evidence))


def check_apt_lists(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = [
        f"/{path}"
        for path, entry in sorted(fs.files.items())
        if path.startswith("var/lib/apt/lists/")
        and entry.kind != FileKind.DIR
        and posixpath.basename(path) != "lock"
    ]
    return hit(APT_LISTS, _capped(evidence))


def check_apt_cache(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = [
        f"/{path}"
        for path, entry in sorted(fs.files.items())
        if entry.kind != FileKind.DIR
        and (
            (path.startswith("var/cache/apt/archives/") and path.endswith(".deb"))
            or (path.startswith("var/cache/apt/") and path.endswith(".bin"))
        )
    ]
    return hit(APT_CACHE, _capped(evidence))


def check_unnecessary_files(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = []
    for path, entry in sorted(fs.files.items()):
        if path.startswith(SKIP_TREES):
            continue
        parts = path.split("/")
        if "node_modules" in parts or "vendor" in parts:
            continue
        if entry.kind == FileKind.DIR and parts[-1] in SUSPICIOUS_DIRS:
            evidence.append(f"/{path}/ (suspicious directory)")
        elif _regular(entry.kind) and parts[-1] in SUSPICIOUS_FILES:
            evidence.append(f"/{path} (unnecessary file)")
    return hit(UNNECESSARY_FILES, _capped(evidence))


CHECKS = (
    NativeCheck((SETUID,), check_setuid),
    NativeCheck((WORLD_WRITABLE,), check_world_writable),
    NativeCheck((PRIVATE_KEY,), check_private_keys),
    NativeCheck((CREDENTIAL_FILE,), check_credential_files),
    NativeCheck((APT_LISTS,), check_apt_lists),
    NativeCheck((APT_CACHE,), check_apt_cache),
    NativeCheck((UNNECESSARY_FILES,), check_unnecessary_files),
)
