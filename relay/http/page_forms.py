"""The forms of the status page and an alert's page: sign in and out, silence,
acknowledge, expire, replay dead letters; and the flash line an action leaves.

Invariants:
- Pure: text in, text out; every value goes through `relay.http.html.esc`.
- A form is rendered only for a signed-in operator (`csrf` given) and carries the
  session's CSRF token in a hidden `csrf` field; signed out, an action is a muted
  "sign in to act" line instead. Plain `<form method="post">`: no JavaScript.
- A flash line is one of `FLASHES`, chosen by a code in the query (`?flash=silenced`):
  nothing from the query is ever shown, so a crafted link cannot put words in the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from relay.http.html import alert_path, esc, table, time_html
from relay.http.session import CSRF_FIELD

__all__ = [
    "FLASHES",
    "DeadLetterRow",
    "alert_actions",
    "dead_letters_section",
    "expire_form",
    "flash_line",
    "operator_bar",
    "replay_all_form",
    "signin_page",
]

FLASHES: dict[str, str] = {
    "signed_in": "Signed in.",
    "signed_out": "Signed out.",
    "silenced": "Silence created; the status page lists it under Active silences.",
    "bad_duration": "Not silenced: give a duration like 90m, 2h or 3d.",
    "acknowledged": "Alert acknowledged.",
    "already_acknowledged": "The alert was already acknowledged; the first acknowledgement stays.",
    "expired": "Silence expired.",
    "already_ended": "That silence had already ended.",
    "config_silence": "That silence is in the configuration file; remove it there.",
    "unknown_silence": "No such silence.",
    "replayed": "Dead letters put back in the outbox.",
    "nothing_replayed": "No dead letter to replay.",
}


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    id: str
    sink: str
    kind: str
    alert_id: str
    summary: str
    attempts: int
    dead_at: datetime
    reason: str


def _csrf(csrf: str) -> str:
    return f'<input type="hidden" name="{CSRF_FIELD}" value="{esc(csrf)}">'


def _form(action: str, csrf: str, inner: str, *, form_id: str = "") -> str:
    ident = f' id="{esc(form_id)}"' if form_id else ""
    return (
        f'<form class="act" method="post" action="{esc(action)}"{ident}>{_csrf(csrf)}{inner}</form>'
    )


def _button(label: str, *, name: str = "", value: str = "") -> str:
    named = f' name="{esc(name)}" value="{esc(value)}"' if name else ""
    return f'<button type="submit"{named}>{esc(label)}</button>'


_SIGN_IN_TO_ACT = '<span class="muted signin-to-act">sign in to act</span>'


def flash_line(code: str | None) -> str:
    text = FLASHES.get(code or "")
    return f'<p class="flash" id="flash" role="status">{esc(text)}</p>' if text else ""


def operator_bar(*, csrf: str | None, signin_enabled: bool, here: str = "/") -> str:
    """Who is acting: a sign-out button, or a link to sign in (when it is possible)."""
    if csrf is not None:
        return (
            # A div: a form may not sit inside a paragraph.
            '<div id="operator">Signed in as operator &middot; '
            f"{_form('/signout', csrf, _button('Sign out'), form_id='signout')}</div>"
        )
    if not signin_enabled:
        return ""
    return (
        f'<p id="operator"><a id="signin-link" href="/signin?next={esc(quote(here, safe="/"))}">'
        "Sign in</a> with the admin token to silence, acknowledge and replay.</p>"
    )


def alert_actions(alert_id: str, *, csrf: str | None, acknowledged: bool) -> str:
    """Silence (1h, 24h, custom) and acknowledge, on an alert's page."""
    if csrf is None:
        return f'<p id="alert-actions">{_SIGN_IN_TO_ACT}</p>'
    base = alert_path(alert_id)
    quick = _form(
        f"{base}/silence",
        csrf,
        _button("Silence 1h", name="duration", value="1h")
        + _button("Silence 24h", name="duration", value="24h"),
        form_id="silence-quick",
    )
    # Its own form, so Enter in the text box submits this one, not "Silence 1h".
    custom = _form(
        f"{base}/silence",
        csrf,
        '<input type="hidden" name="duration" value="custom">'
        '<label>for <input type="text" name="custom" id="silence-custom" placeholder="90m"'
        ' maxlength="12" required></label>'
        ' <input type="text" name="comment" placeholder="comment" maxlength="1000">'
        + _button("Silence"),
        form_id="silence-custom-form",
    )
    ack = (
        '<span class="muted">acknowledged</span>'
        if acknowledged
        else _form(f"{base}/ack", csrf, _button("Acknowledge"), form_id="ack-form")
    )
    return f'<div id="alert-actions">{quick} {custom} {ack}</div>'


