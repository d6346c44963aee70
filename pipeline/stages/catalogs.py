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
from pipeline.descriptors.load import load_plan
from pipeline.models.publish import PublishedImage
from pipeline.models.targets import Kind
from pipeline.publish.current import find_current
from pipeline.settings import Settings
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig
from pipeline.tools.registry import RegistryClient

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


def published_now(settings: Settings, client: RegistryClient | None = None) -> list[PublishedImage]:
    """What the release repository holds now for every operand of the plan (what a catalog
    made from the registry names): each operand's rolling tag, by its immutable tag."""
    client = client or RegistryClient.from_environment(settings.registry)
    plan = load_plan(settings.descriptors, settings.templates)
    current = [find_current(client, t) for t in plan if t.kind is Kind.OPERAND]
    return [c.image for c in current if c is not None]
