"""Descriptor loading: the shipped matrix, and one clear problem per mistake (exit 2)."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.descriptors.load import load_plan
from pipeline.errors import DescriptorError
from pipeline.models.targets import Kind, PackageSource

ROOT = Path(__file__).resolve().parents[2]

BASE = """
kind: base
releases: [bookworm, trixie, bullseye]
"""
OPERAND = """
kind: operand
name: postgresql
repository: postgresql
template: postgresql.Dockerfile.j2
user: {uid: 26, gid: 26, name: postgres}
flavours:
  minimal: {description: server, packages: ["postgresql-{major}"]}
majors:
  - {major: 15, source: debian}
"""


def write(tmp: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp


def problems_of(images: Path) -> list[str]:
    with pytest.raises(DescriptorError) as info:
        load_plan(images, ROOT / "dockerfiles")
    return [str(p) for p in info.value.problems]


def test_shipped_descriptors_give_the_documented_matrix() -> None:
    plan = load_plan(ROOT / "images", ROOT / "dockerfiles", today=dt.date(2026, 12, 2))
    operands = [t for t in plan if t.kind is Kind.OPERAND]
    assert {(t.major, t.release) for t in operands} == {(15, "bookworm"), (17, "trixie")}
    # PostgreSQL 13 ended in November 2025, Debian 11's LTS in August 2026: retired
    assert {r.name: r.since for r in plan.retired} == {
        "base-bullseye": dt.date(2026, 8, 31),
        "postgresql-13-minimal-bullseye": dt.date(2025, 11, 13),
        "postgresql-13-standard-bullseye": dt.date(2025, 11, 13),
    }
    reason = plan.retired_reason("postgresql-13-minimal-bullseye")
    assert "PostgreSQL 13 reached end of life on 2025-11-13" in reason
    assert "Debian bullseye reached end of life on 2026-08-31" in reason
    assert dict(plan.postgres_eol)[13] == dt.date(2025, 11, 13)
    assert plan.releases == ("bookworm", "trixie")
    assert {t.flavour for t in operands} == {"minimal", "standard"}
    assert all(t.source is PackageSource.DEBIAN and t.uid == 26 for t in operands)
    assert [t.name for t in plan if t.kind is Kind.OPERATOR] == ["operator"]
    # every target comes after the targets it depends on
    seen: set[str] = set()
    for t in plan:
        assert set(t.depends_on) <= seen
        seen.add(t.name)


def test_standard_flavour_is_built_on_minimal() -> None:
    plan = load_plan(ROOT / "images", ROOT / "dockerfiles")
    minimal = plan.get("postgresql-15-minimal-bookworm")
    standard = plan.get("postgresql-15-standard-bookworm")
    assert standard.base == standard.parent == minimal.name
    assert standard.depends_on == (minimal.name,)
    # the server is installed once (in minimal); standard adds only its own packages
    assert standard.inherited_packages == minimal.packages == ("postgresql-15", "python3-minimal")
    assert not set(standard.packages) & set(minimal.packages)
    assert "locales-all" in standard.packages
    assert minimal.excludes == standard.excludes == ("jit", "locales")


FLAVOURS = """
kind: operand
name: pg
repository: pg
template: postgresql.Dockerfile.j2
user: {uid: 26, gid: 26, name: postgres}
flavours:
  minimal: {description: server, packages: ["postgresql-{major}"], exclude: [jit]}
  standard: {description: more, base: minimal, packages: [tzdata], exclude: [locales]}
  full: {description: most, base: standard, packages: [ca-certificates]}
majors:
  - {major: 15, source: debian}
