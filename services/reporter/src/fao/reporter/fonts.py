"""The report's font: Sarabun (SIL Open Font License 1.1), shipped by the `fontpkg-sarabun` package.

Sarabun is Google Fonts' version of the Thai government's TH Sarabun New design; at about 11 pt it
reads like TH Sarabun New at 16 pt, the usual body size of government documents.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import as_file, files
from pathlib import Path
from typing import Final

FAMILY: Final = "Sarabun"
FACES: Final = {400: "Sarabun-Regular.ttf", 700: "Sarabun-Bold.ttf"}


@cache
def font_files() -> dict[int, Path]:
    """Weight → path of the TTF file (the package is installed as plain files)."""
    folder = files("fontpkg_sarabun") / "files"
    paths = {}
    for weight, name in FACES.items():
        with as_file(folder / name) as path:
            if not path.is_file():
                raise FileNotFoundError(f"Sarabun font missing: {path} (install fontpkg-sarabun)")
            paths[weight] = path
    return paths


def font_face_css() -> str:
    """`@font-face` rules loading Sarabun from the installed files (for WeasyPrint)."""
    return "\n".join(
        f"@font-face {{ font-family: {FAMILY}; src: url('{path.as_uri()}'); font-weight: {weight}; }}"
        for weight, path in font_files().items()
    )
