"""Deliberately bad images, built by the real Docker engine, fail the native gate by name.

Each bad image is the clean image plus one defect; the test saves it with `docker save`,
runs the native checks on the tarball and the gate on their findings, and expects the
image to fail with the named control failing (or `unverified`, when the defect hides the
evidence). The clean image, built FROM Drydock's own bookworm base with no base labels,
must pass: the base is recognised by its layers. The bypasses issue 11 measured (a held
package with a security fix, a squashed image with lying base labels, `dpkg -i`, a removed
dpkg database) each have an image here; the held package and a hung apt simulation go
through the scan stage itself (`scan_images`, apt in a real container with the network).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from native_support import PIPELINE_BASE, build_image, save_image

from pipeline.build.events import Silent
from pipeline.build.executor import build_plan
from pipeline.compliance.config import load_controls, load_policy
from pipeline.compliance.gate import evaluate
from pipeline.compliance.native import (
    NativeInputs,
    TrustedBase,
    UpdateEvidence,
    check_image_archive,
)
from pipeline.descriptors.load import load_plan
from pipeline.models.compliance import (
    RAN_DOCKLE,
    ControlResult,
    ControlStatus,
    ImageScan,
    ImageVerdict,
    Policy,
    ran_by,
)
from pipeline.models.findings import Source
from pipeline.models.provenance import OsFacts, ScanProvenance, VulnDbInfo
from pipeline.settings import Settings, default_cache
from pipeline.stages.scan import ScanConfig, ScanTarget, scan_images, trusted_bases
from pipeline.stages.scan_context import own_bases
from pipeline.tools import docker, runner

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "drydock-it/native"
CLEAN = f"{PREFIX}:clean"
UID = "10001"
NO_PENDING = UpdateEvidence("test: no pending updates (not simulated)", ())
# Only the native checks decide here: Dockle's and Trivy's evidence (and a fresh DB holding
# this OS's advisories) are taken as clean, so the controls that require them can pass.
OTHER_SCANNERS = frozenset({RAN_DOCKLE, *ran_by(Source.TRIVY)})
NOW = dt.datetime.now(dt.UTC)
CLEAN_ELSEWHERE = ScanProvenance(
    NOW, vuln_db=VulnDbInfo("test", "assumed", NOW, NOW, 1, (("debian 12", 1),))
)
APT_INSTALL = (
    "RUN apt-get update && apt-get install -y --no-install-recommends {pkg}"
    " && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin"
)


@dataclass(frozen=True)
class Bad:
    name: str
    lines: str  # Dockerfile lines added, as root, on top of the clean image
    check: str  # the native check that must fire
    controls: tuple[str, ...]  # the controls that must fail (or be unverified, below)
    files: tuple[tuple[str, bytes], ...] = ()
    as_root: bool = True
    unverified: bool = False  # the defect hides the evidence: the controls are unverified
    dockerfile: str = ""  # a whole Dockerfile instead of `lines` on the clean image


LOCAL_DEB = (
    "RUN mkdir -p /tmp/p/DEBIAN && printf 'Package: drydock-nc-probe\\nVersion: 1.0\\n"
    "Architecture: all\\nMaintainer: t <t@example.invalid>\\nDescription: probe\\n'"
    " > /tmp/p/DEBIAN/control && dpkg-deb -b /tmp/p /tmp/p.deb && dpkg -i /tmp/p.deb"
    " && rm -rf /tmp/p /tmp/p.deb"
)
SQUASHED = """FROM {clean} AS rootfs
FROM scratch
COPY --from=rootfs / /
LABEL org.opencontainers.image.base.name={base} org.opencontainers.image.base.digest={digest}
EXPOSE 5432
HEALTHCHECK --interval=30s CMD ["true"]
USER {uid}
"""


def private_key_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


BAD_IMAGES = (
    Bad("root-user", "", "DD-ROOT-USER", ("CIS-4.1", "DISA-2.2"), as_root=False),
    Bad("setuid", "RUN chmod u+s /usr/bin/env", "DD-SETUID", ("CIS-4.8", "DISA-2.3")),
    Bad(
        "private-key",
        "COPY server.key /etc/app/server.key",
        "DD-PRIVATE-KEY",
        ("CIS-4.10", "DISA-2.18"),
        files=(("server.key", private_key_pem()),),
    ),
    Bad(
        "env-secret",
        "ENV DB_PASSWORD=correct-horse-battery-staple",
        "DD-SECRET-ENV",
        ("CIS-4.10", "DISA-2.9", "DISA-2.18"),
    ),
    Bad(
        "empty-password",
        "RUN useradd -M nopass && passwd -d nopass",
        "DD-EMPTY-PASSWORD",
        ("DISA-2.16",),
    ),
    Bad(
        "duplicate-uid",
        f"RUN useradd -M -o -u {UID} twin",
        "DD-DUPLICATE-ID",
        ("DISA-2.16",),
    ),
    Bad("apt-lists", "RUN apt-get update", "DD-APT-LISTS", ("DISA-2.8",)),
    Bad(
        "sshd",
        APT_INSTALL.format(pkg="openssh-server"),
        "DD-SSHD",
        ("DISA-2.1", "DISA-2.12", "CIS-4.3"),
    ),
    Bad(
        "unsigned-apt",
        "RUN echo 'deb [trusted=yes] http://mirror.invalid/debian bookworm main'"
        " > /etc/apt/sources.list.d/extra.list",
        "DD-APT-UNSIGNED",
        ("CIS-4.11", "DISA-2.11"),
    ),
    Bad(
        "add",
        "ADD app.conf /etc/app.conf",
        "DD-ADD-INSTRUCTION",
        ("CIS-4.9", "DISA-2.4"),
        files=(("app.conf", b"listen = 8000\n"),),
    ),
    Bad("expose-80", "EXPOSE 80", "DD-PRIVILEGED-PORT", ("DISA-2.5", "DISA-2.13")),
    Bad("sudo", APT_INSTALL.format(pkg="sudo"), "DD-DENIED-PACKAGE", ("CIS-4.3", "DISA-2.12")),
    Bad("no-healthcheck", "HEALTHCHECK NONE", "DD-NO-HEALTHCHECK", ("CIS-4.6", "DISA-2.6")),
    # Issue 11's bypasses.
    Bad(
        "key-deep-in-a-file",
        "COPY bundle.pem /etc/app/bundle.pem",
        "DD-PRIVATE-KEY",
        ("CIS-4.10", "DISA-2.18"),
        files=(("bundle.pem", b"# bundle\n" + b"#" * (2 * 1024 * 1024) + private_key_pem()),),
    ),
    Bad("dpkg-i", LOCAL_DEB, "DD-LOCAL-PACKAGE", ("CIS-4.11", "DISA-2.11")),
    Bad(
        "no-dpkg-status",
        "RUN rm /var/lib/dpkg/status",
        "DD-DENIED-PACKAGE",
        ("CIS-4.3", "CIS-4.4", "DISA-2.12", "DISA-2.15"),
        unverified=True,
    ),
    Bad(
        "squashed-lying-labels",
        "",
        "DD-UNTRUSTED-BASE",
        ("CIS-4.2", "DISA-2.14", "DISA-2.17"),
        dockerfile=SQUASHED,
    ),
    Bad("expose-operator-port", "EXPOSE 8080", "DD-UNEXPECTED-PORT", ("DISA-2.13",)),
)


@pytest.fixture(scope="session")
def base() -> tuple[str, str]:
    """Drydock's own bookworm base, built by Drydock (debuerreotype) when the engine has
    none, and reused while fresh like any build."""
    if docker.inspect(PIPELINE_BASE) is None:
        plan = load_plan(ROOT / "images", ROOT / "dockerfiles").select(("base-bookworm",))
        build_plan(plan, Settings(root=ROOT, cache=default_cache(), jobs=1), Silent())
    inspected = docker.inspect(PIPELINE_BASE)
    assert inspected is not None, f"{PIPELINE_BASE} missing after the build"
    return PIPELINE_BASE, str(inspected["Id"])


@pytest.fixture(scope="module")
def trusted(base: tuple[str, str]) -> tuple[TrustedBase, ...]:
    """Drydock's own bases, as `drydock scan` finds them (the plan's, in the engine)."""
    plan = load_plan(ROOT / "images", ROOT / "dockerfiles")
    assert base[0] in own_bases(plan)
    return trusted_bases(own_bases(plan))


@pytest.fixture(scope="module")
def builder() -> docker.Builder:
    return docker.detect_builder()


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(ROOT / "scan-config" / "policy.yaml")


@pytest.fixture(scope="module")
def clean(
    base: tuple[str, str], builder: docker.Builder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    ref = base[0]
    dockerfile = f"""FROM {ref}
