"""The native checks' parsers and decisions added for issue 11: apt's simulation output
(recorded from the real apt, tests/fixtures/apt), build steps from history and Dockerfile,
installs around apt, private keys anywhere in a file, allowed ports per target."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
from pathlib import Path

import pytest
from compliance_helpers import config_with, dpkg_status, file, image_fs, trusted_base

from pipeline.compliance.config import load_controls, load_policy
from pipeline.compliance.gate import evaluate
from pipeline.compliance.imagefs import KEY_SCAN_LIMIT, scan_for_key
from pipeline.compliance.native import NativeInputs, run_native_checks
from pipeline.compliance.native_base import (
    AptOutputError,
    UpdateEvidence,
    parse_apt_simulation,
    parse_local_packages,
)
from pipeline.compliance.native_build import bypasses, dockerfile_steps
from pipeline.models.compliance import (
    RAN_DOCKLE,
    ControlStatus,
    ImageScan,
    NativeSettings,
    ran_by,
    ran_native,
)
from pipeline.models.findings import Source
from pipeline.report.formats import render

APT = Path(__file__).resolve().parents[1] / "fixtures" / "apt"
SETTINGS = NativeSettings(
    allowed_ports=("5432/tcp", "8080/tcp"),
    target_ports=(("postgresql-*", ("5432/tcp",)), ("operator", ("8080/tcp",))),
)
NONE_PENDING = UpdateEvidence("test", ())
INPUTS = NativeInputs(updates=NONE_PENDING, trusted_bases=(trusted_base(),))


def found(fs: object, inputs: NativeInputs = INPUTS) -> dict[str, tuple[str, ...]]:
    result = run_native_checks(fs, SETTINGS, inputs)  # type: ignore[arg-type]
    return {f.id: f.evidence for f in result.findings}


def blind(fs: object, inputs: NativeInputs = INPUTS) -> dict[str, str]:
    return dict(run_native_checks(fs, SETTINGS, inputs).blind)  # type: ignore[arg-type]


# ------------------------------------------------------------------ apt


def test_a_held_package_with_a_security_fix_is_pending() -> None:
    updates = parse_apt_simulation((APT / "dist-upgrade-held-ignored.txt").read_text())
    assert [(u.package, u.candidate, u.security) for u in updates.pending] == [
        ("libssl3", "3.0.22-1~deb12u2", True)
    ]
    assert updates.held == ("libssl3",)
    assert updates.local == ("drydock-local-probe 1.0",)
    evidence = found(image_fs(), NativeInputs(updates=updates))["DD-PENDING-UPDATES"]
    assert "(held back)" in evidence[0]


def test_plain_dist_upgrade_only_keeps_a_held_fix_back() -> None:
    """Why the simulation ignores holds: without it apt reports nothing to upgrade."""
    kept = parse_apt_simulation((APT / "dist-upgrade-held-kept.txt").read_text())
    assert kept.pending == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "summary"),
        ("Reading package lists...\nE: Could not get lock\n", "summary"),
        (
            "Inst libssl3 [1] (2 Debian-Security:12/stable-security [amd64])\n"
            "0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n",
            "says 0 upgraded",
        ),
    ],
)
def test_apt_output_without_its_summary_proves_nothing(text: str, reason: str) -> None:
    with pytest.raises(AptOutputError, match=reason):
        parse_apt_simulation(text)


def test_local_packages_from_apt_list() -> None:
    text = (
        "bash/oldstable,now 5.2.15-2+b7 amd64 [installed]\n"
        "mytool/now 2.0-1 amd64 [installed,local]\n"
        "libssl3/oldstable-security 3.0.22 amd64 [installed,upgradable to: 3.0.23]\n"
    )
    assert parse_local_packages(text) == ("mytool 2.0-1",)


def test_a_simulation_that_failed_leaves_the_check_unverified_with_why() -> None:
    inputs = NativeInputs(updates_problem="the apt simulation failed: timed out after 1s")
    assert "timed out" in blind(image_fs(), inputs)[ran_native("DD-PENDING-UPDATES")]


def test_without_a_dpkg_database_package_checks_cannot_judge() -> None:
    fs = image_fs(None, [file("var/lib/dpkg/.wh.status")])
    why = blind(fs)
    assert "missing" in why[ran_native("DD-DENIED-PACKAGE")]
    assert "missing" in why[ran_native("DD-PENDING-UPDATES")]
    empty = image_fs(None, [file("var/lib/dpkg/status", "")])
    assert "no installed package" in blind(empty)[ran_native("DD-DENIED-PACKAGE")]
    assert ran_native("DD-DENIED-PACKAGE") not in blind(
        image_fs(None, [file("var/lib/dpkg/status", dpkg_status(("libc6", "2.36")))])
    )


# ------------------------------------------------------------------ build steps


DOCKERFILE = """# syntax comment
FROM drydock/debian:bookworm
RUN apt-get update \\
    # a comment inside
 && apt-get install -y libpq5
