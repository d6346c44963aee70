"""Clair v4 reports -> Findings, and the Clair adapter's HTTP conversation.

The payloads are the real examples from Clair's OpenAPI document (see PROVENANCE.md).
No Clair binary can run here, so the adapter test talks to a tiny fake Clair (and fake
registry) on 127.0.0.1 that answers with those example payloads — a stand-in for the
adapter test only; the parser tests read the examples directly.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ScanError
from pipeline.models.findings import Kind, Severity, Source, Status
from pipeline.scan.base import ScanSettings
from pipeline.scan.clair import (
    ClairScanner,
    clair_manifest,
    parse_clair,
    parse_index_report,
    split_reference,
)

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


# ---- the adapter against a fake Clair + registry -------------------------------------


@dataclass
class FakeClair:
    """Scripted answers; records what the adapter sent."""

    polls_before_done: int = 1
    fail_first_report: bool = True
    never_finish: bool = False
    posted: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)


def _handler(fake: FakeClair) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            fake.calls.append(f"GET {self.path}")
            if self.path == "/v2/drydock/app/manifests/1.0":
                layer = {
                    "digest": LAYER,
                    "size": 1,
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                }
                self._send(
                    200, {"schemaVersion": 2, "layers": [layer]}, {"Docker-Content-Digest": DIGEST}
                )
            elif self.path == f"/indexer/api/v1/index_report/{DIGEST}":
                fake.polls_before_done -= 1
                done = fake.polls_before_done <= 0 and not fake.never_finish
                self._send(200, index_report("IndexFinished" if done else "ScanLayers", done))
            elif self.path == f"/matcher/api/v1/vulnerability_report/{DIGEST}":
                if fake.fail_first_report:
                    fake.fail_first_report = False
                    self._send(503, {"code": "unavailable", "message": "matcher warming up"})
                else:
                    self._send(201, vulnerability_report())
            else:
                self._send(404, {"code": "not-found", "message": self.path})

        def do_POST(self) -> None:
            fake.calls.append(f"POST {self.path}")
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.posted.append(body)
            self._send(201, index_report("FetchLayers"))

    return Handler


@pytest.fixture
def fake_clair() -> Iterator[tuple[FakeClair, str]]:
    fake = FakeClair()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_adapter_indexes_polls_and_reports(
    fake_clair: tuple[FakeClair, str], tmp_path: Path
) -> None:
    fake, host = fake_clair
    scanner = ClairScanner(ScanSettings(cache_dir=tmp_path, timeout=20, clair_url=f"http://{host}"))
    out = scanner.scan(tmp_path / "unused.tar", f"{host}/drydock/app:1.0")
    assert out.scanner == "clair"
    assert [(f.id, f.package, f.fixed_version) for f in out.findings] == [
        ("CVE-2009-5155", "glibc", "2.28-0ubuntu1")
    ]
    (posted,) = fake.posted
    assert posted["hash"] == DIGEST
    assert posted["layers"][0]["uri"] == f"http://{host}/v2/drydock/app/blobs/{LAYER}"
    assert fake.calls == [
        "GET /v2/drydock/app/manifests/1.0",
        "POST /indexer/api/v1/index_report",
        f"GET /indexer/api/v1/index_report/{DIGEST}",
        f"GET /matcher/api/v1/vulnerability_report/{DIGEST}",  # 503, retried
        f"GET /matcher/api/v1/vulnerability_report/{DIGEST}",
    ]


def test_adapter_gives_up_when_indexing_never_finishes(
    fake_clair: tuple[FakeClair, str], tmp_path: Path
) -> None:
    fake, host = fake_clair
    fake.never_finish = True
    scanner = ClairScanner(ScanSettings(cache_dir=tmp_path, timeout=2, clair_url=f"http://{host}"))
    with pytest.raises(ScanError, match=r"clair: .* not indexed within 2s"):
        scanner.scan(tmp_path / "unused.tar", f"{host}/drydock/app:1.0")


def test_adapter_reports_unknown_image(fake_clair: tuple[FakeClair, str], tmp_path: Path) -> None:
    _, host = fake_clair
    scanner = ClairScanner(ScanSettings(cache_dir=tmp_path, timeout=5, clair_url=f"http://{host}"))
    with pytest.raises(
        ScanError, match=r"clair: GET .*/v2/drydock/other/manifests/1.0 answered 404"
    ):
        scanner.scan(tmp_path / "unused.tar", f"{host}/drydock/other:1.0")


def test_adapter_fails_closed_when_clair_is_down(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    scanner = ClairScanner(
        ScanSettings(cache_dir=tmp_path, timeout=5, clair_url=f"http://127.0.0.1:{port}")
    )
    with pytest.raises(ScanError, match=r"^clair: GET http://127.0.0.1:.* failed"):
        scanner.scan(tmp_path / "unused.tar", f"127.0.0.1:{port}/drydock/app:1.0")


def test_adapter_needs_a_url(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="clair: no Clair URL"):
        ClairScanner(ScanSettings(cache_dir=tmp_path))
