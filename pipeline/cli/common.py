"""Options and settings shared by the CLI commands."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import InputError, Problem
from pipeline.models.reference import RegistryLocation
from pipeline.settings import DEFAULT_REGISTRY, Settings, default_cache
from pipeline.tools.git import revision


def repo_root() -> Path:
    """The repository Drydock runs from: the current directory if it has images/, else
    the checkout this package was installed from."""
    cwd = Path.cwd()
    if (cwd / "images").is_dir() and (cwd / "dockerfiles").is_dir():
        return cwd
    return Path(__file__).resolve().parents[2]


def settings_from(
    *, jobs: int = 2, builder: str = "auto", images: Path | None = None, registry: str | None = None
) -> Settings:
    root = repo_root()
    return Settings(
        root=root,
        cache=default_cache(),
        jobs=jobs,
        builder=builder,
        revision=revision(root),
        images_dir=images,
        registry=registry_option(registry),
    )


def registry_option(value: str | None, flag: str = "--registry") -> str:
    """A registry location as typed (flag or DRYDOCK_REGISTRY), normalised; exit 2 if bad."""
    if not value:
        return DEFAULT_REGISTRY
    try:
        return str(RegistryLocation.parse(value))
    except ValueError as err:
        raise InputError([Problem(flag, value, str(err))]) from err
