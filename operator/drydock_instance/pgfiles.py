"""Pure text: the files the manager writes into the data directory, and the SQL it runs.

PostgreSQL reads `postgresql.conf` top to bottom and the last value of a parameter wins.
The manager's file therefore has three parts: a few defaults the Cluster may override,
then `custom.conf` (the Cluster's ConfigMap, rendered by the operator), then the
parameters the manager owns because they describe the pod (ports, paths, certificates,
replication plumbing), so no ConfigMap can move them. `replication.conf` comes last and
holds `primary_conninfo` on a replica; it is empty on the primary.

Passwords never travel as plain text: the SCRAM-SHA-256 verifier is computed here and
sent instead, so the password cannot appear in a server log or in `pg_stat_activity`.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import PurePosixPath
from typing import NamedTuple

from drydock_instance.config import PORT_POSTGRESQL, REPLICATION_USER, Settings

SCRAM_ITERATIONS = 4096
CONF = "postgresql.conf"
CUSTOM_CONF = "custom.conf"
REPLICATION_CONF = "replication.conf"
HBA = "pg_hba.conf"
IDENT = "pg_ident.conf"
STANDBY_SIGNAL = "standby.signal"

# Overridable by the Cluster's parameters (they come before custom.conf).
DEFAULTS = {
    "wal_keep_size": "'512MB'",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
}


class CertPaths(NamedTuple):
    ca: str
    server_crt: str
    server_key: str
    client_crt: str
    client_key: str
    client_ca: str


def cert_paths(settings: Settings) -> CertPaths:
    d = PurePosixPath(settings.certs_dir)
    return CertPaths(
        ca=str(d / "ca.crt"),
        server_crt=str(d / "server.crt"),
        server_key=str(d / "server.key"),
        client_crt=str(d / f"{REPLICATION_USER}.crt"),
        client_key=str(d / f"{REPLICATION_USER}.key"),
        client_ca=str(d / "client-ca.crt"),
    )


def quote(value: str) -> str:
    """A postgresql.conf string literal."""
    return "'" + value.replace("'", "''") + "'"


def fixed_parameters(settings: Settings) -> dict[str, str]:
    """What the pod layout decides; written after custom.conf so nothing overrides it."""
    certs = cert_paths(settings)
    return {
        "listen_addresses": "'*'",
        "port": str(PORT_POSTGRESQL),
        "unix_socket_directories": quote(settings.socket_dir),
        "ssl": "on",
        "ssl_cert_file": quote(certs.server_crt),
        "ssl_key_file": quote(certs.server_key),
        "ssl_ca_file": quote(certs.client_ca),
        "hba_file": quote(str(PurePosixPath(settings.pgdata, HBA))),
        "ident_file": quote(str(PurePosixPath(settings.pgdata, IDENT))),
        "wal_level": "replica",
        "hot_standby": "on",
        "wal_log_hints": "on",  # pg_rewind needs it to bring a former primary back
        "logging_collector": "off",
        "log_destination": "'stderr'",
        "dynamic_shared_memory_type": "posix",
        "cluster_name": quote(settings.cluster),
        "recovery_target_timeline": "'latest'",
    }


def owned_parameters(settings: Settings) -> frozenset[str]:
    """Every parameter the manager decides: the fixed ones, primary_conninfo (in
    replication.conf) and data_directory (postgres -D). The operator's CRD refuses them."""
    return frozenset(fixed_parameters(settings)) | {"primary_conninfo", "data_directory"}


def postgresql_conf(settings: Settings) -> str:
    lines = ["# Written by the instance manager; edit the Cluster, not this file."]
    lines += [f"{k} = {v}" for k, v in DEFAULTS.items()]
    lines += [f"include_if_exists {quote(CUSTOM_CONF)}"]
    lines += [f"{k} = {v}" for k, v in fixed_parameters(settings).items()]
    lines += [f"include_if_exists {quote(REPLICATION_CONF)}"]
    return "\n".join(lines) + "\n"


