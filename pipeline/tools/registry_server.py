"""A throwaway CNCF distribution registry (`docker-registry serve`) on a loopback port.

The shared registry on 127.0.0.1:5000 is host infrastructure (scripts/host.sh). Fault
drills need a registry they may stop and restart at will without disturbing anyone else,
so this starts a private instance with its own config and storage directory, waits until
its API answers, and stops it by its own process id.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import requests

from pipeline.errors import ToolError

log = logging.getLogger(__name__)

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RegistryServer:
    """`docker-registry serve` on 127.0.0.1:port with storage under `root`."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.storage = root / "storage"
        self.config = root / "config.yml"
        self.log_path = root / "registry.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n",
            encoding="utf-8",
        )

    def answers(self) -> bool:
        try:
            return requests.get(f"http://{self.address}/v2/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> RegistryServer:
        """Start (or restart) the registry and wait until it answers."""
        if self.running:
            return self
        binary = shutil.which("docker-registry")
        if not binary:
            raise ToolError(["docker-registry"], None, "", "not found (run scripts/host.sh up)")
        self._write_config()
        argv = [binary, "serve", str(self.config)]
        with self.log_path.open("ab") as out:
            try:
                self._proc = subprocess.Popen(  # noqa: S603 - argv list, never a shell
                    argv, stdout=out, stderr=subprocess.STDOUT
                )
            except OSError as err:
                raise ToolError(argv, None, "", f"could not be started ({err.strerror})") from err
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.answers():
                log.info("registry %s up (pid %d)", self.address, self._proc.pid)
                return self
            if self._proc.poll() is not None:
                break
            time.sleep(0.2)
        tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        self.stop()
        raise ToolError(argv, None, tail, f"did not answer on {self.address}")

    def stop(self) -> None:
        """Stop the registry this object started (and only that process)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
        log.info("registry %s stopped", self.address)

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
