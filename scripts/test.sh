#!/usr/bin/env bash
# Every test tier, on real components: unit (pure), integration (Docker engine, registry,
# Dockle, Trivy, cosign, chromium) and e2e (kube-apiserver + etcd + the operator, and a
# real node: kubelet, containerd, kube-proxy, CoreDNS).
# Provisions what the tests need first; a missing component fails the run, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"

bash scripts/host.sh up browser
bash scripts/tools.sh

start=$(date +%s)
set +e
"$BIN/pytest" -q -o console_output_style=classic tests/unit tests/integration tests/e2e "$@"
rc=$?
set -e
echo "tests took $(($(date +%s) - start))s"
# pytest's 5 means "no tests collected": that is a failure here, not a pass.
[ "$rc" -eq 5 ] && { echo "no tests were collected" >&2; exit 1; }
exit "$rc"
