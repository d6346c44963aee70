#!/usr/bin/env bash
# Build the third-party Go tools Drydock drives (Dockle, Trivy, trivy-db, crane, oras,
# etcd, kube-apiserver, cosign, actionlint, Clair, and the node: kubelet, kube-proxy,
# kube-controller-manager, kube-scheduler, CoreDNS) from the Go module proxy at pinned
# versions. Go's checksum database verifies every module. The node's pause binary is
# Kubernetes' own build/pause/linux/pause.c from the k8s.io/kubernetes module at KUBE_VERSION,
# compiled statically with gcc. Binaries are cached by name and version outside the
# checkout, so a second run costs nothing.
#
# usage: scripts/tools.sh [TOOL...]     (default: every tool)
#        scripts/tools.sh --for STEP    (the tools one step needs: run, scan, publish,
#                                        cluster, node, lint; a bench or test builds only those)
#        scripts/tools.sh --print-dir   (where the binaries live)
# Drydock also builds a missing tool itself when a step first needs it, and `drydock run`
# starts its tools' builds in the background (pipeline/tools/provision.py).
set -euo pipefail

CACHE="${DRYDOCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/drydock}"
BIN="$CACHE/bin"
TIMES="$CACHE/tool-build-times.tsv"

# Pinned versions: one file, shared with pipeline.tools.locate (which refuses other versions).
# shellcheck source=../pipeline/tools/versions.env
. "$(dirname "${BASH_SOURCE[0]}")/../pipeline/tools/versions.env"

if [ "${1:-}" = "--print-dir" ]; then echo "$BIN"; exit 0; fi

mkdir -p "$BIN"
export GOFLAGS="-trimpath" CGO_ENABLED=0 GOTOOLCHAIN=local
command -v go >/dev/null || { echo "tools.sh: Go is needed to build the scanners (go not on PATH)" >&2; exit 3; }

log() { printf '[tools] %s\n' "$*" >&2; }

# have NAME VERSION -> true when the cached binary for this exact version exists
have() { [ -x "$BIN/$1-$2" ]; }

finish() { # finish NAME VERSION START
  ln -sfn "$1-$2" "$BIN/$1"
  printf '%s\t%s\t%ss\n' "$1" "$2" "$(($(date +%s) - $3))" >>"$TIMES"
  log "$1 $2 built in $(($(date +%s) - $3))s"
}

build_simple() { # build_simple NAME VERSION PACKAGE [LDFLAGS]
  # A wrapper module rather than `go install pkg@version`: some modules' version lists are not
  # served by the proxy, and `go install` insists on reading them for deprecation notices.
  build_wrapped "$1" "$2" "$3" "" "${4:-}"
}

build_wrapped() { # build_wrapped NAME VERSION PACKAGE GOMOD_EXTRA [LDFLAGS] -- for modules with replace directives
  local name=$1 version=$2 pkg=$3 extra=$4 ld=${5:-} start dir lock
  have "$name" "$version" && { ln -sfn "$name-$version" "$BIN/$name"; return 0; }
  # One build per tool at a time: a step that needs a tool a background build is compiling
  # (pipeline.tools.provision) waits here for it, then finds it built.
  exec {lock}>"$BIN/.build-$name.lock"
  flock "$lock"
  if have "$name" "$version"; then ln -sfn "$name-$version" "$BIN/$name"; exec {lock}>&-; return 0; fi
  start=$(date +%s); dir="$CACHE/wrappers/$name-$version"
  log "building $name $version through a wrapper module"
  rm -rf "$dir"; mkdir -p "$dir"
  (cd "$dir" && go mod init drydock.invalid/"$name"-bin >/dev/null 2>&1 \
    && printf '%s\n' "$extra" >>go.mod && go get "$pkg@$version" \
    && go build -ldflags "-s -w $ld" -o "$BIN/$name-$version.tmp" "$pkg") \
    && mv "$BIN/$name-$version.tmp" "$BIN/$name-$version"
  finish "$name" "$version" "$start"
  exec {lock}>&-
}

dockle() { build_simple dockle "$DOCKLE_VERSION" github.com/goodwithtech/dockle/cmd/dockle \
  "-X github.com/goodwithtech/dockle/pkg.version=${DOCKLE_VERSION#v}"; }
trivy() { GOEXPERIMENT=jsonv2 build_simple trivy "$TRIVY_VERSION" github.com/aquasecurity/trivy/cmd/trivy \
  "-X github.com/aquasecurity/trivy/pkg/version/app.ver=${TRIVY_VERSION#v}"; }
trivy_db() { build_simple trivy-db "$TRIVY_DB_VERSION" github.com/aquasecurity/trivy-db/cmd/trivy-db; }
crane() { build_simple crane "$CRANE_VERSION" github.com/google/go-containerregistry/cmd/crane; }
oras() { build_simple oras "$ORAS_VERSION" oras.land/oras/cmd/oras; }
etcd() { build_wrapped etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 ""; }
cosign() { build_simple cosign "$COSIGN_VERSION" github.com/sigstore/cosign/v2/cmd/cosign \
  "-X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION -X sigs.k8s.io/release-utils/version.gitTreeState=clean"; }
actionlint() { build_simple actionlint "$ACTIONLINT_VERSION" github.com/rhysd/actionlint/cmd/actionlint \
  "-X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION"; }
