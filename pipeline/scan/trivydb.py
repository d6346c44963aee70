"""A small Trivy vulnerability DB built from advisories we write ourselves.

Drydock's machines reach no vulnerability feed, yet Trivy must scan against a real DB:
an empty cache makes it fail, and a fabricated DB file would test nothing. So Drydock
writes advisories in the layout of Debian's security tracker (the input the upstream
trivy-db builder reads), runs the real builder, and pushes the result as the same OCI
artifact Aqua publishes. Tests plant a known vulnerability this way; offline runs get a
DB that says exactly which advisories it holds (and logs loudly when it holds none).

Layout written (trivy-db pkg/vulnsrc/debian, see toolchain.md §3.3):
    <cache>/vuln-list-debian/tracker/distributions.json
    <cache>/vuln-list-debian/tracker/CVE/<id>.json
    <cache>/vuln-list-debian/tracker/DLA/  DSA/   (must exist, may be empty)
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import InputError, Problem, ToolError
from pipeline.scan.clair import registry_url
from pipeline.tools import trivydb as trivydb_tool
from pipeline.tools.locate import cache_root

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
DEFAULT_REPOSITORY = "drydock/trivy-db"
# Debian releases the builder may file advisories under: codename -> major version.
DEBIAN_MAJORS: Mapping[str, str] = {"bullseye": "11", "bookworm": "12", "trixie": "13"}
URGENCIES = ("unimportant", "low", "medium", "high", "not yet assigned")


@dataclass(frozen=True)
class Advisory:
    """One vulnerability of one Debian source package in one release."""

    id: str  # "CVE-2026-0001"
    package: str  # the *source* package name (dpkg ${source:Package})
    release: str = "bookworm"
    fixed_version: str = ""  # "" = no fix yet (filed as <no-dsa>, Trivy reports it unfixed)
    urgency: str = "high"  # Debian tracker urgency; Trivy maps it to a severity
    description: str = ""


class _AdvisoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^(CVE-\d{4}-\d{4,}|[A-Z]+-[\w.-]+)$")
    package: str = Field(pattern=r"^[a-z0-9][a-z0-9+.-]+$")
    release: str = "bookworm"
    fixed_version: str = ""
    urgency: str = "high"
    description: str = ""


class _AdvisoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    advisories: list[_AdvisoryIn] = Field(default_factory=list)


class RegistrySettings(Protocol):
    """What `ensure_local_db` needs from the run settings."""

    @property
    def registry(self) -> str: ...  # "127.0.0.1:5000"


def _check(
    advisory: Advisory, where: str, majors: Mapping[str, str] = DEBIAN_MAJORS
) -> list[Problem]:
    problems = []
    if advisory.release not in majors:
        known = ", ".join(majors)
        problems.append(Problem(where, "release", f"{advisory.release!r} is not one of {known}"))
    if advisory.urgency not in URGENCIES:
        problems.append(Problem(where, "urgency", f"{advisory.urgency!r} not in {URGENCIES}"))
    return problems


def load_advisories(path: Path) -> tuple[Advisory, ...]:
    """Read `advisories: [{id, package, release, fixed_version, urgency}]` (YAML or JSON)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        parsed = _AdvisoryFile.model_validate(data)
    except OSError as err:
        raise InputError([Problem(str(path), "-", f"cannot read: {err.strerror}")]) from err
    except yaml.YAMLError as err:
        raise InputError([Problem(str(path), "-", f"not YAML: {err}")]) from err
    except ValidationError as err:
        raise InputError(
            [Problem(str(path), ".".join(str(p) for p in e["loc"]), e["msg"]) for e in err.errors()]
        ) from err
    advisories = tuple(Advisory(**a.model_dump()) for a in parsed.advisories)
    problems = [p for i, a in enumerate(advisories) for p in _check(a, f"{path}[{i}]")]
    if problems:
        raise InputError(problems)
    return advisories


