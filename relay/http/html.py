"""The HTML pieces every server-rendered page shares (the status page, an alert's page,
the sign-in page): escaping, times, links, badges, tables and the style sheet.

Invariants:
- Pure: text in, text out.
- `esc` is the one escape (`html.escape` with quotes) for every value that came from
  outside; `safe_link` gives a URL back only when it is http(s), so no value becomes a
  `javascript:` link.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote, urlsplit

from relay.durations import utc_iso

__all__ = ["STYLE", "alert_path", "badge", "esc", "safe_link", "table", "time_html"]

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem;color:#1d2125}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;
border-bottom:1px solid #e3e6ea;vertical-align:top}th{background:#f4f5f7;font-weight:600}
.muted{color:#6b7280}.problem{background:#fdecea;border:1px solid #f5c2c0;padding:.5rem .8rem}
.badge{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.85em;
font-weight:600}.ok,.resolved,.sending{background:#e3f4e8;color:#1b6b34}
.starting,.info{background:#e8eefc;color:#2b4c9a}
.stale,.warning,.silenced,.quiet{background:#fff4dc;color:#8a5a00}
.failing,.unauthorized,.critical,.firing{background:#fdecea;color:#a12622}
.dead{color:#a12622;font-weight:600}code{font-size:.95em}
h3{font-size:1rem;margin:1rem 0 .3rem}tr.total td{background:#fafbfc}
.flash{background:#e3f4e8;border:1px solid #b7e0c2;padding:.5rem .8rem}
#operator,#alert-actions{margin:.6rem 0}form.act{display:inline;margin:0 .3rem 0 0}
form.act input[type=text]{width:5rem}
"""


def alert_path(alert_id: str) -> str:
    """The path of an alert's page, `/alerts/{id}`, its id quoted whatever it holds."""
    return f"/alerts/{quote(alert_id, safe='')}"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def time_html(moment: datetime | None) -> str:
    if moment is None:
        return '<span class="muted">never</span>'
    text = utc_iso(moment, timespec="seconds", sep=" ")
    return f'<time datetime="{esc(utc_iso(moment))}">{esc(text)}</time>'


def safe_link(url: str | None) -> str | None:
    if not url:
        return None
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


def badge(value: str) -> str:
    return f'<span class="badge {esc(value)}">{esc(value)}</span>'


def table(table_id: str, headers: Sequence[str], rows: Sequence[str]) -> str:
    head = "".join(f"<th>{esc(header)}</th>" for header in headers)
    return (
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
