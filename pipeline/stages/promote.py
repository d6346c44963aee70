"""Promotion after every CI shard passed: staged images -> release repository -> catalogs.

A sharded nightly stages each shard's images (`drydock run --stage-only`), which writes
`staged.json` (each staged image, its verdict and its tags) and the SBOMs. Only when every
shard succeeded does `drydock promote` copy the gated ones by digest to the release
repository, sign them, and regenerate the catalogs from what the release repository now
holds, so a catalog never names a half-published night.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.catalog.generate import CatalogSettings
from pipeline.errors import DrydockError, InputError, Problem
from pipeline.models.publish import PublishedImage
from pipeline.publish.push import STAGING_PREFIX, Release, promote
from pipeline.publish.sign import make_signer, sign_image
from pipeline.publish.tags import TagSet
from pipeline.settings import Settings
from pipeline.stages.catalogs import publish_catalogs, published_now
from pipeline.tools.cosign import locate_cosign
from pipeline.tools.registry import RegistryClient

log = logging.getLogger("drydock.progress")

STAGED_FILE = "staged.json"


def stage_record(
    staged: PublishedImage, release: Release, gated: bool, sbom: Path | None, out_dir: Path
) -> dict[str, Any]:
    """One staged image as `drydock promote` needs it; the SBOM is copied beside it."""
    sbom_name = ""
    if sbom is not None:
        (out_dir / "sboms").mkdir(parents=True, exist_ok=True)
        sbom_name = f"sboms/{staged.target}.cdx.json"
        shutil.copyfile(sbom, out_dir / sbom_name)
    return {
        "image": asdict(staged),
        "gated": gated,
        "rolling": list(release.tags.rolling),
        "sbom": sbom_name,
    }


def write_staged(records: list[dict[str, Any]], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / STAGED_FILE
    path.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


class _Image(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    target: str
    registry: str
    repository: str
    tag: str
    digest: str
    gated: bool
    major: int | None = None
    flavour: str | None = None
    release: str | None = None
    created: str = ""


class _Staged(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    image: _Image
    gated: bool
    rolling: list[str]
    sbom: str


def load_staged(folder: Path) -> list[tuple[_Staged, Path]]:
    path = folder / STAGED_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        records = [_Staged.model_validate(r) for r in raw]
    except OSError as err:
        raise InputError([Problem(str(path), "-", f"cannot read: {err.strerror}")]) from err
    except (ValueError, TypeError, ValidationError) as err:
        raise InputError([Problem(str(path), "-", f"not a staged.json: {err}")]) from err
    return [(r, folder) for r in records]


@dataclass
class PromoteOutcome:
    promoted: list[PublishedImage] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    catalogs: list[str] = field(default_factory=list)
    applied: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def promote_staged(
    settings: Settings,
    folders: list[Path],
    out_dir: Path,
    *,
    sign: bool = True,
    signing_key: Path | None = None,
    keyless: bool = False,
    kubeconfig: Path | None = None,
    catalog: CatalogSettings | None = None,
) -> PromoteOutcome:
    """Promote every gated staged image of every folder, then regenerate the catalogs."""
    staged = [pair for folder in folders for pair in load_staged(folder)]
    client = RegistryClient.from_environment(settings.registry)
    outcome = PromoteOutcome()
    for record, folder in staged:
        img = PublishedImage(**record.image.model_dump())
        if not record.gated:
            outcome.skipped.append(f"{img.target}: failed its gate, stays in {img.reference}")
            continue
        release = Release(
            target=img.target,
            repository=img.repository.removeprefix(STAGING_PREFIX),
            tags=TagSet(img.tag, tuple(record.rolling)),
            major=img.major,
            flavour=img.flavour,
            release=img.release,
            created=img.created,
        )
        try:
            done = promote(img, release, client, gated=True)
            if sign:
                cosign = locate_cosign(insecure_registry=client.base.startswith("http:"))
                key = make_signer(cosign, keyless=keyless, private=signing_key)
                sign_image(cosign, done, key, folder / record.sbom)
        except DrydockError as err:
            outcome.errors.append(f"{img.target}: {str(err).splitlines()[0]}")
            continue
        outcome.promoted.append(done)
        log.info("promoted %s", done.reference)
    # The catalogs come from what the release repository holds now, for every operand.
    chosen = published_now(settings, client)
    if chosen:
        try:
            outcome.catalogs, outcome.applied = publish_catalogs(
                chosen, out_dir, catalog or CatalogSettings(), kubeconfig
            )
        except DrydockError as err:
            outcome.errors.append(f"catalogs: {err}")
    return outcome
