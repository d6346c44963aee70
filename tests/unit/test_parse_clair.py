"""Clair v4 reports -> Findings, Clair's data age, its JWTs and manifests (pure parts).

Payloads: the examples of Clair's OpenAPI document and two recorded outputs of the real
Clair v4.9.0 (see PROVENANCE.md). The adapter's HTTP conversation is tested against the
real Clair in tests/integration/test_clair_real.py, not against a stand-in.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.archive.mirrors import Mirrors
from pipeline.errors import InputError, ScanError, ToolError
from pipeline.models.findings import Kind, Severity, Source, Status
from pipeline.scan import clair as clair_module
from pipeline.scan.base import ArchiveFeedSettings, ScanSettings, VulnDbSpec
from pipeline.scan.clair import ClairScanner, data_time, judge_data, parse_clair, parse_report
from pipeline.scan.clair_api import (
    ClairAuth,
    UpdateOperation,
    clair_manifest,
    mint_token,
    parse_index_report,
    parse_update_operations,
    split_reference,
)
from pipeline.tools.clair_service import ClairSettings

SAMPLES = Path(__file__).parents[1] / "fixtures" / "scanner-outputs"
EXAMPLES: dict[str, Any] = json.loads(
    (SAMPLES / "clair__httptransport_api_v1_openapi.json__schema_examples.json").read_text()
)
MANIFEST = EXAMPLES["manifest"][0]
DIGEST = MANIFEST["hash"]
LAYER = MANIFEST["layers"][0]["hash"]
VULN = EXAMPLES["vulnerability"][0]


def vulnerability_report() -> dict[str, Any]:
    """A vulnerability report assembled from the OpenAPI examples."""
    return {
        "manifest_hash": DIGEST,
        "packages": {"0": VULN["package"], "10": EXAMPLES["package"][0]},
        "distributions": {"1": EXAMPLES["distribution"][0]},
        "environments": {"10": [EXAMPLES["environment"][0]["value"]]},
        "vulnerabilities": {VULN["id"]: VULN},
        "package_vulnerabilities": {"0": [VULN["id"]]},
    }


def index_report(state: str, success: bool = False) -> dict[str, Any]:
    return {
        "manifest_hash": DIGEST,
        "state": state,
        "success": success,
        "err": "",
        "packages": {"10": EXAMPLES["package"][0]},
        "distributions": {"1": EXAMPLES["distribution"][0]},
        "environments": {"10": [EXAMPLES["environment"][0]["value"]]},
    }


def test_example_vulnerability_report() -> None:
    (finding,) = parse_clair(json.dumps(vulnerability_report()))
    assert finding.id == "CVE-2009-5155"
    assert finding.source is Source.CLAIR and finding.kind is Kind.VULNERABILITY
    assert finding.severity is Severity.LOW
    assert (finding.package, finding.installed_version, finding.fixed_version) == (
        "glibc",
        "2.27-0ubuntu1",
        "2.28-0ubuntu1",
    )
    assert finding.status is Status.FIXED
    assert finding.title.startswith("In the GNU C Library (aka glibc or libc6) before 2.28")
    assert len(finding.evidence) == 7
    assert finding.evidence[0] == "https://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2009-5155"
    assert finding.target == "Ubuntu 18.04.3 LTS (Bionic Beaver)"


def test_claircore_key_names_and_severity_mapping() -> None:
    report = vulnerability_report()
    vuln = copy.deepcopy(VULN)
    vuln["distribution"] = vuln.pop("dist")  # what claircore really writes
    vuln["normalized_severity"] = "Negligible"
    vuln["fixed_in_version"] = ""
    report["vulnerabilities"] = {VULN["id"]: vuln}
    (finding,) = parse_clair(json.dumps(report))
    assert finding.severity is Severity.INFO
    assert finding.status is Status.AFFECTED and not finding.fixable
    assert finding.target == "Ubuntu 18.04.3 LTS (Bionic Beaver)"


def test_clean_report_has_no_findings() -> None:
    report = vulnerability_report()
    report["vulnerabilities"] = {}
    report["package_vulnerabilities"] = {}
    assert parse_clair(json.dumps(report)) == ()


def test_index_report_states() -> None:
    assert (
        parse_index_report(json.dumps(index_report("IndexFinished", True))).state == "IndexFinished"
    )
    assert parse_index_report(json.dumps(index_report("FetchLayers"))).state == "FetchLayers"
    failed = index_report("IndexError")
    failed["err"] = "fetcher: layer not reachable"
    with pytest.raises(ScanError, match=r"clair: indexing .* failed: fetcher: layer not reachable"):
        parse_index_report(json.dumps(failed))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r["package_vulnerabilities"].update({"0": ["nope"]}),
        lambda r: r["vulnerabilities"][VULN["id"]].update({"normalized_severity": "Severe"}),
        lambda r: r.update({"manifest_hash": "not-a-digest"}),
        lambda r: r.pop("manifest_hash"),
    ],
)
def test_inconsistent_reports_are_scan_errors(mutate: Any) -> None:
    report = copy.deepcopy(vulnerability_report())
    mutate(report)
    with pytest.raises(ScanError, match=r"^clair: "):
        parse_clair(json.dumps(report))


@pytest.mark.parametrize(
    "text", ["", "<html>502 Bad Gateway</html>", json.dumps(vulnerability_report())[:200]]
)
def test_garbage_is_a_scan_error_naming_clair(text: str) -> None:
    with pytest.raises(ScanError, match=r"^clair: "):
        parse_clair(text)


def test_manifest_body_from_registry_manifest() -> None:
    oci = {
        "layers": [{"digest": LAYER, "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}]
    }
    body = clair_manifest("http://127.0.0.1:5000", "drydock/app", DIGEST, oci)
    assert body == {
        "hash": DIGEST,
        "layers": [
            {
                "hash": LAYER,
                "uri": f"http://127.0.0.1:5000/v2/drydock/app/blobs/{LAYER}",
                "headers": {},
                "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
            }
        ],
    }
    docker_layer = {
        "layers": [
            {"digest": LAYER, "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"}
        ]
    }
    assert "media_type" not in clair_manifest("http://r", "a", DIGEST, docker_layer)["layers"][0]
    assert split_reference("127.0.0.1:5000/drydock/app:1.0") == (
        "127.0.0.1:5000",
        "drydock/app",
        "1.0",
    )
    assert split_reference(f"r.example/a/b:t@{DIGEST}") == ("r.example", "a/b", DIGEST)
    with pytest.raises(ScanError, match="registry reference"):
        split_reference("app:1.0")


REAL_REPORT = (SAMPLES / "clair-v4.9.0__vulnerability_report__held-libssl3.json").read_text()
REAL_OPS = (SAMPLES / "clair-v4.9.0__update_operation_latest.json").read_text()


def test_manifest_layers_carry_the_registry_credentials() -> None:
    oci = {"layers": [{"digest": LAYER, "mediaType": "application/vnd.oci.image.layer.v1.tar"}]}
    body = clair_manifest("https://r.example", "a/b", DIGEST, oci, "Bearer t0k3n")
    assert body["layers"][0]["headers"] == {"Authorization": ["Bearer t0k3n"]}


def test_a_real_clair_report_of_the_held_libssl3_image() -> None:
    findings = parse_clair(REAL_REPORT)
    assert {f.package for f in findings} == {"libssl3"}
    assert len({f.id for f in findings}) == 6
    for f in findings:
        assert (f.installed_version, f.fixed_version) == ("3.0.20-1~deb12u2", "3.0.22-1~deb12u2")
        # claircore maps Debian urgency "high" to Critical (debian/severity.go).
        assert f.severity is Severity.CRITICAL and f.status is Status.FIXED
        assert f.target == "Debian GNU/Linux 12 (bookworm)"
        assert f.evidence == (f"https://security-tracker.debian.org/tracker/{f.id}",)


def test_the_data_age_is_the_feeds_last_modified() -> None:
    ops = parse_update_operations(REAL_OPS)
    op = ops["debian/updater"]
    assert op.fingerprint == "Wed, 02 Dec 2026 09:07:22 GMT"
    assert data_time(op) == dt.datetime(2026, 12, 2, 9, 7, 22, tzinfo=dt.UTC)
    opaque = UpdateOperation("debian/updater", op.date, "not-a-date")
    assert data_time(opaque) == op.date  # no HTTP date: when Clair stored it
    assert parse_update_operations("{}") == {} and parse_update_operations("null") == {}


@pytest.mark.parametrize(
    ("hours_later", "blind"),
    [(1, ""), (35, ""), (37, "debian/updater data is 37.0 h old (the policy allows 36.0 h)")],
)
def test_clair_is_blind_when_its_data_is_older_than_the_policy_allows(
    hours_later: float, blind: str
) -> None:
    report = parse_report(REAL_REPORT)
    ops = parse_update_operations(REAL_OPS)
    made = data_time(ops["debian/updater"])
    used, why = judge_data(report, ops, made + dt.timedelta(hours=hours_later), MAX_AGE)
    assert why == blind
    assert used.startswith("debian/updater for Debian GNU/Linux 12 (bookworm), data from")


MAX_AGE = dt.timedelta(hours=36)


def test_clair_is_blind_without_data_for_the_os_or_without_an_os() -> None:
    report = parse_report(REAL_REPORT)
    now = dt.datetime(2026, 12, 2, 10, tzinfo=dt.UTC)
    ubuntu_only = {"ubuntu/updater/jammy": UpdateOperation("ubuntu/updater/jammy", now)}
    _, why = judge_data(report, ubuntu_only, now, MAX_AGE)
    assert why == "Clair's matcher holds no debian data (no debian/* updater has run)"
    no_os = report.model_copy(update={"distributions": {}})
    _, why = judge_data(no_os, parse_update_operations(REAL_OPS), now, MAX_AGE)
    assert "no OS distribution" in why
    no_packages = report.model_copy(update={"packages": {}})
    _, why = judge_data(no_packages, parse_update_operations(REAL_OPS), now, MAX_AGE)
    assert why == "Clair found no packages in the image"


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_the_jwt_is_hs256_over_the_psk_with_issuer_and_expiry() -> None:
    key = b"0123456789abcdef0123456789abcdef"
    token = mint_token(key, "drydock", now=1_800_000_000)
    header, payload, signature = token.split(".")
    assert json.loads(_b64url_decode(header)) == {"alg": "HS256", "typ": "JWT"}
    claims = json.loads(_b64url_decode(payload))
    assert claims["iss"] == "drydock"
    assert claims["nbf"] <= claims["iat"] == 1_800_000_000 < claims["exp"] <= 1_800_000_300
    expected = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert _b64url_decode(signature) == expected
    assert mint_token(b"another key", "drydock", now=1_800_000_000) != token


def test_the_psk_comes_from_a_value_or_a_file_never_repr(tmp_path: Path) -> None:
    key = base64.b64encode(b"k" * 32).decode()
    path = tmp_path / "psk"
    path.write_text(key + "\n", encoding="utf-8")
    auth = ClairAuth.load(psk_file=path)
    assert auth is not None and auth.key == b"k" * 32
    assert "kkkk" not in repr(auth)
    assert ClairAuth.load() is None
    with pytest.raises(ScanError, match="not base64"):
        ClairAuth.load("not base64!")
    with pytest.raises(ScanError, match="cannot read the PSK file"):
        ClairAuth.load(psk_file=tmp_path / "missing")


def test_the_clair_scanner_needs_a_url(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no Clair URL configured"):
        ClairScanner(ScanSettings(cache_dir=tmp_path))
    scanner = ClairScanner(ScanSettings(cache_dir=tmp_path, clair_url="http://127.0.0.1:9"))
    assert scanner.needs_registry


def test_clair_url_local_reads_no_key_until_its_clair_is_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`local` is not a URL: the scanner starts that Clair in prepare() (its key file does
    not exist before), and without the run's archive feed it refuses, naming the way out."""
    scanner = ClairScanner(ScanSettings(cache_dir=tmp_path, clair_url="local"))
    assert scanner.local
    with pytest.raises(ScanError, match="not started"):
        _ = scanner.client
    with pytest.raises(ScanError, match="--vuln-db debian-archive"):
        scanner.prepare()
    with pytest.raises(ScanError, match="--vuln-db debian-archive"):
        scanner.scan(tmp_path / "unused.tar", "127.0.0.1:5000/x@sha256:" + "0" * 64)
    monkeypatch.setenv("DRYDOCK_BUILD_TOOLS", "0")  # the version of a built Clair, or none
    assert scanner.version().endswith("(local)")


