"""Provisioning proven from scratch: `scripts/host.sh install` in a clean Debian container.

A green CI on a machine that has packages from earlier work proves nothing about a fresh
one (debootstrap was once only a Recommends that the install skipped, and CI stayed green
while a newcomer's first command failed). So the provisioning script runs in a container
built from Drydock's own bookworm base, which has nothing installed beyond a minimal Debian,
and `host.sh check` must then find every program the pipeline and the tests call.

The build is cached by the engine on the script's content: it reruns (minutes: it downloads
the engine, the browser, debuerreotype) exactly when host.sh changes. A unit test
(tests/unit/test_provisioning_list.py) keeps the program list in step with the code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.build.executor import BuildResult
from pipeline.errors import ToolError
from pipeline.tools import docker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _context(tmp_path: Path, base: str, script: str, run: str) -> Path:
    context = tmp_path / "context"
    context.mkdir()
    (context / "host.sh").write_text(script, encoding="utf-8")
    (context / "Dockerfile").write_text(
        f"FROM {base}\nUSER 0\nCOPY host.sh /provision/host.sh\nRUN {run}\n", encoding="utf-8"
    )
    return context


def _build(context: Path, tag: str) -> tuple[str, list[str]]:
    lines: list[str] = []
    try:
        image = docker.build(
            docker.detect_builder(), context, tag, build_args={}, labels={}, on_line=lines.append
        )
    finally:
        shutil.rmtree(context, ignore_errors=True)
    return image, lines


SCRIPT = (ROOT / "scripts" / "host.sh").read_text(encoding="utf-8")


def test_host_sh_installs_every_program_in_a_clean_debian(
    foundation_build: BuildResult, tmp_path: Path
) -> None:
    base = foundation_build.images["base-bookworm"].tag
    run = "bash /provision/host.sh install && bash /provision/host.sh check"
    image, lines = _build(_context(tmp_path, base, SCRIPT, run), "drydock-test/provisioning:ok")
    assert image.startswith("sha256:")
    assert any("every program Drydock and its tests call is present" in line for line in lines) or (
        docker.inspect(image) is not None  # a cached build prints no RUN output
    )


def test_the_check_fails_on_a_machine_that_lacks_them(
    foundation_build: BuildResult, tmp_path: Path
) -> None:
    """The check is not a formality: on the clean base, before installing, it names what is
    missing (debootstrap among them, the step a fresh machine once lacked)."""
    base = foundation_build.images["base-bookworm"].tag
    context = _context(tmp_path, base, SCRIPT, "bash /provision/host.sh check")
    with pytest.raises(ToolError) as caught:
        _build(context, "drydock-test/provisioning:unprovisioned")
    message = str(caught.value)
    assert "programs missing after provisioning:" in message
    for program in ("debootstrap", "dockerd", "docker-registry", "chromium"):
        assert program in message
