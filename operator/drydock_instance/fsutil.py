"""Files the manager owns: atomic writes that report change, certificates, tree removal.

PostgreSQL refuses a private key that others can read, and a Secret volume's files
belong to root; so the manager writes the certificates itself, from the Secrets, into
the controller emptyDir with mode 0600 (and can rewrite them when they rotate). Every
write goes through a temporary file and a rename, so PostgreSQL never reads half a file.
`rmtree` exists because python3-minimal has no `shutil`.
"""

from __future__ import annotations

import os
from pathlib import Path

from drydock_instance.config import Settings
from drydock_instance.pgfiles import DataFiles, cert_paths
from drydock_instance.sources import Certs


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def write_if_changed(path: Path, text: str, mode: int = 0o600) -> bool:
    """Write `text` atomically unless the file already holds it; True when written."""
    if read_text(path) == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.chmod(mode)
    tmp.replace(path)
    return True


def write_certs(settings: Settings, certs: Certs) -> bool:
    """The server's CA, the client CA, the server pair and the streaming_replica client
    pair; True if any changed."""
    Path(settings.certs_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = cert_paths(settings)
    changed = False
    for path, text in (
        (paths.ca, certs.ca),
        (paths.server_crt, certs.server_crt),
        (paths.server_key, certs.server_key),
        (paths.client_crt, certs.client_crt),
        (paths.client_key, certs.client_key),
        (paths.client_ca, certs.client_ca or certs.ca),
    ):
        changed |= write_if_changed(Path(path), text)
    return changed


def write_data_files(pgdata: str, files: DataFiles) -> set[str]:
    """Write the configuration files into the data directory; the names that changed."""
    root = Path(pgdata)
    return {name for name, text in files.files if write_if_changed(root / name, text)}


def touch(path: Path) -> None:
    path.touch(mode=0o600, exist_ok=True)


def rmtree(path: Path) -> None:
    """Remove a directory tree (symlinks are removed, never followed)."""
    if not path.is_symlink() and not path.exists():
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            (Path(root) / name).unlink()
        for name in dirs:
            child = Path(root) / name
            if child.is_symlink():
                child.unlink()
            else:
                child.rmdir()
    path.rmdir()


def is_initialised(pgdata: str) -> bool:
    return (Path(pgdata) / "PG_VERSION").is_file()
