"""Settings and API objects shared by the instance manager's unit tests."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from drydock_instance.config import Settings, load

ENV = {
    "PGDATA": "/var/lib/postgresql/data/pgdata",
    "POD_NAME": "pg-2",
    "CLUSTER_NAME": "pg",
    "NAMESPACE": "db",
}


def settings(**env: str) -> Settings:
    return load({**ENV, **env})


def secret(name: str, **data: str) -> dict[str, Any]:
    """A Secret as the API returns it (base64 data)."""
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def write_objects(
    root: Path, superuser: bool = False, status: dict[str, Any] | None = None
) -> None:
    """The Cluster `pg`, its ConfigMap and Secrets, as files DirTransport reads."""
    objects: dict[str, dict[str, Any]] = {
        "clusters/pg": {
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Cluster",
            "metadata": {"name": "pg", "namespace": "db", "uid": "u-1"},
            "spec": {"instances": 2, "enableSuperuserAccess": superuser},
            "status": status or {},
        },
        "configmaps/pg-config": {
            "data": {
                "postgresql.conf": "work_mem = '8MB'\n",
                "pg_hba.conf": "local all all peer\n",
                "pg_ident.conf": "",
            }
        },
        "secrets/pg-app": secret("pg-app", username="app", password="pw", dbname="app"),
        "secrets/pg-ca": secret("pg-ca", **{"ca.crt": "CA", "ca.key": "never read"}),
        "secrets/pg-server": secret("pg-server", **{"tls.crt": "SC", "tls.key": "SK"}),
        "secrets/pg-replication": secret("pg-replication", **{"tls.crt": "RC", "tls.key": "RK"}),
    }
    if superuser:
        objects["secrets/pg-superuser"] = secret("pg-superuser", password="su")
    for name, body in objects.items():
        path = root / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body))
