"""The one module that talks to instances: their managers' `/pg/status` on port 8000.

The operator asks before it moves the primary, to promote the most advanced replica
(the security guide: "The operator needs to communicate to each instance on TCP port
8000 to get information about the status of the PostgreSQL server"). Each request has a
short timeout; an instance that does not answer simply has no report, and the decisions
in `topology.py` never promote an instance without one.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence

from drydock_operator.model import Instance, InstanceReport, parse_report
from drydock_operator.resources import PORT_STATUS

log = logging.getLogger(__name__)

TIMEOUT = 2.0
MAX_BODY = 1024 * 1024


def report(instance: Instance, timeout: float = TIMEOUT) -> InstanceReport | None:
    """The manager's own account of an instance, or None when it cannot be had."""
    if not instance.ip or instance.deleting:
        return None
    host = f"[{instance.ip}]" if ":" in instance.ip else instance.ip
    url = f"http://{host}:{PORT_STATUS}/pg/status"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.loads(resp.read(MAX_BODY))
    except (OSError, urllib.error.URLError, ValueError) as err:
        log.debug("no status from %s (%s): %s", instance.name, url, err)
        return None
    return parse_report(instance.name, body) if isinstance(body, dict) else None


def reports(observed: Sequence[Instance], timeout: float = TIMEOUT) -> dict[str, InstanceReport]:
    found = {}
    for instance in observed:
        got = report(instance, timeout)
        if got is not None:
            found[instance.name] = got
    return found
