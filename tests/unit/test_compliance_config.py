"""scan-config/*.yaml: the shipped files are complete and valid; bad files fail with exit 2."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.compliance.config import (
    load_controls,
    load_policy,
    load_waivers,
    parse_controls,
    parse_policy,
    parse_waivers,
)
from pipeline.compliance.native import catalogue
from pipeline.errors import PolicyError
from pipeline.models.findings import Severity

SCAN_CONFIG = Path(__file__).resolve().parents[2] / "scan-config"
# CIS Docker Benchmark v1.6.0 section 4 titles (docs/research/scanners.md 4.1).
CIS_TITLES = {
    "CIS-4.1": "Ensure that a user for the container has been created",
    "CIS-4.2": "Ensure that containers use only trusted base images",
    "CIS-4.3": "Ensure that unnecessary packages are not installed in the container",
    "CIS-4.4": "Ensure images are scanned and rebuilt to include security patches",
    "CIS-4.5": "Ensure Content trust for Docker is Enabled",
    "CIS-4.6": "Ensure that HEALTHCHECK instructions have been added to container images",
    "CIS-4.7": "Ensure update instructions are not used alone in the Dockerfile",
    "CIS-4.8": "Ensure setuid and setgid permissions are removed",
    "CIS-4.9": "Ensure that COPY is used instead of ADD in Dockerfiles",
    "CIS-4.10": "Ensure secrets are not stored in Dockerfiles",
    "CIS-4.11": "Ensure only verified packages are installed",
    "CIS-4.12": "Ensure all signed artifacts are validated",
}
# The 16 implemented Dockle checkpoints (docs/research/scanners.md 1.1).
DOCKLE_CODES = {
    *(f"CIS-DI-{n:04d}" for n in (1, 5, 6, 7, 8, 9, 10)),
    *(f"DKL-DI-{n:04d}" for n in range(1, 7)),
    *(f"DKL-LI-{n:04d}" for n in range(1, 4)),
}


def minimal_controls() -> dict[str, Any]:
    return {
        "version": 1,
        "controls": [
            {
                "id": "CIS-4.1",
                "title": "user",
                "automated": True,
                "mandatory": True,
                "evidence": {"native": ["DD-ROOT-USER"]},
            }
        ],
    }


def test_every_cis_and_disa_control_is_in_the_catalogue() -> None:
    controls = load_controls(SCAN_CONFIG / "controls.yaml")
    wanted = {f"CIS-4.{n}" for n in range(1, 13)} | {f"DISA-2.{n}" for n in range(1, 19)}
    assert wanted <= set(controls.ids)
    for control_id, title in CIS_TITLES.items():
        control = controls.get(control_id)
        assert control is not None
        assert control.title == title


def test_manual_controls_say_why_and_automated_ones_have_evidence() -> None:
    controls = load_controls(SCAN_CONFIG / "controls.yaml")
    manual = {c.id for c in controls.controls if not c.automated}
    assert manual == {"CIS-4.5", "CIS-4.12", "DISA-2.7", "DISA-2.10"}
    for control in controls.controls:
        if control.automated:
            assert not control.evidence.empty
        else:
            assert len(control.reason) > 40
            assert not control.mandatory


def test_every_native_check_and_only_real_dockle_codes_are_used() -> None:
    controls = load_controls(SCAN_CONFIG / "controls.yaml")
    used_native = {i for c in controls.controls for i in c.evidence.native}
    assert used_native == set(catalogue())
    used_dockle = {i for c in controls.controls for i in c.evidence.dockle}
    assert used_dockle <= DOCKLE_CODES
    # CIS-DI-0005 reads the scanning host's environment: it proves nothing about an image.
    assert "CIS-DI-0005" not in used_dockle


def test_shipped_policy_and_waivers_load() -> None:
    policy = load_policy(SCAN_CONFIG / "policy.yaml")
    assert policy.vulnerability_severity == Severity.HIGH
    assert policy.dockle_severity == Severity.MEDIUM
    assert not policy.ignore_unfixed
    assert "openssh-server" in policy.native.denied_for("standard")
    assert "curl" in policy.native.denied_for("minimal")
    assert "curl" not in policy.native.denied_for("standard")
    controls = load_controls(SCAN_CONFIG / "controls.yaml")
    assert load_waivers(SCAN_CONFIG / "waivers.yaml", controls) == ()


def test_policy_defaults() -> None:
    policy = parse_policy({"version": 1})
    assert policy.vulnerability_severity == Severity.HIGH
    assert policy.block_on_mandatory_controls


def fields(err: pytest.ExceptionInfo[PolicyError]) -> list[tuple[str, str]]:
    return [(p.file, p.field) for p in err.value.problems]


def test_unknown_keys_are_errors_naming_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nblock:\n  vulnerability_severty: LOW\n", encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert fields(err) == [(str(path), "block.vulnerability_severty")]
    assert "Extra inputs are not permitted" in err.value.problems[0].reason
    assert err.value.exit_code == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"severity": "x"}, "controls.0.severity"),
        ({"id": "CIS-9"}, "controls.0.id"),
        ({"evidence": {"native": ["DD-NOPE"]}}, "controls.0.evidence.native"),
        ({"evidence": {"dockle": ["CIS-XX-1"]}}, "controls.0.evidence.dockle.0"),
        ({"evidence": {"trivy": [{"class": "licence"}]}}, "controls.0.evidence.trivy.0.class"),
        ({"evidence": {}}, "controls.0.evidence"),
        ({"automated": False, "evidence": {}, "mandatory": False}, "controls.0.reason"),
        ({"automated": False, "reason": "people", "evidence": {}}, "controls.0.mandatory"),
    ],
)
def test_bad_controls(change: dict[str, Any], field: str) -> None:
    doc = minimal_controls()
    doc["controls"][0].update(change)
    with pytest.raises(PolicyError) as err:
        parse_controls(doc, "controls.yaml")
    assert ("controls.yaml", field) in fields(err)


def test_duplicate_control_ids() -> None:
    doc = minimal_controls()
    doc["controls"].append(doc["controls"][0])
    with pytest.raises(PolicyError, match=r"duplicate control id CIS-4\.1"):
        parse_controls(doc)


def waiver(**changes: Any) -> dict[str, Any]:
    entry = {
        "finding": "CVE-2024-1",
        "justification": "not reachable from PostgreSQL",
        "approver": "security-team",
        "expires": dt.date(2026, 12, 31),
        "scope": {"package": "libfoo"},
    }
    entry.update(changes)
    return {"version": 1, "waivers": [{k: v for k, v in entry.items() if v is not None}]}


def test_a_waiver_is_read() -> None:
    (w,) = parse_waivers(waiver(scope={"images": ["drydock/*"], "package": "libfoo"}))
    assert (w.finding, w.images, w.package) == ("CVE-2024-1", ("drydock/*",), "libfoo")
    assert w.expires == dt.date(2026, 12, 31)


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"control": "CIS-4.6"}, "waivers.0", "exactly one of"),
        ({"finding": None}, "waivers.0", "exactly one of"),
        ({"approver": None}, "waivers.0.approver", "Field required"),
        ({"expires": "someday"}, "waivers.0.expires", "date"),
        ({"justification": "ok"}, "waivers.0.justification", "real words"),
        ({"justification": "   \n "}, "waivers.0.justification", "blank"),
        ({"justification": "TODO: explain why later"}, "waivers.0.justification", "placeholder"),
        ({"justification": "n/a"}, "waivers.0.justification", "placeholder"),
        ({"justification": "1234 5678 ---- ####"}, "waivers.0.justification", "real words"),
        ({"approver": "  "}, "waivers.0.approver", "blank"),
        ({"approver": "TBD"}, "waivers.0.approver", "names nobody"),
        ({"scope": None}, "waivers.0.scope", "scoped to images or a package"),
        ({"scope": {"images": []}}, "waivers.0.scope", "scoped to images or a package"),
        ({"scope": {"image": "x"}}, "waivers.0.scope.image", "Extra inputs"),
    ],
)
def test_bad_waivers(changes: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_waivers(waiver(**changes), "waivers.yaml")
    problem = err.value.problems[0]
    assert (problem.file, problem.field) == ("waivers.yaml", field)
    assert reason in problem.reason


def test_a_waiver_may_not_outlive_the_policy_maximum() -> None:
    today = dt.date(2026, 12, 2)
    ok = waiver(expires=today + dt.timedelta(days=90))
    assert parse_waivers(ok, max_days=90, today=today)
    far = waiver(expires=today + dt.timedelta(days=91))
    with pytest.raises(PolicyError) as err:
        parse_waivers(far, "waivers.yaml", max_days=90, today=today)
    (problem,) = err.value.problems
    assert problem.field == "waivers.0.expires"
    assert "max_waiver_days" in problem.reason and "2027-03-02" in problem.reason
    assert parse_waivers(far, max_days=120, today=today)


def test_a_control_waiver_needs_no_scope_and_every_problem_is_named() -> None:
    assert parse_waivers(waiver(finding=None, control="CIS-4.6", scope=None))
    doc = waiver(justification="tbd", approver="")
    second = {k: v for k, v in doc["waivers"][0].items() if k != "scope"}
    doc["waivers"].append(second | {"approver": "ok-team"})
    with pytest.raises(PolicyError) as err:
        parse_waivers(doc, "w.yaml")
    assert [p.field for p in err.value.problems] == [
        "waivers.0.justification",
        "waivers.0.approver",
        "waivers.1.justification",
        "waivers.1.scope",
    ]


def test_the_shipped_policy_caps_waivers_at_90_days() -> None:
    assert load_policy(SCAN_CONFIG / "policy.yaml").max_waiver_days == 90


def test_a_waiver_for_an_unknown_control(tmp_path: Path) -> None:
    controls = load_controls(SCAN_CONFIG / "controls.yaml")
    path = tmp_path / "waivers.yaml"
    path.write_text(yaml.safe_dump(waiver(finding=None, control="CIS-4.99")), encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_waivers(path, controls)
    assert fields(err) == [(str(path), "waivers.0.control")]


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [1\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_controls(bad)


def test_trusted_bases_are_references_not_globs() -> None:
    doc = {"version": 1, "native": {"trusted_bases": ["registry.example/base@sha256:" + "a" * 64]}}
    assert parse_policy(doc).native.trusted_bases == ("registry.example/base@sha256:" + "a" * 64,)
    with pytest.raises(PolicyError) as err:
        parse_policy({"version": 1, "native": {"trusted_bases": ["drydock/*"]}})
    assert fields(err) == [("policy.yaml", "native.trusted_bases")]
    assert "not globs" in err.value.problems[0].reason


def test_target_ports_are_read() -> None:
    doc = {"version": 1, "native": {"target_ports": {"operator": ["8080/tcp"]}}}
    native = parse_policy(doc).native
    assert native.ports_for("operator") == ("8080/tcp",)
    assert native.ports_for("other") == native.allowed_ports
    with pytest.raises(PolicyError):
        parse_policy({"version": 1, "native": {"target_ports": {"operator": ["8080"]}}})
