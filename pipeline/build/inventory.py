"""What dpkg says an image holds, read once per image id.

The build record, the scanners' package-based evidence and the nightly's upstream check
all need an image's package list. Reading it costs a throwaway container; an image id
names immutable content, so the answer is kept under `$DRYDOCK_CACHE/inventory/` and a
reused image (or base) never pays for it again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.models.images import InstalledPackage
from pipeline.tools import docker


def inventory(image_id: str, cache: Path) -> tuple[InstalledPackage, ...]:
    """(package, version, source) for everything dpkg lists as installed in `image_id`."""
    path = cache / "inventory" / f"{image_id.removeprefix('sha256:')}.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return tuple(InstalledPackage(*row) for row in rows)
    except (OSError, ValueError, TypeError):
        pass
    rows = docker.installed_packages(image_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(rows)}")
    tmp.write_text(json.dumps(rows), encoding="utf-8")
    tmp.replace(path)
    return tuple(InstalledPackage(*row) for row in rows)
