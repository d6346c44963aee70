"""Integration fixtures: real builds on the real Docker engine.

    foundation_build  session  BuildResult of the operator image, one minimal operand per
                               supported major of the default matrix (15 bookworm, 17
                               trixie; 13 bullseye is retired: past end of life) and the
                               standard flavour built on 17's minimal, built by Drydock's
                               own executor (reused when unchanged)

A missing engine fails the run; nothing is skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.build.events import Silent
from pipeline.build.executor import BuildResult, build_plan
from pipeline.descriptors.load import load_plan
from pipeline.settings import Settings, default_cache
from pipeline.tools import docker

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "operator") not in sys.path:
    sys.path.insert(0, str(ROOT / "operator"))  # the operator is its own small distribution
FOUNDATION_TARGETS = (
    "operator",
    "postgresql-15-minimal-bookworm",
    "postgresql-17-minimal-trixie",
    "postgresql-17-standard-trixie",
)


@pytest.fixture(scope="session")
def foundation_settings() -> Settings:
    return Settings(root=ROOT, cache=default_cache(), jobs=2)


@pytest.fixture(scope="session")
def foundation_build(foundation_settings: Settings) -> BuildResult:
    if docker.inspect("drydock/no-such-image:probe") is not None:  # also proves the engine answers
        pytest.fail("unexpected image drydock/no-such-image:probe")
    plan = load_plan(ROOT / "images", ROOT / "dockerfiles").select(FOUNDATION_TARGETS)
    return build_plan(plan, foundation_settings, Silent())
