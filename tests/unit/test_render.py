"""Rendering is pure and byte-stable, and hardens images by construction."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.descriptors.load import load_plan
from pipeline.errors import DescriptorError
from pipeline.models.targets import PackageSource, Plan
from pipeline.render.context import fingerprint, write_context
from pipeline.render.dockerfile import RenderOptions, render

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "dockerfiles"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(ROOT / "images", TEMPLATES)


def text_of(plan: Plan, name: str, buildkit: bool = False) -> str:
    target = plan.get(name)
    return render(target, RenderOptions("drydock/debian:" + target.release, buildkit), TEMPLATES)


@pytest.mark.parametrize(
    "name", ["postgresql-15-minimal-bookworm", "postgresql-17-standard-trixie", "operator"]
)
def test_same_input_same_bytes(plan: Plan, name: str) -> None:
    first = text_of(plan, name).encode()
    # an equal target rebuilt from scratch renders to the same bytes
    clone = dataclasses.replace(plan.get(name))
    again = render(clone, RenderOptions("drydock/debian:" + clone.release), TEMPLATES).encode()
    assert first == again
    assert text_of(plan, name, buildkit=True) == text_of(plan, name, buildkit=True)


@pytest.mark.parametrize(
    "name",
    [
        "postgresql-15-minimal-bookworm",
        "postgresql-15-standard-bookworm",
        "postgresql-17-minimal-trixie",
        "operator",
    ],
)
def test_hardened_by_construction(plan: Plan, name: str) -> None:
    text = text_of(plan, name)
    target = plan.get(name)
    lines = text.splitlines()
    assert not any(line.lstrip().lower().startswith("# syntax") for line in lines)
    assert not any(line.startswith("ADD ") for line in lines)
    assert f"USER {target.uid}:{target.gid}" in lines
    assert target.uid != 0
    assert "HEALTHCHECK" in text
    assert "--no-install-recommends" in text
    assert "apt-get install -y --no-install-recommends" in text
    assert text.count("apt-get update") == text.count("rm -rf /var/lib/apt/lists/*")
    assert "find / -xdev -type f -perm /6000 -exec chmod a-s {} +" in text
    for label in ("version", "revision", "created", "base.digest", "base.name", "source", "title"):
        assert f"org.opencontainers.image.{label}=" in text
    assert "dist-upgrade" not in text  # Dockle DKL-DI-0003
    assert "trusted=yes" not in text


def test_postgres_gets_uid_26_and_no_default_cluster(plan: Plan) -> None:
    text = text_of(plan, "postgresql-15-minimal-bookworm")
    assert "--uid 26" in text and "create_main_cluster" in text
    assert "apt-get install -y --no-install-recommends postgresql-15 python3-minimal;" in text


def test_buildkit_adds_apt_cache_mounts_only_when_available(plan: Plan) -> None:
    assert "--mount=type=cache" not in text_of(plan, "postgresql-15-minimal-bookworm")
    assert "--mount=type=cache" in text_of(plan, "postgresql-15-minimal-bookworm", buildkit=True)


def test_pgdg_source_is_signed(plan: Plan) -> None:
    target = dataclasses.replace(
        plan.get("postgresql-15-minimal-bookworm"),
        source=PackageSource.PGDG,
        params=(
            ("description", "x"),
            ("pgdg_keyring", "k.asc"),
            ("pgdg_url", "https://pgdg.invalid/apt"),
        ),
    )
    text = render(target, RenderOptions("drydock/debian:bookworm"), TEMPLATES)
    assert (
        "deb [signed-by=/usr/share/keyrings/pgdg.asc] "
        "https://pgdg.invalid/apt bookworm-pgdg main 15" in text
    )
    assert "COPY pgdg-keyring.asc" in text


def test_syntax_line_is_refused(tmp_path: Path, plan: Plan) -> None:
    (tmp_path / "bad.j2").write_text("# syntax=docker/dockerfile:1\nFROM {{ base_ref }}\n")
    target = dataclasses.replace(plan.get("operator"), template="bad.j2")
    with pytest.raises(DescriptorError, match="syntax"):
        render(target, RenderOptions("x"), tmp_path)


def test_missing_template_is_a_descriptor_error(plan: Plan, tmp_path: Path) -> None:
    target = dataclasses.replace(plan.get("operator"), template="nope.j2")
    with pytest.raises(DescriptorError, match=r"template: template not found: nope.j2"):
        render(target, RenderOptions("x"), tmp_path)


def test_fingerprint_follows_every_input(tmp_path: Path) -> None:
    extra = tmp_path / "k.asc"
    extra.write_text("key one\n")
    ctx = write_context(tmp_path / "ctx", "FROM x\n", {"k.asc": extra})
    first = fingerprint(ctx, "sha256:base1")
    assert (
        fingerprint(write_context(tmp_path / "ctx", "FROM x\n", {"k.asc": extra}), "sha256:base1")
        == first
    )
    assert fingerprint(ctx, "sha256:base2") != first
    extra.write_text("key two\n")
    assert (
        fingerprint(write_context(tmp_path / "ctx", "FROM x\n", {"k.asc": extra}), "sha256:base1")
        != first
    )
    assert fingerprint(write_context(tmp_path / "ctx", "FROM y\n", {}), "sha256:base1") != first


def test_standard_is_built_on_minimal_and_installs_only_its_packages(plan: Plan) -> None:
    target = plan.get("postgresql-17-standard-trixie")
    text = render(target, RenderOptions("drydock/postgresql:17-minimal-trixie", True), TEMPLATES)
    lines = text.splitlines()
    assert lines[0] == "FROM drydock/postgresql:17-minimal-trixie"
    assert (
        "apt-get install -y --no-install-recommends "
        "postgresql-17-pgaudit locales-all tzdata ca-certificates;" in text
    )
    assert "postgresql-common" not in text and "useradd" not in text
    users = [line for line in lines if line.startswith("USER ")]
    assert users == ["USER 0", "USER 26:26"]  # root only for the install, uid 26 at the end
    assert 'org.opencontainers.image.base.name="drydock/postgresql:17-minimal-trixie"' in text


def test_minimal_leaves_out_the_jit_and_locale_sources_before_installing(plan: Plan) -> None:
    text = text_of(plan, "postgresql-17-minimal-trixie", buildkit=True)
    excludes = [line.strip().strip("'\\ ") for line in text.splitlines() if "path-exclude" in line]
    assert "path-exclude /usr/lib/postgresql/*/lib/llvmjit*" in excludes
    assert "path-exclude /usr/lib/*/libLLVM*" in excludes
    assert "path-exclude /usr/share/i18n/locales/*" in excludes
    # written before dpkg unpacks anything, into the file that keeps them out on upgrades
    assert text.index("path-exclude") < text.index("apt-get install")
    assert "> /etc/dpkg/dpkg.cfg.d/drydock-excludes;" in text
    assert 'io.drydock.dpkg-excluded="jit,locales"' in text


def test_no_exclusions_render_no_exclusion_file(plan: Plan) -> None:
    target = dataclasses.replace(plan.get("postgresql-15-minimal-bookworm"), excludes=())
    text = render(target, RenderOptions("drydock/debian:bookworm"), TEMPLATES)
    assert "path-exclude" not in text and "drydock-excludes" not in text
    assert 'io.drydock.dpkg-excluded=""' in text
