"""Instances of one Cluster as containers on the real Docker engine, laid out like the pod.

The Cluster's objects are the operator's own specs (`drydock_operator.resources`: the
ConfigMap with pg_hba, the app/superuser Secrets, the CA, server and streaming_replica
certificates from `pki`), written as the API would return them into a directory that
every instance mounts (`DRYDOCK_INSTANCE_SOURCE=dir:...`). Each instance is what the
pod would be: the operator image's `bootstrap-controller` copies the manager into a
shared directory, `initdb` or `join` runs in the operand image, then `postgres` runs the
manager as PID 1; uid 26, read-only root, every capability dropped, writable only on its
data volume, the controller directory, the socket directory and /tmp. The `-rw` alias
on the Docker network plays the Service: whoever holds it is the primary.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from drydock_operator import certs, pki, resources
from drydock_operator.config import OperatorSettings
from drydock_operator.model import parse_cluster

from pipeline.tools.runner import Completed, run

UID = 26
NAMESPACE = "itest"
PGDATA = "/var/lib/postgresql/data/pgdata"
SETTINGS = OperatorSettings()
TIMEOUT = 120.0
SWITCHOVER_TIMEOUT = 15  # the managers' DRYDOCK_SWITCHOVER_TIMEOUT (default 60)


def _api_form(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns for an object written with stringData: base64 data."""
    out = dict(obj)
    string_data = out.pop("stringData", None)
    if string_data is not None:
        out["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}
    out["metadata"] = {**out["metadata"], "uid": str(uuid.uuid4())}
    return out


class ClusterFiles:
    """The Cluster's API objects as files, and edits to them as the operator would make."""

    def __init__(self, root: Path, name: str, **spec: Any) -> None:
        self.root = root
        self.name = name
        self.body: dict[str, Any] = {
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Cluster",
            "metadata": {"name": name, "namespace": NAMESPACE, "uid": str(uuid.uuid4())},
            "spec": {"instances": 2, "imageName": "unused", **spec},
            "status": {"targetPrimary": f"{name}-1"},
        }
        for sub in ("clusters", "configmaps", "secrets"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        cluster = parse_cluster(self.body)
        ca = pki.new_ca(f"{name}.{NAMESPACE}")
        server = pki.new_server_cert(ca, (f"{name}-rw", *resources.server_dns_names(cluster)))
        client = pki.new_client_cert(ca, resources.REPLICATION_USER)
        self.app_password = pki.new_password()
        self.superuser_password = pki.new_password()
        self.ca_pem = ca.cert_pem
        self._ca = ca
        # As the operator writes it: CA certificates only (the key is in -ca-key).
        self._write(
            certs.ca_cert_secret(cluster, SETTINGS, resources.ca_secret_name(cluster), ca.cert_pem)
        )
        for secret, pair in (
            (resources.server_secret_name(cluster), server),
            (resources.replication_secret_name(cluster), client),
        ):
            self._write(
                resources.tls_secret(cluster, SETTINGS, secret, pair.cert_pem, pair.key_pem)
            )
        self._write(resources.app_secret(cluster, SETTINGS, self.app_password))
        self.save()
        for path in root.rglob("*"):
            os.chown(path, UID, UID)
        os.chown(root, UID, UID)

    def _write(self, obj: dict[str, Any]) -> None:
        plural = {"Secret": "secrets", "ConfigMap": "configmaps"}[obj["kind"]]
        path = self.root / plural / f"{obj['metadata']['name']}.json"
        path.write_text(json.dumps(_api_form(obj)))
        os.chown(path, UID, UID)

    def _remove(self, plural: str, name: str) -> None:
        (self.root / plural / f"{name}.json").unlink(missing_ok=True)

    def cluster(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.root / "clusters" / f"{self.name}.json").read_text()
        )
        return data

    def save(self) -> None:
        """Write the Cluster (spec from self.body, status as the instances left it) and
        everything the operator derives from its spec: ConfigMap, superuser Secret."""
        path = self.root / "clusters" / f"{self.name}.json"
        with (self.root / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the managers patch the status under it
            if path.exists():
                self.body["status"] = {**self.cluster().get("status", {}), **self.body["status"]}
            tmp = path.with_suffix(".test.tmp")
            tmp.write_text(json.dumps(self.body))
            os.chown(tmp, UID, UID)
            tmp.replace(path)
        os.chown(self.root / ".lock", UID, UID)
        cluster = parse_cluster(self.body)
        self._write(resources.config_map(cluster, SETTINGS))
        if cluster.enable_superuser_access:
            self._write(resources.superuser_secret(cluster, SETTINGS, self.superuser_password))
        else:
            self._remove("secrets", resources.superuser_secret_name(cluster))

    def renew_certificates(self) -> tuple[str, str]:
        """What the operator does when the leaves near expiry: new server and replication
        pairs from the same CA, written over the old. Returns the new PEM certificates."""
        cluster = parse_cluster(self.body)
        server = pki.new_server_cert(
            self._ca, (f"{self.name}-rw", *resources.server_dns_names(cluster))
        )
        client = pki.new_client_cert(self._ca, resources.REPLICATION_USER)
        for secret, pair in (
            (resources.server_secret_name(cluster), server),
            (resources.replication_secret_name(cluster), client),
        ):
            self._write(
                resources.tls_secret(cluster, SETTINGS, secret, pair.cert_pem, pair.key_pem)
            )
        return server.cert_pem, client.cert_pem

    def rotate_app_password(self) -> None:
        self.app_password = pki.new_password()
        self._write(resources.app_secret(parse_cluster(self.body), SETTINGS, self.app_password))

    def set_spec(self, **spec: Any) -> None:
        self.body["spec"].update(spec)
        self.body["status"] = {}
        self.save()

    def set_target_primary(self, name: str) -> None:
        self.body["status"] = {"targetPrimary": name}  # save() merges it into the status
        self.save()

    def status(self) -> dict[str, Any]:
        return dict(self.cluster().get("status", {}))

    def events(self) -> list[dict[str, Any]]:
        path = self.root / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]


def docker(*args: str, timeout: float = TIMEOUT, check: bool = True) -> Completed:
    return run(["docker", *args], timeout=timeout, check=check)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as err:  # a probe may fail until the thing exists
            last = err
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class DockerInstances:
    """The instances of one Cluster on a private Docker network."""

    def __init__(self, files: ClusterFiles, operand: str, operator: str, workdir: Path) -> None:
        self.files = files
        self.operand = operand
        self.operator = operator
        self.workdir = workdir
        self.prefix = f"drydock-it-{uuid.uuid4().hex[:8]}"
        self.network = self.prefix
        self.controller = workdir / "controller"
        self.controller.mkdir()
        os.chown(self.controller, UID, UID)
        docker("network", "create", self.network)
        # bootstrap-controller: the operator image copies the manager into the shared dir.
        self._container(
            "bootstrap-controller",
            self.operator,
            ["python3", "/opt/operator/manager.pyz", "bootstrap", "/controller/manager.pyz"],
            detach=False,
            volumes=[f"{self.controller}:/controller"],
        )

    def container_name(self, instance: str) -> str:
        return f"{self.prefix}-{instance}"

    def _container(
        self,
        name: str,
        image: str,
        command: list[str],
        *,
        detach: bool,
        volumes: list[str],
        env: dict[str, str] | None = None,
        aliases: tuple[str, ...] = (),
    ) -> Completed:
        args = [
            "run",
            "--name",
            f"{self.prefix}-{name}",
            "--network",
            self.network,
            "--user",
            f"{UID}:{UID}",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--tmpfs",
            "/tmp:rw,mode=1777",
            "--tmpfs",
            f"/var/run/postgresql:rw,uid={UID},gid={UID},mode=0700",
        ]
        for alias in aliases:
            args += ["--network-alias", alias]
        for volume in volumes:
            args += ["-v", volume]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        args += ["-d"] if detach else ["--rm"]
        # As a pod's `command`: replaces the image's ENTRYPOINT (the operator image has one).
        args += ["--entrypoint", command[0]]
        return docker(*args, image, *command[1:], timeout=600)

    def _env(self, instance: str) -> dict[str, str]:
        return {
            "PGDATA": PGDATA,
            "POD_NAME": instance,
            "CLUSTER_NAME": self.files.name,
            "NAMESPACE": NAMESPACE,
            "DRYDOCK_INSTANCE_SOURCE": "dir:/cluster",
            "DRYDOCK_POLL_SECONDS": "1",
            "DRYDOCK_SWITCHOVER_TIMEOUT": str(SWITCHOVER_TIMEOUT),
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def data_dir(self, instance: str) -> Path:
        path = self.workdir / f"data-{instance}"
        if not path.exists():
            path.mkdir()
            os.chown(path, UID, UID)
        return path

    def start(self, instance: str, image: str = "", init: str = "") -> None:
        """Run `initdb`/`join` (by default: initdb for the target primary) then `postgres`."""
        image = image or self.operand
        primary = self.files.status().get("targetPrimary") == instance
        volumes = [
            f"{self.data_dir(instance)}:/var/lib/postgresql/data",
            f"{self.controller}:/controller:ro",
            f"{self.files.root}:/cluster",
        ]
        step = init or ("initdb" if primary else "join")
        controller = self.workdir / f"controller-{instance}"
        if not controller.exists():
            controller.mkdir()
            os.chown(controller, UID, UID)
        # Each pod has its own controller emptyDir: the manager plus its certificates.
        (controller / "manager.pyz").write_bytes((self.controller / "manager.pyz").read_bytes())
        os.chown(controller / "manager.pyz", UID, UID)
        volumes[1] = f"{controller}:/controller"
        command = ["python3", "/controller/manager.pyz"]
        self._container(
            f"{instance}-{step}",
            image,
            [*command, step],
            detach=False,
            volumes=volumes,
            env=self._env(instance),
        )
        aliases = (instance, f"{self.files.name}-rw") if primary else (instance,)
        self._container(
            instance,
            image,
            [*command, "run"],
            detach=True,
            volumes=volumes,
            env=self._env(instance),
            aliases=aliases,
        )

    def stop(self, instance: str, timeout: int = 30) -> None:
        docker("stop", "-t", str(timeout), self.container_name(instance), timeout=timeout + 30)
        docker("rm", "-f", self.container_name(instance))

    def move_rw(self, instance: str | None) -> None:
        """What the operator's label flip does to the `-rw` Service: point it elsewhere
        (None: at nobody, so no standby can connect to a primary)."""
        rw = f"{self.files.name}-rw"
        for name in self.running():
            docker("network", "disconnect", self.network, self.container_name(name), check=False)
            aliases = (name, rw) if name == instance else (name,)
            args = ["network", "connect"]
            for alias in aliases:
                args += ["--alias", alias]
            docker(*args, self.network, self.container_name(name))

    def running(self) -> list[str]:
        out = docker("ps", "--filter", f"name={self.prefix}-", "--format", "{{.Names}}").stdout
        return sorted(n[len(self.prefix) + 1 :] for n in out.split())

    def ip(self, instance: str) -> str:
        out = docker(
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            self.container_name(instance),
        ).stdout
        return out.strip()

    def http(self, instance: str, port: int, path: str) -> tuple[int, str]:
        url = f"http://{self.ip(instance)}:{port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def status(self, instance: str) -> dict[str, Any]:
        code, body = self.http(instance, 8000, "/pg/status")
        assert code == 200, body
        data: dict[str, Any] = json.loads(body)
        return data

    def ready(self, instance: str) -> bool:
        return self.http(instance, 8000, "/readyz")[0] == 200

    def exec_sql(self, instance: str, sql: str, dbname: str = "app") -> str:
        """SQL as the postgres superuser over the Unix socket (peer), inside the container."""
        args = [
            "exec",
            self.container_name(instance),
            "psql",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "/var/run/postgresql",
            "-U",
            "postgres",
            "-d",
            dbname,
            "-c",
            sql,
        ]
        return docker(*args).stdout.strip()

    def client(
        self, via: str, user: str, password: str, sql: str, *, host: str = "", extra: str = ""
    ) -> Completed:
        """A TCP client from inside container `via` to `host` (default the -rw alias),
        verifying the server against the Cluster's CA; check=False, the caller decides."""
        host = host or f"{self.files.name}-rw"
        conninfo = (
            f"host={host} port=5432 dbname=app user={user} sslmode=verify-full "
            f"sslrootcert=/controller/certificates/ca.crt connect_timeout=5 {extra}"
        )
        args = [
            "exec",
            "-e",
            f"PGPASSWORD={password}",
            self.container_name(via),
            "psql",
            "-X",
            "-A",
            "-t",
            conninfo,
            "-c",
            sql,
        ]
        return docker(*args, check=False)

    def logs(self, instance: str) -> str:
        done = docker("logs", self.container_name(instance), check=False)
        return done.stdout + done.stderr

    def close(self) -> None:
        out = docker("ps", "-a", "--filter", f"name={self.prefix}-", "--format", "{{.Names}}")
        for name in out.stdout.split():
            docker("rm", "-f", name, check=False)
        docker("network", "rm", self.network, check=False)


@contextmanager
def docker_instances(
    root: Path, name: str, operand: str, operator: str, **spec: Any
) -> Iterator[DockerInstances]:
    files = ClusterFiles(root / "cluster", name, **spec)
    instances = DockerInstances(files, operand, operator, root)
    try:
        yield instances
    finally:
        instances.close()
