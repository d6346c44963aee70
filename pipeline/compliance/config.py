"""Load scan-config/{controls,policy,waivers}.yaml: validated at the boundary, then frozen.

Pydantic checks the YAML (unknown keys are errors, so a typo never silently disables a
rule); every problem becomes a `PolicyError` naming the file, the field and the reason
(exit 2). What leaves this module is plain frozen dataclasses from
`pipeline.models.compliance`.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.compliance import waivers as waiver_rules
from pipeline.compliance.native import catalogue
from pipeline.errors import PolicyError, Problem
from pipeline.models.compliance import (
    RAN_CLAIR,
    RAN_DOCKLE,
    RAN_TRIVY_PACKAGES,
    Control,
    Controls,
    Evidence,
    NativeSettings,
    Policy,
    TrivyClass,
    TrivyEvidence,
    Waiver,
)
from pipeline.models.findings import Severity, Source

CONTROL_ID = re.compile(r"^(CIS-4|DISA-[23])\.\d+$")
DOCKLE_CODE = re.compile(r"^(CIS-DI|DKL-DI|DKL-LI)-\d{4}$")
PORT = re.compile(r"^\d{1,5}/(tcp|udp|sctp)$")
NonEmpty = Annotated[str, Field(min_length=1)]

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- controls.yaml


class _TrivyEvidence(_Strict):
    class_: TrivyClass = Field(alias="class")
    ids: list[NonEmpty] = []


class _Evidence(_Strict):
    dockle: list[Annotated[str, Field(pattern=DOCKLE_CODE.pattern)]] = []
    trivy: list[_TrivyEvidence] = []
    clair: list[TrivyClass] = []
    native: list[NonEmpty] = []

    @field_validator("native")
    @classmethod
    def _known_native(cls, ids: list[str]) -> list[str]:
        known = catalogue()
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ValueError(f"unknown native check(s) {unknown}; known: {sorted(known)}")
        return ids


class _Control(_Strict):
    id: Annotated[str, Field(pattern=CONTROL_ID.pattern)]
    title: NonEmpty
    automated: bool
    mandatory: bool
    evidence: _Evidence = _Evidence()
    requires: list[NonEmpty] = []  # each "key" or "key | key" (alternatives)
    reason: str = ""
    note: str = ""
    partial: str = ""


class _ControlsFile(_Strict):
    version: int = Field(ge=1, le=1)
    controls: list[_Control] = Field(min_length=1)


# ---------------------------------------------------------------- policy.yaml


class _Block(_Strict):
    vulnerability_severity: Severity = Severity.HIGH
    ignore_unfixed: bool = False
    dockle_severity: Severity = Severity.MEDIUM
    mandatory_controls: bool = True
    required_scanners: list[Literal["trivy", "clair"]] = []


class _Clair(_Strict):
    url: Annotated[str, Field(pattern=r"^(https?://\S+)?$")] = ""


class _Packages(_Strict):
    all: list[NonEmpty] = []
    flavours: dict[str, list[NonEmpty]] = {}


class _Native(_Strict):
    trusted_bases: list[NonEmpty] = []
    trusted_base_digests: list[Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]] = []
    denied_packages: _Packages = _Packages()
    allowed_ports: list[Annotated[str, Field(pattern=PORT.pattern)]] = []
    target_ports: dict[NonEmpty, list[Annotated[str, Field(pattern=PORT.pattern)]]] = {}
    min_port: int = Field(default=1024, ge=1, le=65536)
    setuid_allow: list[NonEmpty] = []
    world_writable_allow: list[NonEmpty] = []
    secret_files_allow: list[NonEmpty] = []
    accept_env_keys: list[NonEmpty] = ["GPG_KEY", "GPG_KEYS"]
    require_numeric_user: bool = True

    @field_validator("trusted_bases")
    @classmethod
    def _references(cls, refs: list[str]) -> list[str]:
        globs = [r for r in refs if any(c in r for c in "*?[] ")]
        if globs:
            raise ValueError(
                f"{globs}: give image references or ids, not globs (a base is trusted by its "
                "layers, which a name pattern cannot pin)"
            )
        return refs


class _VulnDb(_Strict):
    source: Literal["auto", "public", "mirror", "debian-archive"] = "auto"
    mirror: str = ""  # OCI reference of a Trivy DB copy (source mirror, or auto's fallback)
    max_age_hours: float = Field(default=36.0, gt=0, le=24 * 30)

    @model_validator(mode="after")
    def _mirror_named(self) -> _VulnDb:
        if self.source == "mirror" and not self.mirror:
            raise ValueError("source mirror needs 'mirror: REF'")
        return self


class _PolicyFile(_Strict):
    version: int = Field(ge=1, le=1)
    max_waiver_days: int = Field(default=90, ge=1, le=366)
    block: _Block = _Block()
    native: _Native = _Native()
    vulnerability_db: _VulnDb = _VulnDb()
    clair: _Clair = _Clair()


# ---------------------------------------------------------------- waivers.yaml


class _Scope(_Strict):
    images: list[NonEmpty] = []
    package: str = ""


class _Waiver(_Strict):
    finding: str = ""
    control: str = ""
    scope: _Scope = _Scope()
    justification: str
    approver: str
    expires: dt.date

    @model_validator(mode="after")
    def _one_subject(self) -> _Waiver:
        if bool(self.finding) == bool(self.control):
            raise ValueError("give exactly one of 'finding' or 'control'")
        return self


class _WaiversFile(_Strict):
    version: int = Field(ge=1, le=1)
    waivers: list[_Waiver] = []


# ---------------------------------------------------------------- loading


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PolicyError([Problem(str(path), "-", f"cannot be read ({err.strerror})")]) from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PolicyError([Problem(str(path), "-", f"is not valid YAML: {err}")]) from err


def _validate(model: type[M], data: Any, source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            where = ".".join(str(p) for p in error["loc"]) or "<root>"
            problems.append(Problem(source, where, error["msg"]))
        raise PolicyError(problems) from err


def _requirement_problems(key: str) -> str:
    """Why `key` cannot be a `requires` entry ("" when it can)."""
    scanner, _, detail = key.partition(":")
    if key in {RAN_DOCKLE, RAN_CLAIR, RAN_TRIVY_PACKAGES}:
        return ""
    if scanner == "trivy" and detail in {c.value for c in TrivyClass}:
        return ""
    if scanner == "native":
        return "" if detail in catalogue() else f"unknown native check {detail!r}"
    return (
        f"unknown evidence {key!r} (known: dockle, clair, trivy:packages, trivy:<class>, "
        "native:<check id>)"
    )


def _requires(
    items: list[str], where: str, source: str, problems: list[Problem]
) -> tuple[tuple[str, ...], ...]:
    groups = []
    for n, item in enumerate(items):
        group = tuple(k.strip() for k in item.split("|") if k.strip())
        for key in group:
            reason = _requirement_problems(key)
            if reason:
                problems.append(Problem(source, f"{where}.requires.{n}", reason))
        if group:
            groups.append(group)
    return tuple(groups)


def _to_controls(doc: _ControlsFile, source: str) -> Controls:
    problems: list[Problem] = []
    seen: set[str] = set()
    controls = []
    for n, c in enumerate(doc.controls):
        where = f"controls.{n}"
        evidence = Evidence(
            dockle=tuple(c.evidence.dockle),
            trivy=tuple(TrivyEvidence(t.class_, tuple(t.ids)) for t in c.evidence.trivy),
            clair=tuple(c.evidence.clair),
            native=tuple(c.evidence.native),
        )
        if c.id in seen:
            problems.append(Problem(source, f"{where}.id", f"duplicate control id {c.id}"))
        seen.add(c.id)
        if c.automated and evidence.empty:
            problems.append(Problem(source, f"{where}.evidence", "automated but no evidence"))
        if not c.automated and not c.reason:
            problems.append(Problem(source, f"{where}.reason", "a manual control needs a reason"))
        if not c.automated and not evidence.empty:
            problems.append(
                Problem(source, f"{where}.evidence", "a manual control has no evidence")
            )
        if not c.automated and c.mandatory:
            problems.append(Problem(source, f"{where}.mandatory", "a manual control cannot block"))
        if not c.automated and c.requires:
            problems.append(Problem(source, f"{where}.requires", "a manual control has none"))
        requires = _requires(c.requires, where, source, problems)
        if not c.automated and c.partial:
            problems.append(Problem(source, f"{where}.partial", "a manual control checks nothing"))
        controls.append(
            Control(
                c.id,
                c.title,
                c.automated,
                c.mandatory,
                evidence,
                c.reason,
                c.note,
                requires,
                c.partial.strip(),
            )
        )
    if problems:
        raise PolicyError(problems)
    return Controls(tuple(controls))


def parse_controls(data: Any, source: str = "controls.yaml") -> Controls:
    return _to_controls(_validate(_ControlsFile, data, source), source)


def parse_policy(data: Any, source: str = "policy.yaml") -> Policy:
    doc = _validate(_PolicyFile, data, source)
    n = doc.native
    native = NativeSettings(
        trusted_bases=tuple(n.trusted_bases),
        trusted_base_digests=tuple(n.trusted_base_digests),
        denied_packages=tuple(n.denied_packages.all),
        flavour_denied_packages=tuple(
            (flavour, tuple(pkgs)) for flavour, pkgs in sorted(n.denied_packages.flavours.items())
        ),
        allowed_ports=tuple(n.allowed_ports),
        target_ports=tuple((glob, tuple(ports)) for glob, ports in n.target_ports.items()),
        min_port=n.min_port,
        setuid_allow=tuple(n.setuid_allow),
        world_writable_allow=tuple(n.world_writable_allow),
        secret_files_allow=tuple(n.secret_files_allow),
        accept_env_keys=tuple(n.accept_env_keys),
        require_numeric_user=n.require_numeric_user,
    )
    return Policy(
        vulnerability_severity=doc.block.vulnerability_severity,
        ignore_unfixed=doc.block.ignore_unfixed,
        dockle_severity=doc.block.dockle_severity,
        block_on_mandatory_controls=doc.block.mandatory_controls,
        native=native,
        required_scanners=tuple(Source(s) for s in dict.fromkeys(doc.block.required_scanners)),
        clair_url=doc.clair.url,
        vuln_db_source=doc.vulnerability_db.source,
        vuln_db_mirror=doc.vulnerability_db.mirror,
        max_db_age=dt.timedelta(hours=doc.vulnerability_db.max_age_hours),
        max_waiver_days=doc.max_waiver_days,
    )


def _waiver_problems(
    w: _Waiver, where: str, source: str, known: set[str] | None, limit: dt.date | None
) -> list[Problem]:
    problems = []
    if w.control and known is not None and w.control not in known:
        problems.append(Problem(source, f"{where}.control", f"unknown control {w.control!r}"))
    reason = waiver_rules.justification_problem(w.justification)
    if reason:
        problems.append(Problem(source, f"{where}.justification", reason))
    reason = waiver_rules.approver_problem(w.approver)
    if reason:
        problems.append(Problem(source, f"{where}.approver", reason))
    if limit is not None and w.expires > limit:
        problems.append(
            Problem(
                source,
                f"{where}.expires",
                f"{w.expires.isoformat()} is further ahead than the policy's max_waiver_days "
                f"allows (latest {limit.isoformat()})",
            )
        )
    if w.finding and not (w.scope.images or w.scope.package):
        problems.append(
            Problem(
                source,
                f"{where}.scope",
                f"a finding waiver ({w.finding}) must be scoped to images or a package",
            )
        )
    return problems


def parse_waivers(
    data: Any,
    source: str = "waivers.yaml",
    controls: Controls | None = None,
    *,
    max_days: int | None = None,
    today: dt.date | None = None,
) -> tuple[Waiver, ...]:
    """Waivers that survive an audit: a justification in real words, an approver, an
    expiry no further than `max_days` after `today` (when given), a finding waiver scoped
    to images or a package, and (with `controls`) a known control."""
    doc = _validate(_WaiversFile, data, source)
    known = set(controls.ids) if controls is not None else None
    limit = today + dt.timedelta(days=max_days) if max_days is not None and today else None
    problems = [
        p
        for n, w in enumerate(doc.waivers)
        for p in _waiver_problems(w, f"waivers.{n}", source, known, limit)
    ]
    if problems:
        raise PolicyError(problems)
    return tuple(
        Waiver(
            justification=" ".join(w.justification.split()),
            approver=w.approver.strip(),
            expires=w.expires,
            finding=w.finding,
            control=w.control,
            images=tuple(w.scope.images),
            package=w.scope.package,
        )
        for w in doc.waivers
    )


def load_controls(path: Path) -> Controls:
    return parse_controls(_read_yaml(path), str(path))


def load_policy(path: Path) -> Policy:
    return parse_policy(_read_yaml(path), str(path))


def load_waivers(
    path: Path,
    controls: Controls | None = None,
    *,
    max_days: int | None = None,
    today: dt.date | None = None,
) -> tuple[Waiver, ...]:
    return parse_waivers(_read_yaml(path), str(path), controls, max_days=max_days, today=today)
