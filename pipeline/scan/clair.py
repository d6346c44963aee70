"""Clair v4: vulnerabilities of an image in a registry, and whether Clair could see them.

The adapter (`ClairScanner`) scans an image by its registry reference (the run stages
every image before it scans, so the reference names a digest): it builds Clair's manifest
from the registry (pipeline.scan.clair_api), indexes it, fetches the vulnerability
report and parses it with `parse_clair`.

A report with no vulnerabilities proves nothing unless Clair's data could have shown
them, so every scan is also judged (`judge_data`): the image's OS must have been
detected, packages found, and the updater for that OS must have stored data no older
than the policy's maximum age. Otherwise the output is *blind*, with the reason: the
gate then leaves the vulnerability controls `unverified` (it blocks). A matcher holding
no data at all (Clair answers 202) is blind too. Clair being unreachable, refusing the
credentials or failing to index is a ScanError (the image is not proven safe).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import threading
import time
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

import requests
from pydantic import BaseModel, ConfigDict, Field

from pipeline.archive.feed import current_feed
from pipeline.errors import InputError, ScanError, ToolError
from pipeline.models.compliance import RAN_CLAIR
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.scan.base import Scanner, ScanOutput, ScanSettings, validate
from pipeline.scan.clair_api import NAME, ClairAuth, ClairClient, UpdateOperation
from pipeline.scan.clair_local import LOCAL_URL, start_local, sync
from pipeline.tools import clair_service
from pipeline.tools.clair_service import ClairSettings
from pipeline.tools.locate import locate

progress = logging.getLogger("drydock.progress")

# claircore's updater names start with these, per distribution id (os-release ID).
UPDATER_PREFIXES: Mapping[str, str] = {
    "debian": "debian/",
    "ubuntu": "ubuntu/",
    "alpine": "alpine-",
    "rhel": "RHEL",
}


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
    version_code_name: str = ""
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


def _distribution(vuln: ClairVulnerability) -> str:
    dist = vuln.distribution
    if dist is None:
        return ""
    return dist.pretty_name or " ".join(p for p in (dist.name, dist.version) if p)


def findings_of(report: VulnerabilityReport) -> tuple[Finding, ...]:
    """One finding per (package, vulnerability) of a parsed report."""
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


def parse_report(text: str) -> VulnerabilityReport:
    return validate(NAME, VulnerabilityReport, text)


def parse_clair(text: str) -> tuple[Finding, ...]:
    """A Clair vulnerability report (JSON text) -> one finding per (package, vulnerability)."""
    return findings_of(parse_report(text))


def data_time(op: UpdateOperation) -> dt.datetime:
    """When the updater's data was made: its source's Last-Modified (claircore's Debian
    updater keeps it as the fingerprint) when that is an HTTP date, else when Clair
    stored it. A feed served unchanged for days is as old as its Last-Modified."""
    try:
        made = email.utils.parsedate_to_datetime(op.fingerprint)
    except (TypeError, ValueError):
        return op.date
    if made.tzinfo is None:
        made = made.replace(tzinfo=dt.UTC)
    return min(made, op.date)


def _age(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def judge_data(
    report: VulnerabilityReport,
    updates: Mapping[str, UpdateOperation],
    now: dt.datetime,
    max_age: dt.timedelta,
) -> tuple[str, str]:
    """(what data Clair used, why it could not see: "" when it could) for one report."""
    dists = list((report.distributions or {}).values())
    if not dists:
        return "", "Clair detected no OS distribution in the image: OS packages went unjudged"
    if not report.packages:
        return "", "Clair found no packages in the image"
    used: list[str] = []
    blind: list[str] = []
    for dist in dists:
        did = dist.did or dist.name.split()[0].lower()
        label = dist.pretty_name or did
        prefix = UPDATER_PREFIXES.get(did, f"{did}/")
        ops = [op for name, op in updates.items() if name.startswith(prefix)]
        if not ops:
            blind.append(f"Clair's matcher holds no {did} data (no {prefix}* updater has run)")
            continue
        newest = max(ops, key=data_time)
        made = data_time(newest)
        age = now - made
        used.append(
            f"{newest.updater} for {label}, data from {made.isoformat(timespec='minutes')}"
            f" ({_age(age)} old)"
        )
        if age > max_age:
            blind.append(
                f"{newest.updater} data is {_age(age)} old (the policy allows {_age(max_age)})"
            )
    return "; ".join(used), "; ".join(blind)


class ClairScanner(Scanner):
    """Scans an image already pushed to a registry (the tarball is not used by Clair)."""

    name: ClassVar[str] = NAME
    needs_registry: ClassVar[bool] = True

    def __init__(self, settings: ScanSettings, session: requests.Session | None = None) -> None:
        super().__init__(settings)
        if not settings.clair_url:
            raise InputError(
                f"{NAME}: no Clair URL configured"
                " (--clair-url, DRYDOCK_CLAIR_URL or clair.url in the policy)"
            )
        self.local = settings.clair_url == LOCAL_URL
        self._session = session
        self._client: ClairClient | None = None
        if not self.local:  # a local Clair's URL and key exist once prepare() started it
            auth = ClairAuth.load(settings.clair_psk, settings.clair_psk_file)
            self._client = ClairClient(settings.clair_url, settings.timeout, auth, session)
        self._updates: dict[str, UpdateOperation] | None = None
        self._preparing = threading.Lock()
        # Why the local Clair could not be started: every image of the run fails closed on
        # it at once, instead of each image waiting through another start that fails alike.
        self._start_failed = ""

    @property
    def client(self) -> ClairClient:
        if self._client is None:
            raise ScanError(f"{NAME}: the local Clair was not started (prepare() first)")
        return self._client

    def version(self) -> str:
        """Clair's API names no version: the pinned build when Drydock runs this Clair."""
        if self.settings.clair_state is None and not self.local:
            return "unknown (Clair v4 API)"
        try:
            return f"{locate(NAME).version} (local)"
        except ToolError:
            return "unknown (local)"

    def prepare(self, inventory: Mapping[str, frozenset[str]] | None = None) -> None:
        """Once per run: a local Clair gets the run's archive-derived feed (the one Trivy's
        DB was just built from), then read when each updater last stored data. With
        `--clair-url local` this is where that Clair is started (built on first use, which
        the run began in the background while it built the images)."""
        with self._preparing:
            if self._updates is not None:
                return
            if self._start_failed:
                raise ScanError(f"{self._start_failed} (not tried again in this run)")
            db, state = self.settings.vuln_db, self.settings.clair_state
            archive = db.archive if db is not None else None
            feed = current_feed(archive.feed_cache) if archive is not None else None
            try:
                if self.local:
                    if archive is None or feed is None:
                        raise ScanError(
                            f"{NAME}: the local Clair serves the debian-archive vulnerability"
                            " feed, and this run has none: use --vuln-db debian-archive, or"
                            " --clair-url with a Clair of your own"
                        )
                    local = ClairSettings(state_dir=state)
                    progress.info("starting the local Clair (%s)", local.resolved_state_dir())
                    try:
                        status, op, _ = start_local(local, feed, archive.mirrors.archive)
                    except ToolError as err:
                        self._start_failed = f"{NAME}: starting the local Clair: {err}"
                        raise ScanError(self._start_failed) from err
                    progress.info(
                        "local Clair ready at %s: %s data from %s",
                        status.url,
                        op.updater,
                        op.date.isoformat(timespec="seconds"),
                    )
                    auth = ClairAuth.load(psk_file=clair_service.psk_file(status.state_dir))
                    self._client = ClairClient(
                        status.url, self.settings.timeout, auth, self._session
                    )
                elif state is not None and archive is not None and feed is not None:
                    sync(ClairSettings(state_dir=state), feed, archive.mirrors.archive)
            except ToolError as err:
                raise ScanError(f"{NAME}: serving the feed to the local Clair: {err}") from err
            self._updates = self.client.update_operations()

    def scan(self, image_tar: Path, ref: str) -> ScanOutput:
        start = time.monotonic()
        self.prepare()
        manifest = self.client.registry.manifest_for_clair(ref)
        indexed = self.client.wait_indexed(self.client.index(manifest))
        raw = self.client.vulnerability_report(indexed.manifest_hash)
        seconds = time.monotonic() - start
        if raw is None:
            reason = "Clair's matcher holds no vulnerability data at all (empty database)"
            return ScanOutput(NAME, ref, (), "", seconds, blind=((RAN_CLAIR, reason),))
        report = parse_report(raw)
        max_age = dt.timedelta(hours=self.settings.max_db_age_hours)
        now = dt.datetime.now(dt.UTC)
        database, blind = judge_data(report, self._updates or {}, now, max_age)
        blinded = ((RAN_CLAIR, blind),) if blind else ()
        return ScanOutput(
            NAME, ref, findings_of(report), raw, seconds, blind=blinded, database=database
        )
