"""Output formats of a report, in one registry.

Adding a format is one module exposing a `Renderer` (`contract.Renderer`: name, suffix, media
type, `render(context) -> bytes`) and one line in `RENDERERS`.
"""

from __future__ import annotations

from typing import Final

from fao.reporter.formats import html, json_doc, pdf, xlsx
from fao.reporter.formats.contract import PRINT_INCIDENT_LIMIT, RenderContext, Renderer

RENDERERS: Final[dict[str, Renderer]] = {
    renderer.name: renderer for renderer in (html.RENDERER, pdf.RENDERER, xlsx.RENDERER, json_doc.RENDERER)
}
FORMATS: Final = tuple(RENDERERS)

__all__ = ["FORMATS", "PRINT_INCIDENT_LIMIT", "RENDERERS", "RenderContext", "Renderer", "renderer"]


def renderer(name: str) -> Renderer:
    """The renderer of format `name`; ValueError naming the known ones otherwise."""
    try:
        return RENDERERS[name]
    except KeyError:
        raise ValueError(f"unknown report format {name!r}: use {', '.join(FORMATS)}") from None