RUN find / -xdev -perm /6000 -type f -exec chmod a-s {{}} + \\
 && useradd --uid {UID} --user-group --no-create-home --shell /usr/sbin/nologin app \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb
EXPOSE 5432
HEALTHCHECK --interval=30s CMD ["true"]
USER {UID}
"""
    # No base labels: the base is recognised by its layers, labels are never believed.
    build_image(builder, tmp_path_factory.mktemp("clean"), CLEAN, dockerfile)
    yield CLEAN
    for bad in BAD_IMAGES:
        docker.remove(f"{PREFIX}:{bad.name}")
    docker.remove(CLEAN)


def native_verdict(
    ref: str, trusted: tuple[TrustedBase, ...], policy: Policy, work: Path
) -> tuple[ImageVerdict, set[str]]:
    archive = save_image(ref, work / "image.tar")
    result = check_image_archive(
        archive,
        policy.native,
        NativeInputs(updates=NO_PENDING, trusted_bases=trusted, target="postgresql-test"),
        image=ref,
    )
    controls = load_controls(ROOT / "scan-config" / "controls.yaml")
    scan = ImageScan(
        ref,
        findings=result.findings,
        ran=result.ran | OTHER_SCANNERS,
        os=OsFacts("debian", "12", 1),
        blind=result.blind,
    )
    report = evaluate([scan], controls, policy, (), dt.date.today(), CLEAN_ELSEWHERE)
    return report.images[0], {f.id for f in result.findings}


def test_the_clean_image_passes(
    clean: str, trusted: tuple[TrustedBase, ...], policy: Policy, tmp_path: Path
) -> None:
    verdict, found = native_verdict(clean, trusted, policy, tmp_path)
    assert found == set(), verdict.reasons
    assert verdict.passed, verdict.reasons
    statuses = {r.status for r in verdict.controls}
    assert statuses == {ControlStatus.PASS, ControlStatus.MANUAL}


@pytest.mark.parametrize("bad", BAD_IMAGES, ids=[b.name for b in BAD_IMAGES])
def test_a_bad_image_fails_naming_the_control(
    bad: Bad,
    clean: str,
    base: tuple[str, str],
    trusted: tuple[TrustedBase, ...],
    builder: docker.Builder,
    policy: Policy,
    tmp_path: Path,
) -> None:
    lines = (
        f"FROM {clean}\nUSER root\n{bad.lines}\nUSER {UID}\n"
        if bad.as_root
        else f"FROM {clean}\nUSER root\n"
    )
    if bad.dockerfile:
        lines = bad.dockerfile.format(clean=clean, base=base[0], digest=base[1], uid=UID)
    ref = f"{PREFIX}:{bad.name}"
    build_image(builder, tmp_path, ref, lines, files=dict(bad.files))
    verdict, found = native_verdict(ref, trusted, policy, tmp_path)
    log.info("%s: %s -> %s", bad.name, sorted(found), verdict.reasons)
    assert not verdict.passed
    wanted = ControlStatus.UNVERIFIED if bad.unverified else ControlStatus.FAIL
    judged = {r.control.id for r in verdict.controls if r.status == wanted}
    assert set(bad.controls) <= judged, {r.control.id: r.status for r in verdict.controls}
    if bad.unverified:
        assert bad.check not in found
    else:
        assert bad.check in found
    for control_id in bad.controls:
        assert any(control_id in reason for reason in verdict.reasons)


HELD = """FROM {clean}
USER root
RUN apt-get update -qq \\
 && v=$(apt-cache madison libssl3 \\
        | awk -F'|' '$3 ~ / bookworm\\/main / {{gsub(/ /,"",$2); print $2; exit}}') \\
 && apt-get install -y -qq --allow-downgrades "libssl3=$v" && apt-mark hold libssl3 \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb
