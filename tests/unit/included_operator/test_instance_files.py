"""The instance manager's pure parts: what it writes, what it may import, how it is packed.

Aspects: it imports nothing python3-minimal lacks (the operand images carry only that),
except CPython's json, which the zipapp carries; the zipapp is byte-stable and runs;
postgresql.conf puts the Cluster's parameters after the defaults and before the
parameters the manager owns, so none of those can be overridden, and the operator's CRD
refuses exactly those; a replica reaches the primary as streaming_replica by client
certificate, verifying the server by name, TLS 1.3 only; SCRAM verifiers are computed
as PostgreSQL stores them and compared without storing anything; settings are checked.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import re
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from drydock_instance import pack, pgfiles
from drydock_instance.config import SettingsError, load
from drydock_operator import resources
from instance_samples import ENV, settings

from pipeline.tools.runner import run

PACKAGE = Path(pack.__file__).parent
CRD = Path(__file__).parents[3] / "operator" / "manifests" / "crds" / "cluster.yaml"

# What Debian's python3-minimal (bookworm, 3.11) lets a program import: the top-level
# modules of libpython3.11-minimal and the interpreter's built-ins, as listed in the
# operand image (`python3 -c "import sys; print(sys.builtin_module_names)"` and the
# package's file list). Not there, among others: json, http, shutil, tempfile,
# dataclasses, hmac, secrets, queue, shlex, zipfile.
PYTHON3_MINIMAL = {
    "__future__", "abc", "argparse", "ast", "base64", "binascii", "bisect", "calendar",
    "codecs", "collections", "contextlib", "copy", "datetime", "email", "enum", "errno",
    "fcntl", "fnmatch", "functools", "getopt", "glob", "hashlib", "heapq", "importlib",
    "inspect", "io", "ipaddress", "itertools", "keyword", "linecache", "locale", "logging",
    "math", "operator", "optparse", "os", "pathlib", "pickle", "posixpath", "pwd", "random",
    "re", "reprlib", "select", "selectors", "signal", "socket", "ssl", "stat", "string",
    "struct", "subprocess", "sys", "textwrap", "threading", "time", "token", "tokenize",
    "traceback", "types", "typing", "urllib", "warnings", "weakref", "zlib",
}  # fmt: skip
CARRIED = {"json", "drydock_instance"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_the_manager_imports_only_what_python3_minimal_has() -> None:
    runtime = [p for p in PACKAGE.glob("*.py") if p.name not in pack.LEFT_OUT]
    assert len(runtime) >= 10
    for path in runtime:
        extra = imported_modules(path) - PYTHON3_MINIMAL - CARRIED
        assert not extra, f"{path.name} imports {sorted(extra)}, which python3-minimal lacks"
    assert "urllib" in PYTHON3_MINIMAL and "http" not in PYTHON3_MINIMAL
    for path in runtime:
        text = path.read_text()
        assert "urllib.request" not in text, "urllib.request needs http.client"


def test_the_zipapp_is_byte_stable_carries_json_and_runs(tmp_path: Path) -> None:
    first, second = tmp_path / "a.pyz", tmp_path / "b.pyz"
    pack.build(str(first))
    pack.build(str(second))
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(first) as archive:
        names = set(archive.namelist())
    assert {"__main__.py", "drydock_instance/instance.py", "json/decoder.py"} <= names
    assert "drydock_instance/pack.py" not in names
    assert {n for n in names if n.startswith("json/")} == {f"json/{f}" for f in pack.JSON_FILES}
    done = run([sys.executable, "-I", str(first), "--version"], timeout=30)
    assert done.stdout.strip() == "0.1.0"


def test_postgresql_conf_order_defaults_then_custom_then_owned_then_replication() -> None:
    conf = pgfiles.postgresql_conf(settings()).splitlines()
    custom = conf.index("include_if_exists 'custom.conf'")
    replication = conf.index("include_if_exists 'replication.conf'")
    assert conf.index("wal_keep_size = '512MB'") < custom
    for line in (
        "ssl = on",
        "hba_file = '/var/lib/postgresql/data/pgdata/pg_hba.conf'",
        "ssl_ca_file = '/controller/certificates/client-ca.crt'",
        "port = 5432",
    ):
        assert custom < conf.index(line) < replication, line
    assert replication == len(conf) - 1


def test_the_operator_and_its_crd_refuse_exactly_what_the_manager_owns() -> None:
    owned = pgfiles.owned_parameters(settings())
    assert set(resources.FIXED_PARAMETERS) == owned
    crd = yaml.safe_load(CRD.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rule = spec["properties"]["postgresql"]["properties"]["parameters"]["x-kubernetes-validations"][
        0
    ]["rule"]
    assert set(re.findall(r"'([a-z_]+)'", rule)) == owned


def test_a_replica_streams_by_certificate_verifying_the_primary_over_tls13() -> None:
    conf = pgfiles.replication_conf(settings(), primary=False)
    value = conf.split("=", 1)[1].strip().strip("'")
    parts = dict(p.split("=", 1) for p in value.split())
    assert parts == {
        "host": "pg-rw",
        "port": "5432",
        "user": "streaming_replica",
        "application_name": "pg-2",
        "sslmode": "verify-full",
        "sslrootcert": "/controller/certificates/ca.crt",
        "sslcert": "/controller/certificates/streaming_replica.crt",
        "sslkey": "/controller/certificates/streaming_replica.key",
        "ssl_min_protocol_version": "TLSv1.3",
        "connect_timeout": "5",
    }
    assert "primary_conninfo" not in pgfiles.replication_conf(settings(), primary=True)


def _reference_verifier(password: str, salt: bytes, iterations: int) -> str:
    """RFC 5802 with the standard library's hmac, independent of pgfiles."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    b64 = base64.b64encode
    keys = f"{b64(stored).decode()}:{b64(server_key).decode()}"
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${keys}"


