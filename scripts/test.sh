#!/usr/bin/env bash
# Every test tier, on real components: unit (pure), integration (Docker engine, registry,
# Dockle, Trivy, cosign, chromium) and e2e (kube-apiserver + etcd + the operator, and a
# real node: kubelet, containerd, kube-proxy, CoreDNS).
# Provisions what the tests need first; a missing component fails the run, never skips.
#
# usage: scripts/test.sh [--tier unit|integration|e2e]... [PYTEST ARGS...]
#        (default: every tier; CI's jobs run one tier each)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"

tiers=()
while [ "${1:-}" = "--tier" ]; do
  case "${2:-}" in
    unit | integration | e2e) tiers+=("tests/$2") ;;
    *) echo "scripts/test.sh: --tier takes unit, integration or e2e" >&2; exit 2 ;;
  esac
  shift 2
done
[ ${#tiers[@]} -gt 0 ] || tiers=(tests/unit tests/integration tests/e2e)

if [ "${tiers[*]}" != "tests/unit" ]; then
  bash scripts/host.sh up browser
  bash scripts/tools.sh
fi

start=$(date +%s)
set +e
"$BIN/pytest" -q -o console_output_style=classic "${tiers[@]}" "$@"
rc=$?
set -e
echo "tests took $(($(date +%s) - start))s"
# pytest's 5 means "no tests collected": that is a failure here, not a pass.
[ "$rc" -eq 5 ] && { echo "no tests were collected" >&2; exit 1; }
exit "$rc"
