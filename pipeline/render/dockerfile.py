"""Render a target's Dockerfile: a pure, byte-stable function of its inputs.

Nothing time- or machine-dependent goes into the text: build time, revision and the base
digest are passed as build arguments, so the same target renders to the same bytes on
every machine and its fingerprint changes only when an input really changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from pipeline.errors import DescriptorError, Problem
from pipeline.models.excludes import EXCLUDES_FILE, exclude_lines
from pipeline.models.targets import Target

SOURCE_URL = "https://example.invalid/drydock"  # overridable per run; no machine names
# One apt download cache per Debian release, shared by every build of that release (a
# package is downloaded once however many images install it). `namespace` keeps apart
# pipelines that must not share one (the build benchmark's cold sides).
APT_CACHE_MOUNT = (
    "--mount=type=cache,target=/var/cache/apt/archives,sharing=locked,id={namespace}apt-{release} "
)
# With a cache mount the downloaded .debs must survive the RUN: the base's docker-clean
# hook (which deletes them) is set aside for the duration and put back afterwards.
APT_KEEP = (
    "if [ -f /etc/apt/apt.conf.d/docker-clean ]; then "
    "mv /etc/apt/apt.conf.d/docker-clean /etc/apt/docker-clean.off; fi; "
)
APT_RESTORE = (
    "if [ -f /etc/apt/docker-clean.off ]; then "
    "mv /etc/apt/docker-clean.off /etc/apt/apt.conf.d/docker-clean; fi; "
    "rm -f /var/cache/apt/*.bin"
)
_SYNTAX_LINE = re.compile(r"^#\s*syntax\s*=", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class RenderOptions:
    """Everything besides the target that shapes the text."""

    base_ref: str  # what FROM names: a local base tag or a registry ref pinned by digest
    buildkit: bool = False  # add apt cache mounts (BuildKit only)
    source_url: str = SOURCE_URL
    app_requirement: str = ""  # operator: the distribution name pip installs
    cache_namespace: str = ""  # prefix of the apt cache mount's id


def _environment(templates_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - Dockerfiles, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(target: Target, options: RenderOptions, templates_dir: Path) -> str:
    """Return the Dockerfile text for target. Raises DescriptorError on template problems."""
    env = _environment(templates_dir)
    try:
        template = env.get_template(target.template)
        text = template.render(
            target=target,
            base_ref=options.base_ref,
            source_url=options.source_url,
            app_requirement=options.app_requirement,
            cache_mount=(
                APT_CACHE_MOUNT.format(namespace=options.cache_namespace, release=target.release)
                if options.buildkit
                else ""
            ),
            apt_keep=APT_KEEP if options.buildkit else "",
            apt_done=APT_RESTORE if options.buildkit else "apt-get clean",
            dpkg_excludes=exclude_lines(target.excludes),
            excludes_file=EXCLUDES_FILE,
        )
    except jinja2.TemplateNotFound as err:
        raise DescriptorError(
            [Problem(target.descriptor, "template", f"template not found: {err.name}")]
        ) from err
    except jinja2.TemplateError as err:
        raise DescriptorError(
            [Problem(target.descriptor, "template", f"{target.template}: {err}")]
        ) from err
    if _SYNTAX_LINE.search(text):
        raise DescriptorError(
            [
                Problem(
                    target.descriptor,
                    "template",
                    f"{target.template} has a '# syntax=' line; it would pull a frontend image",
                )
            ]
        )
    return text if text.endswith("\n") else text + "\n"
