"""The included operator as a local background process, logged in as its own ServiceAccount.

Why: the whole loop (publish an image, the catalog changes, Clusters roll) should be
visible on a laptop without a real cluster or an image of the operator running in it.
This starts `kopf run -m drydock_operator.handlers` from the checkout's `operator/` folder,
detached, with a kubeconfig that holds a token of the `postgresql-operator-manager`
ServiceAccount (minted through the TokenRequest API), never the admin's. It therefore
needs the operator's RBAC installed first (`drydock dev operator install`).

    settings = OperatorProcessSettings(state_dir=..., operator_dir=repo / "operator")
    proc = up(admin_kubeconfig, settings)   # idempotent; waits until kopf's /healthz answers
    status(settings)                        # OperatorProcessStatus(pid, ready, log_file)
    down(settings)                          # SIGTERM (kopf cleans up), SIGKILL after a while

State: `state.json` (pid, liveness port), `kubeconfig` (0600, the ServiceAccount token)
and `operator.log` in `state_dir` (default: the control plane's state dir / "operator").
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from pipeline.errors import ToolError
from pipeline.tools import controlplane
from pipeline.tools.daemon import is_ours, spawn, stop, wait_ready
from pipeline.tools.kubeapi import load_kubeconfig
from pipeline.tools.registry_server import free_port

log = logging.getLogger(__name__)

OPERATOR_NAMESPACE = "postgresql-operator-system"
OPERATOR_SERVICE_ACCOUNT = "postgresql-operator-manager"
MARKER = "drydock_operator.handlers"
TOKEN_SECONDS = 24 * 3600


@dataclass(frozen=True)
class OperatorProcessSettings:
    state_dir: Path
    operator_dir: Path  # the checkout's operator/ (put on PYTHONPATH)
    api_group: str = "postgresql.cnpg.io"
    operator_image: str = ""  # what instance pods' bootstrap-controller runs, by digest
    resync_seconds: float = 30.0
    workers: int = 4
    start_timeout: float = 60.0
    stop_timeout: float = 30.0


@dataclass(frozen=True)
class OperatorProcessStatus:
    pid: int | None
    ready: bool
    log_file: Path


def argv(port: int) -> list[str]:
    """kopf in this interpreter: standalone (no peering objects), every namespace."""
    return [
        sys.executable,
        "-m",
        "kopf",
        "run",
        "--standalone",
        "--all-namespaces",
        f"--liveness=http://127.0.0.1:{port}/healthz",
        "-m",
        MARKER,
    ]


def environment(settings: OperatorProcessSettings, kubeconfig: Path) -> dict[str, str]:
    """The operator's environment: only what it needs, no inherited credentials."""
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "TZ", "SSL_CERT_FILE")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        {
            "PYTHONPATH": str(settings.operator_dir),
            "KUBECONFIG": str(kubeconfig),
            "DRYDOCK_OPERATOR_API_GROUP": settings.api_group,
            "DRYDOCK_OPERATOR_IMAGE": settings.operator_image,
            "DRYDOCK_OPERATOR_RESYNC_SECONDS": f"{settings.resync_seconds:g}",
            "DRYDOCK_OPERATOR_WORKERS": str(settings.workers),
            # Loopback and any free port: the host's 8080 is not the dev operator's to take.
            "DRYDOCK_OPERATOR_METRICS_BIND_ADDRESS": "127.0.0.1:0",
            # The admission server on the host, on a free port (several checkouts share
            # a machine); the operator writes the URL it got into the webhook
            # configurations when they are installed.
            "DRYDOCK_OPERATOR_WEBHOOK_HOST": "127.0.0.1",
            "DRYDOCK_OPERATOR_WEBHOOK_PORT": "0",
        }
    )
    return env


def _log_file(settings: OperatorProcessSettings) -> Path:
    return settings.state_dir / "operator.log"


def _read(settings: OperatorProcessSettings) -> tuple[int | None, int | None]:
    try:
        data = json.loads((settings.state_dir / "state.json").read_text(encoding="utf-8"))
        return int(data["pid"]), int(data["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0).status_code == 200
    except requests.RequestException:
        return False


def status(settings: OperatorProcessSettings) -> OperatorProcessStatus:
    pid, port = _read(settings)
    if pid is None or port is None or not is_ours(pid, "python", MARKER):
        return OperatorProcessStatus(None, False, _log_file(settings))
    return OperatorProcessStatus(pid, _healthy(port), _log_file(settings))


def up(admin_kubeconfig: Path, settings: OperatorProcessSettings) -> OperatorProcessStatus:
    """Start the operator unless it runs; wait until its liveness endpoint answers."""
    current = status(settings)
    if current.pid is not None:
        return current
    if not (settings.operator_dir / "drydock_operator" / "handlers.py").is_file():
        raise ToolError([], None, "", f"no operator package in {settings.operator_dir}")
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = controlplane.mint_token(
        admin_kubeconfig,
        OPERATOR_NAMESPACE,
        OPERATOR_SERVICE_ACCOUNT,
        create=False,
        expiration_seconds=TOKEN_SECONDS,
    )
    admin = load_kubeconfig(admin_kubeconfig)
    kubeconfig = settings.state_dir / "kubeconfig"
    kubeconfig.touch(mode=0o600)
    kubeconfig.write_text(
        controlplane.kubeconfig_text(admin.server, admin.ca_pem or b"", token), encoding="utf-8"
    )
    port = free_port()
    args = argv(port)
    logf = _log_file(settings)
    pid = spawn(args, logf, environment(settings, kubeconfig))
    (settings.state_dir / "state.json").write_text(
        json.dumps({"pid": pid, "port": port}) + "\n", encoding="utf-8"
    )
    wait_ready(
        pid,
        argv=args,
        url=f"http://127.0.0.1:{port}/healthz",
        verify=False,
        log_file=logf,
        timeout=settings.start_timeout,
    )
    log.info("operator running (pid %d) as %s", pid, OPERATOR_SERVICE_ACCOUNT)
    return OperatorProcessStatus(pid, True, logf)


def down(settings: OperatorProcessSettings) -> bool:
    """Stop the operator; False when it was not running."""
    current = status(settings)
    if current.pid is None:
        return False
    stop(current.pid, settings.stop_timeout)
    return True
