#!/usr/bin/env bash
# Bring up what Drydock needs on the host, idempotently: a Docker engine and a local
# registry on 127.0.0.1:5000, the Debian tools that build base images, the Debian packages
# of the local Kubernetes node and the PostgreSQL Clair keeps its data in (`drydock dev
# clair up` starts it). Does nothing for a service that already answers. `base` installs
# what a bare Debian container lacks to run
# the rest (CI jobs run in debian:bookworm containers, as root: never under sudo, which
# would leave $DRYDOCK_CACHE root-owned).
# Installs Debian packages only when running as root with apt; otherwise it says what is
# missing and exits 3.
set -euo pipefail

CACHE="${DRYDOCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/drydock}"
REGISTRY_ADDR="${DRYDOCK_REGISTRY_ADDR:-127.0.0.1:5000}"
RUN="$CACHE/run"
mkdir -p "$RUN"

# Every Debian package Drydock and its tests use, by purpose, and the programs each must
# provide. `install` installs them all without starting anything (the provisioning test does
# that in a clean container); `check` fails naming any program that is missing.
PKG_BASE=(python3 python3-venv make git curl ca-certificates xz-utils)
PKG_ENGINE=(docker.io)
PKG_REGISTRY=(docker-registry curl)
# debootstrap is only a Recommends of debuerreotype, and apt_install skips recommends:
# name it, or debuerreotype-init fails on a fresh machine ("failed to execute debootstrap").
PKG_BASES=(debuerreotype debootstrap debian-archive-keyring)
# Clair's database: Debian's PostgreSQL, run by `drydock dev clair up` as an unprivileged
# user (setpriv, from util-linux, drops root) with its own data directory and port, never
# the packaged cluster.
PKG_CLAIR=(postgresql util-linux)
# Test-only: the HTML checklist opens in a real headless browser; the nightly package-delta
# test builds and signs a small apt repository.
PKG_TESTS=(chromium dpkg-dev gnupg)
# The local node (pipeline/tools/node*.py): Debian's containerd and runc (a containerd of its
# own, not Docker's), the CNI plugins, iptables/iproute2/procps for its namespace, link and
# chains, util-linux's nsenter/unshare and mount for its namespaces, gcc + libc6-dev for
# scripts/tools.sh to build Kubernetes' pause.c, and ipset (with iptables-save/-restore) for
# kube-router's NetworkPolicy enforcement.
PKG_NODE=(containerd runc containernetworking-plugins iptables iproute2 procps util-linux mount
  gcc libc6-dev ipset)
CNI_PLUGINS=(bridge host-local loopback portmap)  # in /usr/lib/cni, not on PATH
PROGRAMS=(bash flock python3 make git curl tar xz docker dockerd docker-registry debootstrap
  debuerreotype-init debuerreotype-minimizing-config debuerreotype-apt-get
  debuerreotype-slimify debuerreotype-tar chromium dpkg-deb dpkg-scanpackages gpg gpgconf gpgv
  containerd containerd-shim-runc-v2 runc ip iptables iptables-save iptables-restore ipset sysctl
  nsenter unshare mount
  sleep gcc setpriv psql pg_isready)

log() { printf '[host] %s\n' "$*" >&2; }
die() { printf '[host] error: %s\n' "$*" >&2; exit 3; }

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

apt_install() { # apt_install PACKAGE... (only the missing ones)
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  can_install || die "missing Debian packages: ${missing[*]} (run as root on a Debian host, or install them yourself)"
  log "installing ${missing[*]}"
  # Two provisioning runs at once (CI jobs, helpers, a user's second shell) wait for dpkg's
  # lock instead of failing on it (flock for ours, apt's lock timeout for anyone else's).
  exec 9>"$RUN/apt.lock"
  flock -w 900 9 || die "another provisioning run held the apt lock for 15 minutes"
  if [ ! -f "$RUN/apt-updated" ] || [ -n "$(find "$RUN/apt-updated" -mmin +360)" ]; then
    timeout 600 apt-get -o DPkg::Lock::Timeout=540 update -qq && touch "$RUN/apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=540 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exec 9>&- # released here: daemons started later must not inherit (and hold) it
}

