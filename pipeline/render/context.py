"""Write a build context: the rendered Dockerfile plus the files it COPYs.

The fingerprint of a target is the hash of exactly these bytes plus its base image id,
so everything that can change an image must pass through here.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

DOCKERIGNORE = ".iid\n"


def write_context(dest: Path, dockerfile: str, files: dict[str, Path]) -> Path:
    """Recreate dest holding Dockerfile and the given files (name in context -> source)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / "Dockerfile").write_text(dockerfile, encoding="utf-8")
    (dest / ".dockerignore").write_text(DOCKERIGNORE, encoding="utf-8")
    for name, source in sorted(files.items()):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    return dest


def fingerprint(context: Path, base_id: str) -> str:
    """sha256 over every context file (path and bytes, sorted) and the base image id."""
    digest = hashlib.sha256()
    digest.update(f"base {base_id}\n".encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file() and p.name != ".iid"):
        rel = path.relative_to(context).as_posix()
        digest.update(f"file {rel} {path.stat().st_size}\n".encode())
        digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()
