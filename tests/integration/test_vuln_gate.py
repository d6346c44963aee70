"""The whole gate (Dockle, Trivy, native checks) through `drydock scan`, offline, in
`debian-archive` mode, on real images built with the real engine (issue 11's "done when"):

  held    the bookworm operand with one package held back at the point release's version
          while bookworm-security has a fix: fails CIS-4.4 and DISA-2.15 with exactly the
          CVE ids Debian's changelog of that fix names, and with the pending-updates check
          (apt's simulation ignores the hold);
  clean   the operand as Drydock builds it: passes the whole gate (no false alarm);
  nodpkg  the operand with /var/lib/dpkg/status removed: nothing can see its packages, so
          the package controls are unverified (blocking), never pass;
  eol     PostgreSQL 13 on bullseye, as the matrix built it before both ended: fails
          DISA-2.15 (Trivy's end of support for Debian 11, DD-POSTGRESQL-EOL).

The expected CVE ids come from an independent path: apt inside a container picks a package
whose -security version is newer than the point release, downloads that .deb and reads its
changelog with dpkg-deb. The feed is updated once with the network; the scan itself runs in
a network namespace of its own (`unshare --net`), so it can only use what was cached.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.build.events import Silent
from pipeline.build.executor import BuildResult, build_plan
from pipeline.descriptors.load import load_plan
from pipeline.scan.vulndb import archive_feed
from pipeline.settings import Settings, default_cache
from pipeline.stages.scan import image_inventory
from pipeline.stages.vulndb import archive_settings
from pipeline.tools import docker
from pipeline.tools.runner import run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DRYDOCK = str(Path(sys.executable).parent / "drydock")
CVE = re.compile(r"CVE-\d{4}-\d{4,}")
# Packages of the operand that ship their own changelog; the first with a pending security
# fix over the point release is held back. If none has one, the premise is gone: fail.
CANDIDATES = ("libssl3", "zlib1g", "libzstd1", "libpcre2-8-0", "libxml2", "libsqlite3-0")
ORACLE = r"""
set -e
apt-get update -qq >/dev/null
version() { # version PACKAGE SUITE-REGEX: the version apt-cache madison lists for that suite
  apt-cache madison "$1" | awk -F'|' -v s="$2" '$3 ~ s {gsub(/ /,"",$2); print $2; exit}'
}
for p in "$@"; do
  main=$(version "$p" ' bookworm/main ')
  sec=$(version "$p" 'bookworm-security/main')
  if [ -n "$main" ] && [ -n "$sec" ] && dpkg --compare-versions "$sec" gt "$main"; then
    cd /tmp && apt-get download -q "$p=$sec" >/dev/null 2>&1
    echo "$p $main $sec"
    dpkg-deb --fsys-tarfile /tmp/"$p"_*.deb \
      | tar -xO "./usr/share/doc/$p/changelog.Debian.gz" | gzip -dc
    exit 0
  fi
done
exit 3
"""


@dataclass(frozen=True)
class Held:
    package: str
    point: str  # the point release's version, installed and held
    fixed: str  # the -security version
    cve_ids: frozenset[str]  # named by the changelog entries newer than `point`


def _build(tag: str, dockerfile: str, context: Path) -> str:
    (context / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    run(["docker", "build", "-q", "-t", tag, str(context)], timeout=900)
    inspected = docker.inspect(tag)
    assert inspected is not None, tag
    return str(inspected["Id"])


@pytest.fixture(scope="module")
def clean(foundation_build: BuildResult) -> str:
    return foundation_build.images["postgresql-15-minimal-bookworm"].image_id


@pytest.fixture(scope="module")
def held(clean: str) -> Held:
    argv = ["docker", "run", "--rm", "--user", "0", "--entrypoint", "sh", clean]
    done = run(
        [*argv, "-c", ORACLE, "oracle", *CANDIDATES],
        timeout=600,
        check=False,
    )
    if done.returncode == 3:
        pytest.fail(f"none of {CANDIDATES} has a bookworm-security fix over the point release")
    assert done.returncode == 0, done.stderr
    head, _, changelog = done.stdout.partition("\n")
    package, point, fixed = head.split()
    newer = changelog.split(f" ({point}) ", 1)[0]
    assert newer != changelog, f"{point} not in the changelog of {package} {fixed}"
    return Held(package, point, fixed, frozenset(CVE.findall(newer)))


@pytest.fixture(scope="module")
def images(
    clean: str, held: Held, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """name -> image id of the four images, built on the real engine."""
    tag = f"drydock-it/vulngate-{uuid.uuid4().hex[:8]}"
    work = tmp_path_factory.mktemp("vulngate")
    built = {"clean": clean}
    (work / "held").mkdir()
    built["held"] = _build(
        f"{tag}:held",
        f"FROM {clean}\nUSER 0\n"
        f"RUN apt-get update && apt-get install -y --allow-downgrades --no-install-recommends"
        f" {held.package}={held.point} && apt-mark hold {held.package}"
        " && rm -rf /var/lib/apt/lists/*\nUSER 26:26\n",
        work / "held",
    )
    (work / "nodpkg").mkdir()
    built["nodpkg"] = _build(
        f"{tag}:nodpkg",
        f"FROM {clean}\nUSER 0\nRUN rm -f /var/lib/dpkg/status\nUSER 26:26\n",
        work / "nodpkg",
    )
    # The matrix as it was before PostgreSQL 13 and Debian 11 ended: still buildable.
    settings = Settings(root=ROOT, cache=default_cache(), jobs=2)
    then = load_plan(ROOT / "images", ROOT / "dockerfiles", today=dt.date(2025, 1, 1))
    old = build_plan(then.select(("postgresql-13-minimal-bullseye",)), settings, Silent())
    built["eol"] = old.images["postgresql-13-minimal-bullseye"].image_id
    yield built
    for name in ("held", "nodpkg"):
        docker.remove(f"{tag}:{name}")


@pytest.fixture(scope="module")
def report(images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Update the feed for these images (network), then scan all four offline."""
    settings = Settings(root=ROOT, cache=default_cache(), jobs=2)
    plan = load_plan(settings.descriptors, settings.templates)
    archive_feed(
        archive_settings(settings, plan, update=True), image_inventory(list(images.values()))
    )
    work = tmp_path_factory.mktemp("vulngate-report")
    policy = work / "policy.yaml"
    # Severity comes from the upload's urgency; what is tested is the evidence, so every
    # fixable finding counts (a clean image has none at any severity).
    text = (ROOT / "scan-config" / "policy.yaml").read_text(encoding="utf-8")
    policy.write_text(text.replace("vulnerability_severity: HIGH", "vulnerability_severity: LOW"))
    out = work / "report.json"
    argv = ["unshare", "--net", "--", DRYDOCK, "scan", *images.values(), "--jobs", "2"]
    argv += ["--vuln-db", "debian-archive", "--offline", "--policy", str(policy)]
    argv += ["--format", "json", "--output", str(out)]
    done = run(argv, timeout=1800, check=False, cwd=ROOT)
    assert done.returncode == 1, done.stderr[-3000:]  # the gate failed, no scanner did
    doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    by_id = {v["digest"]: v for v in doc["images"]}
    doc["by_name"] = {name: by_id[image] for name, image in images.items()}
    return doc


