"""e2e fixtures: a real etcd + kube-apiserver (pipeline.tools.controlplane), and a second
cluster of the same kind with a real node (pipeline.tools.node) where pods run.

Stable fixtures (the operator's e2e tests use them too):

    control_plane_settings  session  ControlPlaneSettings of the node-less test plane
    control_plane           function ControlPlane, running and ready (restarted if a test
                                     killed the apiserver); .kubeconfig, .server, .ca_file
    kube_api                function KubeAPI authenticated as the admin (system:masters)

    node_settings           session  NodeSettings of the cluster with a node (own state dir)
    node_cluster            function Node, running and Ready (started once per session;
                                     restarted if a test stopped it); .control_plane, .name,
                                     .log_dir, .layout
    node_api                function KubeAPI as the admin of the cluster with the node
    pg_images               session  pg_support.Images: the operator and the 15 bookworm
                                     operand, built by Drydock and pushed (by digest)

Each cluster is started once per session in a temporary state dir (never the developer's
`drydock dev cluster`), and stopped at the end. The node-less plane serves the tests of
API-level behaviour (objects, RBAC, schema), where a test sets a pod's readiness itself;
everything PostgreSQL does runs on the node's cluster. Missing binaries FAIL the run:
build them with `bash scripts/tools.sh`.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from pg_support import Images, build_and_push

from pipeline.tools import controlplane, docker, node, node_leftovers
from pipeline.tools.controlplane import ControlPlane, ControlPlaneSettings
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig
from pipeline.tools.node import Node, NodeSettings

log = logging.getLogger(__name__)


SETTINGS_KEY = pytest.StashKey[ControlPlaneSettings]()
NODE_KEY = pytest.StashKey[NodeSettings]()
HOST_BEFORE_KEY = pytest.StashKey[list[str]]()
LOG_TAIL_LINES = 40
NODE_BINARIES = (
    "kube-scheduler",
    "kube-controller-manager",
    "kubelet",
    "kube-proxy",
    "coredns",
    "pause",
    "kube-router",
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failure, attach the tails of the control plane's logs to the report."""
    report = yield
    if not report.failed:
        return report
    logs: list[tuple[str, Path]] = []
    settings = item.config.stash.get(SETTINGS_KEY, None)
    if settings is not None:
        folder = settings.resolved_state_dir() / "logs"
        logs += [("control plane", folder / n) for n in ("apiserver.log", "etcd.log")]
    node_settings = item.config.stash.get(NODE_KEY, None)
    if node_settings is not None and "node_settings" in getattr(item, "fixturenames", ()):
        folder = node_settings.resolved_state_dir() / "logs"
        logs += [("node", folder / f"{n}.log") for n in ("kubelet", "containerd", "kube-proxy")]
    for label, path in logs:
        if path.exists():
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            report.sections.append((f"{label} {path.name}", "\n".join(lines[-LOG_TAIL_LINES:])))
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


@pytest.fixture(scope="session")
def node_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeSettings]:
    """A second cluster, with a node; the host's state before it started is stashed."""
    settings = NodeSettings(
        control_plane=ControlPlaneSettings(state_dir=tmp_path_factory.mktemp("nodecluster"))
    )
    bins = settings.resolved_bin_dir()
    missing = [b for b in NODE_BINARIES if not (bins / b).is_file()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found in {bins}: build them with `bash scripts/tools.sh`",
            pytrace=False,
        )
    request.config.stash[NODE_KEY] = settings
    request.config.stash[HOST_BEFORE_KEY] = node_leftovers.host_view(node.layout(settings))
    try:
        started = node.up(settings)
        log.warning(
            "control plane and node %s started in %.1fs", started.name, started.started_seconds
        )
        yield settings
    finally:
        try:
            node.down(settings)
        finally:
            controlplane.down(settings.control_plane)


@pytest.fixture
def node_cluster(node_settings: NodeSettings) -> Node:
    return node.up(node_settings)


@pytest.fixture
def node_api(node_cluster: Node) -> Iterator[KubeAPI]:
    with KubeAPI(load_kubeconfig(node_cluster.control_plane.kubeconfig)) as api:
        yield api


@pytest.fixture(scope="module")
def admin(control_plane_settings: ControlPlaneSettings) -> Iterator[KubeAPI]:
    """An admin client of the session's control plane (node-less modules)."""
    cp = controlplane.up(control_plane_settings)
    with KubeAPI(load_kubeconfig(cp.kubeconfig)) as api:
        yield api


@pytest.fixture(scope="module")
def started(node_settings: NodeSettings) -> Node:
    """The session's node, for modules whose fixtures are module-scoped (an operator and a
    Cluster shared by the module's tests)."""
    return node.up(node_settings)


@pytest.fixture(scope="module")
def api(started: Node) -> Iterator[KubeAPI]:
    with KubeAPI(load_kubeconfig(started.control_plane.kubeconfig)) as admin:
        yield admin


@pytest.fixture
def host_before_node(request: pytest.FixtureRequest, node_settings: NodeSettings) -> list[str]:
    """What `node_leftovers.host_view` showed before the session's node first started."""
    return request.config.stash[HOST_BEFORE_KEY]


@pytest.fixture(scope="session")
def pg_images() -> Iterator[Images]:
    """The operator image (its manager.pyz) and a PostgreSQL operand, in the local registry."""
    images = build_and_push()
    yield images
    docker.untag(images.operand_local)
