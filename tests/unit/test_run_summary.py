"""The run's summary.md lists each target's image size next to its decision."""

from __future__ import annotations

from click.testing import CliRunner

from pipeline.cli import main
from pipeline.stages.run import RunOutcome, TargetOutcome, summary_markdown


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