def _control(image: dict[str, Any], control: str) -> dict[str, Any]:
    return next(c for c in image["controls"] if c["id"] == control)


def test_the_held_package_fails_cis_4_4_with_the_cve_ids_of_its_fix(
    report: dict[str, Any], held: Held
) -> None:
    image = report["by_name"]["held"]
    assert image["status"] == "fail"
    found = {
        f["id"]
        for f in image["findings"]
        if f["kind"] == "vulnerability" and f["package"] == held.package
    }
    assert found == held.cve_ids, f"{held.package} {held.point} -> {held.fixed}"
    assert all(
        f["installed_version"] == held.point
        for f in image["findings"]
        if f["package"] == held.package
    )
    for control in ("CIS-4.4", "DISA-2.15"):
        result = _control(image, control)
        assert result["status"] == "fail", result
        # The CVE ids of the fix, and the pending-updates check, which counts held packages.
        assert set(result["findings"]) == held.cve_ids | {"DD-PENDING-UPDATES"}, result
        assert any(held.package in e and "(held back)" in e for e in result["evidence"])


def test_the_clean_image_passes_the_whole_gate(report: dict[str, Any]) -> None:
    image = report["by_name"]["clean"]
    assert image["status"] == "pass", image["reasons"]
    for control in ("CIS-4.4", "DISA-2.15"):
        result = _control(image, control)
        assert result["status"] == "pass"
        assert "trivy:vulnerability" in result["evidence"][-1]
    assert any(
        "dockle DKL-DI-0006 not counted" in e for e in _control(image, "DISA-2.15")["evidence"]
    )


def test_without_a_package_database_the_package_controls_are_unverified(
    report: dict[str, Any],
) -> None:
    image = report["by_name"]["nodpkg"]
    assert image["status"] == "fail"
    assert image["os"]["packages"] == 0
    for control in ("CIS-4.3", "CIS-4.4", "DISA-2.12", "DISA-2.15"):
        result = _control(image, control)
        assert result["status"] == "unverified", control
        assert any("no package database" in e for e in result["evidence"]), control


def test_an_image_past_end_of_life_fails_disa_2_15(report: dict[str, Any]) -> None:
    image = report["by_name"]["eol"]
    assert image["os"]["platform"] == "debian 11" and image["os"]["end_of_support"]
    result = _control(image, "DISA-2.15")
    assert result["status"] == "fail"
    assert {"DD-POSTGRESQL-EOL", f"EOSL-debian-{image['os']['version']}"} <= set(result["findings"])


def test_the_report_says_which_db_and_how_old(report: dict[str, Any]) -> None:
    db = report["provenance"]["vulnerability_db"]
    assert db["source"] == "debian-archive"
    assert 0 <= db["age_hours"] <= db["max_age_hours"] == 36.0
    assert db["platforms"]["debian 12"] > 0 and db["platforms"]["debian 11"] > 0
    assert any(d.startswith("bookworm-security: Release of") for d in db["detail"])
    names = {s["name"]: s["version"] for s in report["provenance"]["scanners"]}
    assert set(names) == {"dockle", "trivy"} and all(names.values())
