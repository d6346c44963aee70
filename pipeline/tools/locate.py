"""Find the pinned build of a third-party tool (Dockle, Trivy, trivy-db, crane, oras).

Scanner results are only comparable between runs when the scanner is the same build, so
Drydock refuses to run a tool at any version other than the pinned one. The pins live in
exactly one place, the `NAME_VERSION=` lines of `pipeline/tools/versions.env`: shipped in
the package (an installed drydock finds them without a checkout) and sourced by
`scripts/tools.sh`, which builds the tools.

A tool is looked for in `$DRYDOCK_CACHE/bin` (where tools.sh puts `NAME-VERSION` binaries),
then on PATH, and each candidate's reported version is checked before it is used.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.settings import default_cache
from pipeline.tools import provision
from pipeline.tools.runner import run

log = logging.getLogger(__name__)

VERSION_TIMEOUT = 30.0
_PIN_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)_VERSION=([^\s#]+)\s*(?:#.*)?$")


@dataclass(frozen=True)
class VersionProbe:
    """How to ask a tool for its version, and whether the answer can be trusted."""

    argv: tuple[str, ...]  # arguments after the binary, e.g. ("--version",)
    # False when the tool prints no usable version (trivy-db reports "0.0.1" for every
    # build): then only the exact `NAME-VERSION` binary tools.sh built is accepted.
    reports_pin: bool = True


# How each tool reports its version. Adding a tool here does not pin it: tools.sh does.
PROBES: Mapping[str, VersionProbe] = {
    "dockle": VersionProbe(("--version",)),
    "trivy": VersionProbe(("--version",)),
    "trivy-db": VersionProbe(("--version",), reports_pin=False),
    "crane": VersionProbe(("version",)),
    "oras": VersionProbe(("version",)),
}


@dataclass(frozen=True)
class Tool:
    """A located tool binary, known to be the pinned version."""

    name: str
    version: str
    path: Path


def cache_root() -> Path:
    """Where Drydock keeps what outlives a run (see pipeline.settings.default_cache)."""
    return default_cache()


def bin_dir() -> Path:
    return cache_root() / "bin"


def pins_file() -> Path:
    """versions.env beside this module: the single source of the pinned versions."""
    return Path(__file__).resolve().with_name("versions.env")


def parse_pins(text: str) -> dict[str, str]:
    """`DOCKLE_VERSION=v0.4.15` lines -> {"dockle": "v0.4.15"} (TRIVY_DB -> "trivy-db")."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN_LINE.match(line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2).strip("\"'")
    return pins


def pinned_version(name: str, pins_path: Path | None = None) -> str:
    path = pins_path or pins_file()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ToolError([name], None, "", f"cannot read the pinned versions in {path}") from err
    pins = parse_pins(text)
    if name not in pins:
        raise ToolError(
            [name], None, "", f"has no pinned version in {path} (known: {sorted(pins)})"
        )
    return pins[name]


def reports_version(output: str, version: str) -> bool:
    """True when `output` names exactly `version` (with or without a leading "v")."""
    bare = re.escape(version.removeprefix("v"))
    return re.search(rf"(?<![\w.+-])v?{bare}(?![\w.+-])", output) is not None


def _candidates(name: str, version: str) -> list[Path]:
    found: list[Path] = []
    for path in (bin_dir() / f"{name}-{version}", bin_dir() / name):
        if path.is_file() and os.access(path, os.X_OK):
            found.append(path)
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    unique: list[Path] = []
    for path in found:
        if path.resolve() not in {p.resolve() for p in unique}:
            unique.append(path)
    return unique


def _is_pinned(path: Path, name: str, version: str, probe: VersionProbe) -> bool:
    if not probe.reports_pin:
        return path.resolve().name == f"{name}-{version}"
    try:
        done = run([str(path), *probe.argv], timeout=VERSION_TIMEOUT, check=False)
    except ToolError as err:
        log.warning("%s: cannot ask %s for its version: %s", name, path, err)
        return False
    if reports_version(done.stdout + done.stderr, version):
        return True
    log.warning("%s at %s is not the pinned %s; ignoring it", name, path, version)
    return False


def locate(name: str, version: str | None = None) -> Tool:
    """Return the pinned build of `name` (building it first when it is missing and this is
    a checkout, see pipeline.tools.provision), or raise a ToolError saying how to get it."""
    probe = PROBES.get(name)
    if probe is None:
        raise ToolError([name], None, "", f"is not a tool Drydock knows (known: {sorted(PROBES)})")
    wanted = version or pinned_version(name)
    failed = ""
    for attempt in range(2):
        for path in _candidates(name, wanted):
            if _is_pinned(path, name, wanted, probe):
                return Tool(name, wanted, path)
        if attempt == 0 and version is None and provision.enabled():
            try:
                provision.build([name])
            except ToolError as err:
                failed = f" (building it here failed: {str(err).splitlines()[0]})"
                break
    raise ToolError(
        [name],
        None,
        "",
        f"{wanted} not found in {bin_dir()} or on PATH; build it with "
        f"`scripts/tools.sh {name}`{failed}",
    )
