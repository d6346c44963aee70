"""A local Kubernetes control plane (etcd + kube-apiserver) for development and e2e tests.

Why: catalogs and the included operator must be proven against a real API server (CEL
rules, server-side apply, RBAC, ServiceAccount tokens), not a mock. On its own it has no
kubelet, scheduler or controller-manager: objects are stored and validated, nothing runs.
tools/node.py adds a real node, and the API server flags a node needs
(`ControlPlaneSettings.apiserver_overrides`; `up` restarts an apiserver whose flags differ).

Stable API (the operator's e2e tests use it; change it only together with them):

    settings = ControlPlaneSettings(state_dir=None, bin_dir=None, start_timeout=180.0)
    cp = up(settings)            # idempotent: reuses a healthy plane, restarts a dead part
    cp.kubeconfig                # Path of an admin kubeconfig (static token, system:masters)
    cp.server                    # "https://127.0.0.1:<port>"
    cp.ca_file                   # Path of the CA that signed the serving certificate
    status(settings)             # ControlPlaneStatus(running, ready, etcd_pid, apiserver_pid, ...)
    kill_apiserver(cp)           # SIGKILL the apiserver only (fault injection); up() restarts it
    down(settings, purge=False)  # stops both and waits until they are gone; harmless when down
    mint_token(cp.kubeconfig, "ns", "sa") -> str   # ServiceAccount token via TokenRequest
    service_account_kubeconfig(cp.kubeconfig, "ns", "sa", path) -> path   # kubeconfig as that SA

State lives in `$DRYDOCK_CACHE/devcluster` by default (resolved at run time):
`state.json` (ports, pids), `pki/` (CA, serving cert, SA signing key), `tokens.csv`,
`kubeconfig`, `etcd-data/` and `logs/`. The apiserver runs with RBAC authorization, the
PodSecurity admission plugin, `--advertise-address=127.0.0.1` and an RSA ServiceAccount
signing key. Like envtest, the ServiceAccount admission plugin is disabled: without a
controller-manager nobody creates the `default` ServiceAccount that it would demand of
every Pod. ServiceAccount tokens come from the TokenRequest API (see `mint_token`).
Privileged containers are refused (`--allow-privileged` keeps its default, false).

pytest: tests/e2e/conftest.py wraps this module as the `control_plane_settings` (session),
`control_plane` and `kube_api` fixtures, in a temporary state dir of their own.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
import yaml

from pipeline.errors import ToolError
from pipeline.tools import pki, provision
from pipeline.tools.daemon import cmdline, gone, is_ours, spawn, stop, wait_ready
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig, resource_path

log = logging.getLogger(__name__)

SERVICE_CIDR = "10.0.0.0/16"  # room for the Services of hundreds of Clusters
EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
PORT_FLOOR = 20000
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "drydock-admin"


def cache_dir() -> Path:
    """$DRYDOCK_CACHE, else $XDG_CACHE_HOME/drydock, else ~/.cache/drydock (as scripts/*.sh)."""
    explicit = os.environ.get("DRYDOCK_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "drydock"


@dataclass(frozen=True)
class ControlPlaneSettings:
    """Where the state and the binaries are, and how long a start may take."""

    state_dir: Path | None = None  # default: cache_dir() / "devcluster"
    bin_dir: Path | None = None  # default: cache_dir() / "bin" (scripts/tools.sh)
    start_timeout: float = 180.0
    stop_timeout: float = 30.0
    # kube-apiserver flags to set ("--flag", "value") or drop ("--flag", None); a running
    # apiserver started with other flags is restarted by `up`. The node sets these.
    apiserver_overrides: tuple[tuple[str, str | None], ...] = ()

    def resolved_state_dir(self) -> Path:
        return self.state_dir or cache_dir() / "devcluster"

    def resolved_bin_dir(self) -> Path:
        return self.bin_dir or cache_dir() / "bin"


@dataclass(frozen=True)
class State:
    """What state.json records: the ports chosen once and the pids of the running parts."""

    etcd_port: int
    peer_port: int
    apiserver_port: int
    etcd_pid: int | None = None
    apiserver_pid: int | None = None


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane, as `up` leaves it."""

    state_dir: Path
    kubeconfig: Path
    server: str
    ca_file: Path
    etcd_url: str
    etcd_pid: int
    apiserver_pid: int
    started_seconds: float  # 0.0 when an already-running plane was reused


@dataclass(frozen=True)
class ControlPlaneStatus:
    state_dir: Path
    etcd_pid: int | None
    apiserver_pid: int | None
    ready: bool
    server: str | None

    @property
    def running(self) -> bool:
        return self.etcd_pid is not None or self.apiserver_pid is not None


# -- pure: arguments -------------------------------------------------------------------------


def etcd_args(binary: Path, state_dir: Path, st: State) -> list[str]:
    client = f"http://127.0.0.1:{st.etcd_port}"
    peer = f"http://127.0.0.1:{st.peer_port}"
    return [
        str(binary),
        "--name=drydock",
        f"--data-dir={state_dir / 'etcd-data'}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=drydock={peer}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_args(
    binary: Path,
    state_dir: Path,
    st: State,
    overrides: Sequence[tuple[str, str | None]] = (),
) -> list[str]:
    args = _base_apiserver_args(binary, state_dir, st)
    for flag, value in overrides:
        args = [a for a in args if a.split("=", 1)[0] != flag]
        if value is not None:
            args.append(f"{flag}={value}")
    return args


def _base_apiserver_args(binary: Path, state_dir: Path, st: State) -> list[str]:
    p = state_dir / "pki"
    audience = SA_ISSUER
    return [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{st.etcd_port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={st.apiserver_port}",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--cert-dir={p}",
        f"--token-auth-file={state_dir / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        "--enable-admission-plugins=PodSecurity",
        "--disable-admission-plugins=ServiceAccount",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        f"--api-audiences={audience}",
        # 127.0.0.1 may not be an Endpoints address: without this the apiserver logs an
        # error every 10s trying to publish itself as the `kubernetes` Service's endpoint.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        "--v=1",
    ]


def kubeconfig_text(server: str, ca_pem: bytes, token: str) -> str:
    import base64

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "drydock-dev",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [
            {"name": "drydock-dev", "context": {"cluster": "drydock-dev", "user": ADMIN_USER}}
        ],
        "current-context": "drydock-dev",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _start(
    argv: Sequence[str],
    *,
    log_file: Path,
    url: str,
    verify: str | bool,
    timeout: float,
    record: Callable[[int], None],
) -> int:
    """Spawn and wait until url answers 200; retry a bind race ("address already in use")."""
    attempts = 3
    for attempt in range(1, attempts + 1):
        pid = spawn(argv, log_file)
        record(pid)
        try:
            wait_ready(pid, argv=argv, url=url, verify=verify, log_file=log_file, timeout=timeout)
        except ToolError as err:
            if "address already in use" not in err.stderr_tail or attempt == attempts:
                raise
            log.warning("%s: port busy, retrying in 2s", Path(argv[0]).name)
            time.sleep(2.0)
        else:
            return pid
    raise AssertionError("unreachable")  # pragma: no cover


# -- state -----------------------------------------------------------------------------------


def _ephemeral_low() -> int:
    try:
        return int(Path(EPHEMERAL_RANGE).read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """Free loopback ports *below* the kernel's ephemeral range.

    A port taken from the ephemeral range (bind to port 0) can be reused as the source
    port of any outgoing connection on the machine while the control plane is down or
    restarting, and the restart then fails with "address already in use". Ports below
    the range are never handed out that way.
    """
    low = _ephemeral_low()
    chosen: list[int] = []
    if low - PORT_FLOOR < 1000:  # an unusual range: fall back to the kernel's choice
        while len(chosen) < count:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in chosen:
                chosen.append(port)
        return chosen
    for _ in range(1000):
        port = PORT_FLOOR + secrets.randbelow(low - PORT_FLOOR)
        if port not in chosen and _bindable(port):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise ToolError(["bind"], None, "", "no free loopback port below the ephemeral range")


def _read_state(state_dir: Path) -> State | None:
    try:
        return State(**json.loads((state_dir / "state.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _write_state(state_dir: Path, st: State) -> None:
    tmp = state_dir / "state.json.tmp"
    tmp.write_text(json.dumps(asdict(st), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(state_dir / "state.json")


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (state_dir / "lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ensure_credentials(state_dir: Path) -> str:
    """PKI and the admin token, created once per state dir; returns the admin token."""
    pki.ensure(state_dir / "pki")
    tokens = state_dir / "tokens.csv"
    if not tokens.exists():
        token = secrets.token_hex(32)
        tokens.touch(mode=0o600)
        tokens.write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n', encoding="utf-8")
    return tokens.read_text(encoding="utf-8").split(",", 1)[0]


def _etcd_marker(state_dir: Path) -> str:
    return f"--data-dir={state_dir / 'etcd-data'}"


def _apiserver_marker(st: State) -> str:
    return f"--secure-port={st.apiserver_port}"


# -- public API --------------------------------------------------------------------------------


def up(settings: ControlPlaneSettings | None = None) -> ControlPlane:
    """Start etcd and kube-apiserver unless they already run; wait until /readyz answers."""
    settings = settings or ControlPlaneSettings()
    state_dir = settings.resolved_state_dir()
    bins = settings.resolved_bin_dir()
    missing = [n for n in ("etcd", "kube-apiserver") if not (bins / n).is_file()]
    if missing and settings.bin_dir is None and provision.enabled():
        provision.build(missing)  # built on first use (pipeline.tools.provision)
    with _locked(state_dir):
        token = _ensure_credentials(state_dir)
        st = _read_state(state_dir) or State(*_free_ports(3))
        ca_file = state_dir / "pki" / "ca.crt"
        server = f"https://127.0.0.1:{st.apiserver_port}"
        etcd_url = f"http://127.0.0.1:{st.etcd_port}"
        started = time.monotonic()
        did_start = False

        pids = {"etcd_pid": st.etcd_pid, "apiserver_pid": st.apiserver_pid}

        def record(key: str) -> Callable[[int], None]:
            def write(pid: int) -> None:
                pids[key] = pid
                _write_state(state_dir, State(**{**asdict(st), **pids}))

            return write

        if not is_ours(st.etcd_pid, "etcd", _etcd_marker(state_dir)):
            _start(
                etcd_args(bins / "etcd", state_dir, st),
                log_file=state_dir / "logs" / "etcd.log",
                url=f"{etcd_url}/health",
                verify=False,
                timeout=settings.start_timeout,
                record=record("etcd_pid"),
            )
            did_start = True
            log.info("etcd started (pid %s) on %s", pids["etcd_pid"], etcd_url)

        argv = apiserver_args(bins / "kube-apiserver", state_dir, st, settings.apiserver_overrides)
        logf = state_dir / "logs" / "apiserver.log"
        if is_ours(st.apiserver_pid, "kube-apiserver", _apiserver_marker(st)) and (
            cmdline(st.apiserver_pid) != argv
        ):
            assert st.apiserver_pid is not None  # noqa: S101 - checked by is_ours
            log.info("kube-apiserver flags changed: restarting it")
            stop(st.apiserver_pid, settings.stop_timeout)
        if is_ours(st.apiserver_pid, "kube-apiserver", _apiserver_marker(st)):
            assert st.apiserver_pid is not None  # noqa: S101 - checked by is_ours
            wait_ready(  # maybe still starting, from a concurrent `up`
                st.apiserver_pid,
                argv=argv,
                url=f"{server}/readyz",
                verify=str(ca_file),
                log_file=logf,
                timeout=settings.start_timeout,
            )
        else:
            _start(
                argv,
                log_file=logf,
                url=f"{server}/readyz",
                verify=str(ca_file),
                timeout=settings.start_timeout,
                record=record("apiserver_pid"),
            )
            did_start = True
        etcd_pid, api_pid = pids["etcd_pid"], pids["apiserver_pid"]
        assert etcd_pid is not None and api_pid is not None  # noqa: S101 - set above
        kubeconfig = state_dir / "kubeconfig"
        kubeconfig.touch(mode=0o600)
        kubeconfig.write_text(
            kubeconfig_text(server, ca_file.read_bytes(), token), encoding="utf-8"
        )
        seconds = time.monotonic() - started if did_start else 0.0
        if did_start:
            log.info("control plane ready at %s in %.1fs", server, seconds)
        return ControlPlane(
            state_dir=state_dir,
            kubeconfig=kubeconfig,
            server=server,
            ca_file=ca_file,
            etcd_url=etcd_url,
            etcd_pid=etcd_pid,
            apiserver_pid=api_pid,
            started_seconds=seconds,
        )


def status(settings: ControlPlaneSettings | None = None) -> ControlPlaneStatus:
    """What runs for this state dir, and whether the apiserver answers /readyz."""
    settings = settings or ControlPlaneSettings()
    state_dir = settings.resolved_state_dir()
    st = _read_state(state_dir)
    if st is None:
        return ControlPlaneStatus(state_dir, None, None, ready=False, server=None)
    etcd = st.etcd_pid if is_ours(st.etcd_pid, "etcd", _etcd_marker(state_dir)) else None
    api = (
        st.apiserver_pid
        if is_ours(st.apiserver_pid, "kube-apiserver", _apiserver_marker(st))
        else None
    )
    server = f"https://127.0.0.1:{st.apiserver_port}"
    ready = False
    if api is not None and etcd is not None:
        try:
            resp = requests.get(
                f"{server}/readyz", verify=str(state_dir / "pki" / "ca.crt"), timeout=3.0
            )
            ready = resp.status_code == 200
        except requests.RequestException:
            ready = False
    return ControlPlaneStatus(state_dir, etcd, api, ready=ready, server=server)


def down(settings: ControlPlaneSettings | None = None, *, purge: bool = False) -> None:
    """Stop the apiserver, then etcd; return once neither runs.

    Data, keys and the kubeconfig stay for the next `up` unless purge is set, which
    removes the whole state dir once both processes are gone.
    """
    settings = settings or ControlPlaneSettings()
    state_dir = settings.resolved_state_dir()
    if not (state_dir / "state.json").exists():
        return
    _stop_all(settings, state_dir)
    if purge:
        shutil.rmtree(state_dir)
        log.info("removed %s", state_dir)


def _stop_all(settings: ControlPlaneSettings, state_dir: Path) -> None:
    with _locked(state_dir):
        st = _read_state(state_dir)
        if st is None:
            return
        if is_ours(st.apiserver_pid, "kube-apiserver", _apiserver_marker(st)):
            assert st.apiserver_pid is not None  # noqa: S101 - checked by is_ours
            stop(st.apiserver_pid, settings.stop_timeout)
        if is_ours(st.etcd_pid, "etcd", _etcd_marker(state_dir)):
            assert st.etcd_pid is not None  # noqa: S101 - checked by is_ours
            stop(st.etcd_pid, settings.stop_timeout)
        _write_state(state_dir, State(st.etcd_port, st.peer_port, st.apiserver_port))
        log.info("control plane in %s stopped", state_dir)


def kill_apiserver(cp: ControlPlane) -> None:
    """SIGKILL the apiserver (and only it), as a crash would; `up` starts it again."""
    st = _read_state(cp.state_dir)
    if st is not None and is_ours(cp.apiserver_pid, "kube-apiserver", _apiserver_marker(st)):
        os.kill(cp.apiserver_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while not gone(cp.apiserver_pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def mint_token(
    kubeconfig: Path,
    namespace: str,
    sa: str,
    *,
    audiences: Sequence[str] = (SA_ISSUER,),
    expiration_seconds: int = 3600,
    create: bool = True,
) -> str:
    """A ServiceAccount token from the TokenRequest API (what `kubectl create token` does).

    There is no controller-manager, so no token Secrets are ever populated; a token is
    minted by POSTing a TokenRequest to the `token` subresource of the ServiceAccount:

        POST /api/v1/namespaces/<ns>/serviceaccounts/<sa>/token
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"audiences": [...], "expirationSeconds": 3600}}

    and reading `.status.token`. With create=True the namespace and the ServiceAccount are
    created first when missing. The caller authenticates with kubeconfig (an admin).
    """
    with KubeAPI(load_kubeconfig(kubeconfig)) as api:
        if create:
            api.create(
                resource_path("v1", "namespaces"),
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                exist_ok=True,
            )
            api.create(
                resource_path("v1", "serviceaccounts", namespace=namespace),
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}},
                exist_ok=True,
            )
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"audiences": list(audiences), "expirationSeconds": expiration_seconds},
        }
        path = resource_path("v1", "serviceaccounts", sa, namespace) + "/token"
        answer = api.create(path, request) or {}
        token = answer.get("status", {}).get("token")
        if not isinstance(token, str) or not token:
            raise ToolError(["POST", path], None, "", "TokenRequest returned no token")
        return token


def service_account_kubeconfig(
    kubeconfig: Path, namespace: str, sa: str, path: Path, *, expiration_seconds: int = 3600
) -> Path:
    """Write a kubeconfig at path that authenticates as namespace/sa (token via mint_token).

    For running a component (the operator) with its own ServiceAccount's RBAC rather than
    as the admin: same server and CA as kubeconfig, user = the minted token.
    """
    token = mint_token(kubeconfig, namespace, sa, expiration_seconds=expiration_seconds)
    admin = load_kubeconfig(kubeconfig)
    path.touch(mode=0o600)
    path.write_text(kubeconfig_text(admin.server, admin.ca_pem or b"", token), encoding="utf-8")
    return path