def expire_form(silence_id: str, *, origin: str, csrf: str | None) -> str:
    """The cell of a silence's row: expire it (only stored ones can be)."""
    if origin == "config":
        return '<span class="muted">in the config file</span>'
    if csrf is None:
        return _SIGN_IN_TO_ACT
    return _form(f"/silences/{quote(silence_id, safe='')}/expire", csrf, _button("Expire"))


def replay_all_form(sink: str, *, dead: int | None, csrf: str | None) -> str:
    if not dead:
        return ""
    if csrf is None:
        return _SIGN_IN_TO_ACT
    inner = f'<input type="hidden" name="sink" value="{esc(sink)}">' + _button("Replay all")
    return _form("/deliveries/replay", csrf, inner)


def dead_letters_section(rows: Sequence[DeadLetterRow], *, csrf: str | None) -> str:
    if not rows:
        return '<p class="muted" id="dead-letters-empty">No dead letters.</p>'
    body = []
    for d in rows:
        if csrf is None:
            action = _SIGN_IN_TO_ACT
        else:
            inner = (
                f'<input type="hidden" name="sink" value="{esc(d.sink)}">'
                f'<input type="hidden" name="id" value="{esc(d.id)}">' + _button("Replay")
            )
            action = _form("/deliveries/replay", csrf, inner)
        body.append(
            f'<tr data-dead-letter="{esc(d.id)}" data-sink="{esc(d.sink)}">'
            f"<td>{time_html(d.dead_at)}</td><td><strong>{esc(d.sink)}</strong></td>"
            f"<td>{esc(d.kind)}</td>"
            f'<td><a href="{esc(alert_path(d.alert_id))}">{esc(d.summary)}</a></td>'
            f"<td>{d.attempts}</td><td>{esc(d.reason)}</td><td>{action}</td></tr>"
        )
    columns = ("Dead at", "Sink", "Kind", "Alert", "Attempts", "Reason", "")
    return table("dead-letters", columns, body)


def signin_page(*, style: str, message: str | None, next_path: str, enabled: bool) -> str:
    """The sign-in form: the admin token, posted to `/signin`."""
    problem = f'<p class="problem" id="signin-problem">{esc(message)}</p>' if message else ""
    if enabled:
        form = (
            '<form method="post" action="/signin" id="signin-form">'
            f'<input type="hidden" name="next" value="{esc(next_path)}">'
            '<p><label>Admin token <input type="password" name="token" id="token"'
            ' autocomplete="current-password" required></label></p>'
            '<p><button type="submit">Sign in</button></p></form>'
        )
    else:
        form = (
            '<p class="problem" id="signin-disabled">Signing in is disabled: no admin '
            "token is configured (server.admin_token).</p>"
        )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - zaia-relay</title>
<style>{style}</style>
</head>
<body>
<p><a href="/">&larr; status</a></p>
<h1>Sign in</h1>
<p class="muted">With the admin token (server.admin_token) you can silence and
acknowledge alerts, expire silences and replay dead letters from these pages.</p>
{problem}
{form}
</body>
</html>
"""
