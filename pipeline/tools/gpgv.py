"""Check an OpenPGP clear-signed file (a Debian InRelease) with gpgv against a keyring.

The vulnerability feed trusts nothing the mirror serves until the suite's InRelease
verifies against the Debian archive keyring: the keyring is the root of trust, exactly
as apt uses it. gpgv (a dependency of apt, present on every Debian machine) checks the
signature and writes out only the signed text, so whatever a mirror appended outside the
signature is never read.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.tools.runner import run

log = logging.getLogger(__name__)

DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
TIMEOUT = 60.0


def verify_clearsigned(data: bytes, keyring: Path = DEFAULT_KEYRING) -> str:
    """The signed content of `data` if a key of `keyring` made a good signature over it.

    Raises ToolError when the signature is bad, made by a key outside the keyring, or
    gpgv cannot run (a missing keyring is a failure, never a pass).
    """
    if not keyring.is_file():
        raise ToolError(["gpgv"], None, "", f"keyring {keyring} does not exist")
    with tempfile.TemporaryDirectory(prefix="drydock-gpgv-") as tmp:
        signed, out = Path(tmp) / "InRelease", Path(tmp) / "content"
        signed.write_bytes(data)
        # An empty home: only `keyring` is trusted, never a default trustedkeys file.
        argv = ["gpgv", "--quiet", "--homedir", tmp, "--keyring", str(keyring)]
        argv += ["--output", str(out), str(signed)]
        run(argv, timeout=TIMEOUT, env={"LC_ALL": "C"})
        try:
            return out.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ToolError(argv, 0, "", "wrote no readable signed content") from err