def tracker_files(
    advisories: Sequence[Advisory], majors: Mapping[str, str] = DEBIAN_MAJORS
) -> dict[str, Any]:
    """Relative path -> JSON document, for the tracker layout (pure). `majors` maps the
    release codenames the DB covers to their Debian major version."""
    problems = [p for a in advisories for p in _check(a, a.id, majors)]
    if problems:
        raise InputError(problems)
    files: dict[str, Any] = {
        "distributions.json": {
            **{
                code: {"major-version": major, "support": "security", "contact": ""}
                for code, major in majors.items()
            },
            "sid": {"major-version": "", "support": "", "contact": ""},
        }
    }
    by_id: dict[str, list[Advisory]] = {}
    for advisory in advisories:
        by_id.setdefault(advisory.id, []).append(advisory)
    for vuln_id, group in sorted(by_id.items()):
        annotations: list[dict[str, str]] = []
        for a in group:
            # The unstable ("sid") line first: the builder takes the severity from it.
            sid: dict[str, str] = {"Type": "package", "Package": a.package, "Severity": a.urgency}
            sid.update(
                {"Kind": "fixed", "Version": a.fixed_version}
                if a.fixed_version
                else {"Kind": "unfixed"}
            )
            release: dict[str, str] = {
                "Type": "package",
                "Release": a.release,
                "Package": a.package,
            }
            release.update(
                {"Kind": "fixed", "Version": a.fixed_version}
                if a.fixed_version
                else {"Kind": "no-dsa", "Description": "no fix available"}
            )
            annotations += [sid, release]
        description = group[0].description or f"({vuln_id}, Drydock local advisory)"
        files[f"CVE/{vuln_id}.json"] = {
            "Header": {"ID": vuln_id, "Description": description},
            "Annotations": annotations,
        }
    return files


def write_tracker(
    vuln_cache: Path, advisories: Sequence[Advisory], majors: Mapping[str, str] = DEBIAN_MAJORS
) -> Path:
    """Write the tracker layout under vuln_cache; returns the tracker directory."""
    root = vuln_cache / "vuln-list-debian" / "tracker"
    for sub in ("CVE", "DLA", "DSA"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for rel, doc in tracker_files(advisories, majors).items():
        (root / rel).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return root


def fingerprint(advisories: Sequence[Advisory]) -> str:
    """A short hash of the advisories, used as the DB tag so a change means a new DB."""
    doc = json.dumps(sorted((asdict(a) for a in advisories), key=json.dumps), sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


def _archive(out_dir: Path, dest: Path) -> Path:
    """db.tar.gz holding trivy.db and metadata.json, as upstream publishes it."""
    with tarfile.open(dest, "w:gz") as tar:
        for name in ("trivy.db", "metadata.json"):
            data = (out_dir / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return dest


def build_db_files(
    advisories: Sequence[Advisory], workdir: Path, majors: Mapping[str, str] = DEBIAN_MAJORS
) -> Path:
    """Advisories -> <workdir>/out/{trivy.db,metadata.json} via the real builder."""
    if not advisories:
        log.warning("building a Trivy DB with no advisories: it will report no vulnerabilities")
    vuln_cache, out = workdir / "vuln-cache", workdir / "out"
    for stale in (vuln_cache, out):  # the builder adds to an existing DB: start clean
        shutil.rmtree(stale, ignore_errors=True)
    write_tracker(vuln_cache, advisories, majors)
    trivydb_tool.build_db(vuln_cache, out)
    shutil.rmtree(vuln_cache, ignore_errors=True)
    return out


def build_local_db(advisories: Sequence[Advisory], workdir: Path) -> Path:
    """Advisories -> <workdir>/db.tar.gz (trivy.db + metadata.json) via the real builder."""
    return _archive(build_db_files(advisories, workdir), workdir / "db.tar.gz")


def is_plain_http(ref: str) -> bool:
    return registry_url(ref.split("/", 1)[0]).startswith("http://")


def push_db(archive: Path, ref: str) -> str:
    """Push the DB artifact; falls back to an image-spec 1.0 manifest if the registry
    rejects the 1.1 one (older registries refuse `artifactType`)."""
    plain = is_plain_http(ref)
    try:
        trivydb_tool.push(ref, archive, plain_http=plain)
    except ToolError as err:
        log.warning("registry refused an OCI 1.1 artifact manifest (%s); retrying as 1.0", err)
        trivydb_tool.push(ref, archive, plain_http=plain, image_spec="v1.0")
    return ref


def db_reference(
    registry: str, advisories: Sequence[Advisory], repository: str = DEFAULT_REPOSITORY
) -> str:
    return f"{registry}/{repository}:{SCHEMA_VERSION}-{fingerprint(advisories)}"


def ensure_local_db(
    settings: RegistrySettings,
    advisories: Sequence[Advisory] = (),
    repository: str = DEFAULT_REPOSITORY,
) -> str:
    """The `--db-repository` reference of a local DB holding `advisories`, built and pushed
    only when the registry does not have it yet (the tag is a hash of the advisories)."""
    ref = db_reference(settings.registry, advisories, repository)
    if trivydb_tool.exists(ref, plain_http=is_plain_http(ref)):
        log.info("trivy DB %s already in the registry", ref)
        return ref
    workdir = cache_root() / "trivy-db-build" / fingerprint(advisories)
    workdir.mkdir(parents=True, exist_ok=True)
    push_db(build_local_db(advisories, workdir), ref)
    log.info("trivy DB with %d advisories pushed to %s", len(advisories), ref)
    return ref
