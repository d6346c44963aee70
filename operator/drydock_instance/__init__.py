"""Drydock's instance manager: PID 1 of every PostgreSQL container the operator runs.

It is the "instance manager" of the security guide: it initialises or clones the data
directory, starts and supervises PostgreSQL, applies configuration, passwords and
certificates from the Cluster's own ConfigMap and Secrets, promotes or demotes the
instance when the operator moves the primary, reports to the Cluster's status and
events through the Cluster's ServiceAccount, and serves status on 8000 and metrics
on 9187.

It runs inside the operand images with Debian's python3-minimal, so it imports only
what that package ships (tests/unit/included_operator/test_instance_imports.py keeps
it honest) plus CPython's own `json`, which the zipapp carries (see `pack.py`).
"""

VERSION = "0.1.0"
