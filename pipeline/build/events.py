"""How the build stage reports progress without knowing whether a terminal is watching."""

from __future__ import annotations

from typing import Protocol

from pipeline.models.images import BuiltImage


class BuildEvents(Protocol):
    def started(self, target: str) -> None: ...
    def step(self, target: str, text: str) -> None: ...
    def finished(self, target: str, image: BuiltImage) -> None: ...
    def failed(self, target: str, reason: str) -> None: ...
    def skipped(self, target: str, reason: str) -> None: ...


class Silent:
    def started(self, target: str) -> None:
        pass

    def step(self, target: str, text: str) -> None:
        pass

    def finished(self, target: str, image: BuiltImage) -> None:
        pass

    def failed(self, target: str, reason: str) -> None:
        pass

    def skipped(self, target: str, reason: str) -> None:
        pass
