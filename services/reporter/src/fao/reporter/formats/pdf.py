"""PDF: the print page (`html.render_page(for_print=True)`) laid out by WeasyPrint on A4 in Sarabun.

Thai marks are shaped by Pango/HarfBuzz; `pdf_text` makes the text layer extract exactly. The
incident list is cut to the `PRINT_INCIDENT_LIMIT` longest incidents (the XLSX has them all), so a
month of 10,000 incidents is still a document of a few dozen pages rendered in seconds.
"""

from __future__ import annotations

from typing import Final

from weasyprint import HTML

from fao.reporter.formats import pdf_text
from fao.reporter.formats.contract import RenderContext
from fao.reporter.formats.html import render_page


class PdfRenderer:
    name: Final = "pdf"
    suffix: Final = ".pdf"
    media_type: Final = "application/pdf"

    def render(self, context: RenderContext) -> bytes:
        pdf_text.install()
        page = render_page(context, for_print=True)
        document: bytes = HTML(string=page, base_url=".").write_pdf()
        return document


RENDERER: Final = PdfRenderer()