ADD app.tar /opt/
COPY --chown=26 x /x
"""


def test_dockerfile_steps_join_continuations_and_drop_comments() -> None:
    steps = dockerfile_steps(DOCKERFILE)
    assert [(s.where, s.instruction) for s in steps] == [
        ("Dockerfile:2", "FROM"),
        ("Dockerfile:3", "RUN"),
        ("Dockerfile:6", "ADD"),
        ("Dockerfile:7", "COPY"),
    ]
    assert "apt-get install" in steps[1].text


def test_a_squashed_history_without_a_dockerfile_is_unverified() -> None:
    doc = config_with()
    doc["history"] = [{"created_by": "", "comment": "merge"}]
    doc["rootfs"] = {"type": "layers", "diff_ids": ["sha256:" + "2" * 64]}
    why = blind(image_fs(doc))
    for check in ("DD-ADD-INSTRUCTION", "DD-UPDATE-ALONE"):
        assert "no Dockerfile" in why[ran_native(check)]
    with_file = NativeInputs(
        updates=NONE_PENDING, dockerfile=DOCKERFILE, trusted_bases=(trusted_base(),)
    )
    assert found(image_fs(doc), with_file)["DD-ADD-INSTRUCTION"] == (
        "Dockerfile:6: ADD app.tar /opt/",
    )
    fs = image_fs(doc)
    none = dataclasses.replace(fs, config=dataclasses.replace(fs.config, history=()))
    assert "no history" in blind(none)[ran_native("DD-UPDATE-ALONE")]


def test_the_dockerfile_is_judged_besides_a_complete_history() -> None:
    text = "FROM x\nRUN apt-get update\nRUN apt-get install -y y\n"
    inputs = NativeInputs(updates=NONE_PENDING, dockerfile=text, trusted_bases=(trusted_base(),))
    assert found(image_fs(), inputs)["DD-UPDATE-ALONE"] == ("Dockerfile:2: RUN apt-get update",)


@pytest.mark.parametrize(
    ("step", "what"),
    [
        ("/bin/sh -c dpkg -i /tmp/x.deb", "dpkg installs a file"),
        ("RUN dpkg --install ./x.deb # buildkit", "dpkg installs a file"),
        ("RUN dpkg -Ri /debs", "dpkg installs a file"),
        ("/bin/sh -c apt-get install -y ./vendor/tool_1.0_amd64.deb", "apt installs a .deb file"),
        ("RUN curl -fsSL https://get.example | sh", "a downloaded script is piped to a shell"),
        ("RUN wget -qO- https://x.example/i.sh | sudo bash -", "piped to a shell"),
        ("RUN pip install --trusted-host pypi.example x", "pip is told to trust a host"),
        ("RUN pip install -i http://pypi.example/simple x", "plain-http index"),
        ("RUN pip install --index-url=http://pypi.example/simple x", "plain-http index"),
        ("ENV PIP_INDEX_URL=http://pypi.example/simple", "plain-http index"),
    ],
)
def test_installs_around_apt_are_named(step: str, what: str) -> None:
    assert any(what in w for w in bypasses(step))
    doc = config_with()
    doc["history"].append({"created_by": step})
    assert "DD-LOCAL-PACKAGE" in found(image_fs(doc))


@pytest.mark.parametrize(
    "step",
    [
        "/bin/sh -c apt-get install -y --no-install-recommends libpq5",
        "RUN dpkg-query -W -f '${Package}' && dpkg --compare-versions 1 lt 2",
        "RUN curl -fsSLo /tmp/x https://example.org/x && sha256sum -c x.sha256",
        "RUN pip install --index-url https://pypi.example/simple x",
        "RUN dpkg --configure -a",
        "RUN dpkg-deb -b /tmp/p /tmp/p.deb && dpkg-query -W -f x && dpkg --print-architecture",
        "RUN rm -rf /var/lib/apt/lists/* /var/log/dpkg.log; dpkg-divert --add --rename /x",
    ],
)
def test_ordinary_steps_are_not_bypasses(step: str) -> None:
    assert list(bypasses(step)) == []


def test_a_package_no_archive_offers_is_named() -> None:
    updates = UpdateEvidence("sim", (), local=("mytool 2.0-1",))
    evidence = found(image_fs(), NativeInputs(updates=updates))["DD-LOCAL-PACKAGE"]
    assert evidence == ("package mytool 2.0-1 is installed but no archive offers it [sim]",)


# ------------------------------------------------------------------ keys, ports


def test_a_private_key_deep_inside_a_file_is_found() -> None:
    body = base64.encodebytes(bytes(range(256)))
    pem = b"-----BEGIN RSA PRIVATE KEY-----\n" + body + b"-----END RSA PRIVATE KEY-----\n"
    bundle = b"# certificates\n" + b"x" * (3 * 1024 * 1024) + pem
    assert "DD-PRIVATE-KEY" in found(image_fs(None, [file("etc/ssl/bundle.pem", bundle)]))
    public = b"y" * 100 + b"-----BEGIN PUBLIC KEY-----\n" + body
    assert "DD-PRIVATE-KEY" not in found(image_fs(None, [file("etc/ssl/pub.pem", public)]))
    # A library carrying the marker as a string constant (libgnutls does) holds no key.
    library = b"\x7fELF" + b"\0" * 5000 + b"-----BEGIN RSA PRIVATE KEY-----\0-----END"
    assert "DD-PRIVATE-KEY" not in found(image_fs(None, [file("usr/lib/libx.so", library)]))


def test_the_key_scan_finds_a_marker_split_across_chunks_and_stops_at_its_limit() -> None:
    marker = b"-----BEGIN OPENSSH PRIVATE KEY-----\n" + b"b3BlbnNzaC1rZXktdjE" * 8
    head = b"a" * 10
    split = io.BytesIO(b"b" * (1024 * 1024 - 10 - 5) + marker)
    assert scan_for_key(head, split)
    beyond = io.BytesIO(b"c" * (KEY_SCAN_LIMIT // 64) + marker)
    assert not scan_for_key(b"", beyond, limit=KEY_SCAN_LIMIT // 64)


@pytest.mark.parametrize(
    ("target", "port", "unexpected"),
    [
        ("postgresql-15-minimal-bookworm", "5432/tcp", False),
        ("postgresql-15-minimal-bookworm", "8080/tcp", True),
        ("operator", "8080/tcp", False),
        ("operator", "5432/tcp", True),
        ("", "8080/tcp", False),  # no target: the global list
    ],
)
def test_allowed_ports_per_target(target: str, port: str, unexpected: bool) -> None:
    fs = image_fs(config_with(ExposedPorts={port: {}}))
    inputs = NativeInputs(updates=NONE_PENDING, target=target, trusted_bases=(trusted_base(),))
    assert ("DD-UNEXPECTED-PORT" in found(fs, inputs)) is unexpected


# ------------------------------------------------------------------ DISA-2.16 is partial


@pytest.mark.parametrize("fmt", ["json", "sarif", "markdown", "junit", "html"])
@pytest.mark.parametrize("passing", [True, False])
def test_every_report_says_the_stig_is_not_evaluated(fmt: str, passing: bool) -> None:
    """Passing or failing, DISA-2.16's result starts with what it does not check; SARIF
    carries only alerts, so it says so (in the result and its rule) when 2.16 fails."""
    scan_config = Path(__file__).resolve().parents[2] / "scan-config"
    controls = load_controls(scan_config / "controls.yaml")
    policy = load_policy(scan_config / "policy.yaml")
    extra = [] if passing else [[file("etc/shadow", "root::19000:0:99999:7:::\n")]]
    native = run_native_checks(image_fs(None, *extra), policy.native, INPUTS)
    ran = native.ran | {RAN_DOCKLE, *ran_by(Source.TRIVY)}
    scan = ImageScan("drydock/test:1", findings=native.findings, ran=ran)
    report = evaluate([scan], controls, policy, (), dt.date(2026, 12, 2))
    (result,) = [r for r in report.images[0].controls if r.control.id == "DISA-2.16"]
    assert result.status is (ControlStatus.PASS if passing else ControlStatus.FAIL)
    assert result.evidence[0].startswith("PARTIAL: the STIG/SRG is not evaluated")
    if fmt != "sarif" or not passing:
        assert "the STIG/SRG is not evaluated" in render(report, fmt)
