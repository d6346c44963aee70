"""KubeAPI request policy against a scripted loopback server: retries, errors, SSA params."""

from __future__ import annotations

import json
import socket

import pytest
from loopback_http import Script, serve

from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, KubeConfig, RetryPolicy

FAST = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.05, connect_timeout=1, read_timeout=2)
OK = (200, {"Content-Type": "application/json"}, json.dumps({"metadata": {"name": "x"}}).encode())


def api(addr: str) -> KubeAPI:
    return KubeAPI(KubeConfig(server=f"http://{addr}", token="secret"), FAST)


@pytest.mark.parametrize("status", [409, 429, 500, 503])
def test_retryable_statuses_are_retried(status: int) -> None:
    script = Script([(status, {}, b"{}"), OK])
    with serve(script) as addr, api(addr) as client:
        assert client.get("/api/v1/namespaces/x") == {"metadata": {"name": "x"}}
    assert len(script.seen) == 2
    assert script.seen[0][2]["Authorization"] == "Bearer secret"


def test_gives_up_after_the_policy() -> None:
    script = Script([(503, {}, json.dumps({"message": "busy"}).encode())])
    with serve(script) as addr, api(addr) as client, pytest.raises(KubeAPIError) as err:
        client.get("/x")
    assert (err.value.status, err.value.message) == (503, "busy")
    assert len(script.seen) == 3


def test_client_errors_are_not_retried() -> None:
    script = Script([(422, {}, json.dumps({"message": "invalid"}).encode())])
    with serve(script) as addr, api(addr) as client, pytest.raises(KubeAPIError) as err:
        client.apply("/x", {"kind": "X"})
    assert err.value.status == 422
    assert len(script.seen) == 1


def test_apply_is_server_side_apply_with_force() -> None:
    script = Script([OK])
    with serve(script) as addr, api(addr) as client:
        client.apply("/apis/g/v1/things/x", {"kind": "Thing"})
    method, path, headers = script.seen[0]
    assert method == "PATCH"
    assert path == "/apis/g/v1/things/x?fieldManager=drydock&force=true"
    assert headers["Content-Type"] == "application/apply-patch+yaml"


def test_404_is_none_for_get() -> None:
    with serve(Script([(404, {}, b"{}")])) as addr, api(addr) as client:
        assert client.get("/x") is None


def test_connection_refused_is_an_error_without_status() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with api(f"127.0.0.1:{port}") as client, pytest.raises(KubeAPIError) as err:
        client.get("/x")
    assert err.value.status is None


def test_warning_headers_are_split_into_their_texts() -> None:
    from pipeline.tools.kubeapi import warnings

    header = '299 - "unknown field \\"spec.x\\"", 299 - "spec.imageName: not pinned, by digest"'
    assert warnings(header) == ['unknown field "spec.x"', "spec.imageName: not pinned, by digest"]
    assert warnings("") == []


def test_strict_apply_asks_for_strict_validation_and_returns_warnings() -> None:
    warned = (200, {"Warning": '299 - "not pinned by digest"'}, b"{}")
    script = Script([warned])
    with serve(script) as addr, api(addr) as client:
        assert client.apply_strict("/apis/g/v1/things/x", {"kind": "Thing"}, dry_run=True) == [
            "not pinned by digest"
        ]
    _method, path, _headers = script.seen[0]
    assert "fieldValidation=Strict" in path and "dryRun=All" in path


def test_strict_apply_of_an_undeclared_field_is_bad_input_at_once() -> None:
    """Server-side apply answers 500 for a field the schema does not declare: not retried,
    reported as invalid (422); any other 500 stays a server error."""
    undeclared = ".spec.instancez: field not declared in schema"
    script = Script([(500, {}, json.dumps({"message": undeclared}).encode())])
    with serve(script) as addr, api(addr) as client, pytest.raises(KubeAPIError) as err:
        client.apply_strict("/x", {"kind": "X"})
    assert (err.value.status, err.value.message, len(script.seen)) == (422, undeclared, 1)
    script = Script([(500, {}, json.dumps({"message": "etcd timeout"}).encode())])
    with serve(script) as addr, api(addr) as client, pytest.raises(KubeAPIError) as err:
        client.apply_strict("/x", {"kind": "X"})
    assert err.value.status == 500
