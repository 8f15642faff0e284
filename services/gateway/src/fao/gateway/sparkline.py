"""A monitor's recent latencies as a small inline SVG (no script, no text inside the SVG: labels
are the page's, in its language)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from markupsafe import Markup

WIDTH: Final = 160
HEIGHT: Final = 32
PAD: Final = 2


def sparkline(points: Sequence[tuple[float, bool]], width: int = WIDTH, height: int = HEIGHT) -> Markup:
    """``points``: (latency in ms, ok) oldest first. A line through the latencies, a red dot on
    each failure; empty when there is nothing to draw."""
    if not points:
        return Markup("")
    top = max(latency for latency, _ in points) or 1.0
    step = (width - 2 * PAD) / max(1, len(points) - 1)

    def xy(i: int, latency: float) -> tuple[float, float]:
        return PAD + i * step, height - PAD - (height - 2 * PAD) * latency / top

    coords = [xy(i, latency) for i, (latency, _) in enumerate(points)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="#c62828"/>'
        for (x, y), (_, ok) in zip(coords, points, strict=True)
        if not ok
    )
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" focusable="false">'
        f'<polyline points="{line}" fill="none" stroke="#1565c0" stroke-width="1.5"/>{dots}</svg>'
    )
