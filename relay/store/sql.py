"""The statements both backends run, written once with named markers (`:source`) that
each dialect renders into its own placeholders (see `relay.store.backend`).

Invariants:
- A column has the name of the record field it holds (`relay.store.rows` relies on it);
  the column lists here are those of both schemas (`relay.store.sqlite.migrations`,
  `relay.store.postgres.schema`).
- Only standard SQL that SQLite and PostgreSQL read alike: booleans are tested bare
  (`windowed`, `NOT firing`: SQLite's 0/1 read as truth values), upserts are
  `ON CONFLICT ... DO UPDATE SET c = excluded.c`. What only one database can say
  (array binds, `FOR UPDATE SKIP LOCKED`, bulk `unnest`) lives in its package.
- A statement about a list of ids holds `{ids}` where the dialect's condition goes
  (`Dialect.any_of`: `id IN (...)` in SQLite, `id = ANY(...)` in PostgreSQL).
- Statuses the partial indexes name (`status = 'pending'`, `status <> 'running'`) are
  literals, never parameters, so that SQLite can match the statement to the index.
"""

from __future__ import annotations

from collections.abc import Sequence


def names(spaced: str) -> tuple[str, ...]:
    return tuple(spaced.split())


def column_list(columns: Sequence[str]) -> str:
    return ", ".join(columns)


def markers(columns: Sequence[str]) -> str:
    """`:a, :b`: one marker per column, named after it."""
    return ", ".join(f":{c}" for c in columns)


def insert(table: str, columns: Sequence[str]) -> str:
    """Insert one row, its values by column name."""
    return f"INSERT INTO {table} ({column_list(columns)}) VALUES ({markers(columns)})"


def _upsert(table: str, columns: Sequence[str], *, key: int, keep: Sequence[str] = ()) -> str:
    """Insert a row, or update the one whose first `key` columns it shares (the columns
    in `keep` stay as they were)."""
    changed = [c for c in columns[key:] if c not in keep]
    return (
        f"{insert(table, columns)} ON CONFLICT ({column_list(columns[:key])}) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in changed)
    )


PING = "SELECT count(*) FROM schema_migrations"
# A write that changes nothing anyone reads, yet writes a row (and so needs the disk).
WRITE_PROBE = (
    "UPDATE schema_migrations SET name = name"
    " WHERE version = (SELECT max(version) FROM schema_migrations)"
)

# --- executions, transitions, cursors, message references ------------------------------

STATE_COLUMNS = names(
    "source id status credits_used kind responder_id parent_id agent_id workflow_id"
    " created_at updated_at started_at ended_at is_purged last_seen_at reported_statuses"
    " origin_type is_agentic"
)
STATE_SELECT = f"SELECT {column_list(STATE_COLUMNS)} FROM executions"
STATE_UPSERT = _upsert("executions", STATE_COLUMNS, key=2)
MARKERS_SELECT = "SELECT id, status, credits_used, updated_at, is_purged FROM executions"
RUNNING_STATES = (
    f"{STATE_SELECT} WHERE source = :source AND status = 'running' ORDER BY last_seen_at, id"
)
ENDED_STATES = (
    f"{STATE_SELECT} WHERE source = :source AND ended_at >= :since AND status <> 'running' "
    "ORDER BY ended_at, id"
)

TRANSITION_COLUMNS = names(
    "key source execution_id kind from_status to_status credits_before credits_after"
    " observed_at alertable snapshot"
)
TRANSITION_SELECT = f"SELECT {column_list(TRANSITION_COLUMNS)} FROM transitions"
# A known key is ignored, never updated: the first observation of a change is the one
# that was (or will be) alerted on.
TRANSITION_INSERT = f"{insert('transitions', TRANSITION_COLUMNS)} ON CONFLICT (key) DO NOTHING"
TRANSITIONS_NEWEST_FIRST = "ORDER BY observed_at DESC, seq DESC LIMIT :limit"

