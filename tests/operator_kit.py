"""Signing in to the status page over HTTP and reading its forms, for the tests of
`relay.http.signin` and `relay.http.status_actions`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx

from relay.domain.alerts import Alert
from tests.http_rig import ADMIN_TOKEN, HttpRig, commit_alerts, make_alert

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


async def an_alert(rig: HttpRig, n: int = 1) -> str:
    alert = labelled_alert(n, rig=rig)
    await commit_alerts(rig.store, [alert], at=rig.clock())
    return alert.id


async def post(rig: HttpRig, path: str, operator: Operator | None, **data: str) -> httpx.Response:
    headers = dict(SAME_ORIGIN)
    if operator is not None:
        headers |= operator.headers
        data.setdefault("csrf", operator.csrf)
    return await rig.client.post(path, data=data, headers=headers)


def labelled_alert(n: int, *, rig: HttpRig, summary: str | None = None) -> Alert:
    """The rig's alert with the `responder_id` label the daemon gives every execution
    alert (`relay.domain.render_text`), which a silence from a page matches."""
    alert = make_alert(n, at=rig.clock(), summary=summary)
    assert alert.execution is not None
    labels = {**alert.labels, "responder_id": alert.execution.responder_id}
    return dataclasses.replace(alert, labels=labels)


@dataclass
class Form:
    action: str
    id: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value)


class FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.texts: list[str] = []
        self._open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method") == "post":
            self._open = Form(action=a.get("action", ""), id=a.get("id", ""))
            self.forms.append(self._open)
        elif self._open is not None and tag == "input" and a.get("name"):
            self._open.fields[a["name"]] = a.get("value", "")
        elif self._open is not None and tag == "button":
            self._open.buttons.append((a.get("name", ""), a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def forms(html: str) -> list[Form]:
    parser = FormParser()
    parser.feed(html)
    return parser.forms


def form_to(html: str, action: str) -> Form:
    found = [f for f in forms(html) if f.action == action]
    assert found, f"no form posting to {action}"
    return found[0]


@dataclass
class Operator:
    """A signed-in browser: its cookie header and the CSRF token its pages carry."""

    cookie: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie}


async def sign_in(rig: HttpRig, *, token: str = ADMIN_TOKEN) -> Operator:
    response = await rig.client.post("/signin", data={"token": token, "next": "/"})
    assert response.status_code == 303, response.text
    rig.client.cookies.clear()  # the tests send the cookie themselves
    set_cookie = response.headers["Set-Cookie"]
    cookie = set_cookie.split(";", 1)[0]
    page = await rig.client.get("/", headers={"Cookie": cookie})
    csrf = form_to(page.text, "/signout").fields["csrf"]
    return Operator(cookie=cookie, csrf=csrf)