def test_a_local_clair_that_fails_to_start_is_not_started_again_for_each_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One failed start fails every image of the run closed, naming the cause, without
    another start (each can take a minute of waiting for a Clair that will not come)."""
    calls: list[Path | None] = []

    def failing_start(settings: ClairSettings, feed: object, archive: str) -> None:
        calls.append(settings.state_dir)
        raise ToolError(["clair", "-conf", "config.yaml"], 1, "migrations failed")

    monkeypatch.setattr(clair_module, "start_local", failing_start)
    monkeypatch.setattr(clair_module, "current_feed", lambda cache: object())
    archive = ArchiveFeedSettings(
        feed_cache=tmp_path / "feed",
        mirrors=Mirrors("http://127.0.0.1:9/debian", "http://127.0.0.1:9/debian-security"),
        releases=("bookworm",),
    )
    settings = ScanSettings(
        cache_dir=tmp_path,
        clair_url="local",
        clair_state=tmp_path / "clair",
        vuln_db=VulnDbSpec(source="debian-archive", archive=archive),
    )
    scanner = ClairScanner(settings)
    with pytest.raises(ScanError, match="starting the local Clair: clair exit code 1") as first:
        scanner.prepare()
    assert "not tried again" not in str(first.value)
    for _ in range(2):
        with pytest.raises(
            ScanError, match=r"(?s)exit code 1.*migrations failed.*not tried again in this run"
        ):
            scanner.scan(tmp_path / "unused.tar", "127.0.0.1:5000/x@sha256:" + "0" * 64)
    assert calls == [tmp_path / "clair"]
