"""Trivy's JSON, SARIF and SBOM outputs -> Findings / Sbom, against every recorded Trivy sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ScanError
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.scan.sbom import parse_cyclonedx, parse_spdx
from pipeline.scan.trivy import parse_trivy, parse_trivy_report, parse_trivy_sarif

SAMPLES = Path(__file__).parents[1] / "fixtures" / "scanner-outputs"
ALPINE_310 = SAMPLES / "trivy__integration_testdata__alpine-310.json.golden"
ALPINE_310_SARIF = SAMPLES / "trivy__integration_testdata__alpine-310.sarif.golden"
ALPINE_39 = SAMPLES / "trivy__integration_testdata__alpine-39-high-critical.json.golden"
BUSTER = SAMPLES / "trivy__integration_testdata__debian-buster-ignore-unfixed.json.golden"
DOCKERFILE = SAMPLES / "trivy__integration_testdata__dockerfile.json.golden"
SECRETS = SAMPLES / "trivy__integration_testdata__secrets.json.golden"
CONDA_SPDX = SAMPLES / "trivy__integration_testdata__conda-spdx.json.golden"
CENTOS_CDX = SAMPLES / "trivy__integration_testdata_fixtures_sbom__centos-7-cyclonedx.json"
CENTOS_SPDX = SAMPLES / "trivy__integration_testdata_fixtures_sbom__centos-7-spdx.json"
DOCKLE_JSON = SAMPLES / "dockle__README.md__json_output.json"

ALPINE_310_ROWS = [
    ("CVE-2019-1549", "libcrypto1.1", "1.1.1c-r0", "1.1.1d-r0"),
    ("CVE-2019-1551", "libcrypto1.1", "1.1.1c-r0", "1.1.1d-r2"),
    ("CVE-2019-1549", "libssl1.1", "1.1.1c-r0", "1.1.1d-r0"),
    ("CVE-2019-1551", "libssl1.1", "1.1.1c-r0", "1.1.1d-r2"),
]


def _rows(findings: tuple[Finding, ...]) -> list[tuple[str, str, str, str]]:
    return [(f.id, f.package, f.installed_version, f.fixed_version) for f in findings]


def test_alpine_310_vulnerabilities() -> None:
    findings = parse_trivy(ALPINE_310.read_text())
    assert _rows(findings) == ALPINE_310_ROWS
    first = findings[0]
    assert first.source is Source.TRIVY and first.kind is Kind.VULNERABILITY
    assert first.severity is Severity.MEDIUM
    assert first.status is Status.FIXED and first.fixable
    assert first.title == "openssl: information disclosure in fork()"
    assert first.target == "testdata/fixtures/images/alpine-310.tar.gz (alpine 3.10.2)"
    assert first.evidence == ("https://avd.aquasec.com/nvd/cve-2019-1549",)
    assert {f.severity for f in findings} == {Severity.MEDIUM}


def test_alpine_39_high_critical() -> None:
    findings = parse_trivy(ALPINE_39.read_text())
    assert _rows(findings) == [
        ("CVE-2019-14697", "musl", "1.1.20-r4", "1.1.20-r5"),
        ("CVE-2019-14697", "musl-utils", "1.1.20-r4", "1.1.20-r5"),
    ]
    assert {f.severity for f in findings} == {Severity.CRITICAL}
    assert findings[0].target == "testdata/fixtures/images/alpine-39.tar.gz (alpine 3.9.4)"


def test_debian_buster_ignore_unfixed() -> None:
    (finding,) = parse_trivy(BUSTER.read_text())
    assert (finding.id, finding.package, finding.installed_version, finding.fixed_version) == (
        "CVE-2019-18224",
        "libidn2-0",
        "2.0.5-1",
        "2.0.5-1+deb10u1",
    )
    assert finding.severity is Severity.CRITICAL
    assert "DSA-4613-1" in finding.evidence  # VendorIDs kept as evidence
    assert finding.target == "testdata/fixtures/images/debian-buster.tar.gz (debian 10.1)"


def test_dockerfile_misconfiguration() -> None:
    (finding,) = parse_trivy(DOCKERFILE.read_text())
    assert finding.id == "DS-0002"
    assert finding.kind is Kind.MISCONFIGURATION
    assert finding.severity is Severity.HIGH
    assert finding.title == "Image user should not be 'root'"
    assert finding.target == "Dockerfile"
    assert finding.evidence[0] == (
        "Specify at least 1 USER command in Dockerfile with non-root user as argument"
    )


def test_passed_checks_are_not_findings() -> None:
    doc = json.loads(DOCKERFILE.read_text())
    doc["Results"][0]["Misconfigurations"][0]["Status"] = "PASS"
    assert parse_trivy(json.dumps(doc)) == ()


def test_secrets() -> None:
    aws, custom = parse_trivy(SECRETS.read_text())
    assert (aws.id, aws.kind, aws.severity, aws.title) == (
        "aws-access-key-id",
        Kind.SECRET,
        Severity.CRITICAL,
        "AWS Access Key ID",
    )
    assert aws.evidence == ("deploy.sh:3", "AWS", "export AWS_ACCESS_KEY_ID=********************")
    assert (custom.id, custom.severity, custom.evidence[0]) == (
        "mysecret",
        Severity.HIGH,
        "deploy.sh:7",
    )


def test_sarif_agrees_with_json() -> None:
    findings = parse_trivy_sarif(ALPINE_310_SARIF.read_text())
    assert _rows(findings) == ALPINE_310_ROWS
    assert {f.severity for f in findings} == {Severity.MEDIUM}
    assert {f.kind for f in findings} == {Kind.VULNERABILITY}
    assert findings[0].title == "openssl: information disclosure in fork()"
    assert findings[0].target == "testdata/fixtures/images/alpine-310.tar.gz"


def test_no_results_means_no_findings() -> None:
    doc = json.loads(BUSTER.read_text())
    del doc["Results"]
    assert parse_trivy(json.dumps(doc)) == ()


def test_cyclonedx_sbom() -> None:
    sbom = parse_cyclonedx(CENTOS_CDX.read_text())
    assert (sbom.format, sbom.spec_version) == ("CycloneDX", "1.5")
    assert sbom.subject == "integration/testdata/fixtures/images/centos-7.tar.gz"
    assert [(c.name, c.version, c.type) for c in sbom.components] == [
        ("bash", "4.2.46-31.el7", "library"),
        ("openssl-libs", "1.0.2k-16.el7", "library"),
        ("centos", "7.6.1810", "operating-system"),
    ]
    assert sbom.purls()[0] == "pkg:rpm/centos/bash@4.2.46-31.el7?arch=x86_64&distro=centos-7.6.1810"


def test_spdx_sboms() -> None:
    centos = parse_spdx(CENTOS_SPDX.read_text())
    assert (centos.format, centos.spec_version, len(centos.components)) == ("SPDX", "SPDX-2.2", 4)
    openssl = next(c for c in centos.components if c.name == "openssl-libs")
    assert openssl.version == "1:1.0.2k-19.el7"
    assert openssl.purl.startswith("pkg:rpm/centos/openssl-libs@1.0.2k-16.el7")
    conda = parse_spdx(CONDA_SPDX.read_text())
    assert conda.spec_version == "SPDX-2.3"
    assert conda.subject == "testdata/fixtures/repo/conda"
    assert conda.purls() == ("pkg:conda/openssl@1.1.1q", "pkg:conda/pip@22.2.2")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-27T10:00:00Z\tFATAL\tscan error: unable to initialize a scanner",
        ALPINE_310.read_text()[:5000],  # truncated
        "null",
        '{"SchemaVersion": 1, "ArtifactName": "x", "Results": []}',
        '{"ArtifactName": "x"}',
        '{"SchemaVersion": 2, "ArtifactName": "x", "Results": [{"Target": "t", '
        '"Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": "p", '
        '"Severity": "SEVERE"}]}]}',
        CENTOS_CDX.read_text(),  # an SBOM is not a vulnerability report
        DOCKLE_JSON.read_text(),
    ],
)
def test_garbage_is_a_scan_error_naming_trivy(text: str) -> None:
    with pytest.raises(ScanError, match=r"^trivy: "):
        parse_trivy(text)


def test_bad_sboms_and_sarif() -> None:
    with pytest.raises(ScanError, match="trivy-sbom"):
        parse_cyclonedx(CENTOS_SPDX.read_text())
    with pytest.raises(ScanError, match="trivy-sbom"):
        parse_spdx(CENTOS_CDX.read_text())
    with pytest.raises(ScanError, match="trivy-sbom"):
        parse_cyclonedx(CENTOS_CDX.read_text().replace('"CycloneDX"', '"NotABom"'))
    with pytest.raises(ScanError, match=r"^trivy: "):
        parse_trivy_sarif(ALPINE_310_SARIF.read_text()[:2000])


def _golden() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(ALPINE_310.read_text(encoding="utf-8"))
    return doc


def test_an_image_report_says_what_trivy_saw_and_its_end_of_support() -> None:
    parsed = parse_trivy_report(json.dumps(_golden()))
    assert (parsed.os.family, parsed.os.version, parsed.os.eosl) == ("alpine", "3.10.2", True)
    assert parsed.os.platform == "alpine 3"
    [eol] = [f for f in parsed.findings if f.kind is Kind.EOL]
    assert eol.id == "EOSL-alpine-3.10.2" and eol.severity is Severity.HIGH


def test_an_image_report_without_image_metadata_is_an_error() -> None:
    doc = _golden()
    del doc["Metadata"]
    with pytest.raises(ScanError, match="empty report"):
        parse_trivy_report(json.dumps(doc))
    doc = _golden()
    doc["Metadata"]["DiffIDs"] = []
    with pytest.raises(ScanError, match="empty report"):
        parse_trivy_report(json.dumps(doc))


def test_an_image_report_that_contradicts_itself_is_an_error() -> None:
    doc = _golden()
    del doc["Metadata"]["OS"]  # vulnerabilities of OS packages, but no OS
    with pytest.raises(ScanError, match="OS packages but no OS detected"):
        parse_trivy_report(json.dumps(doc))
    doc = _golden()
    doc["Results"][0]["Packages"] = [{"Name": "musl"}]  # listed, yet others are vulnerable
    with pytest.raises(ScanError, match="vulnerabilities of unlisted packages"):
        parse_trivy_report(json.dumps(doc))


def test_the_os_package_count_comes_from_the_listed_packages() -> None:
    doc = _golden()
    names = {v["PkgName"] for v in doc["Results"][0]["Vulnerabilities"]}
    doc["Results"][0]["Packages"] = [{"Name": n} for n in sorted(names)] + [{"Name": "zlib"}]
    doc["Metadata"]["OS"]["EOSL"] = False
    parsed = parse_trivy_report(json.dumps(doc))
    assert parsed.os.packages == len(names) + 1
    assert not [f for f in parsed.findings if f.kind is Kind.EOL]
