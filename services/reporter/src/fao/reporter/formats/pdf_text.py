"""Make Thai text in WeasyPrint's PDFs extract exactly as written (pdftotext, search, copy-paste).

WeasyPrint 70.0 writes one ToUnicode entry per glyph, taken from the first text cluster the glyph
is drawn in, and maps every glyph of a multi-glyph cluster but the last to "". HarfBuzz's Thai
shaper splits SARA AM (ำ) into NIKHAHIT + SARA AA and merges the cluster with a tone mark before
it, so "น้ำ" poisons the glyph of SARA AA: every later "า" extracts as "้ำ", and "ประจำ" as
"ประจา" (../shared/notes/thai-pdf.md). The pages look right either way; only the text layer is
wrong. Two changes, both measured on the pages (rasters unchanged) and by the report tests:

1. Each font's ToUnicode map is a `_NominalMap`: a glyph that the font's cmap gives to a character
   always maps to that character; other glyphs (positional variants of marks, ligatures) keep
   WeasyPrint's cluster text, and an empty or multi-character entry is replaced by a later
   one-character use. Every drawn glyph keeps an entry, so none is dropped from the subset.
2. A line holding a combining mark (Thai vowels above and below, tone marks) or a character the
   shaper decomposes (ำ, Lao ຳ) is drawn inside a marked-content span with `/ActualText` = the
   line's text, which PDF readers extract instead of the glyphs. Without it poppler orders a mark
   by its drawn position: "ที่" came out as "ท่ี" and a heading's tone mark moved to the next line.
   Lines without marks (Latin, digits) keep per-glyph extraction.

`install()` patches WeasyPrint (pinned to 70.0 in constraints.txt: the patched functions are
internal) once per process; the PDF renderer calls it before every render.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Callable
from functools import cache
from typing import Any, Final

import pydyf
from fontTools.ttLib import TTFont
from weasyprint.draw import text as draw_text
from weasyprint.pdf import stream as pdf_stream

DECOMPOSED: Final = frozenset("\u0e33\u0eb3")  # THAI SARA AM, LAO VOWEL SIGN AM


def needs_actual_text(text: str) -> bool:
    """Whether a line's glyphs alone would not extract as `text` (see the module docstring)."""
    return not DECOMPOSED.isdisjoint(text) or any(unicodedata.category(c) == "Mn" for c in text)


@cache
def nominal_characters(content: bytes, index: int) -> dict[int, str]:
    """Glyph id → the character the font's cmap maps to it (the lowest code point wins)."""
    font = TTFont(io.BytesIO(content), fontNumber=index, lazy=True)
    glyphs: dict[int, str] = {}
    for code_point, name in sorted(font.getBestCmap().items()):
        glyphs.setdefault(font.getGlyphID(name), chr(code_point))
    return glyphs


class _NominalMap(dict[int, str]):
    """A font's ToUnicode map that prefers each glyph's own character (see the module docstring)."""

    def __init__(self, nominal: dict[int, str]) -> None:
        super().__init__()
        self._nominal = nominal
        self._weak: set[int] = set()

    def __contains__(self, glyph: object) -> bool:
        return super().__contains__(glyph) and glyph not in self._weak

    def __setitem__(self, glyph: int, text: str) -> None:
        text = self._nominal.get(glyph, text)
        weak = glyph not in self._nominal and len(text) != 1
        if weak and super().__contains__(glyph) and not text:
            return
        (self._weak.add if weak else self._weak.discard)(glyph)
        super().__setitem__(glyph, text)


_installed: list[bool] = []


def install() -> None:
    """Patch WeasyPrint's text drawing (idempotent)."""
    if _installed:
        return
    original_add_font: Callable[..., Any] = pdf_stream.Stream.add_font
    original_draw_first_line: Callable[..., Any] = draw_text.draw_first_line

    def add_font(self: Any, pango_font: Any) -> Any:
        font, font_size = original_add_font(self, pango_font)
        if not isinstance(font.to_unicode, _NominalMap):
            fixed = _NominalMap(nominal_characters(font.file_content, font.index))
            for glyph, text in font.to_unicode.items():
                fixed[glyph] = text
            font.to_unicode = fixed
        return font, font_size

    def draw_first_line(stream: Any, textbox: Any, *args: Any) -> Any:
        text: str = textbox.text
        if not needs_actual_text(text):
            return original_draw_first_line(stream, textbox, *args)
        stream.begin_marked_content("Span", pydyf.Dictionary({"ActualText": pydyf.String(text)}))
        try:
            return original_draw_first_line(stream, textbox, *args)
        finally:
            stream.end_marked_content()

    pdf_stream.Stream.add_font = add_font
    draw_text.draw_first_line = draw_first_line
    _installed.append(True)
