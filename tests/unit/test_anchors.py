"""Source lines of an image: the descriptor entry, package lines, template instructions."""

from __future__ import annotations

from pathlib import Path

from pipeline.descriptors.anchors import image_sources, instruction_lines
from pipeline.descriptors.load import load_plan

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = """\
{#- a comment that says
USER root inside a comment -#}
FROM {{ base }}
RUN echo one
RUN set -eux; \\
    apt-get update; \\
    apt-get install -y x
  USER indented-is-a-continuation
USER 26:26
"""


def test_instructions_skip_comments_and_prefer_the_run_that_calls_apt() -> None:
    lines = TEMPLATE.splitlines()
    found = instruction_lines(lines)
    assert found["FROM"] == 3
    assert found["RUN"] == 5  # not the first RUN: the one that calls apt-get
    assert found["USER"] == 9  # not the comment, not a continuation line


def test_the_repository_images_map_to_their_lines() -> None:
    plan = load_plan(ROOT / "images", ROOT / "dockerfiles")
    wanted = {t.local_tag: t.name for t in plan}
    sources = {s.target: s for s in image_sources(ROOT, plan, ROOT / "dockerfiles", wanted)}
    assert set(sources) == set(plan.names())
    pg = sources["postgresql-15-standard-bookworm"]
    assert pg.descriptor.path == "images/postgresql.yaml"
    assert "major: 15" in pg.descriptor.text
    assert pg.repository == "drydock/postgresql"
    tzdata = pg.package_line("tzdata")
    assert tzdata is not None and "tzdata" in tzdata.text
    server = sources["postgresql-15-minimal-bookworm"].package_line("postgresql-15")
    assert server is not None and "postgresql-{major}" in server.text
    user = pg.instruction_line("USER")
    assert user is not None and user.path == "dockerfiles/postgresql.Dockerfile.j2"
    assert user.text.startswith("USER ")
    for kind in ("HEALTHCHECK", "EXPOSE", "FROM"):
        line = pg.instruction_line(kind)
        assert line is not None and line.text.startswith(kind)
    run = pg.instruction_line("RUN")
    assert run is not None and run.text.startswith("RUN ")
    operator = sources["operator"]
    assert operator.descriptor.text.startswith("version:")
    assert sources["base-trixie"].descriptor.text.startswith("releases:")
    unknown = image_sources(ROOT, plan, ROOT / "dockerfiles", {"x:1": "no-such-target"})
    assert unknown == ()
