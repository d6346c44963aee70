"""The nightly after one package version changes: exactly the affected target is rebuilt.

A signed apt repository of the test's own serves a tiny package, `drydock-marker`. It is
served from INSIDE a derived base image (a `file:` source, signed-by a throwaway key), so
no container has to reach the host: the base is built FROM drydock/debian:bookworm,
pushed to a private registry and named by digest in one operand descriptor. A second
operand descriptor uses Drydock's own base and does not install the package.

  1. first run: both targets are built, gated and published; the marked image's package
     lock has drydock-marker 1.0-1;
  2. the test base is rebuilt with drydock-marker 1.1-1 added to its repository (a new
     digest, pinned in the descriptor): the second run rebuilds, scans and publishes only
     the marked target, records `drydock-marker 1.0-1 -> 1.1-1` as its package delta,
     and leaves the other target unchanged.

Host tools: dpkg-deb (dpkg), dpkg-scanpackages (dpkg-dev) and gpg/gpgconf (gnupg).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.build.base import build_base
from pipeline.build.events import Silent
from pipeline.build.freshness import LOCK_LABEL, parse_lock
from pipeline.cli.scan_cmd import scan_settings
from pipeline.descriptors.load import load_plan
from pipeline.models.compliance import Policy
from pipeline.scan.base import VulnDbSpec
from pipeline.scan.scanners import DEFAULT_SCANNERS, make_scanners
from pipeline.settings import Settings, default_cache
from pipeline.stages.run import RunOptions, RunOutcome, run_pipeline
from pipeline.stages.vulndb import vuln_db_spec
from pipeline.tools import docker
from pipeline.tools.registry import RegistryClient
from pipeline.tools.registry_server import RegistryServer
from pipeline.tools.runner import run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MARKED = "nightly-marked-15-marked-bookworm"
MINIMAL = "nightly-15-minimal-bookworm"
MARKED_REPO = "drydock/nightly-marked-postgresql"
MINIMAL_REPO = "drydock/nightly-postgresql"
# Under drydock/ so the base name matches the policy's trusted_bases ("*/drydock/*").
TEST_BASE_REPO = "drydock/test-base"
PACKAGE = "drydock-marker"
REPO_DIR = "/srv/drydock-test-repo"
KEYRING = "/usr/share/keyrings/drydock-test.gpg"
TOOL_TIMEOUT = 120.0

MINIMAL_OPERAND = """
kind: operand
name: nightly
repository: nightly-postgresql
template: postgresql.Dockerfile.j2
user: {uid: 26, gid: 26, name: postgres}
flavours:
  minimal:
    description: PostgreSQL server only
    packages: ["postgresql-{major}"]
majors:
  - {major: 15, source: debian}
"""

MARKED_OPERAND = """
kind: operand
name: nightly-marked
repository: nightly-marked-postgresql
template: postgresql.Dockerfile.j2
user: {uid: 26, gid: 26, name: postgres}
base: {image: "BASE_REF"}
flavours:
  marked:
    description: PostgreSQL server and the test's marker package
    packages: ["postgresql-{major}", "drydock-marker"]
majors:
  - {major: 15, source: debian}
"""

TEST_BASE_DOCKERFILE = f"""\
FROM drydock/debian:bookworm
LABEL org.opencontainers.image.title="Debian bookworm with Drydock's test apt repository"
COPY repo/ {REPO_DIR}/
COPY drydock-test.gpg {KEYRING}
COPY drydock-test.list /etc/apt/sources.list.d/drydock-test.list
"""


def archive_db(settings: Settings) -> VulnDbSpec:
    """The Debian-archive DB, as `drydock run` chooses it on machines without Trivy's DB."""
    return vuln_db_spec("debian-archive", settings, Policy())


@dataclass(frozen=True)
class SigningKey:
    home: Path  # a GNUPGHOME of the test's own
    fingerprint: str
    keyring: Path  # the public key as a binary keyring (apt's signed-by)


def gpg(home: Path, *args: str | Path) -> str:
    argv: list[str | Path] = ["gpg", "--batch", "--homedir", home, "--pinentry-mode", "loopback"]
    return run([*argv, "--passphrase", "", *args], timeout=TOOL_TIMEOUT).stdout


