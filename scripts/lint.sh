#!/usr/bin/env bash
# The blocking code gate over every Python file of the repository: ruff (with the bandit S
# rules) and ruff format on the whole tree, mypy --strict on the orchestrator, the included
# operator, the benchmarks and each test tier, import-linter on both packages, and the
# workflow linters. `make lint` and CI run exactly this.
#
# usage: scripts/lint.sh            (every check, stops at the first failing one)
#        scripts/lint.sh --sarif F  (also write ruff's findings as SARIF to F for code scanning)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
sarif=""
[ "${1:-}" = "--sarif" ] && sarif="${2:?--sarif needs a file}"

step() { printf '[lint] %s\n' "$*" >&2; }

if [ -n "$sarif" ]; then
  # Written first and whatever its findings, so the upload shows them on the pull request.
  "$BIN/ruff" check --output-format sarif --output-file "$sarif" --exit-zero .
fi
step "ruff check (incl. bandit S rules)"
"$BIN/ruff" check .
step "ruff format --check"
"$BIN/ruff" format --check .
step "mypy --strict: pipeline, operator, bench"
"$BIN/mypy"
(cd operator && "../$BIN/mypy")
# bench/package_delta.py times the scenario of an integration test, with its helpers;
# bench/operator_roll.py reuses the e2e tier's image and node helpers (tests/e2e/pg_support.py).
MYPYPATH=bench:tests/integration:tests/e2e:operator "$BIN/mypy" --strict --explicit-package-bases bench
# Each tier has its own conftest and helper modules, so each is checked on its own.
for tier in tests/unit tests/integration tests/e2e; do
  step "mypy --strict: $tier"
  MYPYPATH="$tier:$tier/included_operator:operator" "$BIN/mypy" --strict --explicit-package-bases "$tier"
done
step "import-linter: pipeline"
"$BIN/lint-imports"
step "import-linter: operator"
(cd operator && PYTHONPATH=. "../$BIN/lint-imports")
step "workflows: actionlint, zizmor"
bash scripts/lint-workflows.sh
