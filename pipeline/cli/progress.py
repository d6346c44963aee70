"""Build progress for people: rich bars on a terminal, plain log lines in CI."""

from __future__ import annotations

import logging
import threading

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from pipeline.models.images import BuiltImage

log = logging.getLogger("drydock.progress")


class PlainEvents:
    """One log line per milestone; build output only at debug level (-vv)."""

    def started(self, target: str) -> None:
        log.info("build %s: started", target)

    def step(self, target: str, text: str) -> None:
        log.debug("build %s: %s", target, text)

    def finished(self, target: str, image: BuiltImage) -> None:
        how = (
            "unchanged since published"
            if image.published
            else "reused"
            if image.reused
            else f"built with {image.builder}"
        )
        log.info("build %s: %s in %.1fs -> %s", target, how, image.seconds, image.image_id[:19])

    def failed(self, target: str, reason: str) -> None:
        log.error("build %s: FAILED: %s", target, reason)

    def skipped(self, target: str, reason: str) -> None:
        log.error("build %s: skipped: %s", target, reason)


class RichEvents:
    """A spinner per target with its latest build line."""

    def __init__(self, total: int) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[target]}"),
            TextColumn("{task.description}", style="dim"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._overall = self._progress.add_task("", total=total, target="drydock build")
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RichEvents:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def started(self, target: str) -> None:
        with self._lock:
            self._tasks[target] = self._progress.add_task("starting", total=None, target=target)

    def step(self, target: str, text: str) -> None:
        with self._lock:
            if target in self._tasks and text.strip():
                self._progress.update(self._tasks[target], description=text.strip()[:70])

    def _end(self, target: str, text: str) -> None:
        with self._lock:
            if target in self._tasks:
                self._progress.update(self._tasks[target], description=text, total=1, completed=1)
            self._progress.advance(self._overall)

    def finished(self, target: str, image: BuiltImage) -> None:
        self._end(
            target, "[green]reused" if image.reused else f"[green]built ({image.seconds:.0f}s)"
        )

    def failed(self, target: str, reason: str) -> None:
        self._end(target, f"[red]failed: {reason.splitlines()[0][:60]}")

    def skipped(self, target: str, reason: str) -> None:
        self._end(target, f"[yellow]skipped: {reason[:60]}")
