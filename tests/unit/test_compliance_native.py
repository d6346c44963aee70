"""Native checks on synthetic images: the clean one passes, each defect is named."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from compliance_helpers import (
    BASE_DIGEST,
    PASSWD,
    Entry,
    config_with,
    directory,
    dpkg_status,
    file,
    image_fs,
    trusted_base,
    whiteout,
)

from pipeline.compliance.imagefs import ImageFilesystem
from pipeline.compliance.native import (
    CHECKS,
    NativeInputs,
    UpdateEvidence,
    catalogue,
    parse_apt_simulation,
    run_native_checks,
)
from pipeline.compliance.native_base import PendingUpdate, TrustedBase
from pipeline.models.compliance import NativeSettings, ran_native
from pipeline.models.findings import Kind, Source

SETTINGS = NativeSettings(
    denied_packages=("openssh-server", "sudo", "gcc", "make"),
    flavour_denied_packages=(("minimal", ("curl",)),),
    allowed_ports=("5432/tcp",),
)
NO_UPDATES = UpdateEvidence("apt-get -s upgrade at build", ())
INPUTS = NativeInputs(updates=NO_UPDATES, trusted_bases=(trusted_base(),))
PG_EOL = ((13, dt.date(2025, 11, 13)), (15, dt.date(2027, 11, 11)))


def ids(fs: ImageFilesystem, inputs: NativeInputs | None = None, **settings: Any) -> set[str]:
    chosen = NativeSettings(**{**SETTINGS.__dict__, **settings})
    result = run_native_checks(fs, chosen, inputs or INPUTS)
    for finding in result.findings:
        assert finding.source == Source.NATIVE
        assert finding.kind == Kind.CHECKPOINT
        assert finding.evidence, f"{finding.id} has no evidence"
    return {f.id for f in result.findings}


def evidence(fs: ImageFilesystem, check_id: str, **settings: Any) -> tuple[str, ...]:
    chosen = NativeSettings(**{**SETTINGS.__dict__, **settings})
    result = run_native_checks(fs, chosen, INPUTS)
    return next(f.evidence for f in result.findings if f.id == check_id)


def test_the_clean_image_has_no_finding_and_every_check_ran() -> None:
    inputs = NativeInputs(
        updates=NO_UPDATES,
        trusted_bases=(trusted_base(),),
        postgres_eol=PG_EOL,
        today=dt.date(2026, 12, 2),
    )
    result = run_native_checks(image_fs(), SETTINGS, inputs)
    assert result.findings == ()
    assert result.ran == {ran_native(i) for i in catalogue()}


def test_check_ids_are_unique_and_titled() -> None:
    all_ids = [spec.id for check in CHECKS for spec in check.specs]
    assert len(all_ids) == len(set(all_ids))
    assert all(i.startswith("DD-") and catalogue()[i].title for i in all_ids)


def test_without_update_evidence_the_pending_updates_check_does_not_run() -> None:
    result = run_native_checks(image_fs(), SETTINGS, NativeInputs())
    assert ran_native("DD-PENDING-UPDATES") not in result.ran
    assert ran_native("DD-SETUID") in result.ran


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", "DD-ROOT-USER"),
        ("root", "DD-ROOT-USER"),
        ("0", "DD-ROOT-USER"),
        ("0:0", "DD-ROOT-USER"),
        ("4242", "DD-USER-UNKNOWN"),
        ("nobody", "DD-USER-UNKNOWN"),
        ("postgres", "DD-USER-NOT-NUMERIC"),
    ],
)
def test_user(user: str, expected: str) -> None:
    assert ids(image_fs(config_with(User=user))) == {expected}


def test_named_user_passes_when_numeric_is_not_required() -> None:
    fs = image_fs(config_with(User="postgres:postgres"))
    assert ids(fs, require_numeric_user=False) == set()


def test_empty_password_and_duplicate_ids() -> None:
    fs = image_fs(
        None,
        [
            file("etc/shadow", "root:*:1::::::\nnopass::1::::::\n"),
            file("etc/passwd", PASSWD + "nopass:x:26:26::/:/bin/sh\n"),
            file("etc/group", "root:x:0:\npostgres:x:26:\nother:x:26:\n"),
        ],
    )
    assert ids(fs) == {"DD-EMPTY-PASSWORD", "DD-DUPLICATE-ID"}
    assert evidence(fs, "DD-EMPTY-PASSWORD") == ("/etc/shadow: nopass has an empty password",)
    dup = evidence(fs, "DD-DUPLICATE-ID")
    assert "/etc/passwd: uid 26 is shared by postgres, nopass" in dup
    assert "/etc/group: gid 26 is shared by postgres, other" in dup


def test_setuid_and_setgid_files_and_the_allow_list() -> None:
    fs = image_fs(
        None,
        [
            Entry("usr/bin/su", data=b"x", mode=0o4755),
            Entry("usr/bin/chage", data=b"x", mode=0o2755),
            Entry("usr/bin/gone", data=b"x", mode=0o4755),
        ],
        [whiteout("usr/bin/gone")],
    )
    assert evidence(fs, "DD-SETUID") == (
        "/usr/bin/chage 2755 (setgid)",
        "/usr/bin/su 4755 (setuid)",
    )
    assert "DD-SETUID" not in ids(fs, setuid_allow=("/usr/bin/*",))


def test_world_writable_paths() -> None:
    fs = image_fs(
        None,
        [
            directory("var/tmp", 0o1777),
            directory("srv/drop", 0o777),
            file("srv/log.txt", "x", 0o666),
            Entry("srv/link", kind="symlink", mode=0o777, linkname="/tmp"),
        ],
    )
    assert evidence(fs, "DD-WORLD-WRITABLE") == (
        "/srv/drop/ 0777 (directory without sticky bit)",
        "/srv/log.txt 0666 (world-writable file)",
    )


def test_private_keys_and_credential_files() -> None:
    key = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    )
    fs = image_fs(
        None,
        [
            file("etc/ssl/private/server.key", key, 0o600),
            file("root/.ssh/id_rsa", "whatever"),
            file("opt/app/vpn.ovpn", "client"),
            file("etc/ssl/certs/ca.pem", "-----BEGIN CERTIFICATE-----\n"),
        ],
    )
    assert ids(fs) == {"DD-PRIVATE-KEY", "DD-CREDENTIAL-FILE"}
    assert evidence(fs, "DD-PRIVATE-KEY") == ("/etc/ssl/private/server.key (PEM private key)",)
    assert evidence(fs, "DD-CREDENTIAL-FILE") == ("/opt/app/vpn.ovpn", "/root/.ssh/id_rsa")
    assert ids(fs, secret_files_allow=("/etc/ssl/*", "/root/*", "/opt/*")) == set()


@pytest.mark.parametrize(
    ("env", "found"),
    [
        (["DB_PASSWORD=hunter2"], True),
        (["aws_secret_access_key=abc"], True),
        (["GITHUB_TOKEN=ghp_x"], True),
        (["URL=postgres://app:s3cret@db:5432/app"], True),
        (["PASSWORD_FILE="], False),
        (["GPG_KEY=ABCDEF"], False),
        (["PGPASSWORD=$FROM_RUNTIME"], False),
        (["PATH=/usr/bin", "LANG=C.UTF-8"], False),
    ],
)
def test_secrets_in_env(env: list[str], found: bool) -> None:
    fs = image_fs(config_with(Env=env))
    assert ("DD-SECRET-ENV" in ids(fs)) is found
    if found:
        assert all("*******" in e for e in evidence(fs, "DD-SECRET-ENV"))
        assert not any("hunter2" in e or "s3cret" in e for e in evidence(fs, "DD-SECRET-ENV"))


def test_secrets_in_history_build_args_and_classic_env() -> None:
    doc = config_with()
    doc["history"] += [
        {"created_by": "RUN |1 DB_PASSWORD=hunter2 /bin/sh -c make # buildkit"},
        {"created_by": "/bin/sh -c #(nop)  ENV API_TOKEN=abc123", "empty_layer": True},
        {"created_by": "/bin/sh -c gpg --keyring=/usr/share/keyrings/x.gpg --verify"},
    ]
    found = evidence(image_fs(doc), "DD-SECRET-HISTORY")
    assert found == ("history[3]: DB_PASSWORD=*******", "history[4]: API_TOKEN=*******")


@pytest.mark.parametrize(
    ("created_by", "expected"),
    [
        ("/bin/sh -c #(nop) ADD file:abc in /opt/app ", {"DD-ADD-INSTRUCTION"}),
        ("ADD https://example.org/x.tgz /opt/ # buildkit", {"DD-ADD-INSTRUCTION"}),
        ("COPY x /opt/ # buildkit", set()),
        ("/bin/sh -c apt-get update", {"DD-UPDATE-ALONE"}),
        ("/bin/sh -c apt-get update && apt-get install -y libpq5", set()),
        ("RUN /bin/sh -c sudo make install # buildkit", {"DD-SUDO"}),
        ("/bin/sh -c apt-get install --allow-unauthenticated -y x", {"DD-APT-UNSIGNED"}),
    ],
)
def test_history_checks(created_by: str, expected: set[str]) -> None:
    doc = config_with()
    doc["history"].append({"created_by": created_by})
    assert ids(image_fs(doc)) == expected


def test_the_base_rootfs_add_of_the_first_history_entry_is_not_reported() -> None:
    doc = config_with()
    doc["history"][0] = {"created_by": "/bin/sh -c #(nop) ADD file:0123abcd in / "}
    assert ids(image_fs(doc)) == set()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"Healthcheck": None}, {"DD-NO-HEALTHCHECK"}),
        ({"Healthcheck": {"Test": ["NONE"]}}, {"DD-NO-HEALTHCHECK"}),
        ({"ExposedPorts": {"80/tcp": {}}}, {"DD-PRIVILEGED-PORT", "DD-UNEXPECTED-PORT"}),
        ({"ExposedPorts": {"8080/tcp": {}}}, {"DD-UNEXPECTED-PORT"}),
        ({"ExposedPorts": None}, set()),
        ({"Volumes": {"/proc": {}}}, {"DD-SENSITIVE-VOLUME"}),
        ({"Volumes": {"/var/lib/postgresql/data": {}}}, set()),
    ],
)
def test_config_checks(changes: dict[str, Any], expected: set[str]) -> None:
    assert ids(image_fs(config_with(**changes))) == expected


LABELS = {
    "org.opencontainers.image.base.name": "drydock/debian:bookworm",
    "org.opencontainers.image.base.digest": BASE_DIGEST,
}


def base_result(fs: ImageFilesystem, inputs: NativeInputs) -> tuple[list[str], dict[str, str]]:
    result = run_native_checks(fs, SETTINGS, inputs)
    found = [e for f in result.findings if f.id == "DD-UNTRUSTED-BASE" for e in f.evidence]
    return found, dict(result.blind)


def test_an_image_on_a_trusted_base_passes_whatever_its_labels() -> None:
    for labels in ({}, LABELS, {"org.opencontainers.image.base.name": "elsewhere:1"}):
        found, blind = base_result(image_fs(config_with(Labels=labels)), INPUTS)
        assert found == [] and ran_native("DD-UNTRUSTED-BASE") not in blind


def test_labels_naming_the_base_do_not_pass_layers_that_are_not_it() -> None:
    other = TrustedBase("drydock/debian:bookworm", ("sha256:" + "0" * 64,))
    found, _ = base_result(
        image_fs(config_with(Labels=LABELS)),
        NativeInputs(updates=NO_UPDATES, trusted_bases=(other,)),
    )
    assert any("do not start with the layers of any trusted base" in e for e in found)
    assert any("labels claim base drydock/debian:bookworm" in e for e in found)


def test_a_squashed_image_with_the_base_labels_fails() -> None:
    doc = config_with(Labels=LABELS)
    doc["rootfs"] = {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}
    found, _ = base_result(image_fs(doc), INPUTS)
    assert found and "1 layer(s)" in found[0]


def test_without_a_trusted_base_the_base_controls_cannot_be_judged() -> None:
    found, blind = base_result(
        image_fs(config_with(Labels=LABELS)), NativeInputs(updates=NO_UPDATES)
    )
    assert found == []
    assert "no trusted base" in blind[ran_native("DD-UNTRUSTED-BASE")]
    bootstrapped = NativeInputs(updates=NO_UPDATES, bootstrapped=True)
    assert base_result(image_fs(config_with(Labels={})), bootstrapped) == ([], {})


def test_denied_packages_per_flavour_and_sshd() -> None:
    status = dpkg_status(("libc6", "2.36"), ("curl", "7.88"), ("openssh-server", "1:9.2p1"))
    removed = "Package: sudo\nStatus: deinstall ok config-files\nVersion: 1.9\n"
    fs = image_fs(None, [file("var/lib/dpkg/status", status + "\n" + removed)])
    assert ids(fs) == {"DD-DENIED-PACKAGE", "DD-SSHD"}
    minimal = run_native_checks(fs, SETTINGS, NativeInputs(flavour="minimal", updates=NO_UPDATES))
    denied = next(f for f in minimal.findings if f.id == "DD-DENIED-PACKAGE")
    assert denied.evidence == (
        "package curl 7.88 is installed (denied for flavour minimal)",
        "package openssh-server 1:9.2p1 is installed (denied for flavour minimal)",
    )
    assert ids(image_fs(None, [file("usr/sbin/sshd", b"\x7fELF", 0o755)])) == {"DD-SSHD"}


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("etc/apt/sources.list", "deb [trusted=yes] http://deb.example/ bookworm main\n"),
        ("etc/apt/sources.list.d/x.list", "deb [arch=amd64 allow-insecure=yes] http://x/ y z\n"),
        ("etc/apt/sources.list.d/x.sources", "Types: deb\nURIs: http://x/\nTrusted: yes\n"),
        ("etc/apt/apt.conf.d/99insecure", 'APT::Get::AllowUnauthenticated "true";\n'),
        ("etc/apt/apt.conf.d/99insecure", 'Acquire::AllowInsecureRepositories "1";\n'),
        ("etc/apt/apt.conf", 'APT { Get { AllowUnauthenticated "true"; }; };\n'),
    ],
)
def test_unsigned_apt_configuration(path: str, text: str) -> None:
    assert ids(image_fs(None, [file(path, text)])) == {"DD-APT-UNSIGNED"}


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("etc/apt/sources.list", "# deb [trusted=yes] http://old/ x y\ndeb http://deb/ x main\n"),
        ("etc/apt/apt.conf.d/99ok", '// APT::Get::AllowUnauthenticated "true";\n'),
        ("etc/apt/apt.conf.d/99ok", 'APT::Get::AllowUnauthenticated "false";\n'),
    ],
)
def test_signed_apt_configuration_passes(path: str, text: str) -> None:
    assert ids(image_fs(None, [file(path, text)])) == set()


def test_apt_lists_and_caches_left_behind() -> None:
    fs = image_fs(
        None,
        [
            file("var/lib/apt/lists/mirror.invalid_debian_dists_bookworm_InRelease", "x"),
            file("var/cache/apt/archives/curl_7.88_amd64.deb", "x"),
            file("var/cache/apt/pkgcache.bin", "x"),
        ],
    )
    assert ids(fs) == {"DD-APT-LISTS", "DD-APT-CACHE"}


def test_unnecessary_files() -> None:
    fs = image_fs(
        None,
        [
            directory("opt/app/.git"),
            file("opt/app/Dockerfile"),
            directory("srv/node_modules/.cache"),
        ],
    )
    assert evidence(fs, "DD-UNNECESSARY-FILES") == (
        "/opt/app/.git/ (suspicious directory)",
        "/opt/app/Dockerfile (unnecessary file)",
    )


def test_pending_security_updates_from_an_apt_simulation() -> None:
    text = (
        "Reading package lists...\n"
        "Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security"
        " [amd64])\n"
        "Inst tzdata [2024a-0+deb12u1] (2024b-0+deb12u1 Debian:12.7/stable [all])\n"
        "Conf libssl3 (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])\n"
        "2 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n"
    )
    updates = parse_apt_simulation(text, "build record")
    assert updates.pending == (
        PendingUpdate(
            "libssl3", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2", "Debian-Security:12/stable-security"
        ),
        PendingUpdate("tzdata", "2024a-0+deb12u1", "2024b-0+deb12u1", "Debian:12.7/stable"),
    )
    result = run_native_checks(image_fs(), SETTINGS, NativeInputs(updates=updates))
    (finding,) = result.findings
    assert finding.id == "DD-PENDING-UPDATES"
    assert finding.evidence == (
        "libssl3 3.0.11-1~deb12u1 -> 3.0.11-1~deb12u2 (Debian-Security:12/stable-security)"
        " [build record]",
    )
