"""Runtime silences in the store: add, read, list, expire, prune; regex matchers, and
rows written in the old map form."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from relay.domain.silences import Silence
from relay.matchers import Matcher, parse_matcher
from relay.store import Store
from tests import store_backends
from tests.store_backends import Backend
from tests.test_store_sqlite import T0

# Every test taking `store` runs on SQLite and on PostgreSQL.
backend, store = store_backends.backend, store_backends.store


def make_silence(
    silence_id: str,
    *,
    starts_in: timedelta = timedelta(0),
    lasts: timedelta = timedelta(hours=1),
    **fields: object,
) -> Silence:
    base = Silence(
        id=silence_id,
        matchers=(
            Matcher.equal("rule", "execution-failed"),
            Matcher.equal("responder_id", "resp-1"),
        ),
        starts_at=T0 + starts_in,
        ends_at=T0 + starts_in + lasts,
        creator="ops@example.com",
        comment="deploying — ünïcødé",
        created_at=T0 - timedelta(minutes=1),
    )
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


async def test_silences_round_trip(store: Store) -> None:
    silence = make_silence("sil_1", expired_at=T0 + timedelta(minutes=5), origin="config")

    assert await store.add_silence(silence) is True
    assert await store.get_silence("sil_1") == silence
    assert await store.get_silence("sil_unknown") is None
    # The same id again changes nothing.
    assert await store.add_silence(dataclasses.replace(silence, comment="other")) is False
    assert await store.get_silence("sil_1") == silence


async def test_list_shows_active_and_pending_silences(store: Store) -> None:
    active = make_silence("sil_active")
    pending = make_silence("sil_pending", starts_in=timedelta(hours=2))
    ended = make_silence("sil_ended", starts_in=-timedelta(hours=2))
    expired = make_silence("sil_expired", expired_at=T0 - timedelta(seconds=1))
    expiring = make_silence("sil_expiring", expired_at=T0 + timedelta(minutes=10))
    for silence in (pending, ended, expired, active, expiring):
        await store.add_silence(silence)

    live = await store.list_silences(now=T0)

    assert [s.id for s in live] == ["sil_active", "sil_expiring", "sil_pending"]
    every = await store.list_silences(now=T0, include_expired=True)
    assert [s.id for s in every] == [
        "sil_ended", "sil_active", "sil_expired", "sil_expiring", "sil_pending",
    ]  # fmt: skip
    # An hour later, the active one has ended by itself.
    later = await store.list_silences(now=T0 + timedelta(hours=1))
    assert [s.id for s in later] == ["sil_pending"]


async def test_expire(store: Store) -> None:
    silence = make_silence("sil_1")
    await store.add_silence(silence)
    at = T0 + timedelta(minutes=3)

    assert await store.expire_silence("sil_1", now=at) is True

    assert await store.get_silence("sil_1") == dataclasses.replace(silence, expired_at=at)
    assert await store.list_silences(now=at) == []
    assert await store.expire_silence("sil_1", now=at + timedelta(minutes=1)) is False
    assert await store.expire_silence("sil_unknown", now=at) is False
    # A silence that already ended cannot be expired any more.
    ended = make_silence("sil_ended", starts_in=-timedelta(hours=2))
    await store.add_silence(ended)
    assert await store.expire_silence("sil_ended", now=T0) is False
    # A pending one can: it will then never start.
    pending = make_silence("sil_pending", starts_in=timedelta(hours=2))
    await store.add_silence(pending)
    assert await store.expire_silence("sil_pending", now=T0) is True
    assert await store.list_silences(now=T0 + timedelta(hours=2, minutes=1)) == []


async def test_prune_deletes_silences_that_ended_long_ago(store: Store) -> None:
    old_end = make_silence("sil_old", starts_in=-timedelta(days=10))
    old_expiry = make_silence(
        "sil_expired", lasts=timedelta(days=30), expired_at=T0 + timedelta(minutes=1)
    )
    current = make_silence("sil_current", lasts=timedelta(days=30))
    for silence in (old_end, old_expiry, current):
        await store.add_silence(silence)

    result = await store.prune(before=T0 + timedelta(days=7))

    assert result.silences_deleted == 2
    every = await store.list_silences(now=T0, include_expired=True)
    assert [s.id for s in every] == ["sil_current"]


async def test_a_regex_silence_round_trips(store: Store, backend: Backend) -> None:
    matchers = tuple(
        parse_matcher(text)
        for text in ('team=~"pay.*|db"', 'source!="staging"', 'agent_id!~"bot-\\\\d+"', 'x="a\\"b"')
    )
    silence = make_silence("sil_regex", matchers=matchers)
    assert await store.add_silence(silence) is True
    [listed] = await store.list_silences(now=T0)
    assert listed == silence
    assert [str(m) for m in listed.matchers] == [str(m) for m in matchers]
    assert listed.matches({"team": "payments", "source": "prod", "x": 'a"b'})
    assert not listed.matches({"team": "repay", "source": "prod", "x": 'a"b'})  # anchored
    again = backend.new_store()
    async with again:
        assert await again.get_silence("sil_regex") == silence


async def test_a_silence_stored_in_the_old_map_form_still_loads(
    store: Store, backend: Backend
) -> None:
    """Rows written before matchers had operators hold a `{name: value}` map."""
    await backend.execute(
        "INSERT INTO silences (id, matchers, starts_at, ends_at, creator, comment, "
        "created_at, expired_at, origin) VALUES ('sil_old', "
        """'{"severity":"critical","rule":"execution-failed"}', """
        "'2026-03-01T11:00:00.000000Z', '2026-03-01T13:00:00.000000Z', 'ops', 'old', "
        "'2026-03-01T11:00:00.000000Z', NULL, 'api')"
    )
    [old] = await store.list_silences(now=T0)
    assert old.id == "sil_old"
    assert old.matchers == (
        Matcher.equal("severity", "critical"),
        Matcher.equal("rule", "execution-failed"),
    )
    assert (old.starts_at, old.ends_at) == (T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert old.matches({"rule": "execution-failed", "severity": "critical", "team": "x"})
    assert not old.matches({"rule": "execution-failed", "severity": "warning"})
    assert await store.expire_silence("sil_old", now=T0) is True


async def test_equality_silences_keep_the_old_map_form_for_older_replicas(
    store: Store, backend: Backend
) -> None:
    """A replica not yet upgraded reads `{name: value}`; only silences it could not
    apply anyway (`!=`, `=~`, `!~`, a name twice) are written as matcher strings."""
    await store.add_silence(make_silence("sil_eq"))
    regex = (parse_matcher('team=~"pay.*"'), Matcher.equal("rule", "x"))
    await store.add_silence(make_silence("sil_re", matchers=regex))
    rows = dict(await backend.rows("SELECT id, matchers FROM silences ORDER BY id"))
    assert json.loads(rows["sil_eq"]) == {"rule": "execution-failed", "responder_id": "resp-1"}
    assert json.loads(rows["sil_re"]) == ['team=~"pay.*"', 'rule="x"']
