"""Options and settings shared by the CLI commands."""

from __future__ import annotations

from pathlib import Path

from pipeline.settings import Settings, default_cache
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
    kwargs: dict[str, object] = {}
    if registry:
        kwargs["registry"] = registry
    return Settings(
        root=root,
        cache=default_cache(),
        jobs=jobs,
        builder=builder,
        revision=revision(root),
        images_dir=images,
        **kwargs,  # type: ignore[arg-type]
    )
