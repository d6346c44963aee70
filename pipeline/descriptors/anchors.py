"""The lines a maintainer would change for an image: descriptor entry, packages, template.

Code scanning shows a result on a file and a line. For an image Drydock built, the file a
maintainer edits is the descriptor that defines it (`images/*.yaml`: the major's entry of
an operand, the operator's version, a base's release list), the line listing a package,
or the template instruction a control is about (`dockerfiles/*.j2`: USER, HEALTHCHECK,
EXPOSE, the RUN that calls apt-get, ...). This module finds those lines in the files the
plan was loaded from; paths come out relative to the repository root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pipeline.models.sources import ImageSource, SourceLine
from pipeline.models.targets import Kind, Plan, Target

KEYWORDS = (
    "FROM",
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "LABEL",
    "EXPOSE",
    "USER",
    "WORKDIR",
    "HEALTHCHECK",
    "STOPSIGNAL",
    "CMD",
    "ENTRYPOINT",
    "ARG",
    "VOLUME",
)


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()
    except ValueError:
        return path.as_posix()


def _read(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def _first(lines: list[str], pattern: re.Pattern[str], start: int = 0) -> int:
    """1-based number of the first line from `start` matching pattern, 0 if none."""
    for n in range(start, len(lines)):
        if pattern.search(lines[n]):
            return n + 1
    return 0


def target_line(target: Target, lines: list[str]) -> int:
    """The descriptor line that defines this target (1 when nothing more precise)."""
    if target.kind is Kind.OPERAND and target.major is not None:
        majors = _first(lines, re.compile(r"^majors\s*:"))
        found = _first(lines, re.compile(rf"\bmajor\s*:\s*{target.major}\b"), majors)
        return found or majors or 1
    if target.kind is Kind.OPERATOR:
        return _first(lines, re.compile(r"^version\s*:")) or 1
    if target.kind is Kind.BASE:
        return _first(lines, re.compile(rf"^releases\s*:.*\b{re.escape(target.release)}\b")) or 1
    return 1


def package_lines(target: Target, lines: list[str]) -> dict[str, int]:
    """Package name -> the descriptor line naming it (templated `{major}` forms included)."""
    found: dict[str, int] = {}
    for package in target.packages:
        forms = [package]
        if target.major is not None:
            forms.append(package.replace(str(target.major), "{major}"))
        for form in forms:
            n = _first(lines, re.compile(rf"(?<![\w{{}}.+-]){re.escape(form)}(?![\w{{}}.+-])"))
            if n:
                found[package] = n
                break
    return found


def instruction_lines(lines: list[str]) -> dict[str, int]:
    """Dockerfile keyword -> its first line in a template; "RUN" prefers the one calling apt."""
    found: dict[str, int] = {}
    in_comment = False
    apt_run = 0
    current_run = 0
    for n, raw in enumerate(lines, start=1):
        line = raw.strip()
        if in_comment or line.startswith("{#"):
            in_comment = "#}" not in line
            continue
        word = line.split(" ", 1)[0].upper() if line else ""
        if word in KEYWORDS and raw[:1] not in (" ", "\t"):
            found.setdefault(word, n)
            current_run = n if word == "RUN" else 0
        if current_run and not apt_run and "apt-get" in line:
            apt_run = current_run
        if current_run and not line.endswith("\\"):
            current_run = 0
    if apt_run:
        found["RUN"] = apt_run
    return found


def image_source(root: Path, target: Target, image: str, templates: Path) -> ImageSource:
    """Where `image` (built from `target`) is defined, relative to `root`."""
    descriptor = Path(target.descriptor)
    lines = _read(descriptor)
    at = target_line(target, lines)
    rel = _relative(descriptor, root)

    def line(path: str, text: list[str], n: int) -> SourceLine:
        return SourceLine(path, n, text[n - 1] if 0 < n <= len(text) else "")

    packages = tuple(
        (name, line(rel, lines, n)) for name, n in sorted(package_lines(target, lines).items())
    )
    instructions: tuple[tuple[str, SourceLine], ...] = ()
    if target.template:
        template = templates / target.template
        tlines = _read(template)
        trel = _relative(template, root)
        instructions = tuple(
            (word, line(trel, tlines, n)) for word, n in sorted(instruction_lines(tlines).items())
        )
    return ImageSource(
        image=image,
        repository=target.local_tag.rsplit(":", 1)[0],
        target=target.name,
        descriptor=line(rel, lines, at),
        packages=packages,
        instructions=instructions,
    )


def image_sources(
    root: Path, plan: Plan, templates: Path, images: Mapping[str, str]
) -> tuple[ImageSource, ...]:
    """Sources of the images (image -> plan target name) whose target the plan knows."""
    known = set(plan.names())
    return tuple(
        image_source(root, plan.get(name), image, templates)
        for image, name in sorted(images.items())
        if name in known
    )
