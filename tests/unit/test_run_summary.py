"""The run's summary.md lists each target's image size next to its decision."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.descriptors.load import load_plan
from pipeline.models.images import BuiltImage
from pipeline.settings import Settings
from pipeline.stages import run as stage
from pipeline.stages.record import summary_markdown
from pipeline.stages.run import RunOptions, RunOutcome, TargetOutcome

ROOT = Path(__file__).resolve().parents[2]


def test_summary_rows_carry_the_size() -> None:
    run = RunOutcome(
        outcomes={
            "postgresql-17-minimal-trixie": TargetOutcome(
                "postgresql-17-minimal-trixie", "built", size=205_400_000
            ),
            "operator": TargetOutcome("operator", "unchanged"),
        }
    )
    rows = [line for line in summary_markdown(run).splitlines() if line.startswith("| ")]
    assert rows[0] == "| target | decision | size | published | why |"
    assert "| postgresql-17-minimal-trixie | built | 205 MB | - |" in summary_markdown(run)
    assert "| operator | unchanged | - | - |" in summary_markdown(run)


def test_plan_json_names_exclusions_and_sizes() -> None:
    result = CliRunner().invoke(main, ["plan", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"excludes": [\n        "jit",\n        "locales"\n      ]' in result.output
    assert '"size_bytes"' in result.output


def test_a_flavour_built_on_another_is_on_a_known_base(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """standard's base.digest label names minimal's image: the gate must know it as a base
    Drydock built (CIS 4.2 / DISA 2.14), as it knows the Debian bases; an image nothing is
    built on is not a base."""
    plan = load_plan(ROOT / "images", ROOT / "dockerfiles")
    ids = {
        "base-bookworm": "sha256:b",
        "postgresql-15-minimal-bookworm": "sha256:m",
        "postgresql-15-standard-bookworm": "sha256:s",
        "operator": "sha256:o",
    }
    built = {
        n: BuiltImage(n, plan.get(n).local_tag, i, "fp", (), (), 1.0, "buildkit")
        for n, i in ids.items()
    }
    seen: dict[str, object] = {}

    def scan_images(*args: object, **kwargs: object) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(stage, "scan_images", scan_images)
    monkeypatch.setattr(stage, "attach_sources", lambda *args: None)
    options = RunOptions(out_dir=tmp_path, scanners=())
    settings = Settings(root=ROOT, cache=tmp_path)
    stage._scan(built, plan, settings, options)
    assert seen["known_bases"] == frozenset({"sha256:b", "sha256:m"})


def test_a_built_target_says_why_it_was_built() -> None:
    assert stage.built_reason(False, []) == "no image published for it yet"
    assert stage.built_reason(True, ["sudo (none) -> 1.9.13p3-1+deb12u1"]) == (
        "packages changed: sudo (none) -> 1.9.13p3-1+deb12u1"
    )
    many = [f"p{i} 1 -> 2" for i in range(5)]
    assert stage.built_reason(True, many) == (
        "packages changed: p0 1 -> 2, p1 1 -> 2, p2 1 -> 2 and 2 more"
    )
    assert stage.built_reason(True, []).startswith("inputs differ from the published image's")