clair() {
  # `go get` must name the module (github.com/quay/clair/v4): the proxy refuses the longer
  # cmd/clair path. -mod=mod lets the build add the go.sum lines the command needs.
  local version=$CLAIR_VERSION start dir
  have clair "$version" && { ln -sfn "clair-$version" "$BIN/clair"; return 0; }
  start=$(date +%s); dir="$CACHE/wrappers/clair-$version"
  log "building clair $version through a wrapper module"
  rm -rf "$dir"; mkdir -p "$dir"
  (cd "$dir" && go mod init drydock.invalid/clair-bin >/dev/null 2>&1 \
    && go get "github.com/quay/clair/v4@$version" \
    && go build -mod=mod -ldflags "-s -w" -o "$BIN/clair-$version.tmp" github.com/quay/clair/v4/cmd/clair) \
    && mv "$BIN/clair-$version.tmp" "$BIN/clair-$version"
  finish clair "$version" "$start"
}
# Kubernetes' own go.mod requires its 31 staging modules at the fake version v0.0.0 and
# replaces them with ./staging paths, which a module download does not have: a wrapper module
# replaces each with its published v0.Y.Z. Every Kubernetes binary is built the same way.
kube_replaces() {
  local staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client
    csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
    kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils
    pod-security-admission sample-apiserver sample-cli-plugin sample-controller)
  local repl="replace (" m
  for m in "${staging[@]}"; do repl+=$'\n'"	k8s.io/$m => k8s.io/$m v0.${KUBE_VERSION#v1.}"; done
  printf '%s\n)' "$repl"
}
kube_ldflags() {
  local minor=${KUBE_VERSION#v1.} ld="" p; minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  printf '%s' "$ld"
}
kube_build() { # kube_build NAME -> k8s.io/kubernetes/cmd/NAME at KUBE_VERSION
  build_wrapped "$1" "$KUBE_VERSION" "k8s.io/kubernetes/cmd/$1" "$(kube_replaces)" "$(kube_ldflags)"
}
kube_apiserver() { kube_build kube-apiserver; }
kubelet() { kube_build kubelet; }
kube_proxy() { kube_build kube-proxy; }
kube_controller_manager() { kube_build kube-controller-manager; }
kube_scheduler() { kube_build kube-scheduler; }
coredns() { build_simple coredns "$COREDNS_VERSION" github.com/coredns/coredns \
  "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"; }
kube_router() { build_simple kube-router "$KUBE_ROUTER_VERSION" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
  "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"; }
pause() { # the sandbox ("pause") process of every pod, from the module source at KUBE_VERSION
  local name=pause version=$KUBE_VERSION start dir src tag lock
  # Locked like the Go builds: two concurrent callers wrote the same .tmp file.
  exec {lock}>"$BIN/.build-$name.lock"
  flock "$lock"
  have "$name" "$version" && { ln -sfn "$name-$version" "$BIN/$name"; exec {lock}>&-; return 0; }
  command -v gcc >/dev/null || { echo "tools.sh: gcc is needed for pause (scripts/host.sh node)" >&2; exit 3; }
  start=$(date +%s)
  # GOFLAGS=-mod=mod: `go mod download` outside a module only fetches into the module cache.
  dir=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  src="$dir/build/pause/linux/pause.c"
  [ -f "$src" ] || { echo "tools.sh: $src not found in the k8s.io/kubernetes module" >&2; exit 3; }
  tag=$(sed -n 's/^TAG ?= *//p' "$dir/build/pause/Makefile")
  log "building $name $version (pause.c, version $tag) with gcc, statically"
  # The flags of build/pause/Makefile (CFLAGS) plus stripping, as its Dockerfile's binary is.
  gcc -Os -Wall -Werror -static -s -DVERSION="v$tag-drydock-$KUBE_VERSION" -o "$BIN/$name-$version.tmp" "$src"
  mv "$BIN/$name-$version.tmp" "$BIN/$name-$version"
  finish "$name" "$version" "$start"
  exec {lock}>&-
}

ALL=(dockle crane oras trivy_db trivy etcd kube_apiserver cosign actionlint clair
  kubelet kube_proxy kube_controller_manager kube_scheduler coredns pause kube_router)
want=("$@"); [ ${#want[@]} -eq 0 ] && want=("${ALL[@]}")
if [ "${1:-}" = "--for" ]; then
  case "${2:-}" in
    scan) want=(trivy_db oras dockle trivy) ;;
    publish) want=(cosign) ;;
    run) want=(trivy_db oras dockle trivy cosign) ;;
    cluster) want=(etcd kube_apiserver) ;;
    node) want=(etcd kube_apiserver kubelet kube_proxy kube_controller_manager kube_scheduler coredns pause kube_router) ;;
    lint) want=(actionlint) ;;
    *) echo "tools.sh: --for takes run, scan, publish, cluster, node or lint" >&2; exit 2 ;;
  esac
fi
for t in "${want[@]}"; do
  t=${t//-/_}
  case " ${ALL[*]} " in *" $t "*) "$t" ;; *) echo "tools.sh: unknown tool '$t' (known: ${ALL[*]})" >&2; exit 2 ;; esac
done
log "tools ready in $BIN"
