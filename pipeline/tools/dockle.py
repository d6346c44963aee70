"""Run Dockle on a `docker save` tarball and return its JSON report text.

Dockle's result must depend only on the image: it reads `.dockleignore` from its working
directory and decides CIS-DI-0005 from the `DOCKER_CONTENT_TRUST` variable of its own
process, so both are fixed here (an empty working directory, an explicit variable).
Dockle verifies no signature, so by default the variable is "0" and CIS-DI-0005 is always
reported: image signing is proven by the publish stage, not by this host setting.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from pipeline.tools.locate import locate
from pipeline.tools.runner import run

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0


def dockle_argv(binary: Path, image_tar: Path, timeout: float) -> list[str]:
    # Dockle's own timeout a little shorter than ours, so it reports before it is killed.
    inner = max(10, int(timeout) - 10)
    return [
        str(binary),
        "--input",
        str(image_tar),
        "--format",
        "json",
        "--exit-code",
        "0",
        "--timeout",
        f"{inner}s",
    ]


def dockle_json(
    image_tar: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    binary: Path | None = None,
    content_trust: bool = False,
) -> str:
    """Dockle's JSON report for `image_tar`. Raises ToolError on failure or timeout."""
    exe = binary or locate("dockle").path
    env = {
        "DOCKER_CONTENT_TRUST": "1" if content_trust else "0",
        "DOCKLE_IGNORES": "",
        "DOCKLE_DEBUG": "false",
        "NO_COLOR": "1",
    }
    with tempfile.TemporaryDirectory(prefix="drydock-dockle-") as workdir:
        done = run(
            dockle_argv(exe, image_tar, timeout), timeout=timeout, env=env, cwd=Path(workdir)
        )
    log.info("dockle scanned %s in %.1fs", image_tar.name, done.seconds)
    return done.stdout
