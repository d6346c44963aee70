"""What the Clusters report, as a table: phase, image, and each instance pod's image.

Pure: `rows()` and `render()` take the API's list answers; `drydock dev get clusters`
fetches them (once, or every few seconds with --watch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MANAGED = "app.kubernetes.io/managed-by=drydock-operator"  # the operator's instance pods


def is_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's Ready condition, as the kubelet reports it."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


@dataclass(frozen=True)
class InstanceRow:
    name: str
    image: str
    ready: bool
    primary: bool


@dataclass(frozen=True)
class ClusterRow:
    namespace: str
    name: str
    phase: str
    reason: str
    image: str
    ready: int
    wanted: int
    instances: tuple[InstanceRow, ...]


def _serial(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def rows(
    clusters: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    label_prefix: str = "cnpg.io",
) -> list[ClusterRow]:
    """One row per Cluster with its instance pods (matched by the `<prefix>/cluster` label)."""
    by_cluster: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for pod in pods:
        meta = pod.get("metadata", {})
        owner = meta.get("labels", {}).get(f"{label_prefix}/cluster")
        if owner:
            by_cluster.setdefault((meta.get("namespace", ""), owner), []).append(pod)
    out: list[ClusterRow] = []
    for cluster in sorted(
        clusters, key=lambda c: (c["metadata"].get("namespace", ""), c["metadata"]["name"])
    ):
        meta, status = cluster["metadata"], cluster.get("status", {})
        key = (meta.get("namespace", ""), meta["name"])
        primary = status.get("currentPrimary", "")
        instances = tuple(
            InstanceRow(
                p["metadata"]["name"],
                str(p["spec"]["containers"][0]["image"]),
                is_ready(p),
                p["metadata"]["name"] == primary,
            )
            for p in sorted(by_cluster.get(key, []), key=lambda p: _serial(p["metadata"]["name"]))
        )
        out.append(
            ClusterRow(
                namespace=key[0],
                name=key[1],
                phase=str(status.get("phase", "-")),
                reason=str(status.get("phaseReason", "")),
                image=str(status.get("image", "-")),
                ready=sum(1 for i in instances if i.ready),
                wanted=int(cluster.get("spec", {}).get("instances", 1)),
                instances=instances,
            )
        )
    return out


def _digest(image: str) -> str:
    """`sha256:0123456789ab` of a reference by digest, else the whole reference."""
    _, at, digest = image.partition("@")
    return digest[:19] if at else image


def short(image: str) -> str:
    """`registry/repo:tag@sha256:0123456789ab` (the digest cut to 12 hex digits)."""
    name, at, _ = image.partition("@")
    return f"{name}@{_digest(image)}" if at else image


def render(table: Sequence[ClusterRow]) -> str:
    if not table:
        return "no Clusters"
    lines: list[str] = []
    for row in table:
        lines.append(
            f"{row.namespace}/{row.name}  {row.ready}/{row.wanted} ready  {row.phase}"
            + (f" ({row.reason})" if row.reason and row.phase != "Cluster in healthy state" else "")
        )
        lines.append(f"  image: {short(row.image)}")
        for inst in row.instances:
            same = "" if inst.image == row.image else f"  (still {_digest(inst.image)})"
            lines.append(
                f"  {inst.name:<16} {'primary' if inst.primary else 'replica':<8}"
                f" {'Ready' if inst.ready else 'not ready':<9}{same}"
            )
    return "\n".join(lines)


def render_catalogs(catalogs: Sequence[Mapping[str, Any]]) -> str:
    """`Kind/name` (namespace for ImageCatalogs), then `  major: image` per entry."""
    if not catalogs:
        return "no catalogs"
    lines: list[str] = []
    for cat in sorted(
        catalogs,
        key=lambda c: (c["kind"], c["metadata"].get("namespace", ""), c["metadata"]["name"]),
    ):
        meta = cat["metadata"]
        where = f" in {meta['namespace']}" if meta.get("namespace") else ""
        lines.append(f"{cat['kind']}/{meta['name']}{where}")
        for entry in sorted(cat.get("spec", {}).get("images", []), key=lambda e: e["major"]):
            lines.append(f"  {entry['major']}: {entry['image']}")
    return "\n".join(lines)
