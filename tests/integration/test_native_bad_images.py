"""Deliberately bad images, built by the real Docker engine, fail the native gate by name.

Each bad image is the clean image plus one defect; the test saves it with `docker save`,
runs the native checks on the tarball and the gate on their findings, and expects the
image to fail with the named control failing. The clean image must pass.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from native_support import base_image, build_image, save_image

from pipeline.compliance.config import load_controls, load_policy
from pipeline.compliance.gate import evaluate
from pipeline.compliance.native import NativeInputs, UpdateEvidence, check_image_archive
from pipeline.models.compliance import (
    RAN_DOCKLE,
    ControlStatus,
    ImageScan,
    ImageVerdict,
    Policy,
    ran_by,
)
from pipeline.models.findings import Source
from pipeline.models.provenance import OsFacts, ScanProvenance, VulnDbInfo
from pipeline.tools import docker

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
    controls: tuple[str, ...]  # the controls that must fail
    files: tuple[tuple[str, bytes], ...] = ()
    as_root: bool = True


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
)


@pytest.fixture(scope="session")
def base() -> tuple[str, str]:
    """The Debian base (the pipeline's, or a cached debootstrap minbase)."""
    return base_image()


@pytest.fixture(scope="module")
def builder() -> docker.Builder:
    return docker.detect_builder()


@pytest.fixture(scope="module")
def policy(base: tuple[str, str]) -> Policy:
    shipped = load_policy(ROOT / "scan-config" / "policy.yaml")
    trusted = (*shipped.native.trusted_bases, base[0].rsplit(":", 1)[0] + ":*")
    native = dataclasses.replace(shipped.native, trusted_bases=trusted)
    return dataclasses.replace(shipped, native=native)


@pytest.fixture(scope="module")
def clean(
    base: tuple[str, str], builder: docker.Builder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    ref, image_id = base
    dockerfile = f"""FROM {ref}
RUN find / -xdev -perm /6000 -type f -exec chmod a-s {{}} + \\
 && useradd --uid {UID} --user-group --no-create-home --shell /usr/sbin/nologin app \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb
EXPOSE 5432
HEALTHCHECK --interval=30s CMD ["true"]
USER {UID}
"""
    labels = {
        "org.opencontainers.image.base.name": ref,
        "org.opencontainers.image.base.digest": image_id,
    }
    build_image(builder, tmp_path_factory.mktemp("clean"), CLEAN, dockerfile, labels=labels)
    yield CLEAN
    for bad in BAD_IMAGES:
        docker.remove(f"{PREFIX}:{bad.name}")
    docker.remove(CLEAN)


def native_verdict(
    ref: str, base: tuple[str, str], policy: Policy, work: Path
) -> tuple[ImageVerdict, set[str]]:
    archive = save_image(ref, work / "image.tar")
    result = check_image_archive(
        archive,
        policy.native,
        NativeInputs(updates=NO_PENDING, known_base_digests=frozenset({base[1]})),
        image=ref,
    )
    controls = load_controls(ROOT / "scan-config" / "controls.yaml")
    scan = ImageScan(
        ref,
        findings=result.findings,
        ran=result.ran | OTHER_SCANNERS,
        os=OsFacts("debian", "12", 1),
    )
    report = evaluate([scan], controls, policy, (), dt.date.today(), CLEAN_ELSEWHERE)
    return report.images[0], {f.id for f in result.findings}


def test_the_clean_image_passes(
    clean: str, base: tuple[str, str], policy: Policy, tmp_path: Path
) -> None:
    verdict, found = native_verdict(clean, base, policy, tmp_path)
    assert found == set(), verdict.reasons
    assert verdict.passed, verdict.reasons
    statuses = {r.status for r in verdict.controls}
    assert statuses == {ControlStatus.PASS, ControlStatus.MANUAL}


@pytest.mark.parametrize("bad", BAD_IMAGES, ids=[b.name for b in BAD_IMAGES])
def test_a_bad_image_fails_naming_the_control(
    bad: Bad,
    clean: str,
    base: tuple[str, str],
    builder: docker.Builder,
    policy: Policy,
    tmp_path: Path,
) -> None:
    lines = (
        f"FROM {clean}\nUSER root\n{bad.lines}\nUSER {UID}\n"
        if bad.as_root
        else f"FROM {clean}\nUSER root\n"
    )
    ref = f"{PREFIX}:{bad.name}"
    build_image(builder, tmp_path, ref, lines, files=dict(bad.files))
    verdict, found = native_verdict(ref, base, policy, tmp_path)
    log.info("%s: %s -> %s", bad.name, sorted(found), verdict.reasons)
    assert bad.check in found
    assert not verdict.passed
    failed = {r.control.id for r in verdict.controls if r.status == ControlStatus.FAIL}
    assert set(bad.controls) <= failed
    for control_id in bad.controls:
        assert any(control_id in reason for reason in verdict.reasons)