@pytest.mark.parametrize("password", ["pencil", "x" * 100, "pässwörd"])
def test_scram_verifier_is_what_postgresql_stores(password: str) -> None:
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = pgfiles.scram_verifier(password, salt)
    assert verifier == _reference_verifier(password, salt, 4096)
    assert pgfiles.verifier_matches(verifier, password)
    assert not pgfiles.verifier_matches(verifier, password + "!")
    assert not pgfiles.verifier_matches("md5abc", password)
    assert not pgfiles.verifier_matches(None, password)
    assert not pgfiles.verifier_matches("SCRAM-SHA-256$x:y$z", password)


def test_sql_quotes_names_and_values() -> None:
    assert pgfiles.password_sql('we"ird', None) == 'ALTER ROLE "we""ird" WITH PASSWORD NULL;'
    assert pgfiles.password_sql("app", "it's") == "ALTER ROLE \"app\" WITH PASSWORD 'it''s';"
    assert "IN ('app', 'o''brien')" in pgfiles.stored_passwords_sql(("app", "o'brien"))
    sql = pgfiles.bootstrap_sql("app", "app")
    assert 'CREATE ROLE "streaming_replica" WITH LOGIN REPLICATION;' in sql
    assert "pg_read_binary_file(text, bigint, bigint, boolean)" in sql


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"POD_NAME": ""}, "POD_NAME is not set"),
        ({"PGDATA": "relative/data"}, "absolute path"),
        ({"PGDATA": "/pgdata"}, "below a volume mount"),
        ({"DRYDOCK_POLL_SECONDS": "0"}, "within 0.1..60"),
        ({"DRYDOCK_POLL_SECONDS": "soon"}, "not a number"),
        ({"DRYDOCK_SWITCHOVER_TIMEOUT": "1"}, "within 5..3600"),
        ({"DRYDOCK_SWITCHOVER_TIMEOUT": "a minute"}, "not a number"),
    ],
)
def test_settings_say_what_is_wrong(change: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load({**ENV, **change})


def test_settings_defaults_follow_the_pod_layout() -> None:
    s = settings()
    assert (s.controller_dir, s.socket_dir, s.source, s.api_group) == (
        "/controller",
        "/var/run/postgresql",
        "kubernetes",
        "postgresql.cnpg.io",
    )
    assert (s.rw_host, s.staging_parent, s.certs_dir) == (
        "pg-rw",
        "/var/lib/postgresql/data",
        "/controller/certificates",
    )


def test_no_operator_file_is_named_like_a_credential_file() -> None:
    """Dockle's CIS-DI-0010 fails the operator image's gate on a file named settings.py
    (it happened twice: drydock_operator's, then drydock_instance's, both now config.py)."""
    operator_dir = PACKAGE.parent
    assert not sorted(operator_dir.rglob("settings.py"))
