"""e2e fixtures: a real etcd + kube-apiserver, started by pipeline.tools.controlplane.

Stable fixtures (the operator's e2e tests use them too):

    control_plane_settings  session  ControlPlaneSettings of the test plane (own state dir)
    control_plane           function ControlPlane, running and ready (restarted if a test
                                     killed the apiserver); .kubeconfig, .server, .ca_file
    kube_api                function KubeAPI authenticated as the admin (system:masters)

The plane is started once per session in a temporary state dir (never the developer's
`drydock dev cluster`), and stopped at the end. Missing binaries FAIL the run: build
them with `bash scripts/tools.sh etcd kube-apiserver`.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator

import pytest

from pipeline.tools import controlplane
from pipeline.tools.controlplane import ControlPlane, ControlPlaneSettings
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig

log = logging.getLogger(__name__)


SETTINGS_KEY = pytest.StashKey[ControlPlaneSettings]()
LOG_TAIL_LINES = 40


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failure, attach the tails of the control plane's logs to the report."""
    report = yield
    settings = item.config.stash.get(SETTINGS_KEY, None)
    if report.failed and settings is not None:
        for name in ("apiserver.log", "etcd.log"):
            path = settings.resolved_state_dir() / "logs" / name
            if path.exists():
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
                report.sections.append(
                    (f"control plane {name}", "\n".join(lines[-LOG_TAIL_LINES:]))
                )
    return report


@pytest.fixture(scope="session")
def control_plane_settings(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ControlPlaneSettings]:
    settings = ControlPlaneSettings(state_dir=tmp_path_factory.mktemp("devcluster"))
    request.config.stash[SETTINGS_KEY] = settings
    bins = settings.resolved_bin_dir()
    missing = [b for b in ("etcd", "kube-apiserver") if not (bins / b).is_file()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found in {bins}: "
            "build them with `bash scripts/tools.sh etcd kube-apiserver`",
            pytrace=False,
        )
    cp = controlplane.up(settings)
    log.warning("control plane started in %.1fs at %s", cp.started_seconds, cp.server)
    try:
        yield settings
    finally:
        controlplane.down(settings)


@pytest.fixture
def control_plane(control_plane_settings: ControlPlaneSettings) -> ControlPlane:
    return controlplane.up(control_plane_settings)


@pytest.fixture
def kube_api(control_plane: ControlPlane) -> Iterator[KubeAPI]:
    with KubeAPI(load_kubeconfig(control_plane.kubeconfig)) as api:
        yield api
