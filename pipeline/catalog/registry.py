"""Prove that an image exists in its registry at a digest, before a catalog may name it.

A catalog may only name digests that a cluster can pull, so before any apply every entry is
checked against the registry API itself (not a local record of what was pushed), through
Drydock's one registry client (pipeline.tools.registry: loopback hosts over plain HTTP,
credentials by host, bearer tokens, retries with backoff, a timeout on every request).
An unreachable registry counts as "not found": the apply is refused, never guessed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline.errors import RegistryError
from pipeline.models.reference import RegistryLocation
from pipeline.tools.registry import RegistryClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryCheck:
    """How hard to try: seconds per request and attempts per check."""

    timeout: float = 10.0
    attempts: int = 4
    max_wait: float = 4.0

    def client(self, registry: RegistryLocation | str) -> RegistryClient:
        return RegistryClient.from_environment(
            registry, timeout=self.timeout, attempts=self.attempts, max_wait=self.max_wait
        )

    def exists(self, registry: str, repository: str, digest: str) -> bool:
        """True when `registry` (host[/namespace]) serves repository@digest as that digest."""
        try:
            served = self.client(registry).digest(repository, digest)
        except (RegistryError, ValueError) as err:
            log.warning("registry %s: %s@%s not checked: %s", registry, repository, digest, err)
            return False
        if served is None:
            log.info("%s/%s@%s: not in the registry", registry, repository, digest)
        return served == digest
