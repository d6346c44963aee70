"""A software bill of materials, reduced to what Drydock checks and reports: its components."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SbomComponent:
    name: str
    version: str = ""
    purl: str = ""  # package URL, e.g. "pkg:deb/debian/openssl@3.0.15-1~deb12u1"
    type: str = ""  # CycloneDX type ("library", "operating-system") or SPDX purpose


@dataclass(frozen=True)
class Sbom:
    format: str  # "CycloneDX" or "SPDX"
    spec_version: str  # "1.5", "SPDX-2.3"
    subject: str  # what the SBOM describes (image name or path)
    components: tuple[SbomComponent, ...]

    def purls(self) -> tuple[str, ...]:
        return tuple(c.purl for c in self.components if c.purl)
