"""The execution statistics section of the status page: per source and per responder,
executions, failures, failure ratio, credits and p95 duration over a window, each with
a bar chart of executions and failures per bucket.

Invariants:
- Pure: `render_stats(windows)` turns `StatsWindow`s into HTML text; the figures come
  from `relay.domain.exec_stats` (gathered by `relay.http.status_stats`).
- Every outside value (source and responder names) goes through `html.escape`; charts
  come from `relay.http.svg_charts`, which escapes its own text.
- Each number a chart draws is also in the table (`data-` attributes carry them raw).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from relay.domain.exec_stats import StatsRow
from relay.durations import format_duration_s, utc_iso
from relay.http.svg_charts import bar_chart

__all__ = ["StatsWindow", "bucket_labels", "render_stats"]

_COLUMNS = (
    "Source",
    "Responder",
    "Executions",
    "Failed",
    "Failure ratio",
    "Credits",
    "p95 duration",
    "Executions and failures",
)


@dataclass(frozen=True, slots=True)
class StatsWindow:
    key: str  # "hour" | "day": the table's id is `stats-<key>`
    title: str  # "Last hour (5-minute bars)"
    rows: Sequence[StatsRow]
    labels: Sequence[str]  # one per bucket, oldest first
    problem: str | None = None  # why the figures are unknown
    notes: Sequence[str] = field(default=())


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def bucket_labels(since: datetime, *, bucket_s: int, buckets: int) -> list[str]:
    """`HH:MM-HH:MM` (UTC) of each bucket from `since`."""
    labels = []
    for n in range(buckets):
        start = since + timedelta(seconds=n * bucket_s)
        end = start + timedelta(seconds=bucket_s)
        labels.append(f"{utc_iso(start)[11:16]}-{utc_iso(end)[11:16]}")
    return labels


def _ratio(row: StatsRow) -> str:
    ratio = row.ratio
    return "" if ratio is None else f"{ratio * 100:.1f}%"


def _row(window: StatsWindow, row: StatsRow) -> str:
    total = row.responder_id is None
    who = "all responders" if total else (row.responder or "")
    name = f"<strong>{_e(row.source)}</strong>" if total else _e(row.source)
    if not total and row.responder != row.responder_id:
        who_cell = f'{_e(who)} <span class="muted">{_e(row.responder_id)}</span>'
    else:
        who_cell = f'<span class="muted">{_e(who)}</span>' if total else _e(who)
    subject = f"{row.source} / {who}"
    chart = bar_chart(
        row.executions_series,
        row.failed_series,
        title=f"{subject}, {window.title.lower()}",
        labels=window.labels,
    )
    ratio = row.ratio
    css = ' class="total"' if total else ""
    return (
        f'<tr data-source="{_e(row.source)}" data-responder="{_e(row.responder_id or "")}"'
        f' data-executions="{row.executions}" data-failed="{row.failed}"'
        f' data-ratio="{"" if ratio is None else f"{ratio:.6f}"}"'
        f' data-credits="{row.credits:.6g}"'
        f' data-p95-s="{"" if row.p95_s is None else f"{row.p95_s:.3f}"}"'
        f"{css}>"
        f"<td>{name}</td><td>{who_cell}</td><td>{row.executions}</td>"
        f"<td>{row.failed}</td><td>{_ratio(row)}</td><td>{row.credits:,.1f}</td>"
        f"<td>{_e(format_duration_s(row.p95_s))}</td><td>{chart}</td></tr>"
    )


def _window(window: StatsWindow) -> str:
    heading = f'<h3 id="h-stats-{_e(window.key)}">{_e(window.title)}</h3>'
    if window.problem is not None:
        unknown = f'id="stats-{_e(window.key)}-unknown"'
        return f'{heading}<p class="muted" {unknown}>{_e(window.problem)}</p>'
    notes = "".join(f'<p class="muted">{_e(n)}</p>' for n in window.notes)
    if not window.rows:
        empty = f'<p class="muted" id="stats-{_e(window.key)}-empty">No executions ended.</p>'
        return f"{heading}{notes}{empty}"
    head = "".join(f"<th>{_e(c)}</th>" for c in _COLUMNS)
    rows = "".join(_row(window, row) for row in window.rows)
    return (
        f'{heading}{notes}<table id="stats-{_e(window.key)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def render_stats(windows: Sequence[StatsWindow]) -> str:
    return "".join(_window(w) for w in windows)
