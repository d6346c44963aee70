"""Command line of the instance manager: `bootstrap DEST`, `initdb`, `join`, `run`.

The pod spec calls it as `python3 /controller/manager.pyz COMMAND`; the settings come
from the environment (`config.py`). Exit codes: 0 done, 1 failed (the kubelet restarts
the container or the init container), 2 bad settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from drydock_instance import VERSION, bootstrap, config, sources
from drydock_instance.instance import Manager
from drydock_instance.server import Handler, Response, Server
from drydock_instance.status import as_json, metrics

log = logging.getLogger("drydock_instance")


def _handlers(manager: Manager) -> tuple[Handler, Handler]:
    def status(path: str) -> Response:
        s = manager.status
        if path == "/pg/status":
            return 200, "application/json", json.dumps(as_json(s)).encode()
        if path == "/readyz":
            return (200, "text/plain", b"ready\n") if s.ready else (503, "text/plain", b"no\n")
        if path == "/healthz":
            fresh = time.monotonic() - manager.heartbeat < max(
                120.0, 20 * manager.settings.poll_seconds
            )
            return (200, "text/plain", b"ok\n") if fresh else (503, "text/plain", b"stuck\n")
        return 404, "text/plain", b"not found\n"

    def prometheus(path: str) -> Response:
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", metrics(manager.status).encode()
        return 404, "text/plain", b"not found\n"

    return status, prometheus


def _run(cfg: config.Settings, transport: sources.Transport) -> int:
    manager = Manager(cfg, transport)
    status_handler, metrics_handler = _handlers(manager)
    servers = [
        Server(cfg.status_port, status_handler),
        Server(cfg.metrics_port, metrics_handler),
    ]
    for server in servers:
        server.start()
    try:
        return manager.run()
    finally:
        for server in servers:
            server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="manager", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=VERSION)
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("bootstrap", help="copy the manager to DEST (bootstrap-controller)")
    boot.add_argument("dest")
    sub.add_parser("initdb", help="create the data directory of a new Cluster's primary")
    sub.add_parser("join", help="clone the data directory of a new replica from the primary")
    sub.add_parser("run", help="supervise PostgreSQL (PID 1 of the postgres container)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "bootstrap":
        bootstrap.copy_self(args.dest)
        return 0
    try:
        cfg = config.load(os.environ)
        transport = sources.transport_for(cfg, os.environ)
    except (config.SettingsError, sources.SourceError) as err:
        log.error("%s", err)
        return 2
    try:
        if args.command == "initdb":
            bootstrap.initdb(cfg, transport)
            return 0
        if args.command == "join":
            bootstrap.join(cfg, transport)
            return 0
        return _run(cfg, transport)
    except (bootstrap.BootstrapError, OSError, RuntimeError) as err:
        log.error("%s failed: %s", args.command, err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