USER {uid}
"""


def _statuses(verdict: ImageVerdict) -> dict[str, ControlResult]:
    return {r.control.id: r for r in verdict.controls}


def test_the_scan_stage_counts_a_held_fix_and_a_hung_simulation_is_unverified(
    clean: str, builder: docker.Builder, tmp_path: Path
) -> None:
    """Through `scan_images` (what `drydock scan` runs) with apt in a real container: the
    held libssl3 with a fix in bookworm-security fails CIS-4.4 and DISA-2.15 (and, built
    on Drydock's base with no label, passes the base controls); an apt simulation cut
    short by its timeout leaves CIS-4.4 unverified and no container behind."""
    held = f"{PREFIX}:held-libssl3"
    build_image(builder, tmp_path, held, HELD.format(clean=clean, uid=UID))
    config = ScanConfig.in_dir(ROOT / "scan-config")
    trusted = own_bases(load_plan(ROOT / "images", ROOT / "dockerfiles"))
    try:
        run = scan_images([ScanTarget(held)], [], config, tmp_path / "scan", trusted=trusted)
        verdict = _statuses(run.report.images[0])
        cis44 = verdict["CIS-4.4"]
        assert cis44.status == ControlStatus.FAIL, cis44.evidence
        assert any("libssl3" in e and "(held back)" in e for e in cis44.evidence)
        assert verdict["DISA-2.15"].status == ControlStatus.FAIL
        for control_id in ("CIS-4.2", "DISA-2.14", "DISA-2.17"):
            assert verdict[control_id].status == ControlStatus.PASS, verdict[control_id]

        hung = scan_images([ScanTarget(clean)], [], config, tmp_path / "hung", timeout=1.0)
        result = _statuses(hung.report.images[0])["CIS-4.4"]
        assert result.status == ControlStatus.UNVERIFIED
        assert any("apt simulation failed" in e and "timed out" in e for e in result.evidence)
        left = runner.run(
            [docker.cli(), "ps", "-aq", "--filter", f"ancestor={clean}"], timeout=30
        ).stdout
        assert left.strip() == "", f"apt simulation containers left behind: {left}"
    finally:
        docker.remove(held)
