"""Pure admission decisions: is this Cluster or catalog acceptable, which defaults it gets.

The webhook server (`webhooks.py`) hands each AdmissionReview's object here and turns
the answer into an allow/deny. Refusing at admission, with a message that names the
field, is what CloudNativePG's webhooks do; the alternative (accepting anything the
schema lets through and failing at reconcile time) leaves a user with a Cluster that
never runs and an event to hunt for. The CRD's own schema and CEL rules stay as a
second line: the API server applies them even when the webhook is not installed.

Nothing here talks to the API or imports kopf; the unit tests feed it dictionaries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drydock_operator.resources import FIXED_PARAMETERS

MAX_CLUSTER_NAME = 50
"""CloudNativePG's limit: instance pod names, Services and Secrets append suffixes."""

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

# CloudNativePG's FixedConfigurationParameters (pkg/postgres/configuration.go), plus the
# ones Drydock's instance manager writes itself (resources.FIXED_PARAMETERS).
CNPG_FIXED_PARAMETERS = frozenset(
    {
        "allow_system_table_mods",
        "archive_cleanup_command",
        "archive_command",
        "archive_mode",
        "bonjour",
        "bonjour_name",
        "cluster_name",
        "config_file",
        "data_directory",
        "data_sync_retry",
        "event_source",
        "external_pid_file",
        "hba_file",
        "hot_standby",
        "ident_file",
        "jit_provider",
        "listen_addresses",
        "log_destination",
        "log_directory",
        "log_file_mode",
        "log_filename",
        "log_rotation_age",
        "log_rotation_size",
        "log_truncate_on_rotation",
        "logging_collector",
        "port",
        "primary_conninfo",
        "primary_slot_name",
        "promote_trigger_file",
        "recovery_end_command",
        "recovery_min_apply_delay",
        "recovery_target",
        "recovery_target_action",
        "recovery_target_inclusive",
        "recovery_target_lsn",
        "recovery_target_name",
        "recovery_target_time",
        "recovery_target_timeline",
        "recovery_target_xid",
        "restart_after_crash",
        "restore_command",
        "shared_preload_libraries",
        "ssl",
        "ssl_ca_file",
        "ssl_cert_file",
        "ssl_crl_file",
        "ssl_dh_params_file",
        "ssl_ecdh_curve",
        "ssl_key_file",
        "ssl_passphrase_command",
        "ssl_passphrase_command_supports_reload",
        "ssl_prefer_server_ciphers",
        "stats_temp_directory",
        "synchronized_standby_slots",
        "synchronous_standby_names",
        "syslog_facility",
        "syslog_ident",
        "syslog_sequence_numbers",
        "syslog_split_messages",
        "temp_tablespaces",
        "unix_socket_directories",
        "unix_socket_group",
        "unix_socket_permissions",
    }
)
FIXED = CNPG_FIXED_PARAMETERS | frozenset(FIXED_PARAMETERS)

HBA_HOST_TYPES = frozenset({"host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"})
HBA_METHODS = frozenset(
    {
        "trust",
        "reject",
        "scram-sha-256",
        "md5",
        "password",
        "gss",
        "sspi",
        "ident",
        "peer",
        "ldap",
        "radius",
        "cert",
        "pam",
        "bsd",
    }
)

# The distribution reference grammar (docker/distribution reference/regexp.go), as the
# engine and the kubelet parse an image: [domain[:port]/]path[:tag][@digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
)
IMAGE_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_TAG_MAJOR = re.compile(r"^(\d+)")

STRATEGIES = ("unsupervised", "supervised")
DEFAULT_UID = 26