def conninfo(settings: Settings, host: str, dbname: str = "") -> str:
    """How this instance reaches the primary: `streaming_replica` by client certificate,
    the server verified against the Cluster's CA by name, TLS 1.3 only."""
    certs = cert_paths(settings)
    parts = {
        "host": host,
        "port": str(PORT_POSTGRESQL),
        "user": REPLICATION_USER,
        "application_name": settings.pod,
        "sslmode": "verify-full",
        "sslrootcert": certs.ca,
        "sslcert": certs.client_crt,
        "sslkey": certs.client_key,
        "ssl_min_protocol_version": "TLSv1.3",
        "connect_timeout": "5",
    }
    if dbname:
        parts["dbname"] = dbname
    return " ".join(f"{k}={v}" for k, v in parts.items())


def replication_conf(settings: Settings, primary: bool) -> str:
    if primary:
        return "# primary: no upstream\n"
    return f"primary_conninfo = {quote(conninfo(settings, settings.rw_host))}\n"


class DataFiles(NamedTuple):
    """Every file the manager keeps in the data directory, by name."""

    files: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str:
        return dict(self.files)[name]


def data_files(
    settings: Settings, custom_conf: str, hba: str, ident: str, primary: bool
) -> DataFiles:
    return DataFiles(
        (
            (CONF, postgresql_conf(settings)),
            (CUSTOM_CONF, custom_conf),
            (HBA, hba),
            (IDENT, ident),
            (REPLICATION_CONF, replication_conf(settings, primary)),
        )
    )


# --- SCRAM-SHA-256 -------------------------------------------------------------------------


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    """RFC 2104 HMAC (python3-minimal has no `hmac` module)."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + message).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()


def scram_verifier(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """The `rolpassword` PostgreSQL stores for `password` (RFC 5802/7677, as libpq makes
    it; the password is used as UTF-8 without SASLprep, which equals SASLprep for the
    ASCII passwords the operator generates)."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = _hmac_sha256(salted, b"Client Key")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = _hmac_sha256(salted, b"Server Key")
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def verifier_matches(stored: str | None, password: str) -> bool:
    """True when `stored` (a rolpassword) is a SCRAM verifier of exactly `password`."""
    if not stored or not stored.startswith("SCRAM-SHA-256$"):
        return False
    try:
        head, _keys = stored[len("SCRAM-SHA-256$") :].split("$", 1)
        iterations_raw, salt_b64 = head.split(":", 1)
        salt = base64.b64decode(salt_b64, validate=True)
        iterations = int(iterations_raw)
    except ValueError:
        return False
    return scram_verifier(password, salt, iterations) == stored


def new_salt() -> bytes:
    return os.urandom(16)


# --- SQL ---------------------------------------------------------------------------------


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A quoted SQL string literal (standard_conforming_strings is on by default)."""
    return "'" + value.replace("'", "''") + "'"


def bootstrap_sql(app_user: str, app_database: str) -> str:
    """Roles and database of a new Cluster; passwords are set later by the run loop."""
    replica = ident(REPLICATION_USER)
    return "\n".join(
        [
            f"CREATE ROLE {replica} WITH LOGIN REPLICATION;",
            # pg_rewind connects as streaming_replica: the functions it reads files with.
            f"GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO {replica};",
            f"GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO {replica};",
            f"GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO {replica};",
            "GRANT EXECUTE ON FUNCTION "
            f"pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO {replica};",
            f"CREATE ROLE {ident(app_user)} WITH LOGIN;",
            f"CREATE DATABASE {ident(app_database)} OWNER {ident(app_user)};",
        ]
    )


def password_sql(role: str, verifier: str | None) -> str:
    """Set `role`'s password to a SCRAM verifier, or to NULL (no password login)."""
    value = literal(verifier) if verifier is not None else "NULL"
    return f"ALTER ROLE {ident(role)} WITH PASSWORD {value};"


def stored_passwords_sql(roles: tuple[str, ...]) -> str:
    """The stored verifiers of `roles` ("" for none), to compare before changing them."""
    names = ", ".join(literal(r) for r in roles)
    query = "SELECT rolname, COALESCE(rolpassword, '') FROM pg_authid WHERE rolname IN "
    return f"{query}({names});"  # every name goes through literal()
