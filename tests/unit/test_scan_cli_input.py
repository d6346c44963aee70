"""`drydock scan` refuses bad waivers and bad flags with exit 2, naming file, entry, field
and reason, before it touches an engine, a registry or the vulnerability DB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import yaml
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.descriptors.load import load_plan
from pipeline.settings import Settings
from pipeline.stages.scan_context import built_dockerfile, own_bases


def write_waivers(path: Path, *entries: Mapping[str, object]) -> Path:
    doc = {"version": 1, "waivers": [dict(e) for e in entries]}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_bad_waivers_exit_2_naming_each_problem(tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    good = {
        "finding": "CVE-2024-1",
        "scope": {"package": "libfoo1"},
        "justification": "Not reachable from PostgreSQL: the code path needs a client cert.",
        "approver": "security-team",
        "expires": (today + dt.timedelta(days=30)).isoformat(),
    }
    bad = [
        good | {"justification": "  TODO  "},
        good | {"expires": (today + dt.timedelta(days=400)).isoformat()},
        {k: v for k, v in good.items() if k != "scope"},
    ]
    path = write_waivers(tmp_path / "waivers.yaml", good, *bad)
    result = CliRunner().invoke(main, ["scan", "no-such-image:nc", "--waivers", str(path)])
    assert result.exit_code == 2, result.output
    for field in ("waivers.1.justification", "waivers.2.expires", "waivers.3.scope"):
        assert f"{path}: {field}" in result.output
    assert "waivers.0" not in result.output
    assert "max_waiver_days" in result.output


def test_a_dockerfile_needs_exactly_one_image(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM scratch\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["scan", "a:1", "b:1", "--dockerfile", str(dockerfile)])
    assert result.exit_code == 2
    assert "--dockerfile" in result.output and "exactly one image" in result.output


def test_drydock_knows_its_own_bases_from_the_plan(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    plan = load_plan(root / "images", root / "dockerfiles")
    bases = own_bases(plan)
    assert "drydock/debian:bookworm" in bases and "drydock/debian:trixie" in bases
    assert not any(b.startswith("drydock/postgresql") for b in bases)
    assert own_bases(None) == ()


def test_the_rendered_dockerfile_of_a_target_is_found(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, cache=tmp_path / "cache")
    assert built_dockerfile(settings, "operator") is None
    context = settings.work / "contexts" / "operator"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM x\n", encoding="utf-8")
    assert built_dockerfile(settings, "operator") == "FROM x\n"
    assert built_dockerfile(settings, "") is None
