"""The files a target's build context COPYs besides its Dockerfile, resolved once.

The operator image installs from a wheelhouse (its own wheel plus binary wheels of its
dependencies, see pipeline.tools.pip) so the image build needs no index and no compiler.
Filling one costs a wheel build and a dependency resolution against the package index
(about 20 s here), and its bytes are part of the build fingerprint, so it is kept in
`$DRYDOCK_CACHE/wheelhouses/`, keyed by the hash of the application's sources and the
target's Python: an unchanged operator reuses the same wheels, byte for byte, and keeps
its fingerprint. The dependencies are resolved again when the sources change, when the
kept wheelhouse is older than the base images' maximum age (`max_age_hours`, so newer
dependency releases arrive at the same pace as a new base), or on `--rebuild`.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import DescriptorError, Problem
from pipeline.models.targets import Kind, PackageSource, Target
from pipeline.settings import Settings
from pipeline.tools import pip

log = logging.getLogger(__name__)

STAMP = ".resolved-at"
_SKIP = ("build", "__pycache__")


@dataclass(frozen=True)
class ContextFiles:
    files: dict[str, Path]  # name in the context -> source file or folder
    requirement: str  # operator: the distribution pip installs ("" for operands)
    wheelhouse_reused: bool = False


def source_hash(app_dir: Path, release: str) -> str:
    """sha256 over the application's files (path and bytes) and the target release."""
    digest = hashlib.sha256(f"release {release}\n".encode())
    for path in sorted(app_dir.rglob("*")):
        rel = path.relative_to(app_dir)
        if not path.is_file() or any(
            part in _SKIP or part.endswith(".egg-info") for part in rel.parts
        ):
            continue
        digest.update(f"file {rel.as_posix()} {path.stat().st_size}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def wheelhouse(
    app_dir: Path, release: str, cache: Path, max_age_hours: float, refresh: bool
) -> tuple[Path, bool]:
    """The wheelhouse for app_dir on release: (folder, reused). Built into a temporary
    folder and renamed into place, so a concurrent run never sees half of one."""
    key = source_hash(app_dir, release)[:32]
    root = cache / "wheelhouses"
    entry = root / key
    stamp = entry / STAMP  # beside the wheels, not among them: it is not a build input
    if not refresh and stamp.is_file():
        try:
            age = time.time() - float(stamp.read_text(encoding="utf-8").strip())
        except ValueError:
            age = float("inf")
        if age < max_age_hours * 3600:
            return entry / "wheels", True
        log.info("wheelhouse %s is %.0f h old: resolving again", key[:12], age / 3600)
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=root))
    try:
        pip.wheelhouse(app_dir, work / "wheels", release)
        shutil.rmtree(work / "app-source", ignore_errors=True)
        (work / STAMP).write_text(f"{time.time():.0f}\n", encoding="utf-8")
        old = root / f".old-{key}-{time.time_ns()}"
        if entry.exists():
            entry.rename(old)
        work.rename(entry)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return entry / "wheels", False


def context_files(
    target: Target, settings: Settings, max_age_hours: float, refresh: bool
) -> ContextFiles:
    """Files to COPY into the context, and the pip requirement for the operator."""
    files: dict[str, Path] = {}
    requirement = ""
    reused = False
    if target.kind is Kind.OPERATOR:
        app_dir = settings.root / target.param("app_path")
        meta = app_dir / "pyproject.toml"
        try:
            requirement = tomllib.loads(meta.read_text(encoding="utf-8"))["project"]["name"]
        except (OSError, KeyError, tomllib.TOMLDecodeError) as err:
            raise DescriptorError(
                [Problem(target.descriptor, "app.path", f"{meta} is not a Python project: {err}")]
            ) from err
        wheels, reused = wheelhouse(app_dir, target.release, settings.cache, max_age_hours, refresh)
        files["wheels"] = wheels
    if target.source is PackageSource.PGDG:
        keyring = Path(target.descriptor).parent / target.param("pgdg_keyring")
        if not keyring.is_file():
            raise DescriptorError(
                [Problem(target.descriptor, "pgdg.keyring", f"file not found: {keyring}")]
            )
        files["pgdg-keyring.asc"] = keyring
    return ContextFiles(files, requirement, reused)
