"""Which operator image the local loop's instance pods copy their instance manager from.

Every instance pod starts with a `bootstrap-controller` init container running the
operator's image (it copies the instance manager into the pod), so the operator must name
an image the node can pull. Locally that is what `make build-images` published: the
operator's rolling tag `X.Y.Z` in its release repository (the name publication uses), in
the local registry, resolved here to its digest so the pods run exactly that build.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.descriptors.load import load_plan
from pipeline.errors import CatalogError, RegistryError
from pipeline.models.targets import Kind
from pipeline.publish.current import release_repository, rolling_tag
from pipeline.tools.registry import RegistryClient


def published_operator_image(root: Path, registry: str) -> str:
    """`<registry>/<repository>@sha256:...` of the published operator; CatalogError when
    it is not published (run `make build-images`, or pass the image explicitly)."""
    plan = load_plan(root / "images", root / "dockerfiles")
    operators = [t for t in plan.targets if t.kind is Kind.OPERATOR]
    if len(operators) != 1:
        raise CatalogError(f"images/: expected one operator descriptor, found {len(operators)}")
    target = operators[0]
    repository, tag = release_repository(target), rolling_tag(target)
    client = RegistryClient(registry, attempts=2, max_wait=1.0, timeout=10)
    try:
        digest = client.digest(repository, tag)
    except RegistryError as err:
        raise CatalogError(f"cannot read {client.registry}/{repository}: {err}") from err
    if digest is None:
        raise CatalogError(
            f"{client.registry}/{repository}:{tag} is not published: "
            "run `make build-images` (or pass --operator-image)"
        )
    return f"{client.registry}/{repository}@{digest}"