def make_readable(top: Path) -> None:
    """0755 directories, 0644 files: what dpkg-deb demands and apt's _apt user can read."""
    for path in [top, *top.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def build_marker_deb(version: str, out_dir: Path) -> Path:
    """drydock-marker_<version>_all.deb: one file under /usr/share/doc/drydock-marker/."""
    tree = out_dir / f"{PACKAGE}_{version}"
    doc = tree / "usr" / "share" / "doc" / PACKAGE
    doc.mkdir(parents=True)
    (doc / "README").write_text(f"{PACKAGE} {version}: served by a Drydock test.\n")
    (tree / "DEBIAN").mkdir()
    (tree / "DEBIAN" / "control").write_text(
        textwrap.dedent(f"""\
            Package: {PACKAGE}
            Version: {version}
            Architecture: all
            Maintainer: Drydock tests <drydock-tests@example.invalid>
            Section: misc
            Priority: optional
            Description: marker package of Drydock's nightly package-delta test
             It installs one README and nothing else.
            """)
    )
    make_readable(tree)
    deb = out_dir / f"{PACKAGE}_{version}_all.deb"
    run(["dpkg-deb", "--root-owner-group", "--build", tree, deb], timeout=TOOL_TIMEOUT)
    return deb


def release_text(repo: Path, indexes: tuple[str, ...]) -> str:
    lines = [
        "Origin: Drydock tests",
        "Label: drydock-test",
        f"Date: {email.utils.formatdate(usegmt=True)}",
        "SHA256:",
    ]
    for name in indexes:
        data = (repo / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    return "\n".join(lines) + "\n"


def write_repo(repo: Path, debs: list[Path], key: SigningKey) -> None:
    """A flat apt repository (Packages, Release, InRelease, Release.gpg) of debs."""
    repo.mkdir(parents=True)
    for deb in debs:
        shutil.copyfile(deb, repo / deb.name)
    scanned = run(["dpkg-scanpackages", "--multiversion", "."], timeout=TOOL_TIMEOUT, cwd=repo)
    (repo / "Packages").write_text(scanned.stdout)
    (repo / "Release").write_text(release_text(repo, ("Packages",)))
    signer = ("--local-user", key.fingerprint, "--digest-algo", "SHA256")
    gpg(key.home, *signer, "--clearsign", "--output", repo / "InRelease", repo / "Release")
    gpg(key.home, *signer, "--detach-sign", "--output", repo / "Release.gpg", repo / "Release")
    make_readable(repo)


def build_test_base(
    work: Path, debs: list[Path], key: SigningKey, registry: RegistryServer, tag: str
) -> str:
    """Build, tag and push the derived base; returns its `name@sha256:...` reference."""
    context = work / f"test-base-{tag}"
    write_repo(context / "repo", debs, key)
    shutil.copyfile(key.keyring, context / "drydock-test.gpg")
    (context / "drydock-test.list").write_text(
        f"deb [signed-by={KEYRING}] file:{REPO_DIR} ./\n", encoding="utf-8"
    )
    (context / "Dockerfile").write_text(TEST_BASE_DOCKERFILE, encoding="utf-8")
    make_readable(context)
    name = f"{registry.address}/{TEST_BASE_REPO}:{tag}"
    docker.build(
        docker.detect_builder(),
        context,
        name,
        build_args={},
        labels={},
        on_line=lambda line: None,
    )
    digest = docker.push(name)
    assert digest.startswith("sha256:"), f"docker push {name} reported no digest"
    ref = f"{registry.address}/{TEST_BASE_REPO}@{digest}"
    # The engine recorded the pushed digest, so FROM/`docker run` of ref need no pull.
    assert docker.inspect(ref) is not None, f"{ref} is not known to the local engine"
    return ref


def write_root(root: Path, marked_base: str | None) -> None:
    """A repository root of the test's own: real templates, own images/ and policy.

    The marked base is a registry base, not one Drydock built in the run, so the policy
    must name its digest in trusted_base_digests (DD-UNTRUSTED-BASE, CIS 4.2 / DISA 2.14)."""
    if not (root / "dockerfiles").exists():
        shutil.copytree(ROOT / "dockerfiles", root / "dockerfiles")
        shutil.copytree(ROOT / "scan-config", root / "scan-config")
    images = root / "images"
    images.mkdir(exist_ok=True)
    (images / "base.yaml").write_text("kind: base\nreleases: [bookworm]\n", encoding="utf-8")
    (images / "postgresql.yaml").write_text(textwrap.dedent(MINIMAL_OPERAND), encoding="utf-8")
    if marked_base is None:
        return
    marked = textwrap.dedent(MARKED_OPERAND).replace("BASE_REF", marked_base)
    (images / "marked.yaml").write_text(marked, encoding="utf-8")
    policy = (ROOT / "scan-config" / "policy.yaml").read_text(encoding="utf-8")
    empty = "trusted_base_digests: []"
    assert policy.count(empty) == 1, "scan-config/policy.yaml changed shape"
    digest = marked_base.rsplit("@", 1)[1]
    policy = policy.replace(empty, f'trusted_base_digests: ["{digest}"]')
    (root / "scan-config" / "policy.yaml").write_text(policy, encoding="utf-8")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("delta-registry")) as server:
        yield server


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningKey]:
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    try:
        gpg(home, "--quick-gen-key", "Drydock test repository", "ed25519", "sign", "never")
        listing = gpg(home, "--with-colons", "--list-secret-keys")
        fingerprint = next(ln.split(":")[9] for ln in listing.splitlines() if ln[:4] == "fpr:")
        keyring = home / "drydock-test.gpg"
        gpg(home, "--output", keyring, "--export", fingerprint)
        yield SigningKey(home, fingerprint, keyring)
    finally:
        # gpg started an agent for this home: stop it (and only it).
        run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], timeout=30, check=False)