CURSOR_COLUMNS = names("source first_poll_done last_success_at")
CURSOR_SELECT = f"SELECT {column_list(CURSOR_COLUMNS)} FROM source_cursors WHERE source = :source"
CURSOR_UPSERT = _upsert("source_cursors", CURSOR_COLUMNS, key=1)

MESSAGE_REF_COLUMNS = names("sink alert_id channel ts single created_at")
MESSAGE_REF_SELECT = (
    "SELECT channel, ts, single FROM message_refs WHERE sink = :sink AND alert_id = :alert_id"
)
# A replaced reference keeps its `created_at`: it is pruned by the age of the first one.
MESSAGE_REF_UPSERT = _upsert("message_refs", MESSAGE_REF_COLUMNS, key=2, keep=["created_at"])

# --- alerts ----------------------------------------------------------------------------

ALERT_COLUMNS = names("id source rule state windowed created_at updated_at body")
ALERT_SELECT = (
    "SELECT id, created_at, updated_at, body, acked_by, acked_at, ack_comment FROM alerts"
)
# The first acknowledgement stays: a second one (a retried click) changes nothing.
ACKNOWLEDGE_ALERT = (
    "UPDATE alerts SET acked_by = :by, acked_at = :at, ack_comment = :comment "
    "WHERE id = :id AND acked_at IS NULL"
)
ACKNOWLEDGED_AMONG = "SELECT id FROM alerts WHERE acked_at IS NOT NULL AND "
ALERTS_NEWEST_FIRST = "ORDER BY created_at DESC, id DESC LIMIT :limit"
DELIVERIES_SELECT = (
    "SELECT alert_id, id, sink, kind, status, attempts, last_error, delivered_at, dead_at "
    "FROM outbox"
)

# --- the outbox ------------------------------------------------------------------------

OUTBOX_COLUMNS = names("id sink alert_id kind created_at next_attempt_at group_key body")
_DUE_COLUMNS = (
    "seq, next_attempt_at, attempts, enqueued_at, last_error, group_key, message_id, body"
)
# A notification waits while an earlier one about the same alert is still pending for
# the sink (being retried, say): a resolve never overtakes its firing.
_DUE_WHERE = (
    "WHERE sink = :sink AND status = 'pending' AND next_attempt_at <= :now "
    "AND NOT EXISTS (SELECT 1 FROM outbox AS earlier WHERE earlier.alert_id = outbox.alert_id "
    "AND earlier.sink = outbox.sink AND earlier.status = 'pending' AND earlier.seq < outbox.seq)"
)
# `{grouped}`: `grouped_filter`, to claim only a route group's rows (or only the others).
DUE_SELECT = (
    f"SELECT {_DUE_COLUMNS} FROM outbox {_DUE_WHERE}{{grouped}} "
    "ORDER BY next_attempt_at, seq LIMIT :limit"
)
# The rest of the groups a claim took some of (`{keys}`: the condition on `group_key`),
# so that a group's due notifications go out as one message whatever the claim's limit.
GROUP_DUE_SELECT = (
    f"SELECT {_DUE_COLUMNS} FROM outbox {_DUE_WHERE} AND {{keys}} "
    "ORDER BY next_attempt_at, seq LIMIT :limit"
)
# The other members of the stamped messages a claim took some of (`{messages}`: the
# condition on `message_id`), due or not, so that a message that was attempted is
# always claimed whole. Rows another claimer leased (`claimed`) are left to it.
MESSAGE_REST_SELECT = (
    f"SELECT {_DUE_COLUMNS} FROM outbox WHERE sink = :sink AND status = 'pending' "
    "AND NOT claimed AND {messages} ORDER BY next_attempt_at, seq LIMIT :limit"
)


def grouped_filter(grouped: bool | None) -> str:
    """The condition added to pick a route group's rows only (True), the ungrouped
    ones only (False), or every row (None)."""
    if grouped is None:
        return ""
    return f" AND group_key IS {'NOT ' if grouped else ''}NULL"


