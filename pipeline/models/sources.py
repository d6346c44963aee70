"""Where in the repository a maintainer changes an image: descriptor and template lines.

Code scanning anchors each result at a file and line; for a container image that is the
descriptor entry that defines it (`images/*.yaml`), the line listing a package, or the
template instruction (`dockerfiles/*.j2`) that a control is about (USER, HEALTHCHECK,
EXPOSE, ...). Found by pipeline.descriptors.anchors, carried by the GateReport, read by
the SARIF renderer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLine:
    path: str  # relative to the repository root, "/"-separated: "images/postgresql.yaml"
    line: int  # 1-based
    text: str = ""  # the line itself (its length bounds the region)


@dataclass(frozen=True)
class ImageSource:
    """The source lines of one image, keyed by the image reference the report uses."""

    image: str
    repository: str  # the release repository (no tag, no digest): stable across builds
    target: str  # the plan target name
    descriptor: SourceLine  # the entry that defines the target
    packages: tuple[tuple[str, SourceLine], ...] = ()  # package -> line naming it
    instructions: tuple[tuple[str, SourceLine], ...] = ()  # "USER" -> template line

    def package_line(self, package: str) -> SourceLine | None:
        return dict(self.packages).get(package)

    def instruction_line(self, keyword: str) -> SourceLine | None:
        return dict(self.instructions).get(keyword.upper())
