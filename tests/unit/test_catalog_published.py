"""load_published: JSON list of PublishedImage records, validated at the boundary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.catalog.published import load_published, parse_published
from pipeline.errors import InputError

RECORD = {
    "target": "postgresql-16-minimal-bookworm",
    "registry": "127.0.0.1:5000",
    "repository": "drydock/postgresql",
    "tag": "16.10-202611271200-minimal-bookworm",
    "digest": "sha256:" + "a" * 64,
    "gated": True,
    "major": 16,
    "flavour": "minimal",
    "release": "bookworm",
    "created": "2026-11-27T12:00:00Z",
}


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "published.json"
    path.write_text(json.dumps([RECORD]))
    (img,) = load_published(path)
    assert img.reference == (
        "127.0.0.1:5000/drydock/postgresql:16.10-202611271200-minimal-bookworm@sha256:" + "a" * 64
    )
    assert img.gated is True


def test_optional_fields_default() -> None:
    record = {k: RECORD[k] for k in ("target", "registry", "repository", "tag", "digest", "gated")}
    (img,) = parse_published(json.dumps([record]))
    assert (img.major, img.flavour, img.release, img.created) == (None, None, None, "")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"digest": "sha256:abc"}, "[0].digest"),
        ({"digest": "md5:" + "a" * 64}, "[0].digest"),
        ({"gated": "yes"}, "[0].gated"),
        ({"major": "16"}, "[0].major"),
        ({"repository": "Drydock/PG"}, "[0].repository"),
        ({"flavour": "Minimal"}, "[0].flavour"),
        ({"surprise": 1}, "[0].surprise"),
    ],
)
def test_bad_fields_are_named(change: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as err:
        parse_published(json.dumps([{**RECORD, **change}]), "pub.json")
    assert [(p.file, p.field) for p in err.value.problems] == [("pub.json", field)]


def test_missing_field() -> None:
    record = dict(RECORD)
    del record["digest"]
    with pytest.raises(InputError) as err:
        parse_published(json.dumps([record]))
    assert err.value.problems[0].field == "[0].digest"


def test_not_a_list_and_not_json(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        parse_published(json.dumps(RECORD))
    with pytest.raises(InputError) as err:
        parse_published("{", "p.json")
    assert err.value.problems[0].file == "p.json"
    with pytest.raises(InputError):
        load_published(tmp_path / "missing.json")
