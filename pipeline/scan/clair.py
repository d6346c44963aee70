"""Clair v4: vulnerabilities of an image pushed to a registry, over Clair's HTTP API.

Clair does not read tarballs: its indexer downloads each layer from a URL. So the adapter
reads the image's manifest from the registry, submits a Clair manifest whose layer URIs
point at that registry (POST /indexer/api/v1/index_report), polls the index report until
the indexer is done, then fetches the vulnerability report
(GET /matcher/api/v1/vulnerability_report/{digest}) and parses it with `parse_clair`.
Every HTTP call has a timeout; transient failures are retried a bounded number of times.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import requests
from pydantic import BaseModel, ConfigDict, Field
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_fixed,
)

from pipeline.errors import ScanError
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.models.reference import ImageReference, is_loopback
from pipeline.scan.base import Scanner, ScanOutput, ScanSettings, validate

log = logging.getLogger(__name__)

NAME = "clair"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
ATTEMPTS = 4
POLL_SECONDS = 1.0
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
FINISHED = "IndexFinished"
FAILED = "IndexError"


class NormalizedSeverity(StrEnum):
    UNKNOWN = "Unknown"
    NEGLIGIBLE = "Negligible"
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"
    CRITICAL = "Critical"


SEVERITY: Mapping[NormalizedSeverity, Severity] = {
    NormalizedSeverity.UNKNOWN: Severity.UNKNOWN,
    NormalizedSeverity.NEGLIGIBLE: Severity.INFO,
    NormalizedSeverity.LOW: Severity.LOW,
    NormalizedSeverity.MEDIUM: Severity.MEDIUM,
    NormalizedSeverity.HIGH: Severity.HIGH,
    NormalizedSeverity.CRITICAL: Severity.CRITICAL,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ClairPackage(_Model):
    id: str = ""
    name: str
    version: str = ""
    kind: str = ""


class ClairDistribution(_Model):
    id: str = ""
    did: str = ""
    name: str = ""
    version: str = ""
    pretty_name: str = ""


class ClairVulnerability(_Model):
    id: str
    updater: str = ""
    name: str = Field(min_length=1)
    description: str = ""
    links: str = ""
    severity: str = ""
    normalized_severity: NormalizedSeverity
    package: ClairPackage | None = None
    # The openapi examples say "dist"/"repo"; claircore's JSON tags say these.
    distribution: ClairDistribution | None = Field(default=None, alias="dist")
    fixed_in_version: str = ""


class VulnerabilityReport(_Model):
    manifest_hash: str = Field(pattern=r"^sha(256|512):[a-f0-9]+$")
    packages: dict[str, ClairPackage] = Field(default_factory=dict)
    distributions: dict[str, ClairDistribution] | None = None
    vulnerabilities: dict[str, ClairVulnerability] | None = None
    package_vulnerabilities: dict[str, list[str]] | None = None


class IndexReport(_Model):
    manifest_hash: str
    state: str
    success: bool = False
    err: str = ""


def _distribution(vuln: ClairVulnerability) -> str:
    dist = vuln.distribution
    if dist is None:
        return ""
    return dist.pretty_name or " ".join(p for p in (dist.name, dist.version) if p)


def parse_clair(text: str) -> tuple[Finding, ...]:
    """A Clair vulnerability report (JSON text) -> one finding per (package, vulnerability)."""
    report = validate(NAME, VulnerabilityReport, text)
    vulns = report.vulnerabilities or {}
    findings: list[Finding] = []
    for pkg_id, vuln_ids in sorted((report.package_vulnerabilities or {}).items()):
        for vuln_id in vuln_ids:
            vuln = vulns.get(vuln_id)
            if vuln is None:
                raise ScanError(f"{NAME}: package {pkg_id} names unknown vulnerability {vuln_id}")
            package = report.packages.get(pkg_id) or vuln.package
            if package is None:
                raise ScanError(f"{NAME}: vulnerability {vuln_id} names unknown package {pkg_id}")
            fixed = vuln.fixed_in_version
            findings.append(
                Finding(
                    id=vuln.name,
                    source=Source.CLAIR,
                    kind=Kind.VULNERABILITY,
                    severity=SEVERITY[vuln.normalized_severity],
                    title=vuln.description.split("\n", 1)[0][:200],
                    package=package.name,
                    installed_version=package.version,
                    fixed_version=fixed,
                    status=Status.FIXED if fixed else Status.AFFECTED,
                    evidence=tuple(vuln.links.split()),
                    target=_distribution(vuln),
                )
            )
    return tuple(findings)


def parse_index_report(text: str) -> IndexReport:
    """A Clair index report (JSON text) -> its state; ScanError when indexing failed."""
    report = validate(NAME, IndexReport, text)
    if report.state == FAILED or (report.state == FINISHED and not report.success):
        raise ScanError(f"{NAME}: indexing {report.manifest_hash} failed: {report.err or '?'}")
    return report


# ---- reading the image manifest from the registry ------------------------------------


def split_reference(ref: str) -> tuple[str, str, str]:
    """ "host:port/repo/name:tag" or "...@sha256:..." -> (host, repository, tag-or-digest)."""
    try:
        parsed = ImageReference.parse(ref)
    except ValueError as err:
        raise ScanError(f"{NAME}: {ref!r}: {err}") from err
    if "/" not in ref or ref.strip().split("/", 1)[0].lower() != parsed.host:
        raise ScanError(f"{NAME}: needs a registry reference (host/repo:tag), got {ref!r}")
    return parsed.host, parsed.repository, parsed.digest or parsed.tag


def registry_url(host: str) -> str:
    """Plain HTTP for loopback registries (as go-containerregistry does), HTTPS otherwise."""
    return f"{'http' if is_loopback(host) else 'https'}://{host}"


def clair_manifest(base_url: str, repository: str, digest: str, manifest: Any) -> dict[str, Any]:
    """An OCI/Docker image manifest -> the body Clair's indexer expects (pure)."""
    try:
        layers = manifest["layers"]
        body_layers = []
        for layer in layers:
            entry: dict[str, Any] = {
                "hash": layer["digest"],
                "uri": f"{base_url}/v2/{repository}/blobs/{layer['digest']}",
                "headers": {},
            }
            media_type = str(layer.get("mediaType", ""))
            if media_type.startswith("application/vnd.oci.image.layer.v1.tar"):
                entry["media_type"] = media_type
            body_layers.append(entry)
    except (KeyError, TypeError) as err:
        raise ScanError(f"{NAME}: registry manifest of {repository} has no layers") from err
    return {"hash": digest, "layers": body_layers}