@dataclass
class Story:
    settings: Settings
    runs: list[RunOutcome]
    outs: list[Path]
    bases: list[str]  # the test base reference of each run


@pytest.fixture(scope="module")
def story(
    registry: RegistryServer,
    signing_key: SigningKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("delta-root")
    work = tmp_path_factory.mktemp("delta-work")
    settings = Settings(root=root, cache=default_cache(), registry=registry.address, jobs=2)
    story = Story(settings, [], [], [])

    # Drydock's own bookworm base, fresh (rebuilt now if it has pending upgrades), so both
    # test bases derive from the same Debian layer the minimal target builds on.
    write_root(root, None)
    plan = load_plan(settings.descriptors, settings.templates)
    build_base(plan.get("base-bookworm"), settings.work, plan.base_max_age_hours, lambda _: None)

    debs = [build_marker_deb("1.0-1", work)]

    def run_once(base_tag: str) -> None:
        ref = build_test_base(work, debs, signing_key, registry, base_tag)
        story.bases.append(ref)
        write_root(root, ref)
        out = tmp_path_factory.mktemp("delta-out")
        options = RunOptions(
            out_dir=out,
            scanners=make_scanners(
                DEFAULT_SCANNERS, scan_settings(settings, archive_db(settings), False)
            ),
            sign=False,
        )
        story.runs.append(run_pipeline(settings, options, Silent()))
        story.outs.append(out)

    try:
        run_once("1")
        debs.append(build_marker_deb("1.1-1", work))
        run_once("2")
        yield story
    finally:
        for tag in ("1", "2"):
            docker.remove(f"{registry.address}/{TEST_BASE_REPO}:{tag}")


def lock_of(image_labels: dict[str, str] | None) -> dict[str, str]:
    assert image_labels is not None
    return parse_lock(image_labels.get(LOCK_LABEL, ""))


def test_first_run_publishes_both_targets(story: Story, registry: RegistryServer) -> None:
    first = story.runs[0]
    for name in (MARKED, MINIMAL):
        out = first.outcomes[name]
        assert out.decision == "built", (name, out.reason, first.errors)
        assert out.published and not out.package_delta
    assert first.exit_code == 0, first.summary
    # By digest: the rolling tag has moved on by the time the tests read it.
    client = RegistryClient(registry.address)
    marked = first.outcomes[MARKED].published.rsplit("@", 1)[1]
    assert lock_of(client.config_labels(MARKED_REPO, marked))[PACKAGE] == "1.0-1"
    minimal = first.outcomes[MINIMAL].published.rsplit("@", 1)[1]
    assert PACKAGE not in lock_of(client.config_labels(MINIMAL_REPO, minimal))


def test_test_base_changed_digest(story: Story) -> None:
    assert len(set(story.bases)) == 2, story.bases


def test_second_run_rebuilds_only_the_marked_target(story: Story) -> None:
    second = story.runs[1]
    assert second.exit_code == 0, second.summary
    marked, minimal = second.outcomes[MARKED], second.outcomes[MINIMAL]
    assert marked.decision == "built", (marked.reason, second.errors)
    assert marked.package_delta == [f"{PACKAGE} 1.0-1 -> 1.1-1"]
    assert marked.published and marked.published != story.runs[0].outcomes[MARKED].published
    assert minimal.decision == "unchanged", (minimal.reason, minimal.package_delta)
    assert minimal.package_delta == []
    assert minimal.published == story.runs[0].outcomes[MINIMAL].published
    assert second.build is not None
    assert second.build.images[MINIMAL].published  # not built
    assert not second.build.images[MARKED].published
    installed = {p.name: p.version for p in second.build.images[MARKED].packages}
    assert installed[PACKAGE] == "1.1-1"
    assert second.gate is not None  # only the rebuilt image was scanned and gated
    assert [v.image for v in second.gate.images] == [
        "drydock/nightly-marked-postgresql:15-marked-bookworm"
    ]


def test_published_lock_label_names_the_new_version(story: Story, registry: RegistryServer) -> None:
    client = RegistryClient(registry.address)
    published = story.runs[1].outcomes[MARKED].published
    digest = published.rsplit("@", 1)[1]
    assert client.digest(MARKED_REPO, "15-marked-bookworm") == digest
    assert lock_of(client.config_labels(MARKED_REPO, digest))[PACKAGE] == "1.1-1"
    first = story.runs[0].outcomes[MINIMAL].published.rsplit("@", 1)[1]
    assert client.digest(MINIMAL_REPO, "15-minimal-bookworm") == first


def test_run_record_and_summary_state_the_delta(story: Story) -> None:
    out = story.outs[1]
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["targets"][MARKED]["package_delta"] == [f"{PACKAGE} 1.0-1 -> 1.1-1"]
    assert record["targets"][MINIMAL]["decision"] == "unchanged"
    summary = (out / "summary.md").read_text(encoding="utf-8")
    [row] = [line for line in summary.splitlines() if line.startswith(f"| {MARKED} |")]
    assert "| built |" in row and f"{PACKAGE} 1.0-1 -> 1.1-1" in row
