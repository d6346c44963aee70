"""A local Clair v4 (combo mode) with its PostgreSQL and its vulnerability feed front.

Why: Clair is the pipeline's second vulnerability scanner, and a test or a build on this
machine must scan with the real one. `up` starts, idempotently and in this order:

  1. Clair's PostgreSQL (pipeline.tools.clair_db: unprivileged, loopback, own data dir);
  2. with the `local` updaters, the feed front: a static HTTP server on loopback over
     `<state>/feed`, which holds what claircore's Debian updater reads (an HTML listing of
     `debian/dists/`, each release's `Release`, and the security tracker JSON). The caller
     writes those files first (pipeline.scan.clairfeed); Last-Modified is the JSON's mtime;
  3. Clair itself, `-mode combo`, PSK (JWT) authentication on, waiting for /readyz.

With the `default` updaters Clair's own Debian updater fetches Debian's data from Debian's
servers (deb.debian.org, security-tracker.debian.org: internet access needed) and no feed
front runs; other distributions' updater sets are left out (Drydock builds Debian only).
State (ports, pids, secrets 0600, config 0600, logs, feed) lives in `$DRYDOCK_CACHE/clair`;
processes are started only through pipeline.tools.daemon and recognised by pid and argv
marker, so `down` never signals anybody else's process.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests
import yaml

from pipeline.errors import ToolError
from pipeline.tools import clair_db
from pipeline.tools.daemon import (
    free_ports,
    is_ours,
    locked_dir,
    read_state,
    spawn,
    stop,
    wait_ready,
    write_state,
)
from pipeline.tools.locate import cache_root, locate

log = logging.getLogger(__name__)

UPDATERS = ("local", "default")
ISSUER = "drydock"
JSON_PATH = "tracker/data/json"  # where the feed front serves the tracker JSON


@dataclass(frozen=True)
class ClairSettings:
    state_dir: Path | None = None  # default: $DRYDOCK_CACHE/clair
    updaters: str = "local"  # "local": Drydock's feed front; "default": Clair's own updaters
    start_timeout: float = 120.0
    stop_timeout: float = 30.0

    def resolved_state_dir(self) -> Path:
        return self.state_dir or cache_root() / "clair"


@dataclass(frozen=True)
class State:
    """What state.json records: ports chosen once, where the data is, the running pids."""

    db_port: int
    http_port: int
    introspection_port: int
    feed_port: int
    db_root: str = ""
    updaters: str = "local"
    db_pid: int | None = None
    clair_pid: int | None = None
    feed_pid: int | None = None


@dataclass(frozen=True)
class ClairStatus:
    state_dir: Path
    url: str
    db_pid: int | None
    clair_pid: int | None
    feed_pid: int | None
    ready: bool
    updaters: str = "local"

    @property
    def running(self) -> bool:
        return any(p is not None for p in (self.db_pid, self.clair_pid, self.feed_pid))


def feed_dir(state_dir: Path) -> Path:
    return state_dir / "feed"


def psk_file(state_dir: Path) -> Path:
    """The pre-shared key (base64) Clair verifies JWTs with; 0600, never logged."""
    return state_dir / "psk"


def clair_config(st: State, connstring: str, psk: str, rhel_maps: Path) -> dict[str, Any]:
    """Clair's config file (pure). `local` points the Debian updater at the feed front and
    Red Hat's indexer scanners at empty local mapping files: offline, their default
    remote fetch fails and claircore then fails the whole index of *any* image."""
    feed = f"http://127.0.0.1:{st.feed_port}/"
    config: dict[str, Any] = {
        "http_listen_addr": f"127.0.0.1:{st.http_port}",
        "introspection_addr": f"127.0.0.1:{st.introspection_port}",
        "log_level": "info",
        "indexer": {
            "connstring": connstring,
            "migrations": True,
            "scanlock_retry": 10,
            "layer_scan_concurrency": 4,
            "airgap": st.updaters == "local",
        },
        "matcher": {"connstring": connstring, "migrations": True, "update_retention": 2},
        "notifier": {"connstring": connstring, "migrations": True},
        "auth": {"psk": {"key": psk, "iss": [ISSUER, "clairctl"]}},
        "metrics": {"name": "prometheus"},
    }
    config["updaters"] = {"sets": ["debian"]}  # the distribution Drydock's images run
    if st.updaters == "local":
        repo_map = {"repo2cpe_mapping_file": str(rhel_maps / "repository-to-cpe.json")}
        name_map = {"name2repos_mapping_file": str(rhel_maps / "container-name-repos-map.json")}
        config["indexer"]["scanner"] = {
            "repo": {"rhel-repository-scanner": repo_map, "rhel_containerscanner": name_map},
            "package": {"rhel_containerscanner": name_map},
        }
        config["updaters"] = {
            "sets": ["debian"],
            "config": {"debian": {"mirror_url": feed, "json_url": feed + JSON_PATH}},
        }
    return config


def _secrets(state_dir: Path) -> dict[str, str]:
    """PSK and database passwords, created once per state dir (0600)."""
    path = state_dir / "secrets.json"
    if path.is_file():
        loaded = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in loaded.items()}
    made = {
        "psk": base64.b64encode(secrets.token_bytes(32)).decode("ascii"),
        "db_admin": secrets.token_hex(24),
        "db_role": secrets.token_hex(24),
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(made) + "\n", encoding="utf-8")
    psk_file(state_dir).touch(mode=0o600)
    psk_file(state_dir).write_text(made["psk"] + "\n", encoding="utf-8")
    return made


def _read_state(state_dir: Path) -> State | None:
    return read_state(state_dir, State)


def _write_state(state_dir: Path, st: State) -> None:
    write_state(state_dir, st)


def _new_state(updaters: str) -> State:
    db, http, introspection, feed = free_ports(4)
    return State(db, http, introspection, feed, updaters=updaters)


def _feed_argv(state_dir: Path, port: int) -> list[str]:
    # The standard library's static server: directory listings with relative links (what
    # claircore parses), Last-Modified from mtimes and If-Modified-Since answered with 304.
    return [
        sys.executable,
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        "--directory",
        str(feed_dir(state_dir)),
        str(port),
    ]


def _clair_marker(state_dir: Path) -> str:
    return str(state_dir / "clair.yaml")


def _running(st: State, state_dir: Path) -> tuple[int | None, int | None, int | None]:
    db = st.db_pid if is_ours(st.db_pid, "postgres", str(Path(st.db_root) / "data")) else None
    feed = st.feed_pid if is_ours(st.feed_pid, "python", str(feed_dir(state_dir))) else None
    clair = st.clair_pid if is_ours(st.clair_pid, "clair", _clair_marker(state_dir)) else None
    return db, clair, feed


def _ensure_db(st: State, state_dir: Path, keys: dict[str, str], timeout: float) -> State:
    user = clair_db.db_user()
    root = Path(st.db_root) if st.db_root else clair_db.data_root(state_dir, user)
    st = replace(st, db_root=str(root))
    created = clair_db.initialise(root, user, keys["db_admin"], st.db_port)
    if not is_ours(st.db_pid, "postgres", str(root / "data")):
        pid = clair_db.start(root, user, st.db_port, state_dir / "logs" / "postgres.log", timeout)
        st = replace(st, db_pid=pid)
        _write_state(state_dir, st)
    if created:
        clair_db.create_role(st.db_port, keys["db_admin"], keys["db_role"])
    return st


def _ensure_feed(st: State, state_dir: Path, timeout: float) -> State:
    listing = feed_dir(state_dir) / "debian" / "dists"
    if not (listing.is_dir() and (feed_dir(state_dir) / JSON_PATH).is_file()):
        raise ToolError(["clair"], None, "", f"no vulnerability feed in {feed_dir(state_dir)}")
    if is_ours(st.feed_pid, "python", str(feed_dir(state_dir))):
        return st
    argv = _feed_argv(state_dir, st.feed_port)
    logf = state_dir / "logs" / "feed.log"
    pid = spawn(argv, logf)
    st = replace(st, feed_pid=pid)
    _write_state(state_dir, st)
    url = f"http://127.0.0.1:{st.feed_port}/debian/dists/"
    wait_ready(pid, argv=argv, url=url, verify=False, log_file=logf, timeout=timeout)
    return st


def _rhel_maps(state_dir: Path) -> Path:
    """Empty Red Hat mapping files (`{"data": {}}`): Debian images need none of them."""
    folder = state_dir / "rhel"
    folder.mkdir(exist_ok=True)
    for name in ("repository-to-cpe.json", "container-name-repos-map.json"):
        (folder / name).write_text('{"data": {}}\n', encoding="utf-8")
    return folder


def _start_clair(st: State, state_dir: Path, keys: dict[str, str], timeout: float) -> State:
    config = state_dir / "clair.yaml"
    dsn = clair_db.connstring(st.db_port, keys["db_role"])
    text = yaml.safe_dump(
        clair_config(st, dsn, keys["psk"], _rhel_maps(state_dir)), sort_keys=False
    )
    config.touch(mode=0o600)
    config.write_text(text, encoding="utf-8")
    argv = [str(locate("clair").path), "-conf", str(config), "-mode", "combo"]
    logf = state_dir / "logs" / "clair.log"
    pid = spawn(argv, logf)
    st = replace(st, clair_pid=pid)
    _write_state(state_dir, st)
    url = f"http://127.0.0.1:{st.introspection_port}/readyz"
    wait_ready(pid, argv=argv, url=url, verify=False, log_file=logf, timeout=timeout)
    log.info("Clair up on 127.0.0.1:%d (pid %d)", st.http_port, pid)
    return st


def up(settings: ClairSettings | None = None, *, restart_clair: bool = False) -> ClairStatus:
    """Start what is not running (database, feed front, Clair); harmless when all run.

    `restart_clair` restarts a running Clair so that its updaters run now (they run at
    start, then every matcher period): the caller sets it after writing a new feed.
    """
    settings = settings or ClairSettings()
    if settings.updaters not in UPDATERS:
        raise ToolError(["clair"], None, "", f"updaters must be one of {UPDATERS}")
    state_dir = settings.resolved_state_dir()
    with locked_dir(state_dir):
        keys = _secrets(state_dir)
        st = _read_state(state_dir) or _new_state(settings.updaters)
        if st.updaters != settings.updaters:
            restart_clair = True
            st = replace(st, updaters=settings.updaters)
        started = time.monotonic()
        st = _ensure_db(st, state_dir, keys, settings.start_timeout)
        if settings.updaters == "local":
            st = _ensure_feed(st, state_dir, settings.start_timeout)
        ours = is_ours(st.clair_pid, "clair", _clair_marker(state_dir))
        if ours and restart_clair and st.clair_pid is not None:
            stop(st.clair_pid, settings.stop_timeout)
            ours = False
        if not ours:
            st = _start_clair(st, state_dir, keys, settings.start_timeout)
        _write_state(state_dir, st)
        log.info("local Clair ready in %.1fs", time.monotonic() - started)
    return status(settings)


def status(settings: ClairSettings | None = None) -> ClairStatus:
    """What runs for this state dir and whether Clair answers /readyz."""
    settings = settings or ClairSettings()
    state_dir = settings.resolved_state_dir()
    st = _read_state(state_dir)
    if st is None:
        return ClairStatus(state_dir, "", None, None, None, ready=False)
    db, clair, feed = _running(st, state_dir)
    ready = False
    if clair is not None and db is not None:
        try:
            url = f"http://127.0.0.1:{st.introspection_port}/readyz"
            ready = requests.get(url, timeout=3.0).status_code == 200
        except requests.RequestException:
            ready = False
    url = f"http://127.0.0.1:{st.http_port}"
    return ClairStatus(state_dir, url, db, clair, feed, ready, st.updaters)


def down(settings: ClairSettings | None = None, *, purge: bool = False) -> None:
    """Stop Clair, the feed front and the database (in that order); data stays unless
    `purge`, which then removes the state dir and the database's data directory."""
    settings = settings or ClairSettings()
    state_dir = settings.resolved_state_dir()
    if not (state_dir / "state.json").exists():
        return
    with locked_dir(state_dir):
        st = _read_state(state_dir)
        if st is None:
            return
        db, clair, feed = _running(st, state_dir)
        for pid in (clair, feed, db):
            if pid is not None:
                stop(pid, settings.stop_timeout)
        _write_state(state_dir, replace(st, db_pid=None, clair_pid=None, feed_pid=None))
        log.info("local Clair in %s stopped", state_dir)
    if purge:
        root = Path(st.db_root) if st.db_root else None
        if root is not None and clair_db.FALLBACK_ROOT in root.parents:
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)
        log.info("removed %s", state_dir)
