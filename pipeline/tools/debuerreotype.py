"""debuerreotype: build a slim Debian rootfs from Debian packages, as the official images do.

Runs as root on the host (it chroots). Used only for base images; every other image is
built FROM one of these, so no image is ever pulled.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.tools.runner import run

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
STEP_TIMEOUT = 1200.0


def available() -> bool:
    return shutil.which("debuerreotype-init") is not None and KEYRING.is_file()


def build_rootfs(
    rootfs: Path,
    out_tar: Path,
    release: str,
    mirror: str,
    write_sources: Callable[[Path], None],
    progress: Callable[[str], None],
) -> None:
    """Bootstrap release into rootfs, configure apt sources, upgrade, slim, tar to out_tar."""
    if not available():
        raise ToolError(
            ["debuerreotype-init"], None, "", "not installed (scripts/host.sh up installs it)"
        )
    steps: list[tuple[str, list[str]]] = [
        (
            "bootstrap",
            [
                "debuerreotype-init",
                "--non-debian",
                "--keyring",
                str(KEYRING),
                str(rootfs),
                release,
                mirror,
            ],
        ),
        ("minimize", ["debuerreotype-minimizing-config", str(rootfs)]),
    ]
    for name, argv in steps:
        progress(name)
        run(argv, timeout=STEP_TIMEOUT)
    progress("sources")
    write_sources(rootfs)
    for name, argv in [
        ("update", ["debuerreotype-apt-get", str(rootfs), "update", "-qq"]),
        ("upgrade", ["debuerreotype-apt-get", str(rootfs), "dist-upgrade", "-yqq"]),
        ("slimify", ["debuerreotype-slimify", str(rootfs)]),
    ]:
        progress(name)
        run(argv, timeout=STEP_TIMEOUT)
    lists = rootfs / "var" / "lib" / "apt" / "lists"
    for entry in lists.glob("*"):
        if entry.is_file():
            entry.unlink()
    progress("tar")
    run(["debuerreotype-tar", str(rootfs), str(out_tar)], timeout=STEP_TIMEOUT)
