"""Applying catalogs of real, pushed images: verified first, no needless writes, atomic."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from catalog_support import crd_set, install_crds, published, remove_crds, require_registry

from pipeline.catalog import apply as applying
from pipeline.catalog.generate import Catalog, generate
from pipeline.errors import CatalogError
from pipeline.models.publish import PublishedImage
from pipeline.tools import controlplane
from pipeline.tools.controlplane import ControlPlaneSettings
from pipeline.tools.kubeapi import KubeAPI, RetryPolicy, load_kubeconfig

pytestmark = pytest.mark.e2e

FAST_FAIL = RetryPolicy(
    attempts=3, initial_wait=0.1, max_wait=0.5, connect_timeout=2.0, read_timeout=5.0
)


@pytest.fixture(scope="module")
def drydock_crds(control_plane_settings: ControlPlaneSettings) -> Iterator[None]:
    docs = crd_set("drydock")
    cp = controlplane.up(control_plane_settings)
    with KubeAPI(load_kubeconfig(cp.kubeconfig)) as api:
        install_crds(api, docs)
    yield
    cp = controlplane.up(control_plane_settings)
    with KubeAPI(load_kubeconfig(cp.kubeconfig)) as api:
        remove_crds(api, docs)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[PublishedImage]]:
    """Two generations of real images: v1 (older) and v2 (newer), 2 flavours x 2 majors."""
    require_registry()
    work = tmp_path_factory.mktemp("images")
    return {"v1": published(work, "202611200800"), "v2": published(work, "202611270800")}


def live_specs(api: KubeAPI, catalogs: tuple[Catalog, ...]) -> dict[str, Any]:
    out = {}
    for c in catalogs:
        live = api.get(applying.object_path(c))
        out[c.name] = None if live is None else live["spec"]
    return out


def resource_versions(api: KubeAPI, catalogs: tuple[Catalog, ...]) -> dict[str, str]:
    return {
        c.name: (api.get(applying.object_path(c)) or {})["metadata"]["resourceVersion"]
        for c in catalogs
    }


def test_apply_twice_second_writes_nothing(
    drydock_crds: None, kube_api: KubeAPI, images: dict[str, list[PublishedImage]]
) -> None:
    catalogs = generate(images["v1"])
    assert len(catalogs) == 2
    first = applying.apply(kube_api, catalogs)
    assert {r.action for r in first} <= {"created", "updated"}
    before = resource_versions(kube_api, catalogs)
    second = applying.apply(kube_api, catalogs)
    assert [r.action for r in second] == ["unchanged", "unchanged"]
    assert resource_versions(kube_api, catalogs) == before
    assert [d.action for d in applying.diff(kube_api, catalogs)] == ["unchanged", "unchanged"]


def test_missing_digest_refuses_and_keeps_previous(
    drydock_crds: None, kube_api: KubeAPI, images: dict[str, list[PublishedImage]]
) -> None:
    old = generate(images["v1"])
    applying.apply(kube_api, old)
    before = live_specs(kube_api, old)
    rvs = resource_versions(kube_api, old)
    newer = list(images["v2"])
    newer[1] = dataclasses.replace(newer[1], digest="sha256:" + "0" * 64)
    new = generate(newer)
    with pytest.raises(CatalogError, match="digest not found in the registry"):
        applying.apply(kube_api, new)
    assert live_specs(kube_api, old) == before
    assert resource_versions(kube_api, old) == rvs


def test_ungated_image_refused(
    drydock_crds: None, kube_api: KubeAPI, images: dict[str, list[PublishedImage]]
) -> None:
    new = generate(images["v2"])
    entry = new[0].entries[0]
    bad = dataclasses.replace(
        new[0],
        entries=(dataclasses.replace(entry, image=dataclasses.replace(entry.image, gated=False)),),
    )
    with pytest.raises(CatalogError, match="did not pass its gate"):
        applying.apply(kube_api, [bad])


def _check_old_or_new(
    api: KubeAPI, old: tuple[Catalog, ...], new: tuple[Catalog, ...]
) -> list[str]:
    live = live_specs(api, old)
    states = []
    for o, n in zip(old, new, strict=True):
        assert live[o.name] in (o.spec(), n.spec()), f"{o.name} is partial: {live[o.name]}"
        states.append("new" if live[o.name] == n.spec() else "old")
    return states


def test_apiserver_killed_between_writes(
    drydock_crds: None,
    control_plane_settings: ControlPlaneSettings,
    images: dict[str, list[PublishedImage]],
) -> None:
    cp = controlplane.up(control_plane_settings)
    old, new = generate(images["v1"]), generate(images["v2"])
    with KubeAPI(load_kubeconfig(cp.kubeconfig)) as api:
        applying.apply(api, old)
    writes: list[str] = []

    def kill_before_second(catalog: Catalog) -> None:
        writes.append(catalog.name)
        if len(writes) == 2:
            controlplane.kill_apiserver(cp)

    with KubeAPI(load_kubeconfig(cp.kubeconfig), FAST_FAIL) as api, pytest.raises(CatalogError):
        applying.apply(api, new, before_write=kill_before_second)
    cp = controlplane.up(control_plane_settings)
    with KubeAPI(load_kubeconfig(cp.kubeconfig)) as api:
        assert _check_old_or_new(api, old, new) == ["new", "old"]
        results = applying.apply(api, new)
        assert [r.action for r in results] == ["unchanged", "updated"]
        assert _check_old_or_new(api, old, new) == ["new", "new"]


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.02, 0.05])
def test_apiserver_killed_during_a_write(
    drydock_crds: None,
    control_plane_settings: ControlPlaneSettings,
    images: dict[str, list[PublishedImage]],
    delay: float,
) -> None:
    cp = controlplane.up(control_plane_settings)
    old, new = generate(images["v1"]), generate(images["v2"])
    with KubeAPI(load_kubeconfig(cp.kubeconfig)) as api:
        applying.apply(api, old)
        assert _check_old_or_new(api, old, new) == ["old", "old"]

    timers: list[threading.Timer] = []

    def kill_soon(catalog: Catalog) -> None:
        if catalog.name == new[0].name:
            timers.append(threading.Timer(delay, controlplane.kill_apiserver, args=(cp,)))
            timers[0].start()

    # CatalogError is expected unless the writes won the race against the kill.
    with (
        KubeAPI(load_kubeconfig(cp.kubeconfig), FAST_FAIL) as api,
        contextlib.suppress(CatalogError),
    ):
        applying.apply(api, new, before_write=kill_soon)
    timers[0].join()  # the kill has happened (maybe after the writes) before the restart
    cp = controlplane.up(control_plane_settings)
    with KubeAPI(load_kubeconfig(cp.kubeconfig)) as api:
        _check_old_or_new(api, old, new)
        applying.apply(api, new)
        assert _check_old_or_new(api, old, new) == ["new", "new"]


def test_published_file_round_trip(
    drydock_crds: None, kube_api: KubeAPI, images: dict[str, list[PublishedImage]], tmp_path: Path
) -> None:
    """The file the publish stage writes feeds generate/apply unchanged."""
    import json

    from pipeline.catalog.files import write_catalogs
    from pipeline.catalog.published import load_published

    path = tmp_path / "published.json"
    path.write_text(json.dumps([dataclasses.asdict(i) for i in images["v2"]]))
    catalogs = generate(load_published(path))
    signed: list[Path] = []
    written = write_catalogs(catalogs, tmp_path / "out", sign=signed.append)
    assert [p.name for p in written] == [
        "catalog-minimal-bookworm.yaml",
        "catalog-standard-bookworm.yaml",
        "kustomization.yaml",
    ]
    assert signed == written
    applying.apply(kube_api, catalogs)
    assert [d.action for d in applying.diff(kube_api, catalogs)] == ["unchanged", "unchanged"]


def test_cli_diff_and_apply(
    drydock_crds: None,
    control_plane: Any,
    images: dict[str, list[PublishedImage]],
    tmp_path: Path,
) -> None:
    import json

    from click.testing import CliRunner

    from pipeline.cli import main

    pub = tmp_path / "published.json"
    pub.write_text(json.dumps([dataclasses.asdict(i) for i in images["v1"]]))
    common = ["--published", str(pub), "--kubeconfig", str(control_plane.kubeconfig)]
    runner = CliRunner()
    applied = runner.invoke(main, ["catalog", "apply", *common])
    assert applied.exit_code == 0, applied.output
    pub.write_text(json.dumps([dataclasses.asdict(i) for i in images["v2"]]))
    diffed = runner.invoke(main, ["catalog", "diff", *common])
    assert diffed.exit_code == 0, diffed.output
    assert "ClusterImageCatalog/postgresql-minimal-bookworm: updated" in diffed.output
    assert "+    image: 127.0.0.1:5000/drydock-e2e/postgresql:16.1-202611270800" in diffed.output
    out = tmp_path / "out"
    applied = runner.invoke(main, ["catalog", "apply", *common, "--output", str(out)])
    assert applied.exit_code == 0, applied.output
    assert applied.output.count(": updated") == 2
    assert (out / "kustomization.yaml").exists()
    again = runner.invoke(main, ["catalog", "apply", *common])
    assert again.output.count(": unchanged") == 2
    missing = [dataclasses.replace(images["v2"][0], digest="sha256:" + "1" * 64)]
    pub.write_text(json.dumps([dataclasses.asdict(i) for i in missing]))
    refused = runner.invoke(main, ["catalog", "apply", *common])
    assert refused.exit_code == 3
    assert "digest not found in the registry" in refused.output
