"""Native checks on the image config: health check, ports, history, environment, base.

The config is what the engine runs and what `docker history` shows forever, so a secret in
an ENV or a build argument stays readable even when a later layer "removes" it (DISA 2.9).
Checks: HEALTHCHECK (CIS 4.6 / DISA 2.6), exposed ports below 1024 or not allowed for
this image (DISA 2.5, 2.13), credentials in ENV and history (CIS 4.10 / DISA 2.9, 2.18;
Dockle CIS-DI-0010 keywords), sudo (DISA 2.3), VOLUMEs on /sys /dev /proc (DISA 3.4) and
the base image's provenance (CIS 4.2 / DISA 2.14, 2.17), judged by content: the image's
layers must start with the layers of a trusted base. Labels are only quoted, never
believed: anyone can write them.
"""

from __future__ import annotations

import re
import shlex

from pipeline.compliance.imagefs import ImageFilesystem
from pipeline.compliance.native_base import CheckContext, CheckSpec, NativeCheck, NotRun, hit
from pipeline.compliance.native_build import base_layers
from pipeline.models.findings import Finding, Severity

NO_HEALTHCHECK = CheckSpec("DD-NO-HEALTHCHECK", "The image has no HEALTHCHECK", Severity.LOW)
PRIVILEGED_PORT = CheckSpec(
    "DD-PRIVILEGED-PORT", "The image exposes a privileged port (below 1024)", Severity.MEDIUM
)
UNEXPECTED_PORT = CheckSpec(
    "DD-UNEXPECTED-PORT", "The image exposes a port the policy does not allow", Severity.MEDIUM
)
SECRET_ENV = CheckSpec("DD-SECRET-ENV", "Credentials in the image environment", Severity.CRITICAL)
SECRET_HISTORY = CheckSpec(
    "DD-SECRET-HISTORY",
    "Credentials in the image history (build arguments, ENV)",
    Severity.CRITICAL,
)
SUDO = CheckSpec("DD-SUDO", "sudo is used in a build step", Severity.HIGH)
SENSITIVE_VOLUME = CheckSpec(
    "DD-SENSITIVE-VOLUME", "A VOLUME is declared on /sys, /dev or /proc", Severity.HIGH
)
UNTRUSTED_BASE = CheckSpec(
    "DD-UNTRUSTED-BASE", "The base image is not a trusted, digest-pinned one", Severity.HIGH
)

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
# Dockle CIS-DI-0010 (pkg/assessor/manifest/manifest.go).
SECRET_KEY = re.compile(r"PASS|PASSWD|PASSWORD|SECRET|KEY|ACCESS|TOKEN", re.IGNORECASE)
SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\bAKIA[0-9A-Z]{16}\b|\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@",
)
SENSITIVE_DIRS = ("/sys", "/dev", "/proc")


def check_healthcheck(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    test = fs.config.healthcheck
    if test is None or not test:
        return hit(NO_HEALTHCHECK, ["config Healthcheck is not set"])
    if test[0].upper() == "NONE":
        return hit(NO_HEALTHCHECK, ["config Healthcheck is disabled (NONE)"])
    return []


def _port_number(port: str) -> int | None:
    number = port.split("/", 1)[0]
    return int(number) if number.isdigit() else None


def check_ports(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    privileged, unexpected = [], []
    per_image = ctx.inputs.allowed_ports
    allowed = set(ctx.settings.ports_for(ctx.inputs.target) if per_image is None else per_image)
    for port in fs.config.exposed_ports:
        number = _port_number(port)
        if number is not None and number < ctx.settings.min_port:
            privileged.append(f"config ExposedPorts {port} (below {ctx.settings.min_port})")
        if port not in allowed:
            unexpected.append(f"config ExposedPorts {port} (allowed: {', '.join(sorted(allowed))})")
    return hit(PRIVILEGED_PORT, privileged) + hit(UNEXPECTED_PORT, unexpected)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _secret_key(key: str, ctx: CheckContext) -> bool:
    return bool(SECRET_KEY.search(key)) and key not in ctx.settings.accept_env_keys


def check_env_secrets(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = []
    for key, value in fs.config.env:
        if value and _secret_key(key, ctx) and not value.startswith("$"):
            evidence.append(f"config Env {key}=******* (name looks like a credential)")
        elif SECRET_VALUE.search(value):
            evidence.append(f"config Env {key}=******* (value looks like a credential)")
    return hit(SECRET_ENV, evidence)


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def check_history_secrets(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = []
    for number, entry in enumerate(fs.config.history):
        for token in _tokens(entry.created_by):
            key, sep, value = token.partition("=")
            if not sep or not value or key.startswith("-") or value.startswith("$"):
                continue
            if _secret_key(key, ctx) or SECRET_VALUE.search(value):
                evidence.append(f"history[{number}]: {key}=*******")
    return hit(SECRET_HISTORY, sorted(set(evidence)))


def check_sudo(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = [
        f"history[{n}]: {_short(e.created_by)}"
        for n, e in enumerate(fs.config.history)
        if "sudo" in _tokens(e.created_by)
    ]
    return hit(SUDO, evidence)


def check_volumes(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    evidence = [
        f"config Volumes {v}"
        for v in fs.config.volumes
        if any(v.rstrip("/") == d or v.startswith(d + "/") for d in SENSITIVE_DIRS)
    ]
    return hit(SENSITIVE_VOLUME, evidence)


def check_base(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding] | NotRun:
    if ctx.inputs.bootstrapped:
        return []  # built from Debian's signed archive by Drydock: it is a base
    bases = ctx.inputs.trusted_bases or ()
    if not bases:
        return NotRun(
            "no trusted base to compare the image's layers with (Drydock's own bases are "
            "not in the engine; give --trusted-base REF)"
        )
    layers = fs.config.diff_ids
    if base_layers(fs, ctx):
        return []
    name, digest = fs.config.label(BASE_NAME), fs.config.label(BASE_DIGEST)
    known = ", ".join(sorted({b.name for b in bases}))
    evidence = [
        f"the image's {len(layers)} layer(s) do not start with the layers of any trusted "
        f"base ({known})"
    ]
    if name or digest:
        evidence.append(
            f"labels claim base {name or '?'} {digest or '(no digest)'}: not believed, the "
            "layers say otherwise"
        )
    return hit(UNTRUSTED_BASE, evidence)


CHECKS = (
    NativeCheck((NO_HEALTHCHECK,), check_healthcheck),
    NativeCheck((PRIVILEGED_PORT, UNEXPECTED_PORT), check_ports),
    NativeCheck((SECRET_ENV,), check_env_secrets),
    NativeCheck((SECRET_HISTORY,), check_history_secrets),
    NativeCheck((SUDO,), check_sudo),
    NativeCheck((SENSITIVE_VOLUME,), check_volumes),
    NativeCheck((UNTRUSTED_BASE,), check_base),
)
