"""Real Trivy and real Dockle on a real image built by the real Docker engine.

A vulnerability is planted, not hoped for: the test reads the versions dpkg installed in
the image, writes advisories for two of those packages (one fixed in a higher version, one
with no fix), builds a Trivy DB from them with the real trivy-db builder, pushes it to the
local registry, and checks that Trivy reports exactly those findings. Nothing is skipped:
a missing engine, registry or tool fails the test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.models.findings import Kind, Severity, Source, Status
from pipeline.scan.base import ScanSettings
from pipeline.scan.dockle import DockleScanner
from pipeline.scan.sbom import parse_cyclonedx
from pipeline.scan.trivy import TrivyScanner
from pipeline.scan.trivydb import Advisory, ensure_local_db
from pipeline.tools import trivydb as trivydb_tool
from pipeline.tools.runner import run

pytestmark = pytest.mark.integration

LOCAL_BASE = "drydock-test/debian:bookworm-minbase"
OTHER_BASES = ("debian:bookworm-slim", "debian:bookworm")
TARGET = "drydock-test/scan-target:1"
# Packages whose binary and source names and versions agree, so the planted advisory
# (filed under the source package) and the finding (named by binary) line up.
PREFERRED = ("sed", "grep", "gzip", "hostname", "debianutils", "diffutils", "tar")


@dataclass(frozen=True)
class _Registry:
    registry: str


def registry() -> str:
    return os.environ.get("DRYDOCK_REGISTRY_ADDR", "127.0.0.1:5000")


def _image_exists(ref: str) -> bool:
    return run(["docker", "image", "inspect", ref], timeout=60, check=False).returncode == 0


def _debian_mirror() -> str:
    """The first bookworm (non-security) mirror in this host's apt sources."""
    candidates: list[str] = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        uris, suites = "", ""
        for line in [*path.read_text().splitlines(), ""]:
            if line.startswith("URIs:"):
                uris = line.split(":", 1)[1].strip()
            elif line.startswith("Suites:"):
                suites = line.split(":", 1)[1]
            elif not line.strip():
                if "bookworm" in suites.split() and "security" not in uris:
                    candidates += uris.split()
                uris, suites = "", ""
    sources_list = Path("/etc/apt/sources.list")
    if sources_list.exists():
        for line in sources_list.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == "bookworm":
                candidates.append(parts[1])
    return candidates[0] if candidates else "http://deb.debian.org/debian"


@pytest.fixture(scope="session")
def debian_base(pytestconfig: pytest.Config) -> str:
    """A Debian bookworm image in the local engine; made with debootstrap when none exists."""
    for ref in (LOCAL_BASE, *OTHER_BASES):
        if _image_exists(ref):
            return ref
    cache = pytestconfig.cache.mkdir("drydock-debian-base") if pytestconfig.cache else None
    assert cache is not None, "pytest's cache provider is needed to keep the debootstrap rootfs"
    tarball = cache / "bookworm-minbase.tar"
    if not tarball.exists():
        rootfs = cache / "rootfs"
        shutil.rmtree(rootfs, ignore_errors=True)
        run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), _debian_mirror()],
            timeout=1800,
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = tarball.with_suffix(".partial")
        run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], timeout=900)
        partial.rename(tarball)
        shutil.rmtree(rootfs, ignore_errors=True)
    run(
        ["docker", "import", "--change", 'CMD ["/bin/bash"]', str(tarball), LOCAL_BASE], timeout=900
    )
    return LOCAL_BASE


