"""Offline catalog validation: schema, unique majors, metadata, digest pinning."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from catalog_helpers import image

from pipeline.catalog.generate import generate
from pipeline.catalog.validate import problems_in, validate
from pipeline.errors import InputError

OS_LABEL = "images.cnpg.io/os"


def good() -> dict[str, Any]:
    (catalog,) = generate([image(15, n=1), image(16, n=2)])
    return catalog.manifest()


def fields(obj: dict[str, Any]) -> list[str]:
    return [p.field for p in problems_in(obj, "f.yaml")]


def test_generated_catalog_passes() -> None:
    assert problems_in(good(), "f.yaml") == []


def test_duplicate_major_is_named() -> None:
    obj = good()
    obj["spec"]["images"][1]["major"] = 15
    (problem,) = problems_in(obj, "catalog-x.yaml")
    assert (problem.file, problem.field) == ("catalog-x.yaml", "spec.images")
    assert "15" in problem.reason


def test_schema_errors_have_paths() -> None:
    obj = good()
    obj["spec"]["images"][0]["major"] = 9
    del obj["spec"]["images"][1]["image"]
    assert fields(obj) == ["spec.images[0].major", "spec.images[1]"]


def test_too_many_and_too_few_images() -> None:
    obj = good()
    entry = obj["spec"]["images"][0]
    obj["spec"]["images"] = [{**entry, "major": 10 + i, "image": entry["image"]} for i in range(9)]
    assert fields(obj) == ["spec.images"]
    obj["spec"]["images"] = []
    assert fields(obj) == ["spec.images"]


def test_unpinned_image_is_rejected() -> None:
    obj = good()
    obj["spec"]["images"][0]["image"] = "127.0.0.1:5000/drydock/postgresql:16"
    assert fields(obj) == ["spec.images[0].image"]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("metadata", "name"), "Bad_Name", "metadata.name"),
        (
            ("metadata", "labels", "images.cnpg.io/os"),
            "x" * 64,
            "metadata.labels[images.cnpg.io/os]",
        ),
        (("metadata", "namespace"), "ns", "metadata.namespace"),
        (("kind",), "Cluster", "kind"),
        (("apiVersion",), "postgresql.cnpg.io/v2", "apiVersion"),
    ],
)
def test_metadata_and_type_problems(path: tuple[str, ...], value: str, field: str) -> None:
    obj = copy.deepcopy(good())
    node = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert fields(obj) == [field]


def test_validate_raises_input_error_with_every_problem() -> None:
    catalogs = generate([image(15, n=1), image(16, n=2)])
    validate(catalogs)
    with pytest.raises(InputError) as err:
        validate(catalogs + catalogs)
    assert [p.reason for p in err.value.problems] == ["generated twice"]