class ClairClient:
    """The few Clair v4 endpoints Drydock uses, with timeouts and bounded retries."""

    def __init__(self, base_url: str, timeout: float, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        def once() -> requests.Response:
            response = self.session.request(
                method, url, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), **kwargs
            )
            if response.status_code >= 500:
                response.raise_for_status()
            return response

        retrying = Retrying(
            stop=stop_after_attempt(ATTEMPTS),
            wait=wait_exponential(multiplier=0.5, max=4),
            retry=retry_if_exception_type(
                (requests.ConnectionError, requests.Timeout, requests.HTTPError)
            ),
            reraise=True,
        )
        try:
            return retrying(once)
        except requests.RequestException as err:
            raise ScanError(f"{NAME}: {method} {url} failed: {err}") from err

    def _expect(self, response: requests.Response, *codes: int) -> str:
        if response.status_code not in codes:
            raise ScanError(
                f"{NAME}: {response.request.method} {response.url} answered"
                f" {response.status_code}: {response.text[:200]}"
            )
        return response.text

    def registry_manifest(self, ref: str) -> dict[str, Any]:
        """Build Clair's manifest body for an image in a registry."""
        host, repository, version = split_reference(ref)
        base = registry_url(host)
        response = self._request(
            "GET",
            f"{base}/v2/{repository}/manifests/{version}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        text = self._expect(response, 200)
        digest = response.headers.get("Docker-Content-Digest", "")
        if not digest:
            raise ScanError(f"{NAME}: registry gave no digest for {ref}")
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as err:
            raise ScanError(f"{NAME}: registry manifest of {ref} is not JSON") from err
        return clair_manifest(base, repository, digest, manifest)

    def index(self, manifest: Mapping[str, Any]) -> IndexReport:
        response = self._request(
            "POST", f"{self.base_url}/indexer/api/v1/index_report", json=dict(manifest)
        )
        return parse_index_report(self._expect(response, 200, 201))

    def index_report(self, digest: str) -> IndexReport:
        response = self._request("GET", f"{self.base_url}/indexer/api/v1/index_report/{digest}")
        return parse_index_report(self._expect(response, 200))

    def wait_indexed(self, first: IndexReport) -> IndexReport:
        """Poll the index report until the indexer finished, for at most `timeout` seconds."""
        if first.state == FINISHED:
            return first
        polling = Retrying(
            stop=stop_after_delay(self.timeout),
            wait=wait_fixed(POLL_SECONDS),
            retry=retry_if_result(lambda r: r.state != FINISHED),
        )
        try:
            return polling(self.index_report, first.manifest_hash)
        except RetryError as err:
            raise ScanError(
                f"{NAME}: {first.manifest_hash} not indexed within {self.timeout:.0f}s"
            ) from err

    def vulnerability_report(self, digest: str) -> str:
        response = self._request(
            "GET", f"{self.base_url}/matcher/api/v1/vulnerability_report/{digest}"
        )
        return self._expect(response, 200, 201)

    def report(self, manifest: Mapping[str, Any]) -> str:
        """Index a manifest, wait for the indexer, return the vulnerability report text."""
        indexed = self.wait_indexed(self.index(manifest))
        return self.vulnerability_report(indexed.manifest_hash)


class ClairScanner(Scanner):
    """Scans an image already pushed to a registry (the tarball is not used by Clair)."""

    name: ClassVar[str] = NAME

    def __init__(self, settings: ScanSettings, session: requests.Session | None = None) -> None:
        super().__init__(settings)
        if not settings.clair_url:
            raise ScanError(f"{NAME}: no Clair URL configured")
        self.client = ClairClient(settings.clair_url, settings.timeout, session)

    def scan(self, image_tar: Path, ref: str) -> ScanOutput:
        start = time.monotonic()
        raw = self.client.report(self.client.registry_manifest(ref))
        return ScanOutput(NAME, ref, parse_clair(raw), raw, time.monotonic() - start)