@pytest.fixture(scope="session")
def target_image(debian_base: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny image that runs as root and keeps a password in its environment, saved to a tar."""
    context = tmp_path_factory.mktemp("scan-target")
    (context / "Dockerfile").write_text(
        f'FROM {debian_base}\nENV MYSQL_PASSWD=hunter2\nUSER root\nCMD ["/bin/bash"]\n'
    )
    run(
        ["docker", "build", "--tag", TARGET, str(context)],
        timeout=600,
        env={"DOCKER_BUILDKIT": "0"},
    )
    tar = context / "image.tar"
    run(["docker", "save", "--output", str(tar), TARGET], timeout=600)
    return tar


def installed(image: str) -> dict[str, str]:
    """binary package -> version, for packages whose source name and version are the same."""
    out = run(
        [
            "docker",
            "run",
            "--rm",
            "--network=none",
            "--entrypoint",
            "dpkg-query",
            image,
            "-W",
            "-f",
            "${Package}\t${Version}\t${source:Package}\t${source:Version}\n",
        ],
        timeout=120,
    ).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return {r[0]: r[1] for r in rows if len(r) == 4 and r[0] == r[2] and r[1] == r[3]}


def test_trivy_finds_the_planted_vulnerabilities(target_image: Path, tmp_path: Path) -> None:
    packages = installed(TARGET)
    fixed_pkg, unfixed_pkg = [p for p in PREFERRED if p in packages][:2]
    fixed_in = packages[fixed_pkg] + "+drydock1"  # sorts above the installed version
    advisories = (
        Advisory("CVE-2099-0001", fixed_pkg, "bookworm", fixed_in, "high"),
        Advisory("CVE-2099-0002", unfixed_pkg, "bookworm", "", "medium"),
    )
    repository = f"drydock-test/trivy-db-{uuid.uuid4().hex[:8]}"
    db_ref = ensure_local_db(_Registry(registry()), advisories, repository=repository)
    assert db_ref.startswith(f"{registry()}/{repository}:2-")
    assert trivydb_tool.exists(db_ref, plain_http=True)
    assert ensure_local_db(_Registry(registry()), advisories, repository=repository) == db_ref

    settings = ScanSettings(cache_dir=tmp_path / "trivy-cache", db_repository=db_ref, timeout=900)
    out = TrivyScanner(settings).scan(target_image, TARGET)
    vulns = {f.id: f for f in out.findings if f.kind is Kind.VULNERABILITY}
    assert set(vulns) == {"CVE-2099-0001", "CVE-2099-0002"}
    fixed = vulns["CVE-2099-0001"]
    assert (fixed.source, fixed.package, fixed.installed_version, fixed.fixed_version) == (
        Source.TRIVY,
        fixed_pkg,
        packages[fixed_pkg],
        fixed_in,
    )
    assert fixed.status is Status.FIXED and fixed.severity is Severity.HIGH
    assert "debian 12" in fixed.target
    unfixed = vulns["CVE-2099-0002"]
    assert (unfixed.package, unfixed.installed_version, unfixed.fixed_version) == (
        unfixed_pkg,
        packages[unfixed_pkg],
        "",
    )
    assert not unfixed.fixable and unfixed.severity is Severity.MEDIUM
    # Trivy's image-config checks see the root user and the password in ENV.
    misconfigs = {f.id: f for f in out.findings if f.kind is Kind.MISCONFIGURATION}
    assert misconfigs["DS-0002"].severity is Severity.HIGH
    assert any("MYSQL_PASSWD" in e for e in misconfigs["DS-0031"].evidence)

    hiding = TrivyScanner(
        ScanSettings(cache_dir=settings.cache_dir, db_repository=db_ref, ignore_unfixed=True)
    )
    shown = {
        f.id for f in hiding.scan(target_image, TARGET).findings if f.kind is Kind.VULNERABILITY
    }
    assert shown == {"CVE-2099-0001"}

    sbom = parse_cyclonedx(hiding.sbom(target_image))
    versions = {c.name: c.version for c in sbom.components}
    assert versions[fixed_pkg] == packages[fixed_pkg]
    assert any(c.type == "operating-system" and c.name == "debian" for c in sbom.components)


def test_dockle_reports_root_user_and_env_secret(target_image: Path, tmp_path: Path) -> None:
    out = DockleScanner(ScanSettings(cache_dir=tmp_path, timeout=300)).scan(target_image, TARGET)
    by_id = {f.id: f for f in out.findings}
    assert by_id["CIS-DI-0001"].evidence == ("Last user should not be root",)
    assert by_id["CIS-DI-0001"].severity is Severity.MEDIUM  # Dockle WARN
    assert by_id["CIS-DI-0006"].severity is Severity.LOW  # no HEALTHCHECK (INFO)
    assert any("MYSQL_PASSWD" in e for e in by_id["CIS-DI-0010"].evidence)
    assert by_id["CIS-DI-0010"].severity is Severity.HIGH  # FATAL
    assert "CIS-DI-0005" in by_id  # DOCKER_CONTENT_TRUST pinned to "0"
    trusted = DockleScanner(ScanSettings(cache_dir=tmp_path, content_trust=True))
    assert "CIS-DI-0005" not in {f.id for f in trusted.scan(target_image, TARGET).findings}


def test_a_new_db_is_used_even_with_a_warm_cache(target_image: Path, tmp_path: Path) -> None:
    packages = installed(TARGET)
    pkg = next(p for p in PREFERRED if p in packages)
    repository = f"drydock-test/trivy-db-{uuid.uuid4().hex[:8]}"
    seen = []
    for vuln_id in ("CVE-2099-0011", "CVE-2099-0012"):
        advisory = Advisory(vuln_id, pkg, "bookworm", packages[pkg] + "+drydock1", "low")
        db_ref = ensure_local_db(_Registry(registry()), (advisory,), repository=repository)
        settings = ScanSettings(cache_dir=tmp_path / "shared-cache", db_repository=db_ref)
        out = TrivyScanner(settings).scan(target_image, TARGET)
        seen.append({f.id for f in out.findings if f.kind is Kind.VULNERABILITY})
    assert seen == [{"CVE-2099-0011"}, {"CVE-2099-0012"}]


def test_cli_builds_and_pushes_a_db(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipeline.cli import main

    advisories = tmp_path / "advisories.yaml"
    advisories.write_text("advisories:\n  - {id: CVE-2099-0021, package: sed, urgency: low}\n")
    ref = f"{registry()}/drydock-test/cli-db-{uuid.uuid4().hex[:8]}:2"
    args = ["trivy-db", "build-local", "--advisories", str(advisories), "--push", ref]
    result = CliRunner().invoke(main, [*args, "--workdir", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    assert f"pushed {ref}" in result.output
    assert (tmp_path / "work" / "db.tar.gz").is_file()
    assert trivydb_tool.exists(ref, plain_http=True)
