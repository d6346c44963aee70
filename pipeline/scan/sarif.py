"""Read SARIF 2.1.0 reports (Dockle and Trivy can both write them) into Findings.

SARIF is the exchange format code-scanning tools agree on; Drydock prefers each tool's
native JSON (it carries more), but can read the SARIF a tool or a CI job already produced.
The parser is generic; what a message means (Trivy's "Package: ..." lines) is decided by
the caller through `detail`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from pipeline.models.findings import Finding, Kind, Severity, Source
from pipeline.scan.base import validate

# SARIF result levels -> Drydock severities. "none" carries no severity at all.
LEVELS: Mapping[str, Severity] = {
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "note": Severity.LOW,
    "none": Severity.UNKNOWN,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Text(_Model):
    text: str = ""


class _Rule(_Model):
    id: str
    name: str = ""
    shortDescription: _Text = Field(default_factory=_Text)  # noqa: N815 - SARIF field name
    properties: dict[str, object] = Field(default_factory=dict)


class _Driver(_Model):
    name: str
    rules: list[_Rule] = Field(default_factory=list)


class _Tool(_Model):
    driver: _Driver


class _ArtifactLocation(_Model):
    uri: str = ""


class _PhysicalLocation(_Model):
    artifactLocation: _ArtifactLocation = Field(default_factory=_ArtifactLocation)  # noqa: N815


class _Location(_Model):
    physicalLocation: _PhysicalLocation = Field(default_factory=_PhysicalLocation)  # noqa: N815


class _Result(_Model):
    ruleId: str  # noqa: N815 - SARIF field name
    level: str = "warning"  # SARIF's default level
    message: _Text
    locations: list[_Location] = Field(default_factory=list)


class _Run(_Model):
    tool: _Tool
    results: list[_Result] | None = None


class SarifLog(_Model):
    version: str
    runs: list[_Run] = Field(min_length=1)


# detail(rule, result, finding) -> the finding with tool-specific fields filled in
Detail = Callable[["SarifRule", str, Finding], Finding]


class SarifRule(_Model):
    """The parts of a SARIF rule a `Detail` hook may use."""

    id: str
    title: str
    name: str
    tags: tuple[str, ...]


def _rule_view(rule: _Rule | None, rule_id: str) -> SarifRule:
    if rule is None:
        return SarifRule(id=rule_id, title="", name="", tags=())
    tags = rule.properties.get("tags", [])
    return SarifRule(
        id=rule.id,
        title=rule.shortDescription.text,
        name=rule.name,
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
    )


def parse_sarif(
    scanner: str, text: str, source: Source, kind: Kind, detail: Detail | None = None
) -> tuple[Finding, ...]:
    """SARIF text -> Findings (one per result). Raises ScanError naming `scanner`."""
    log = validate(scanner, SarifLog, text)
    findings: list[Finding] = []
    for run in log.runs:
        rules = {rule.id: rule for rule in run.tool.driver.rules}
        for result in run.results or []:
            rule = _rule_view(rules.get(result.ruleId), result.ruleId)
            uris = tuple(
                loc.physicalLocation.artifactLocation.uri
                for loc in result.locations
                if loc.physicalLocation.artifactLocation.uri
            )
            finding = Finding(
                id=result.ruleId,
                source=source,
                kind=kind,
                severity=LEVELS.get(result.level, Severity.UNKNOWN),
                title=rule.title or result.message.text,
                evidence=(result.message.text, *uris),
                target=uris[0] if uris else "",
            )
            findings.append(detail(rule, result.message.text, finding) if detail else finding)
    return tuple(findings)
