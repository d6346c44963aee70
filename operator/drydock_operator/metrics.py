"""The operator's Prometheus endpoint: reconcile counts and timings, and what each Cluster runs.

Port 8080 serves `/metrics` in the Prometheus text format (0.0.4), with controller-runtime's
metric names for the reconcile loop (so dashboards written for CloudNativePG's operator,
a controller-runtime program, read Drydock's too) and one labelled gauge per Cluster that
names the image and digest it runs. kopf's own liveness endpoint is on its own port (8081).

The counters live in a `Metrics` object the handlers create at start-up and keep in kopf's
memo (no module-level state); the standard library's threaded HTTP server serves them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import monotonic

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CONTROLLER = "cluster"
# controller-runtime's default buckets for controller_runtime_reconcile_time_seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items()) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


class Metrics:
    """Thread-safe counters for the reconcile loop and the per-Cluster image gauge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results = {"success": 0, "error": 0}
        self._bucket_counts = [0] * len(BUCKETS)
        self._sum = 0.0
        self._count = 0
        self._images: dict[tuple[str, str], tuple[str, str]] = {}

    def observe(self, seconds: float, ok: bool) -> None:
        """One reconcile of one Cluster took `seconds` and succeeded or failed."""
        with self._lock:
            self._results["success" if ok else "error"] += 1
            self._sum += seconds
            self._count += 1
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self._bucket_counts[index] += 1

    @contextmanager
    def timed(self) -> Iterator[list[bool]]:
        """Time a reconcile; it counts as an error unless the caller sets `ok[0] = True`."""
        ok = [False]
        start = monotonic()
        try:
            yield ok
        finally:
            self.observe(monotonic() - start, ok[0])

    def set_image(self, namespace: str, cluster: str, image: str, major: int | None) -> None:
        with self._lock:
            self._images[(namespace, cluster)] = (image, str(major) if major else "")

    def forget(self, namespace: str, cluster: str) -> None:
        with self._lock:
            self._images.pop((namespace, cluster), None)

    def render(self) -> str:
        """The Prometheus text exposition of everything above."""
        with self._lock:
            results = dict(self._results)
            buckets = list(self._bucket_counts)
            total, count = self._sum, self._count
            images = sorted(self._images.items())
        c = {"controller": CONTROLLER}
        hist = "controller_runtime_reconcile_time_seconds"
        lines = [
            "# HELP controller_runtime_reconcile_total Total number of reconciliations",
            "# TYPE controller_runtime_reconcile_total counter",
            *(
                f"controller_runtime_reconcile_total{_labels({**c, 'result': r})} {n}"
                for r, n in results.items()
            ),
            "# HELP controller_runtime_reconcile_errors_total Total reconciliation errors",
            "# TYPE controller_runtime_reconcile_errors_total counter",
            f"controller_runtime_reconcile_errors_total{_labels(c)} {results['error']}",
            f"# HELP {hist} Length of time per reconciliation",
            f"# TYPE {hist} histogram",
            *(
                "controller_runtime_reconcile_time_seconds_bucket"
                f"{_labels({**c, 'le': _number(bound)})} {n}"
                for bound, n in zip(BUCKETS, buckets, strict=True)
            ),
            f"{hist}_bucket{_labels({**c, 'le': '+Inf'})} {count}",
            f"{hist}_sum{_labels(c)} {total!r}",
            f"{hist}_count{_labels(c)} {count}",
            "# HELP drydock_cluster_image_info The image (and digest) each Cluster runs; always 1",
            "# TYPE drydock_cluster_image_info gauge",
        ]
        for (namespace, cluster), (image, major) in images:
            digest = image.partition("@")[2]
            pairs = {
                "namespace": namespace,
                "cluster": cluster,
                "image": image,
                "digest": digest,
                "major": major,
            }
            lines.append(f"drydock_cluster_image_info{_labels(pairs)} 1")
        lines.append(f"drydock_clusters{{}} {len(images)}")
        return "\n".join(lines) + "\n"


def _handler(metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10.0  # seconds a client may take to send its request

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            payload = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("metrics: " + format, *args)

    return Handler


class MetricsServer:
    """`/metrics` on (host, port) in a daemon thread; `port` is the bound one (0 = any)."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler(metrics))
        self._server.daemon_threads = True
        self._server.timeout = 5.0
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()
        log.info("serving metrics on %s:%d/metrics", host or "*", self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
