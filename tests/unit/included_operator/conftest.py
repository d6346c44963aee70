"""Make `operator/` importable: the operator is its own small distribution, not on the path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
OPERATOR_DIR = REPO / "operator"
if str(OPERATOR_DIR) not in sys.path:
    sys.path.insert(0, str(OPERATOR_DIR))

CNPG_FIXTURES = REPO / "tests" / "fixtures" / "cnpg"


@pytest.fixture
def cnpg_fixtures() -> Path:
    assert CNPG_FIXTURES.is_dir(), f"missing CloudNativePG fixtures at {CNPG_FIXTURES}"
    return CNPG_FIXTURES
