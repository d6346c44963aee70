#!/usr/bin/env bash
# Lint the GitHub Actions workflows: actionlint (syntax, expressions; shellcheck on run: blocks when installed)
# and zizmor (security: template injection, credentials, permissions, pinning), offline.
# Both are pinned: actionlint is built by scripts/tools.sh, zizmor is installed from PyPI
# into its own virtualenv under the cache, so nothing here touches the project's venv.
#
# usage: scripts/lint-workflows.sh [WORKFLOW...]   (default: .github/workflows/*.yml)
set -euo pipefail

ZIZMOR_VERSION=1.32.0
CACHE="${DRYDOCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/drydock}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"

log() { printf '[lint-workflows] %s\n' "$*" >&2; }

cd "$ROOT"
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  shopt -s nullglob
  files=(.github/workflows/*.yml .github/workflows/*.yaml)
fi
[ ${#files[@]} -gt 0 ] || { log "no workflow files found"; exit 2; }

BIN="$(bash "$HERE/tools.sh" --print-dir)"
[ -x "$BIN/actionlint" ] || bash "$HERE/tools.sh" actionlint

ZENV="$CACHE/venvs/zizmor-$ZIZMOR_VERSION"
if [ ! -x "$ZENV/bin/zizmor" ]; then
  log "installing zizmor $ZIZMOR_VERSION into $ZENV"
  python3 -m venv "$ZENV"
  timeout 600 "$ZENV/bin/pip" install --quiet "zizmor==$ZIZMOR_VERSION"
fi

status=0
log "actionlint ${files[*]}"
timeout 300 "$BIN/actionlint" "${files[@]}" || status=1
log "zizmor --offline ${files[*]}"
timeout 300 "$ZENV/bin/zizmor" --offline --no-progress "${files[@]}" || status=1
[ "$status" -eq 0 ] && log "workflows clean"
exit "$status"
