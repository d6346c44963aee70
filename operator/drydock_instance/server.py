"""A small HTTP/1.0 server for the status (8000) and metrics (9187) ports.

python3-minimal has no `http.server`, and these ports answer a handful of GET requests
from the kubelet, the operator and Prometheus, so a thread per connection over plain
sockets is enough. Requests are bounded (8 KiB head, 5 s to send it); every answer
closes the connection. Neither port needs TLS or authentication, as in the security
guide's table of exposed ports: they carry no secret.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_HEAD = 8192
READ_TIMEOUT = 5.0

Response = tuple[int, str, bytes]
Handler = Callable[[str], Response]
REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class Server:
    """Listens on one port; `handler(path)` returns (status, content type, body)."""

    def __init__(self, port: int, handler: Handler, host: str = "") -> None:
        self.handler = handler
        self.sock = socket.create_server((host, port), reuse_port=False, backlog=64)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"http-{port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(READ_TIMEOUT)
            try:
                head = _read_head(conn)
            except OSError:
                return
            parts = head.split(b"\r\n", 1)[0].decode("iso-8859-1").split(" ")
            if len(parts) < 2:
                return
            method, target = parts[0], parts[1].split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"only GET\n"
            else:
                try:
                    status, ctype, body = self.handler(target)
                except Exception:  # the loop must survive a bad request or a bug
                    log.exception("handler failed for %s", target)
                    status, ctype, body = 503, "text/plain", b"error\n"
            reply = (
                f"HTTP/1.0 {status} {REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode() + (body if method == "GET" else b"")
            try:
                conn.sendall(reply)
            except OSError:
                return


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_HEAD:
            raise OSError("request head too large")
    return data