@dataclass(frozen=True)
class Refusal:
    """Why an object is not admitted: the field (a JSON path) and the reason."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def message(kind: str, name: str, refusals: list[Refusal]) -> str:
    """One line for the API server to return to the user, every problem named."""
    return f"{kind} {name!r} is refused: " + "; ".join(str(r) for r in refusals)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def valid_image(reference: str) -> bool:
    return len(reference) <= 4096 and bool(IMAGE_REFERENCE.match(reference))


def image_major(reference: str) -> int | None:
    """The PostgreSQL major a tag names (`...:16.4-minimal` -> 16); None for a digest only."""
    path = reference.split("@", 1)[0]
    last = path.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    found = _TAG_MAJOR.match(last.split(":", 1)[1])
    return int(found.group(1)) if found else None


def _spec_major(spec: Mapping[str, Any]) -> tuple[str, int | None]:
    ref = _mapping(spec.get("imageCatalogRef"))
    if ref:
        major = ref.get("major")
        return "spec.imageCatalogRef.major", major if isinstance(major, int) else None
    image = spec.get("imageName")
    return "spec.imageName", image_major(image) if isinstance(image, str) else None


def check_name(name: str) -> list[Refusal]:
    if len(name) > MAX_CLUSTER_NAME:
        return [
            Refusal(
                "metadata.name",
                f"{len(name)} characters, at most {MAX_CLUSTER_NAME} are allowed "
                "(pod, Service and Secret names append suffixes to it)",
            )
        ]
    if not DNS_1035.match(name):
        return [
            Refusal(
                "metadata.name",
                f"{name!r} is not a DNS-1035 label (lower-case letters, digits and '-', "
                "starting with a letter, ending with a letter or digit)",
            )
        ]
    return []


def check_image_source(spec: Mapping[str, Any], default_image: str) -> list[Refusal]:
    """CloudNativePG's rule: not both; neither means the operator's default image."""
    has_name = bool(spec.get("imageName"))
    has_ref = bool(spec.get("imageCatalogRef"))
    if has_name and has_ref:
        return [Refusal("spec.imageName", "imageName and imageCatalogRef cannot both be set")]
    if not has_name and not has_ref and not default_image:
        return [
            Refusal(
                "spec.imageName",
                "neither imageName nor imageCatalogRef is set, and the operator has no "
                "default image (DRYDOCK_OPERATOR_DEFAULT_IMAGE)",
            )
        ]
    image = spec.get("imageName")
    if isinstance(image, str) and image and not valid_image(image):
        return [Refusal("spec.imageName", f"{image!r} is not a valid image reference")]
    return []


def check_parameters(spec: Mapping[str, Any]) -> list[Refusal]:
    params = _mapping(_mapping(spec.get("postgresql")).get("parameters"))
    out = []
    for key in sorted(params):
        if key in FIXED:
            if key == "wal_level" and str(params[key]).lower() == "minimal":
                reason = "'minimal' is below replica, which streaming replication needs"
            else:
                reason = "is fixed by the operator and cannot be set"
            out.append(Refusal(f"spec.postgresql.parameters.{key}", reason))
    return out


def check_hba_line(line: str) -> str | None:
    """Why a pg_hba line is malformed, or None."""
    if "\n" in line or "\r" in line:
        return "a line may not contain a line break"
    tokens = line.split()
    if not tokens or tokens[0].startswith("#"):
        return "empty or a comment"
    kind = tokens[0]
    if kind.startswith("include"):
        return f"{kind!r} is not allowed (the operator writes the whole file)"
    if kind == "local":
        need = 4
    elif kind in HBA_HOST_TYPES:
        need = 5
    else:
        return f"unknown connection type {kind!r}"
    if len(tokens) < need:
        return f"a {kind!r} line needs at least {need} fields, found {len(tokens)}"
    method_at = need - 1
    if (
        kind != "local"
        and "/" not in tokens[3]
        and len(tokens) > 5
        and tokens[4] not in HBA_METHODS
    ):
        method_at = 5  # address and a separate netmask
    method = tokens[method_at]
    if method not in HBA_METHODS:
        return f"unknown authentication method {method!r}"
    return None


def check_pg_hba(spec: Mapping[str, Any]) -> list[Refusal]:
    lines = _mapping(spec.get("postgresql")).get("pg_hba") or []
    out = []
    for index, line in enumerate(lines if isinstance(lines, list) else []):
        why = check_hba_line(str(line))
        if why:
            out.append(Refusal(f"spec.postgresql.pg_hba[{index}]", why))
    return out


def check_major_change(spec: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Refusal]:
    """A different PostgreSQL major needs pg_upgrade, which this operator does not run."""
    if not old:
        return []
    old_spec = _mapping(old.get("spec"))
    info = _mapping(_mapping(old.get("status")).get("pgDataImageInfo"))
    _, before = _spec_major(old_spec)
    recorded = info.get("majorVersion")
    if isinstance(recorded, int):
        before = recorded
    field, after = _spec_major(spec)
    if before is None or after is None or before == after:
        return []
    return [
        Refusal(
            field,
            f"changing the PostgreSQL major from {before} to {after} needs pg_upgrade, "
            "which this operator does not run",
        )
    ]


def check_immutable(spec: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Refusal]:
    """`bootstrap` made the data directory: changing it later would change nothing, so
    it is refused (as CloudNativePG does) rather than silently ignored."""
    if not old:
        return []
    before = _mapping(old.get("spec")).get("bootstrap")
    if before is not None and spec.get("bootstrap") != before:
        return [Refusal("spec.bootstrap", "cannot be changed once the Cluster exists")]
    return []


def check_cluster(
    body: Mapping[str, Any], old: Mapping[str, Any] | None, default_image: str
) -> list[Refusal]:
    """Every reason to refuse this Cluster (empty: admit it)."""
    meta = _mapping(body.get("metadata"))
    spec = _mapping(body.get("spec"))
    return [
        *check_name(str(meta.get("name") or "")),
        *check_image_source(spec, default_image),
        *check_major_change(spec, old),
        *check_immutable(spec, old),
        *check_parameters(spec),
        *check_pg_hba(spec),
    ]


def cluster_defaults(spec: Mapping[str, Any], default_image: str) -> dict[str, Any]:
    """The spec fields to add (mutating webhook): what CloudNativePG's defaulting sets."""
    out: dict[str, Any] = {}
    if "instances" not in spec:
        out["instances"] = 1
    if "primaryUpdateStrategy" not in spec:
        out["primaryUpdateStrategy"] = "unsupervised"
    if "postgresUID" not in spec:
        out["postgresUID"] = DEFAULT_UID
    if "postgresGID" not in spec:
        out["postgresGID"] = DEFAULT_UID
    if not spec.get("imageName") and not spec.get("imageCatalogRef") and default_image:
        out["imageName"] = default_image
    return out


def cluster_warnings(spec: Mapping[str, Any]) -> list[str]:
    """Advice the API server passes back to the user (admitted all the same)."""
    image = spec.get("imageName")
    if isinstance(image, str) and image and "@sha256:" not in image:
        return [
            f"spec.imageName {image!r} is not pinned by digest: a re-pushed tag changes "
            "what new instances run"
        ]
    return []


def check_catalog(body: Mapping[str, Any]) -> list[Refusal]:
    """An ImageCatalog or ClusterImageCatalog: majors unique, every image well formed."""
    entries = _mapping(body.get("spec")).get("images") or []
    out = []
    seen: dict[object, int] = {}
    for index, raw in enumerate(entries if isinstance(entries, list) else []):
        entry = _mapping(raw)
        major = entry.get("major")
        if major in seen:
            out.append(
                Refusal(
                    f"spec.images[{index}].major",
                    f"major {major} is already listed at spec.images[{seen[major]}]",
                )
            )
        else:
            seen[major] = index
        image = str(entry.get("image") or "")
        if not valid_image(image):
            out.append(
                Refusal(f"spec.images[{index}].image", f"{image!r} is not a valid image reference")
            )
    return out
