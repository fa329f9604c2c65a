"""Small inline SVG bar charts for server-rendered pages: executions and failures per
time bucket. No JavaScript, no external assets, no fonts.

Invariants:
- Pure: `bar_chart(...)` turns series into SVG markup (text).
- Every text that reaches the markup goes through `html.escape` (the title names a
  responder, which comes from the configuration or the API).
- Accessible: the SVG is `role="img"` with a `<title>` (read by screen readers and shown
  as a tooltip) that states the totals; each bar has a `<title>` with its bucket and
  its figures. The page repeats the numbers in its table.
- Geometry: one bar per bucket, oldest left, all the same width; the tallest bar fills
  the height; a failure bar (red) is drawn over its executions bar (grey) at the same
  scale, so it is never taller. An empty series draws a baseline only.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__ = ["bar_chart", "bar_heights"]


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def bar_heights(values: Sequence[int], *, height: float, top: int | None = None) -> list[float]:
    """Each value's bar height in a chart `height` tall whose scale tops at `top`
    (default: the largest value); non-positive values get 0."""
    peak = max(values, default=0) if top is None else top
    if peak <= 0:
        return [0.0 for _ in values]
    return [round(height * max(v, 0) / peak, 2) for v in values]


def bar_chart(
    executions: Sequence[int],
    failed: Sequence[int],
    *,
    title: str,
    labels: Sequence[str],
    width: int = 240,
    height: int = 40,
) -> str:
    """An SVG of `executions` per bucket (grey) with `failed` over them (red);
    `labels` names each bucket in its bar's tooltip ("08:00-09:00")."""
    if not (len(executions) == len(failed) == len(labels)):
        raise ValueError("bar_chart needs one executions, failed and label value per bucket")
    count = len(executions)
    step = width / count if count else float(width)
    gap = 1.0 if step > 3 else 0.0
    peak = max(executions, default=0)
    runs = bar_heights(executions, height=height, top=peak)
    fails = bar_heights(failed, height=height, top=peak)
    total, total_failed = sum(executions), sum(failed)
    summary = f"{title}: {total} executions, {total_failed} failed"
    bars: list[str] = []
    for n, label in enumerate(labels):
        x = round(n * step, 2)
        w = round(step - gap, 2)
        tip = f"{label}: {executions[n]} executions, {failed[n]} failed"
        parts = [f"<title>{_e(tip)}</title>"]
        if runs[n] > 0:
            parts.append(
                f'<rect class="runs" x="{x}" y="{round(height - runs[n], 2)}"'
                f' width="{w}" height="{runs[n]}" fill="#9aa5b1"/>'
            )
        if fails[n] > 0:
            parts.append(
                f'<rect class="fails" x="{x}" y="{round(height - fails[n], 2)}"'
                f' width="{w}" height="{fails[n]}" fill="#c62828"/>'
            )
        bars.append(f'<g data-bucket="{n}">{"".join(parts)}</g>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}"'
        f' height="{height + 1}" viewBox="0 0 {width} {height + 1}"'
        f' data-executions="{total}" data-failed="{total_failed}">'
        f"<title>{_e(summary)}</title>"
        f'<line x1="0" y1="{height + 0.5}" x2="{width}" y2="{height + 0.5}"'
        ' stroke="#d0d5db" stroke-width="1"/>'
        f"{''.join(bars)}</svg>"
    )
