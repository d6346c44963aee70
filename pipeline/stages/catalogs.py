"""The catalog stage shared by `drydock run` and `drydock promote`.

Given the images the catalogs should name, it records them (`published.json`, the input
of `drydock catalog ... --published`), writes the catalog files and, with a kubeconfig,
applies them. Raises DrydockError; the callers record it against the run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from pipeline.catalog.apply import apply as apply_catalogs
from pipeline.catalog.files import write_catalogs
from pipeline.catalog.generate import CatalogSettings, generate
from pipeline.models.publish import PublishedImage
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig

log = logging.getLogger("drydock.progress")


def publish_catalogs(
    chosen: Sequence[PublishedImage],
    out_dir: Path,
    settings: CatalogSettings,
    kubeconfig: Path | None,
) -> tuple[list[str], list[dict[str, str]]]:
    """(catalog files written, catalogs applied as {kind, name, action})."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "published.json").write_text(
        json.dumps([asdict(p) for p in chosen], indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    catalogs = generate(chosen, settings)
    files = [str(p) for p in write_catalogs(catalogs, out_dir / "catalogs")]
    applied: list[dict[str, str]] = []
    if kubeconfig is not None:
        with KubeAPI(load_kubeconfig(kubeconfig)) as api:
            for res in apply_catalogs(api, catalogs):
                applied.append({"kind": res.kind, "name": res.name, "action": res.action})
                log.info("catalog %s/%s: %s", res.kind, res.name, res.action)
    return files, applied
