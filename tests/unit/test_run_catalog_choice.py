"""Which images a run's catalogs name.

Aspect: a run restricted to some targets (`drydock run TARGET`, `--rebuild TARGET`) still
writes catalogs that list every operand of the plan: the chosen one at its new digest,
every other one at the digest published before. A major must never vanish from a catalog
because it was not part of this run.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.descriptors.load import load_plan
from pipeline.models.publish import PublishedImage
from pipeline.models.targets import Kind
from pipeline.publish.current import Current
from pipeline.stages.run import catalog_images

ROOT = Path(__file__).resolve().parents[2]


def image(target: str, digest: str) -> PublishedImage:
    major = int(target.split("-")[1])
    return PublishedImage(
        target=target,
        registry="127.0.0.1:5000",
        repository="postgresql",
        tag=f"{major}.1-202611270000-minimal-bookworm",
        digest="sha256:" + digest * 64,
        gated=True,
        major=major,
        flavour="minimal",
        release="bookworm",
        created="2026-11-27T00:00:00Z",
    )


def test_unchosen_operands_keep_their_published_image() -> None:
    plan = load_plan(ROOT / "images", ROOT / "dockerfiles")
    operands = [t for t in plan if t.kind is Kind.OPERAND]
    chosen, other, never = operands[0].name, operands[1].name, operands[2].name
    current = {
        chosen: Current(image(chosen, "a"), "fp", ""),
        other: Current(image(other, "b"), "fp", ""),
    }
    promoted = [image(chosen, "c")]
    names = {(p.target, p.digest[-1]) for p in catalog_images(list(plan), promoted, current)}
    assert names == {(chosen, "c"), (other, "b")}  # `never` was never published: absent
    assert never not in {p.target for p in catalog_images(list(plan), promoted, current)}
    assert catalog_images(list(plan), [], {}) == []
