"""Read PublishedImage records (JSON) at the boundary, with pydantic, into frozen models.

The publish stage writes what it pushed as a JSON list of PublishedImage records; the
catalog stage trusts nothing in that file until it has been validated here. Every problem
is reported with file, field and reason, and nothing past this module sees a raw dict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from pipeline.errors import InputError, Problem
from pipeline.models.publish import PublishedImage
from pipeline.models.reference import RegistryLocation

DIGEST_RE = r"^sha256:[a-f0-9]{64}$"
REPOSITORY_RE = r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
TAG_RE = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
LABEL_VALUE_RE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class _PublishedRecord(BaseModel):
    """One record as the publish stage writes it; mirrors PublishedImage field by field."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    target: Annotated[str, Field(min_length=1)]
    registry: Annotated[str, Field(min_length=1)]  # host[:port][/namespace]
    repository: Annotated[str, Field(pattern=REPOSITORY_RE)]
    tag: Annotated[str, Field(pattern=TAG_RE)]
    digest: Annotated[str, Field(pattern=DIGEST_RE)]
    gated: bool
    major: Annotated[int, Field(ge=1)] | None = None
    flavour: Annotated[str, Field(pattern=LABEL_VALUE_RE, max_length=63)] | None = None
    release: Annotated[str, Field(pattern=LABEL_VALUE_RE, max_length=63)] | None = None
    created: str = ""

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str) -> str:
        location = RegistryLocation.parse(value)  # ValueError -> a located problem
        if str(location) != value:
            raise ValueError(f"not normalised: write {location}")
        return value

    def to_model(self) -> PublishedImage:
        return PublishedImage(**self.model_dump())


_RECORDS = TypeAdapter(list[_PublishedRecord])


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".") or "-"


def parse_published(text: str, source: str = "<published>") -> tuple[PublishedImage, ...]:
    """Validate the JSON text of a PublishedImage list; InputError lists every problem."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise InputError([Problem(source, "-", f"not JSON: {err}")]) from err
    try:
        records = _RECORDS.validate_python(data)
    except ValidationError as err:
        problems = [Problem(source, _loc(e["loc"]), e["msg"]) for e in err.errors()]
        raise InputError(problems) from err
    return tuple(r.to_model() for r in records)


def load_published(path: Path) -> tuple[PublishedImage, ...]:
    """Read and validate a JSON file holding a list of PublishedImage records."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError([Problem(str(path), "-", f"cannot read: {err.strerror}")]) from err
    return parse_published(text, str(path))
