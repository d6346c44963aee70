"""Build `manager.pyz`: the instance manager as one file, runnable by python3-minimal.

Run at image build time with a full Python (`python3 -m drydock_instance.pack DEST`).
The archive holds this package (without this build module) and CPython's own `json`
package taken from the interpreter that builds it: Debian's python3-minimal, which the
operand images carry, has no `json`, and these four pure-Python files are all the
manager needs beyond it. Entries are sorted and dated 1980-01-01, so the same sources
give the same bytes.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

SHEBANG = b"#!/usr/bin/env python3\n"
MAIN = "import sys\nfrom drydock_instance.__main__ import main\nsys.exit(main())\n"
EPOCH = (1980, 1, 1, 0, 0, 0)
LEFT_OUT = {"pack.py"}
JSON_FILES = {"__init__.py", "decoder.py", "encoder.py", "scanner.py"}


def _tree(root: Path, prefix: str) -> list[tuple[str, Path]]:
    return [
        (prefix + path.relative_to(root).as_posix(), path)
        for path in root.rglob("*.py")
        if "__pycache__" not in path.parts and path.name not in LEFT_OUT
    ]


def entries() -> list[tuple[str, Path]]:
    """(name in the archive, source file), sorted."""
    package = Path(__file__).resolve().parent
    stdlib_json = Path(json.__file__).resolve().parent
    json_files = [e for e in _tree(stdlib_json, "json/") if e[1].name in JSON_FILES]
    return sorted(_tree(package, "drydock_instance/") + json_files)


def build(dest: str) -> None:
    target = Path(dest)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("wb") as raw:
        raw.write(SHEBANG)
        with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            main = zipfile.ZipInfo("__main__.py", date_time=EPOCH)
            members = [(main, MAIN.encode())]
            for name, source in entries():
                members.append((zipfile.ZipInfo(name, date_time=EPOCH), source.read_bytes()))
            for info, data in members:
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
    tmp.chmod(0o644)
    tmp.replace(target)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 -m drydock_instance.pack DEST")
    build(sys.argv[1])