"""


def test_flavours_on_flavours_chain_packages_and_exclusions(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, base=BASE, pg=FLAVOURS), ROOT / "dockerfiles")
    full = plan.get("pg-15-full-bookworm")
    assert full.parent == "pg-15-standard-bookworm" and full.parent_flavour == "standard"
    assert full.inherited_packages == ("postgresql-15", "tzdata")
    assert full.excludes == ("jit", "locales")
    names = [t.name for t in plan]
    assert names.index("pg-15-minimal-bookworm") < names.index("pg-15-standard-bookworm")
    assert names.index("pg-15-standard-bookworm") < names.index("pg-15-full-bookworm")
    # a family stays in one shard, so no image is built (or staged) twice
    assert plan.families() == [
        ["pg-15-minimal-bookworm", "pg-15-standard-bookworm", "pg-15-full-bookworm"]
    ]
    assert set(plan.shard(1, 2).names()) >= {"pg-15-full-bookworm", "pg-15-minimal-bookworm"}
    assert [t for t in plan.shard(2, 2) if t.kind is not Kind.BASE] == []


def test_flavour_on_unknown_flavour_or_in_a_cycle(tmp_path: Path) -> None:
    unknown = FLAVOURS.replace("base: minimal", "base: tiny")
    assert problems_of(write(tmp_path, base=BASE, pg=unknown)) == [
        f"{tmp_path / 'pg.yaml'}: flavours.standard.base: unknown flavour 'tiny'"
    ]
    cycle = FLAVOURS.replace("exclude: [jit]}", "exclude: [jit], base: full}")
    found = problems_of(write(tmp_path, base=BASE, pg=cycle))
    assert len(found) == 3
    assert all("flavours built on each other in a cycle" in p for p in found)


def test_flavour_needs_the_flavour_it_is_built_on(tmp_path: Path) -> None:
    only = FLAVOURS.replace(
        "{major: 15, source: debian}", "{major: 15, source: debian, flavours: [standard]}"
    )
    assert problems_of(write(tmp_path, base=BASE, pg=only)) == [
        f"{tmp_path / 'pg.yaml'}: majors.0.flavours: flavour 'standard' is built on "
        "'minimal', which this major does not build: list both"
    ]


def test_package_names_and_exclusion_groups_are_checked(tmp_path: Path) -> None:
    bad = FLAVOURS.replace("packages: [tzdata]", 'packages: ["tzdata; rm -rf /"]').replace(
        "exclude: [locales]", "exclude: [docs]"
    )
    found = problems_of(write(tmp_path, base=BASE, pg=bad))
    assert len(found) == 2
    assert found[0].startswith(f"{tmp_path / 'pg.yaml'}: flavours.standard.packages.0: ")
    assert found[1] == (
        f"{tmp_path / 'pg.yaml'}: flavours.standard.exclude: Value error, unknown exclude "
        "group(s) docs (known: jit, locales)"
    )


def test_unknown_key_is_named_with_file_and_field(tmp_path: Path) -> None:
    images = write(tmp_path, base=BASE, pg=OPERAND.replace("template:", "colour: red\ntemplate:"))
    assert problems_of(images) == [f"{tmp_path / 'pg.yaml'}: colour: unknown key"]


def test_wrong_type_names_the_nested_field(tmp_path: Path) -> None:
    images = write(tmp_path, base=BASE, pg=OPERAND.replace("uid: 26", "uid: twenty-six"))
    [problem] = problems_of(images)
    assert problem.startswith(f"{tmp_path / 'pg.yaml'}: user.uid: ")
    assert "integer" in problem


def test_major_debian_does_not_ship_is_rejected(tmp_path: Path) -> None:
    images = write(tmp_path, base=BASE, pg=OPERAND.replace("major: 15", "major: 16"))
    [problem] = problems_of(images)
    assert "majors.0.major" in problem and "Debian does not package PostgreSQL 16" in problem


def test_debian_release_that_ships_another_major_is_rejected(tmp_path: Path) -> None:
    bad = OPERAND.replace("source: debian}", "source: debian, releases: [trixie]}")
    [problem] = problems_of(write(tmp_path, base=BASE, pg=bad))
    assert "majors.0.releases" in problem and "trixie does not package PostgreSQL 15" in problem


def test_pgdg_major_out_of_range_and_missing_section(tmp_path: Path) -> None:
    bad = OPERAND.replace(
        "- {major: 15, source: debian}",
        "- {major: 12, source: pgdg}\n  - {major: 18, source: pgdg}",
    )
    problems = problems_of(write(tmp_path, base=BASE, pg=bad))
    assert any("majors.0.major" in p and "PGDG does not ship PostgreSQL 12" in p for p in problems)
    assert any("majors.1.source" in p and "needs a top-level 'pgdg'" in p for p in problems)


def test_pgdg_builds_every_release(tmp_path: Path) -> None:
    (tmp_path / "key.asc").write_text("not used by the loader\n", encoding="utf-8")
    good = OPERAND.replace("- {major: 15, source: debian}", "- {major: 18, source: pgdg}") + (
        "pgdg: {url: 'https://pgdg.invalid/apt', keyring: key.asc}\n"
    )
    plan = load_plan(write(tmp_path, base=BASE, pg=good), ROOT / "dockerfiles")
    assert sorted(t.release for t in plan if t.kind is Kind.OPERAND) == [
        "bookworm",
        "bullseye",
        "trixie",
    ]


def test_duplicate_target_across_files(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, base=BASE, a=OPERAND, b=OPERAND))
    assert problems == [
        f"{tmp_path / 'b.yaml'}: name: duplicate target 'postgresql-15-minimal-bookworm' "
        f"(also in {tmp_path / 'a.yaml'})"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad = OPERAND.replace("uid: 26", "uid: -1").replace("template:", "extra: 1\ntemplate:")
    problems = problems_of(write(tmp_path, base=BASE, pg=bad, junk="kind: nonsense\n"))
    assert len(problems) == 3
    assert any("junk.yaml: (document): unknown kind" in p for p in problems)


def test_registry_base_must_be_pinned_by_digest(tmp_path: Path) -> None:
    bad = OPERAND + "base: {image: 'registry.invalid/debian:bookworm-slim'}\n"
    [problem] = problems_of(write(tmp_path, base=BASE, pg=bad))
    assert "base.image" in problem and "pinned by digest" in problem
    good = OPERAND + f"base: {{image: 'registry.invalid/debian@sha256:{'a' * 64}'}}\n"
    plan = load_plan(write(tmp_path, base=BASE, pg=good), ROOT / "dockerfiles")
    operand = plan.get("postgresql-15-minimal-bookworm")
    assert operand.base.endswith("a" * 64) and operand.depends_on == ()


def test_cli_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    bad = OPERAND.replace("major: 15", "major: 16").replace("template:", "x: 1\ntemplate:")
    images = write(tmp_path, base=BASE, pg=bad)
    result = CliRunner().invoke(main, ["plan", "--images", str(images)])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("  ")]
    assert len(lines) == 1  # the unknown key stops validation of that file
    assert "pg.yaml: x: unknown key" in lines[0]


def test_cli_rejects_unknown_build_target() -> None:
    result = CliRunner().invoke(main, ["build", "no-such-target"])
    assert result.exit_code == 2
    assert "no-such-target" in result.stderr


def test_a_target_is_built_until_its_end_of_life_and_retired_the_day_after(
    tmp_path: Path,
) -> None:
    base = BASE + "end_of_life: {bullseye: 2026-08-31}\n"
    pg = OPERAND.replace("- {major: 15, source: debian}", "- {major: 13, source: debian}")
    pg += "end_of_life: {13: 2025-11-13}\n"
    images = write(tmp_path, base=base, pg=pg)
    before = load_plan(images, ROOT / "dockerfiles", today=dt.date(2025, 11, 13))
    assert "postgresql-13-minimal-bullseye" in before.names() and not before.retired
    after = load_plan(images, ROOT / "dockerfiles", today=dt.date(2025, 11, 14))
    assert "postgresql-13-minimal-bullseye" not in after.names()
    assert [(r.name, r.since) for r in after.retired] == [
        ("postgresql-13-minimal-bullseye", dt.date(2025, 11, 13))
    ]
    assert "base-bullseye" in after.names()  # the release itself lives until August 2026
    late = load_plan(images, ROOT / "dockerfiles", today=dt.date(2026, 9, 1))
    assert {r.name for r in late.retired} == {"base-bullseye", "postgresql-13-minimal-bullseye"}


def test_an_operator_on_a_retired_release_is_a_descriptor_problem(tmp_path: Path) -> None:
    base = BASE + "end_of_life: {bookworm: 2026-01-01}\n"
    operator = """
    kind: operator
    name: operator
    repository: postgresql-operator
    template: operator.Dockerfile.j2
    version: 0.1.0
    release: bookworm
    user: {uid: 1001, gid: 1001, name: operator}
    app: {path: operator, module: drydock_operator}
    """
    with pytest.raises(DescriptorError) as info:
        load_plan(write(tmp_path, base=base, op=operator), ROOT / "dockerfiles")
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'op.yaml'}: release: Debian bookworm reached end of life on 2026-01-01; "
        "build the operator on a supported release"
    ]


def test_plan_lists_retired_targets_and_build_refuses_them() -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["plan", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    retired = {r["name"]: r for r in json.loads(shown.output)["retired"]}
    assert retired["postgresql-13-minimal-bullseye"]["since"] == "2025-11-13"
    refused = runner.invoke(main, ["build", "postgresql-13-minimal-bullseye"])
    assert refused.exit_code == 2
    assert "retired: PostgreSQL 13 reached end of life on 2025-11-13" in refused.output