# What a grouped notification arriving needs to know of its group (`relay.domain.
# grouping.GroupFacts`): the due time of its message no attempt has started yet, and
# when its latest message was first attempted. `{lock}`: the dialect's row lock, so a
# claim cannot take the message being joined before the joining row is committed.
GROUP_PENDING = (
    "SELECT next_attempt_at FROM outbox WHERE sink = :sink AND group_key = :group_key "
    "AND status = 'pending' AND message_id IS NULL AND NOT claimed ORDER BY seq{lock}"
)
GROUP_LAST_MESSAGE = (
    "SELECT max(message_at) AS at FROM outbox WHERE sink = :sink AND group_key = :group_key "
    "AND message_id IS NOT NULL"
)
# A group's message is fixed at its first attempt: its rows carry its id from then on.
STAMP_MESSAGE = (
    "UPDATE outbox SET message_id = :message_id, message_at = :now "
    "WHERE sink = :sink AND {ids} AND status = 'pending' AND message_id IS NULL"
)
# Every settle clears `claimed` (set by a claim): a row still claimed is one whose
# claimer has not settled it, the lease `release_own_leases` hands back on SQLite.
# Delivered is final, but a dead row may still become delivered: a slow attempt
# succeeded after all.
MARK_DELIVERED = (
    "UPDATE outbox SET status = 'delivered', delivered_at = :now, dead_at = NULL, "
    "claimed = FALSE "
    "WHERE sink = :sink AND {ids} AND status <> 'delivered'"
)
MARK_SILENCED = (
    "UPDATE outbox SET status = 'silenced', delivered_at = :now, last_error = :reason, "
    "claimed = FALSE "
    "WHERE sink = :sink AND {ids} AND status = 'pending'"
)
MARK_RETRY = (
    "UPDATE outbox SET next_attempt_at = :next_attempt_at, last_error = :reason, "
    "claimed = FALSE "
    "WHERE sink = :sink AND id = :id AND status = 'pending'"
)
MARK_DEAD = (
    "UPDATE outbox SET status = 'dead', dead_at = :now, last_error = :reason, claimed = FALSE "
    "WHERE sink = :sink AND id = :id AND status = 'pending'"
)
DEAD_SELECT = "SELECT attempts, enqueued_at, dead_at, last_error, body FROM outbox"
DEAD_NEWEST_FIRST = "ORDER BY dead_at DESC, seq DESC LIMIT :limit"
# Replayed rows start over: due now, no attempts, and `max_age` counted from now, or
# they would go straight back to the dead letters.
REPLAY_DEAD = (
    "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = :now, "
    "enqueued_at = :now, dead_at = NULL, claimed = FALSE WHERE "
)
PURGE_DEAD = "DELETE FROM outbox WHERE "
# Before a replay: a dead member of a group message whose other members were delivered
# leaves that message, and goes in a new one. Under the old id a receiver that
# deduplicates by `webhook-id` would drop it as a message it already has.
UNSTAMP_STRAGGLERS = (
    "UPDATE outbox SET message_id = NULL, message_at = NULL WHERE message_id IS NOT NULL "
    "AND EXISTS (SELECT 1 FROM outbox AS sent WHERE sent.sink = outbox.sink "
    "AND sent.message_id = outbox.message_id AND sent.status = 'delivered') AND "
)
# Leases a previous process left (it died before settling them) are due now, and the
# attempt it did not finish is not counted. Retries scheduled by a settle are not claimed.
RELEASE_CLAIMS = (
    "UPDATE outbox SET next_attempt_at = :now, attempts = attempts - 1, claimed = FALSE "
    "WHERE status = 'pending' AND claimed"
)
NEXT_DUE = (
    "SELECT min(next_attempt_at) AS due FROM outbox WHERE sink = :sink AND status = 'pending'"
)
# One statement per status, each answered from its partial index.
# A reload that renames a sink's delivery targets (`url` <-> `urls`) moves what is owed.
RETARGET_SELECT = (
    "SELECT id, alert_id, kind, status, enqueued_at, next_attempt_at, attempts, last_error, "
    "dead_at, body, group_key FROM outbox WHERE sink = :sink AND status IN ('pending', 'dead') "
    "ORDER BY seq"
)
RETARGET_INSERT = (
    "INSERT INTO outbox (id, sink, alert_id, kind, status, enqueued_at, next_attempt_at, "
    "attempts, last_error, dead_at, body, group_key) VALUES (:id, :sink, :alert_id, :kind, "
    ":status, :enqueued_at, :next_attempt_at, :attempts, :last_error, :dead_at, :body, "
    ":group_key) ON CONFLICT (id, sink) DO NOTHING"
)
RETARGET_DELETE = "DELETE FROM outbox WHERE sink = :sink AND status IN ('pending', 'dead')"
COUNT_PENDING = "SELECT sink, count(*) AS n FROM outbox WHERE status = 'pending' GROUP BY sink"
COUNT_DEAD = "SELECT sink, count(*) AS n FROM outbox WHERE status = 'dead' GROUP BY sink"

