"""The report formats Drydock can write, by name: the one place a name becomes a renderer."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.errors import InputError
from pipeline.models.compliance import GateReport
from pipeline.report.base import Renderer
from pipeline.report.html import HtmlRenderer
from pipeline.report.json_report import JsonRenderer
from pipeline.report.junit import JunitRenderer
from pipeline.report.markdown import MarkdownRenderer
from pipeline.report.sarif import SarifRenderer

FORMATS: Mapping[str, type[Renderer]] = {
    JsonRenderer.name: JsonRenderer,
    SarifRenderer.name: SarifRenderer,
    MarkdownRenderer.name: MarkdownRenderer,
    JunitRenderer.name: JunitRenderer,
    HtmlRenderer.name: HtmlRenderer,
}


def renderer(fmt: str) -> Renderer:
    try:
        return FORMATS[fmt]()
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise InputError(f"unknown report format {fmt!r} (known: {known})") from None


def render(report: GateReport, fmt: str) -> str:
    """The report in one format ("json", "sarif", "markdown", "junit", "html")."""
    return renderer(fmt).render(report)
