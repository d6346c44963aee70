"""Write validated catalogs and their kustomization.yaml to a directory, all or nothing.

Catalogs are validated before anything is written; files are written next to their final
name and renamed into place only after every one was written, so a failed run never leaves
a half-updated catalog directory. Signing (`cosign sign-blob`, owned by the publish stage)
plugs in through the `sign` hook, called once per written file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.catalog.generate import Catalog, render_all
from pipeline.catalog.validate import validate
from pipeline.errors import CatalogError

log = logging.getLogger(__name__)

Signer = Callable[[Path], None]


def write_catalogs(
    catalogs: Iterable[Catalog], out_dir: Path, *, sign: Signer | None = None
) -> list[Path]:
    """Validate, then write every catalog file and kustomization.yaml; returns the paths."""
    catalogs = tuple(catalogs)
    validate(catalogs)
    files = render_all(catalogs)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staged: list[tuple[Path, Path]] = []
        for name, text in files.items():
            final = out_dir / name
            tmp = out_dir / f".{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            staged.append((tmp, final))
        for tmp, final in staged:
            tmp.replace(final)
    except OSError as err:
        raise CatalogError(f"cannot write catalogs to {out_dir}: {err}") from err
    written = [final for _, final in staged]
    if sign is not None:
        for path in written:
            sign(path)
    log.info("wrote %d catalog file(s) to %s", len(written), out_dir)
    return written
