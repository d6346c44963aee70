"""Native checks on how the image was built: its history and the Dockerfile it came from.

`docker history` is what an image says about its own build, and it can say little: a
squashed or imported image has one layer and no instructions, and a history can be
rewritten. So CIS 4.7 (update alone) and 4.9 (ADD) are judged on the history only when
it describes every layer above the trusted base, and on the rendered Dockerfile Drydock
built from when there is one; with neither, they are `unverified`. CIS 4.11 / DISA 2.11
also look here for packages that bypass apt's signature checks: `dpkg -i`, a local
`.deb` handed to apt, `curl ... | sh`, pip told to trust a host or to use a plain-http
index, and packages apt itself says no archive offers (`[installed,local]`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pipeline.compliance.imagefs import ImageFilesystem
from pipeline.compliance.native_base import CheckContext, CheckSpec, NativeCheck, NotRun, hit
from pipeline.models.findings import Finding, Severity

ADD_INSTRUCTION = CheckSpec("DD-ADD-INSTRUCTION", "ADD was used instead of COPY", Severity.LOW)
UPDATE_ALONE = CheckSpec(
    "DD-UPDATE-ALONE", "apt-get update used alone in a build step", Severity.MEDIUM
)
LOCAL_PACKAGE = CheckSpec(
    "DD-LOCAL-PACKAGE",
    "Software installed around apt's signature checks (dpkg -i, local .deb, curl | sh, "
    "untrusted pip index)",
    Severity.HIGH,
)

_UPDATE = re.compile(r"\bapt(?:-get)?\s+(?:-\S+\s+)*update\b")
_INSTALL = re.compile(r"\bapt(?:-get)?\s+.*\b(?:install|upgrade|dist-upgrade)\b")
_SEP = r"[^;&|\n]*"
BYPASSES = (
    (
        re.compile(rf"\bdpkg(?![-.\w]){_SEP}\s(?:--install|--unpack|-[A-Za-z]*i[A-Za-z]*)\b"),
        "dpkg installs a file",
    ),
    (re.compile(rf"\bapt(?:-get)?\b{_SEP}\binstall\b{_SEP}\S+\.deb\b"), "apt installs a .deb file"),
    (
        re.compile(rf"\b(?:curl|wget)\b{_SEP}\|\s*(?:sudo\s+)?(?:env\s+)?(?:ba|da|z|k)?sh\b"),
        "a downloaded script is piped to a shell",
    ),
    (re.compile(r"--trusted-host\b|\bPIP_TRUSTED_HOST\s*="), "pip is told to trust a host"),
    (
        re.compile(
            r"(?:--index-url|--extra-index-url|--find-links|\s-i|\s-f)[=\s]+[\"']?http://"
            r"|\bPIP_(?:EXTRA_)?INDEX_URL\s*=\s*[\"']?http://"
        ),
        "pip reads a plain-http index",
    ),
)


@dataclass(frozen=True)
class Step:
    """One build step: where it is shown ("history[3]", "Dockerfile:12") and its text."""

    where: str
    instruction: str  # RUN, ADD, COPY, ... ("" for history lines that say nothing)
    text: str


def dockerfile_steps(text: str) -> list[Step]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    steps: list[Step] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if not current:
            start = number
        current.append(line[:-1] if line.endswith("\\") else line)
        if not line.endswith("\\"):
            joined = " ".join(part.strip() for part in current).strip()
            word = joined.split(None, 1)[0].upper() if joined else ""
            steps.append(Step(f"Dockerfile:{start}", word, joined))
            current = []
    return steps


def _history_instruction(created_by: str) -> str:
    text = created_by.strip()
    nop = re.search(r"#\(nop\)\s+([A-Z]+)\s", text)
    if nop:
        return nop.group(1)
    if text.startswith("/bin/sh -c ") or text.startswith("|"):
        return "RUN"
    word = text.split(None, 1)[0] if text else ""
    return word if word.isupper() else ""


def history_steps(fs: ImageFilesystem) -> list[Step]:
    return [
        Step(f"history[{n}]", _history_instruction(e.created_by), e.created_by)
        for n, e in enumerate(fs.config.history)
    ]


def base_layers(fs: ImageFilesystem, ctx: CheckContext) -> int:
    """How many of the image's bottom layers are a trusted base's (0: none matched)."""
    layers = fs.config.diff_ids
    best = 0
    for base in ctx.inputs.trusted_bases or ():
        if base.layers and layers[: len(base.layers)] == base.layers:
            best = max(best, len(base.layers))
    return best


def history_gap(fs: ImageFilesystem, ctx: CheckContext) -> str:
    """Why the history cannot show how the image was built ("" when it can): it must
    describe every layer, and every layer above the trusted base must say what made it."""
    history = fs.config.history
    if not history:
        return "the image has no history"
    layered = [h for h in history if not h.empty_layer]
    if len(layered) != len(fs.config.diff_ids):
        return (
            f"the history describes {len(layered)} layer(s), the image has "
            f"{len(fs.config.diff_ids)} (squashed or rewritten)"
        )
    blank = [n for n, h in enumerate(layered) if n >= base_layers(fs, ctx) and not h.created_by]
    if blank:
        return f"{len(blank)} layer(s) above the base have no history text (imported or squashed)"
    return ""


def build_steps(fs: ImageFilesystem, ctx: CheckContext) -> list[Step] | NotRun:
    """The steps to judge: the history when it covers the image, plus the Dockerfile when
    there is one; NotRun when neither can show how the image was built."""
    gap = history_gap(fs, ctx)
    dockerfile = ctx.inputs.dockerfile
    if gap and dockerfile is None:
        return NotRun(f"{gap}, and no Dockerfile was given")
    steps = [] if gap else history_steps(fs)
    if dockerfile is not None:
        steps += dockerfile_steps(dockerfile)
    return steps


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_base_rootfs(step: Step) -> bool:
    return step.where == "history[0]" and bool(re.search(r"ADD file:\S+ in /\s*$", step.text))


def _steps_that(
    fs: ImageFilesystem, ctx: CheckContext, spec: CheckSpec, matches: Callable[[Step], bool]
) -> list[Finding] | NotRun:
    """A finding of `spec` naming every build step that `matches`, or why none can be read."""
    steps = build_steps(fs, ctx)
    if isinstance(steps, NotRun):
        return steps
    return hit(spec, [f"{s.where}: {_short(s.text)}" for s in steps if matches(s)])


def check_add(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding] | NotRun:
    return _steps_that(
        fs, ctx, ADD_INSTRUCTION, lambda s: s.instruction == "ADD" and not _is_base_rootfs(s)
    )


def check_update_alone(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding] | NotRun:
    return _steps_that(
        fs,
        ctx,
        UPDATE_ALONE,
        lambda s: bool(_UPDATE.search(s.text)) and not _INSTALL.search(s.text),
    )


def bypasses(text: str) -> Iterator[str]:
    """What in one build step installs software around apt's checks."""
    for pattern, what in BYPASSES:
        if pattern.search(text):
            yield what


def check_local_packages(fs: ImageFilesystem, ctx: CheckContext) -> list[Finding]:
    steps = history_steps(fs)
    if ctx.inputs.dockerfile is not None:
        steps += dockerfile_steps(ctx.inputs.dockerfile)
    evidence = [f"{s.where}: {what}: {_short(s.text)}" for s in steps for what in bypasses(s.text)]
    updates = ctx.inputs.updates
    if updates is not None:
        evidence += [
            f"package {p} is installed but no archive offers it [{updates.source}]"
            for p in updates.local
        ]
    return hit(LOCAL_PACKAGE, evidence)


CHECKS = (
    NativeCheck((ADD_INSTRUCTION,), check_add),
    NativeCheck((UPDATE_ALONE,), check_update_alone),
    NativeCheck((LOCAL_PACKAGE,), check_local_packages),
)
