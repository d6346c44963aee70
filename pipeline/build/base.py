"""Debian base images built from Debian packages with debuerreotype, reused while fresh.

Nothing can be pulled on the machines Drydock runs on, and a base built from the archive
(verified by the Debian archive keyring) is a base whose provenance we can state. A base
younger than the configured max age is reused; an older one is rebuilt, which is how the
nightly run picks up security updates in the base itself.

A base is also kept in the Drydock cache (`bases/<target>.tar`, as `docker save` writes
it, beside its image id): an engine that starts empty every night (a CI runner's) gets
the same base back, by id, instead of bootstrapping a new one whose new id would change
the fingerprint of every image on it and so rebuild and republish the whole matrix.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pipeline.build.apt_sources import resolve, sources_list
from pipeline.build.inventory import inventory
from pipeline.build.resolve import Resolver
from pipeline.errors import ToolError
from pipeline.models.images import BuiltImage, InstalledPackage
from pipeline.models.targets import Plan, Target
from pipeline.tools import debuerreotype, docker

log = logging.getLogger(__name__)

CREATED_LABEL = "io.drydock.base.created-epoch"


def _kept(target: Target, cache: Path) -> tuple[Path, Path]:
    folder = cache / "bases"
    return folder / f"{target.name}.tar", folder / f"{target.name}.id"


def restore_kept(target: Target, cache: Path) -> bool:
    """Load the kept base when the engine has none under the target's tag; True if loaded.
    A kept file that does not load, or loads as another id than recorded, is dropped (the
    base is then bootstrapped as if nothing were kept)."""
    if docker.inspect(target.local_tag) is not None:
        return False
    tarball, id_file = _kept(target, cache)
    if not tarball.is_file() or not id_file.is_file():
        return False
    expected = id_file.read_text(encoding="utf-8").strip()
    try:
        loaded = docker.load(tarball)
    except ToolError as err:
        log.warning("%s: the kept base does not load, bootstrapping instead: %s", tarball, err)
        loaded = ()
    found = docker.inspect(target.local_tag)
    if found is None or str(found["Id"]) != expected:
        log.warning(
            "%s: the kept base is not the recorded %s (loaded %s): dropped",
            tarball,
            expected[:19],
            ", ".join(i[:19] for i in loaded) or "nothing",
        )
        tarball.unlink(missing_ok=True)
        id_file.unlink(missing_ok=True)
        return False
    log.info("%s restored from the cache (%s)", target.local_tag, expected[:19])
    return True


def keep(target: Target, image_id: str, cache: Path) -> None:
    """Save the base into the cache unless that very image is kept already."""
    tarball, id_file = _kept(target, cache)
    kept = id_file.read_text(encoding="utf-8").strip() if id_file.is_file() else ""
    if kept == image_id and tarball.is_file():
        return
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_name(f".{tarball.name}.{os.getpid()}.partial")
    try:
        docker.save(target.local_tag, partial)
        id_file.unlink(missing_ok=True)  # never an id beside a tarball it does not describe
        partial.replace(tarball)
        id_file.write_text(image_id + "\n", encoding="utf-8")
    except (ToolError, OSError) as err:
        log.warning("%s: not kept in the cache (%s)", target.local_tag, err)
    finally:
        partial.unlink(missing_ok=True)


def fresh_base(
    target: Target, max_age_hours: float, now: float, resolver: Resolver | None = None
) -> dict[str, str] | None:
    """The labels of an existing base young enough to reuse with nothing to upgrade, else None.

    A base with a pending (security) upgrade is rebuilt whatever its age: images built on
    it would otherwise fail CIS 4.4 until the next scheduled rebuild. The resolver asks apt
    about the base and every target built on it in one go."""
    inspected = docker.inspect(target.local_tag)
    if inspected is None:
        return None
    labels = docker.labels_of(inspected)
    try:
        created = float(labels.get(CREATED_LABEL, "0"))
    except ValueError:
        return None
    if now - created > max_age_hours * 3600:
        log.info(
            "%s is %.1f h old (max %.0f h): rebuilding",
            target.local_tag,
            (now - created) / 3600,
            max_age_hours,
        )
        return None
    resolver = resolver or Resolver(Plan((target,)))
    pending = resolver.resolve(target.name, target.local_tag, str(inspected["Id"])).pending
    if pending:
        log.info(
            "%s has %d pending upgrade(s) (%s): rebuilding",
            target.local_tag,
            len(pending),
            ", ".join(f"{n} {a} -> {b}" for n, (a, b) in sorted(pending.items())[:5]),
        )
        return None
    labels["__id"] = str(inspected["Id"])
    labels["__size"] = str(inspected.get("Size", 0))
    return labels


def build_base(
    target: Target,
    work_dir: Path,
    max_age_hours: float,
    progress: Callable[[str], None],
    force: bool = False,
    resolver: Resolver | None = None,
    cache: Path | None = None,
) -> BuiltImage:
    """Reuse a fresh base, or bootstrap, slim and import a new one."""
    start = time.monotonic()
    now = time.time()
    if not force and cache is not None and restore_kept(target, cache):
        progress("restored from the cache (the engine had lost it)")
    existing = None if force else fresh_base(target, max_age_hours, now, resolver)
    if existing is not None:
        image_id = existing.pop("__id")
        size = int(existing.pop("__size"))
        progress("fresh, reused")
        if cache is not None:
            keep(target, image_id, cache)
        return BuiltImage(
            target=target.name,
            tag=target.local_tag,
            image_id=image_id,
            fingerprint=image_id,
            labels=tuple(sorted(existing.items())),
            packages=inventory(image_id, cache) if cache is not None else (),
            seconds=time.monotonic() - start,
            builder="debuerreotype",
            reused=True,
            size=size,
        )
    mirrors = resolve(target.param("mirror"), target.param("security_mirror"))
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=work_dir))
    try:
        rootfs, tarball = tmp / "rootfs", tmp / "rootfs.tar"

        def write_sources(root: Path) -> None:
            apt = root / "etc" / "apt"
            (apt / "sources.list.d" / "debian.sources").unlink(missing_ok=True)
            (apt / "sources.list").write_text(
                sources_list(target.release, mirrors), encoding="utf-8"
            )

        debuerreotype.build_rootfs(
            rootfs, tarball, target.release, mirrors.archive, write_sources, progress
        )
        created = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        labels = {
            CREATED_LABEL: str(int(now)),
            "io.drydock.release": target.release,
            "org.opencontainers.image.created": created,
            "org.opencontainers.image.title": f"Debian {target.release} (debuerreotype, slim)",
            "org.opencontainers.image.vendor": "Drydock",
        }
        changes = [f'LABEL {k}="{v}"' for k, v in sorted(labels.items())] + ['CMD ["bash"]']
        progress("import")
        image_id = docker.import_rootfs(tarball, target.local_tag, changes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if cache is not None:
        keep(target, image_id, cache)
        packages = inventory(image_id, cache)
    else:
        packages = tuple(InstalledPackage(*r) for r in docker.installed_packages(image_id))
    return BuiltImage(
        target=target.name,
        tag=target.local_tag,
        image_id=image_id,
        fingerprint=image_id,
        labels=tuple(sorted(labels.items())),
        packages=packages,
        seconds=time.monotonic() - start,
        builder="debuerreotype",
        size=int((docker.inspect(image_id) or {}).get("Size", 0)),
    )
