"""Load images/*.yaml into a Plan, reporting every problem at once.

A platform team editing descriptors wants all mistakes in one run, each naming the
file, the field and the reason, so the loader collects problems instead of stopping at
the first. Nothing is built when any problem is found (DescriptorError, exit 2).

Targets whose Debian release or PostgreSQL major is past its end of life (the dates kept
in the descriptors) are not planned: they are listed as retired, with the reason and the
date, so the matrix stops building them the day support ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from pipeline.descriptors.schema import (
    DEBIAN_MAJORS,
    PGDG_MAJORS,
    BaseDescriptor,
    BaseRef,
    Descriptor,
    OperandDescriptor,
    OperatorDescriptor,
)
from pipeline.errors import DescriptorError, Problem
from pipeline.models.targets import Kind, PackageSource, Plan, Retired, Target

_ADAPTER: TypeAdapter[Any] = TypeAdapter(Descriptor)
_KINDS = ("base", "operand", "operator")


def _loc(loc: Iterable[int | str]) -> str:
    """'majors.0.major' from pydantic's location, without the leading discriminator tag."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _KINDS:
        parts = parts[1:]
    return ".".join(parts) or "(document)"


def parse_file(path: Path, label: str) -> tuple[Any | None, list[Problem]]:
    """Parse and validate one descriptor file; returns the model or the problems."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        return None, [Problem(label, "(file)", f"cannot be read: {err}")]
    except yaml.YAMLError as err:
        return None, [Problem(label, "(document)", f"is not valid YAML: {err}")]
    if not isinstance(raw, dict):
        return None, [Problem(label, "(document)", "must be a mapping with a 'kind' key")]
    try:
        return _ADAPTER.validate_python(raw), []
    except ValidationError as err:
        problems = []
        for e in err.errors():
            reason = e["msg"]
            if e["type"] == "extra_forbidden":
                reason = "unknown key"
            elif e["type"] == "union_tag_invalid":
                reason = f"unknown kind (expected one of: {', '.join(_KINDS)})"
            problems.append(Problem(label, _loc(e["loc"]), reason))
        return None, problems


def _base_target(desc: BaseDescriptor, release: str, label: str) -> Target:
    return Target(
        name=f"base-{release}",
        kind=Kind.BASE,
        local_tag=f"{desc.repository}:{release}",
        repository=desc.repository,
        release=release,
        template="",
        version=release,
        descriptor=label,
        params=tuple(
            sorted(
                {
                    "mirror": desc.mirror,
                    "security_mirror": desc.security_mirror,
                }.items()
            )
        ),
    )


def _base_of(
    ref: BaseRef | None, release: str, bases: dict[str, Target], label: str, problems: list[Problem]
) -> tuple[str, tuple[str, ...]]:
    """The base a target builds FROM, and the plan targets it depends on."""
    if ref is not None and ref.image:
        return ref.image, ()
    wanted = ref.release if ref is not None and ref.release else release
    if f"base-{wanted}" not in bases:
        problems.append(
            Problem(label, "base", f"no base descriptor builds Debian {wanted} (add it to images/)")
        )
        return "", ()
    return f"base-{wanted}", (f"base-{wanted}",)


def _flavour_chain_problems(desc: OperandDescriptor, label: str) -> list[Problem]:
    """Flavours built on unknown flavours, or on each other in a cycle."""
    problems = []
    for name, flavour in sorted(desc.flavours.items()):
        chain, current = [name], flavour.base
        while current is not None:
            if current not in desc.flavours:
                problems.append(
                    Problem(label, f"flavours.{chain[-1]}.base", f"unknown flavour '{current}'")
                )
                break
            if current in chain:
                if current == name:
                    cycle = " -> ".join([*chain, current])
                    problems.append(
                        Problem(
                            label,
                            f"flavours.{name}.base",
                            f"flavours built on each other in a cycle: {cycle}",
                        )
                    )
                break
            chain.append(current)
            current = desc.flavours[current].base
    return list(dict.fromkeys(problems))


def _ancestors(desc: OperandDescriptor, name: str) -> list[str]:
    found, current = [], desc.flavours[name].base
    while current is not None:
        found.append(current)
        current = desc.flavours[current].base
    return found


def _flavour_order(
    desc: OperandDescriptor,
    wanted: list[str] | None,
    label: str,
    where: str,
    problems: list[Problem],
) -> list[str]:
    """The flavours a major builds, each after the flavours it is built on."""
    names = wanted or sorted(desc.flavours)
    for f in names:
        if f not in desc.flavours:
            problems.append(Problem(label, f"{where}.flavours", f"unknown flavour '{f}'"))
    names = [f for f in names if f in desc.flavours]
    for f in names:
        missing = [a for a in _ancestors(desc, f) if a not in names]
        if missing:
            problems.append(
                Problem(
                    label,
                    f"{where}.flavours",
                    f"flavour '{f}' is built on '{missing[0]}', which this major does not "
                    "build: list both",
                )
            )
    return sorted(names, key=lambda f: len(_ancestors(desc, f)))


@dataclass(frozen=True)
class _Lifecycle:
    today: dt.date
    release_eol: Mapping[str, dt.date]
    retired: list[Retired]

    def retire(self, name: str, ends: list[tuple[dt.date | None, str]]) -> bool:
        """Record `name` as retired if any of its (date, what) ended before today."""
        past = [(d, what) for d, what in ends if d is not None and d < self.today]
        if past:
            reason = "; ".join(f"{what} reached end of life on {d.isoformat()}" for d, what in past)
            self.retired.append(Retired(name, reason, min(d for d, _ in past)))
        return bool(past)


def _operand_targets(
    desc: OperandDescriptor,
    label: str,
    bases: dict[str, Target],
    base_releases: list[str],
    problems: list[Problem],
    life: _Lifecycle,
) -> list[Target]:
    targets: list[Target] = []
    chain_problems = _flavour_chain_problems(desc, label)
    if chain_problems:
        problems += chain_problems
        return targets
    for i, m in enumerate(desc.majors):
        where = f"majors.{i}"
        if m.source == "debian":
            shipped = [r for r, major in DEBIAN_MAJORS.items() if major == m.major]
            if not shipped:
                known = ", ".join(f"{r}: {v}" for r, v in DEBIAN_MAJORS.items())
                problems.append(
                    Problem(
                        label,
                        f"{where}.major",
                        f"Debian does not package PostgreSQL {m.major} ({known}); use source: pgdg",
                    )
                )
                continue
            releases = m.releases or shipped
            for r in releases:
                if r not in shipped:
                    problems.append(
                        Problem(
                            label,
                            f"{where}.releases",
                            f"Debian {r} does not package PostgreSQL {m.major} "
                            f"(it ships {DEBIAN_MAJORS[r]})",
                        )
                    )
            releases = [r for r in releases if r in shipped]
        else:
            if m.major not in PGDG_MAJORS:
                problems.append(
                    Problem(
                        label,
                        f"{where}.major",
                        f"PGDG does not ship PostgreSQL {m.major} "
                        f"(supported: {min(PGDG_MAJORS)}-{max(PGDG_MAJORS)})",
                    )
                )
                continue
            if desc.pgdg is None:
                problems.append(
                    Problem(
                        label, f"{where}.source", "source pgdg needs a top-level 'pgdg' section"
                    )
                )
                continue
            releases = m.releases or base_releases
        flavours = _flavour_order(desc, m.flavours, label, where, problems)
        for r in releases:
            built: dict[str, Target] = {}
            for f in flavours:
                flavour = desc.flavours[f]
                ends = [
                    (desc.end_of_life.get(m.major), f"PostgreSQL {m.major}"),
                    (life.release_eol.get(r), f"Debian {r}"),
                ]
                if life.retire(f"{desc.name}-{m.major}-{f}-{r}", ends):
                    continue
                parent = built.get(flavour.base) if flavour.base else None
                if flavour.base and parent is None:
                    continue  # its base flavour failed: reported already
                if parent is None:
                    base, deps = _base_of(desc.base, r, bases, label, problems)
                    inherited: tuple[str, ...] = ()
                    excludes: tuple[str, ...] = ()
                else:
                    base, deps = parent.name, (parent.name,)
                    inherited = (*parent.inherited_packages, *parent.packages)
                    excludes = parent.excludes
                params: dict[str, str] = {"description": flavour.description}
                if m.source == "pgdg" and desc.pgdg is not None:
                    params |= {"pgdg_url": desc.pgdg.url, "pgdg_keyring": desc.pgdg.keyring}
                target = Target(
                    name=f"{desc.name}-{m.major}-{f}-{r}",
                    kind=Kind.OPERAND,
                    local_tag=f"drydock/{desc.repository}:{m.major}-{f}-{r}",
                    repository=desc.repository,
                    release=r,
                    template=desc.template,
                    version=str(m.major),
                    descriptor=label,
                    uid=desc.user.uid,
                    gid=desc.user.gid,
                    major=m.major,
                    flavour=f,
                    source=PackageSource(m.source),
                    packages=tuple(p.format(major=m.major) for p in flavour.packages),
                    base=base,
                    depends_on=deps,
                    parent=parent.name if parent else "",
                    parent_flavour=parent.flavour or "" if parent else "",
                    inherited_packages=inherited,
                    excludes=tuple(dict.fromkeys((*excludes, *flavour.exclude))),
                    params=tuple(sorted(params.items())),
                )
                built[f] = target
                targets.append(target)
    return targets


def _operator_target(
    desc: OperatorDescriptor, label: str, bases: dict[str, Target], problems: list[Problem]
) -> Target:
    base, deps = _base_of(desc.base, desc.release, bases, label, problems)
    return Target(
        name=desc.name,
        kind=Kind.OPERATOR,
        local_tag=f"drydock/{desc.repository}:{desc.version}",
        repository=desc.repository,
        release=desc.release,
        template=desc.template,
        version=desc.version,
        descriptor=label,
        uid=desc.user.uid,
        gid=desc.user.gid,
        packages=tuple(desc.packages),
        base=base,
        depends_on=deps,
        params=(("app_module", desc.app.module), ("app_path", desc.app.path)),
    )


def load_plan(
    images_dir: Path, templates_dir: Path | None = None, today: dt.date | None = None
) -> Plan:
    """Read every *.yaml under images_dir into a Plan, or raise DescriptorError. Targets
    past end of life on `today` (default: the current UTC date) are retired, not planned."""
    life = _Lifecycle(today or dt.datetime.now(dt.UTC).date(), {}, [])
    files = sorted(images_dir.glob("*.yaml")) + sorted(images_dir.glob("*.yml"))
    if not files:
        raise DescriptorError([Problem(str(images_dir), "(directory)", "holds no *.yaml")])
    problems: list[Problem] = []
    parsed: list[tuple[str, Any]] = []
    for path in files:
        label = str(path)
        model, errs = parse_file(path, label)
        problems.extend(errs)
        if model is not None:
            parsed.append((label, model))

    base_descs = [(lb, d) for lb, d in parsed if isinstance(d, BaseDescriptor)]
    if len(base_descs) > 1:
        problems.append(Problem(base_descs[1][0], "kind", "only one base descriptor is allowed"))
    bases: dict[str, Target] = {}
    base_releases: list[str] = []
    max_age, mirror = 168.0, ""
    if base_descs:
        label, bdesc = base_descs[0]
        max_age, mirror, base_releases = bdesc.max_age_hours, bdesc.mirror, list(bdesc.releases)
        life = _Lifecycle(life.today, {str(r): d for r, d in bdesc.end_of_life.items()}, [])
        for r in bdesc.releases:
            if not life.retire(f"base-{r}", [(bdesc.end_of_life.get(r), f"Debian {r}")]):
                bases[f"base-{r}"] = _base_target(bdesc, r, label)

    targets: list[Target] = list(bases.values())
    postgres_eol: dict[int, dt.date] = {}
    for label, d in parsed:
        if isinstance(d, OperandDescriptor):
            targets += _operand_targets(d, label, bases, base_releases, problems, life)
            postgres_eol.update(d.end_of_life)
        elif isinstance(d, OperatorDescriptor):
            ended = life.release_eol.get(d.release)
            if ended is not None and ended < life.today:
                problems.append(
                    Problem(
                        label,
                        "release",
                        f"Debian {d.release} reached end of life on {ended.isoformat()}; "
                        "build the operator on a supported release",
                    )
                )
                continue
            targets.append(_operator_target(d, label, bases, problems))
        if (
            templates_dir is not None
            and not isinstance(d, BaseDescriptor)
            and not (templates_dir / d.template).is_file()
        ):
            problems.append(
                Problem(label, "template", f"no such template in {templates_dir}: {d.template}")
            )

    seen: dict[str, str] = {}
    for t in targets:
        if t.name in seen:
            problems.append(
                Problem(
                    t.descriptor, "name", f"duplicate target '{t.name}' (also in {seen[t.name]})"
                )
            )
        seen.setdefault(t.name, t.descriptor)
    if problems:
        raise DescriptorError(problems)
    return Plan(
        tuple(targets),
        max_age,
        mirror,
        tuple(str(f) for f in files),
        tuple(life.retired),
        tuple(sorted(postgres_eol.items())),
    )
