"""Reports of the compliance gate: json, sarif, markdown, junit and html.

`render(report, fmt)` is the entry point; `FORMATS` maps a format name to its renderer
(and its file extension and media type).
"""

from pipeline.report.formats import FORMATS, render, renderer

__all__ = ["FORMATS", "render", "renderer"]
