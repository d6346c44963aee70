"""The git revision of the checkout, for the org.opencontainers.image.revision label."""

from __future__ import annotations

from pathlib import Path

from pipeline.tools.runner import run


def revision(root: Path) -> str:
    """HEAD's commit id, '+dirty' when the tree has changes, '' outside a git checkout."""
    done = run(["git", "-C", str(root), "rev-parse", "HEAD"], timeout=30, check=False)
    if done.returncode != 0:
        return ""
    head = done.stdout.strip()
    status = run(["git", "-C", str(root), "status", "--porcelain"], timeout=30, check=False)
    return head + ("+dirty" if status.stdout.strip() else "")