docker_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

ensure_docker() {
  if docker_answers; then log "docker engine already running"; return 0; fi
  apt_install "${PKG_ENGINE[@]}"
  # An engine reachable through a mounted socket needs only the CLI just installed.
  if docker_answers; then log "docker engine already running"; return 0; fi
  command -v dockerd >/dev/null || die "dockerd not found after installing docker.io"
  log "starting dockerd"
  nohup dockerd --host=unix:///var/run/docker.sock >"$RUN/dockerd.log" 2>&1 &
  echo $! >"$RUN/dockerd.pid"
  for _ in $(seq 1 60); do docker_answers && { log "docker engine up"; return 0; }; sleep 1; done
  tail -20 "$RUN/dockerd.log" >&2
  die "dockerd did not answer within 60s (log: $RUN/dockerd.log)"
}

registry_answers() { timeout 5 curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; }

ensure_registry() {
  if registry_answers; then log "registry already answering on $REGISTRY_ADDR"; return 0; fi
  apt_install "${PKG_REGISTRY[@]}"
  mkdir -p "$CACHE/registry"
  cat >"$RUN/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $CACHE/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
  log "starting docker-registry on $REGISTRY_ADDR (data in $CACHE/registry)"
  nohup docker-registry serve "$RUN/registry.yml" >"$RUN/registry.log" 2>&1 &
  echo $! >"$RUN/registry.pid"
  for _ in $(seq 1 30); do registry_answers && { log "registry up"; return 0; }; sleep 0.5; done
  tail -20 "$RUN/registry.log" >&2
  die "registry did not answer on $REGISTRY_ADDR within 15s"
}

ensure_base_tools() {
  # debuerreotype builds the Debian base images; the archive keyring verifies them.
  apt_install "${PKG_BASES[@]}"
}

ensure_base() {
  # What a bare Debian (a CI job's container) lacks to run the rest: Python with venv, make,
  # git, curl and CA certificates. Go comes from the workflow's setup-go (or the machine).
  apt_install "${PKG_BASE[@]}"
}

ensure_node() {
  apt_install "${PKG_NODE[@]}"
}

ensure_clair_db() {
  apt_install "${PKG_CLAIR[@]}"
}

ensure_browser() {
  apt_install "${PKG_TESTS[@]}"
}

install_all() {
  apt_install "${PKG_BASE[@]}" "${PKG_ENGINE[@]}" "${PKG_REGISTRY[@]}" "${PKG_BASES[@]}" \
    "${PKG_CLAIR[@]}" "${PKG_TESTS[@]}" "${PKG_NODE[@]}"
}

check_programs() {
  local missing=() p
  for p in "${PROGRAMS[@]}"; do command -v "$p" >/dev/null || missing+=("$p"); done
  for p in "${CNI_PLUGINS[@]}"; do [ -x "/usr/lib/cni/$p" ] || missing+=("/usr/lib/cni/$p"); done
  [ ${#missing[@]} -eq 0 ] || die "programs missing after provisioning: ${missing[*]}"
  log "every program Drydock and its tests call is present (${#PROGRAMS[@]})"
}

[ $# -eq 0 ] && set -- up
for what in "$@"; do
  case "$what" in
    up) ensure_docker; ensure_registry; ensure_base_tools; ensure_node; ensure_clair_db ;;
    clair) ensure_clair_db ;;
    docker) ensure_docker ;;
    node) ensure_node ;;
    registry) ensure_registry ;;
    browser) ensure_browser ;;
    base) ensure_base ;;
    install) install_all ;;
    check) check_programs ;;
    *) echo "usage: scripts/host.sh [up|base|docker|registry|node|clair|browser|install|check]..." >&2; exit 2 ;;
  esac
done
