"""One self-contained HTML checklist page: a row per control per image, for people.

Rendered with Jinja2 (autoescaped: evidence comes from images and scanners, so it is
untrusted text) from the template in `html_template`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jinja2

from pipeline.models.compliance import AssessedFinding, GateReport, ImageVerdict
from pipeline.report import provenance
from pipeline.report.base import Renderer, counts_text, slug
from pipeline.report.html_template import TEMPLATE


@dataclass(frozen=True)
class _ImageView:
    verdict: ImageVerdict
    anchor: str
    counts: str
    findings: tuple[AssessedFinding, ...]
    os: str


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )


class HtmlRenderer(Renderer):
    name: ClassVar[str] = "html"
    media_type: ClassVar[str] = "text/html"
    extension: ClassVar[str] = "html"

    def render(self, report: GateReport) -> str:
        views = []
        seen: dict[str, int] = {}
        for verdict in report.images:
            anchor = "image-" + slug(verdict.image)
            seen[anchor] = seen.get(anchor, 0) + 1
            if seen[anchor] > 1:
                anchor += f"-{seen[anchor]}"
            ordered = sorted(
                verdict.findings,
                key=lambda af: (not af.blocking, not af.controls, -af.finding.severity.rank),
            )
            views.append(
                _ImageView(
                    verdict,
                    anchor,
                    counts_text(verdict),
                    tuple(ordered),
                    provenance.os_text(verdict),
                )
            )
        template = _environment().from_string(TEMPLATE)
        return template.render(
            verdict=report.verdict,
            date=report.today.isoformat(),
            policy=report.policy,
            expired_waivers=report.expired_waivers,
            unused_waivers=report.unused_waivers,
            images=views,
            provenance=provenance.lines(report),
        )
