"""A wheelhouse for the operator image: its own wheel plus binary wheels of its dependencies.

The image build then installs with `--no-index`, so it needs no package index and no
compiler. SOURCE_DATE_EPOCH makes the operator's wheel byte-stable, so an unchanged
operator keeps the same build fingerprint.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from pipeline.tools.runner import run

PIP_TIMEOUT = 900.0
# Debian's python3 per release: the wheels must match the interpreter in the image.
PYTHON_BY_RELEASE = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}


def wheelhouse(app_dir: Path, dest: Path, release: str) -> list[Path]:
    """Fill dest with the app's wheel and its dependencies' manylinux wheels (only those:
    a wheel left from an earlier resolution would change the build context)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    # Build from a copy: setuptools writes build/ and *.egg-info beside the sources, and
    # nothing may be written into the checkout.
    source = dest.parent / "app-source"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(
        app_dir, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    env = {"SOURCE_DATE_EPOCH": "315532800", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(dest),
            str(source),
        ],
        timeout=PIP_TIMEOUT,
        env=env,
    )
    app_wheels = sorted(dest.glob("*.whl"))
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--platform",
            "manylinux2014_x86_64",
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            PYTHON_BY_RELEASE[release],
            "--implementation",
            "cp",
            "--dest",
            str(dest),
            *[str(w) for w in app_wheels],
        ],
        timeout=PIP_TIMEOUT,
        env=env,
    )
    return sorted(dest.glob("*.whl"))