# --- silences and group states ---------------------------------------------------------

SILENCE_COLUMNS = names(
    "id matchers starts_at ends_at creator comment created_at expired_at origin"
)
SILENCE_SELECT = f"SELECT {column_list(SILENCE_COLUMNS)} FROM silences"
SILENCE_INSERT = f"{insert('silences', SILENCE_COLUMNS)} ON CONFLICT (id) DO NOTHING"
# Active or pending: not expired by hand, not yet ended.
LIVE_SILENCES = (
    f"{SILENCE_SELECT} WHERE ends_at > :now AND (expired_at IS NULL OR expired_at > :now) "
    "ORDER BY starts_at, id"
)
ALL_SILENCES = f"{SILENCE_SELECT} ORDER BY starts_at, id"
EXPIRE_SILENCE = (
    "UPDATE silences SET expired_at = :now "
    "WHERE id = :id AND ends_at > :now AND (expired_at IS NULL OR expired_at > :now)"
)

GROUP_COLUMNS = names(
    "source rule group_key group_labels firing episode fired_at last_notified_at"
    " reminders_sent value resolved_at updated_at"
)
GROUP_SELECT = f"SELECT {column_list(GROUP_COLUMNS)} FROM group_states WHERE source = :source"
GROUP_UPSERT = _upsert("group_states", GROUP_COLUMNS, key=3)

# --- pruning ---------------------------------------------------------------------------

# The expression and the status test match the partial index `executions_prunable`
# word for word, so SQLite can use it.
PRUNE_STATES = (
    "DELETE FROM executions WHERE status <> 'running' "
    "AND coalesce(ended_at, last_seen_at) < :before"
)
PRUNE_TRANSITIONS = "DELETE FROM transitions WHERE observed_at < :before"
PRUNE_DELIVERED = (
    "DELETE FROM outbox WHERE status IN ('delivered', 'silenced') AND delivered_at < :before"
)
# Windowed alerts still firing are kept, and so is any alert a sink may still receive
# (pending) or an operator may replay (dead).
PRUNE_ALERTS = (
    "DELETE FROM alerts WHERE updated_at < :before AND NOT (windowed AND state = 'firing') "
    "AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.alert_id = alerts.id "
    "AND outbox.status IN ('pending', 'dead'))"
)
# A silence is over at its end or when expired by hand, whichever came first.
PRUNE_SILENCES = "DELETE FROM silences WHERE ends_at < :before OR expired_at < :before"
# A group that fired keeps its row: a new row would start again at episode 0 and reuse
# the alert ids of episodes that may still be stored (or dead letters to replay).
PRUNE_GROUPS = "DELETE FROM group_states WHERE NOT firing AND episode = 0 AND updated_at < :before"
PRUNE_MESSAGE_REFS = "DELETE FROM message_refs WHERE created_at < :before"
