#!/usr/bin/env bash
# The nightly's jobs, one subcommand each, handing artifacts through directories under OUT
# exactly as .github/workflows/nightly.yml hands them between jobs (upload-artifact /
# download-artifact of the same folders). The workflow calls these through make targets;
# `rehearse` runs them all in order on this machine, so a change that breaks the nightly's
# sequence fails here (and in `make test`) before it fails on GitHub.
#
#   scripts/nightly.sh plan     OUT          -> OUT/plan/matrix.json   (the shard matrix)
#   scripts/nightly.sh shard    OUT I/N      -> OUT/shard-I/           (build, scan, gate, stage)
#   scripts/nightly.sh promote  OUT          -> OUT/promote/           (promote, sign, catalogs)
#   scripts/nightly.sh catalogs OUT          -> OUT/catalogs/          (signed catalog files)
#   scripts/nightly.sh publish  OUT BRANCH   commit OUT/catalogs to BRANCH of CATALOG_REMOTE
#                                            (default: the GitHub repository), push if PUSH=true
#   scripts/nightly.sh rehearse OUT          every job above, in order (publishing to a
#                                            throwaway local repository)
#
# Environment: DRYDOCK_REGISTRY (host[:port][/namespace], default the local registry),
# SHARDS (default 4), TARGETS (space-separated plan targets; default every target),
# DRYDOCK_KEYLESS=true to sign with the CI's OIDC identity (the workflow) instead of the
# cached key pair (local runs), DRYDOCK_VULN_DB / extra run flags in RUN_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
DRYDOCK="$BIN/drydock"
SHARDS="${SHARDS:-4}"
read -r -a targets <<<"${TARGETS:-}"
read -r -a run_flags <<<"${RUN_FLAGS:-}"

log() { printf '[nightly] %s\n' "$*" >&2; }
usage() { sed -n '2,22p' "$0" >&2; exit 2; }

plan() { # plan OUT
  mkdir -p "$1/plan"
  "$DRYDOCK" plan "${targets[@]}" --format github-matrix --shards "$SHARDS" >"$1/plan/matrix.json"
  log "plan: $(cat "$1/plan/matrix.json")"
}

shard() { # shard OUT I/N
  local out=$1 spec=$2 index=${2%%/*} rc=0
  # Exit 1 (a gate failed) still stages and records; promotion then skips that image.
  "$DRYDOCK" run "${targets[@]}" --shard "$spec" --stage-only --out "$out/shard-$index" \
    "${run_flags[@]}" || rc=$?
  [ -f "$out/shard-$index/reports/gate.sarif" ] || { log "shard $spec wrote no SARIF"; exit 3; }
  [ "$rc" -le 1 ] || exit "$rc"
  log "shard $spec: $(grep -c '"decision"' "$out/shard-$index/run.json" || true) target(s) decided"
}

promote() { # promote OUT
  local out=$1
  shopt -s nullglob
  local shards=("$out"/shard-*)
  [ ${#shards[@]} -gt 0 ] || { log "no shard folders in $out"; exit 2; }
  "$DRYDOCK" promote "${shards[@]}" --out "$out/promote"
}

catalogs() { # catalogs OUT
  local out=$1
  [ -d "$out/promote/catalogs" ] || { log "no catalogs in $out/promote (run promote first)"; exit 2; }
  rm -rf "$out/catalogs"
  cp -r "$out/promote/catalogs" "$out/catalogs"
  "$DRYDOCK" catalog sign "$out/catalogs"
  if [ "${DRYDOCK_KEYLESS:-}" != "true" ]; then
    "$DRYDOCK" catalog verify "$out/catalogs"
  fi
}

publish() { # publish OUT BRANCH
  local out=$1 branch=$2 remote work
  [ -d "$out/catalogs" ] || { log "no signed catalogs in $out/catalogs (run catalogs first)"; exit 2; }
  remote="${CATALOG_REMOTE:-https://github.com/${REPOSITORY:?REPOSITORY or CATALOG_REMOTE}.git}"
  work=$(mktemp -d)
  local -a git=(git -C "$work" -c user.name=drydock-nightly -c user.email=drydock@users.noreply.github.com)
  if [ -n "${GITHUB_TOKEN:-}" ]; then
    # The token travels in an extra header for this one process, never in the remote URL.
    git+=(-c "http.extraheader=AUTHORIZATION: basic $(printf 'x-access-token:%s' "$GITHUB_TOKEN" | base64 -w0)")
  fi
  "${git[@]}" init -q
  if "${git[@]}" fetch -q --depth 1 "$remote" "$branch" 2>/dev/null; then
    "${git[@]}" checkout -q -B "$branch" FETCH_HEAD
  else
    "${git[@]}" checkout -q --orphan "$branch"
  fi
  find "$work" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
  cp -r "$out/catalogs/." "$work/"
  "${git[@]}" add -A
  if "${git[@]}" diff --cached --quiet; then
    log "catalogs unchanged on $branch"
  else
    "${git[@]}" commit -q -m "catalogs: nightly $(date -u +%Y-%m-%dT%H:%MZ)"
    log "committed catalogs to $branch"
  fi
  if [ "${PUSH:-}" = "true" ]; then "${git[@]}" push -q "$remote" "HEAD:refs/heads/$branch"; fi
  rm -rf "$work"
}

rehearse() { # rehearse OUT
  local out=$1 spec
  rm -rf "$out"
  plan "$out"
  for spec in $("$BIN/python" -c 'import json,sys; print(" ".join(i["shard"] for i in json.load(open(sys.argv[1]))["include"]))' "$out/plan/matrix.json"); do
    shard "$out" "$spec"
  done
  promote "$out"
  catalogs "$out"
  git init -q --bare "$out/catalog-remote.git"
  CATALOG_REMOTE="$out/catalog-remote.git" PUSH=true publish "$out" catalogs
  log "rehearsal done: $out"
}

[ $# -ge 2 ] || usage
case "$1" in
  plan | promote | catalogs | rehearse) "$1" "$2" ;;
  shard | publish) [ $# -eq 3 ] || usage; "$1" "$2" "$3" ;;
  *) usage ;;
esac
