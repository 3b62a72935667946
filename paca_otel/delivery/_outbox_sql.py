"""The outbox's SQL: its schema steps and the queries that claim rows for one worker.

Apart from ``_outbox.py`` (which runs them) so the claim logic reads in one place: what makes
a row free, and why a row is claimable only together with the earlier rows of its group.
Status values are written as literals (``'pending'``) so SQLite can use the partial indexes.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ANY_FREE", "CLAIMABLE", "COLUMNS", "MAX_CLAIM_BATCH", "MIGRATIONS", "marks"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    group_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    enqueued_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    deadline REAL,
    last_error TEXT,
    finished_at REAL,
    resend_at REAL,
    UNIQUE (channel, idempotency_key)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (channel, status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_group ON outbox (channel, group_key);
CREATE INDEX IF NOT EXISTS outbox_resend ON outbox (channel, resend_at) WHERE resend_at IS NOT NULL
"""

# Version 2: claims. ``claim_owner`` is the worker holding a pending row (or that finished a
# delivered or dead one: who sent it); ``claim_expires`` is when a pending row's claim lapses
# (NULL: not claimed). Rows of older files have neither: unclaimed, as they should be. The
# partial indexes (pending rows only, so small) let a claim walk a channel's queue in order
# and stop after its batch, and check each row's earlier pending rows of the same group;
# without the first, every claim sorted all due rows (half the throughput, measured).
_CLAIMS = """
ALTER TABLE outbox ADD COLUMN claim_owner TEXT;
ALTER TABLE outbox ADD COLUMN claim_expires REAL;
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (channel, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_pending_group ON outbox (channel, group_key, id)
    WHERE status = 'pending'
"""

#: Schema steps of the ``outbox`` component (see ``Database.migrate``).
MIGRATIONS: tuple[str, ...] = (_SCHEMA, _CLAIMS)

COLUMNS = (
    "id, channel, idempotency_key, group_key, payload, status, attempts, enqueued_at, "
    "next_attempt_at, deadline, last_error, finished_at, claim_owner, claim_expires"
)

#: Most rows one claim, renewal or release names (SQLite's oldest bound-parameter limit is 999).
MAX_CLAIM_BATCH = 500

# Whether a row ``{t}`` is free for :owner at :now: never claimed, its claim lapsed, or it is
# the caller's own (a claim left behind by a failed write; one pass at a time per worker).
_FREE = "({t}.claim_expires IS NULL OR {t}.claim_expires <= :now OR {t}.claim_owner = :owner)"

# Whether any due row after ?(after_id) may be free for the claimer (groups not checked).
ANY_FREE = (
    "SELECT 1 FROM outbox WHERE channel = ? AND status = 'pending' AND id > ?"
    " AND next_attempt_at <= ? AND (claim_expires IS NULL OR claim_expires <= ?"
    " OR claim_owner = ?) LIMIT 1"
)

# Due rows of a channel the caller may claim, oldest first: free, and every earlier pending
# row of the same group is itself in this claim (after :after_id, due and free). The literal
# 'pending' lets SQLite use the partial index outbox_pending_group.
CLAIMABLE = f"""
SELECT o.id FROM outbox AS o
WHERE o.channel = :channel AND o.status = 'pending' AND o.id > :after_id
  AND o.next_attempt_at <= :now AND {_FREE.format(t="o")}
  AND NOT EXISTS (
    SELECT 1 FROM outbox AS p
    WHERE p.channel = o.channel AND p.group_key = o.group_key AND p.status = 'pending'
      AND p.id < o.id
      AND NOT (p.id > :after_id AND p.next_attempt_at <= :now AND {_FREE.format(t="p")}))
ORDER BY o.id LIMIT :limit
"""


def marks(ids: Sequence[int]) -> str:
    """``?, ?, ...`` for an ``IN (...)`` of ``ids`` (at most :data:`MAX_CLAIM_BATCH`)."""
    if len(ids) > MAX_CLAIM_BATCH:
        msg = f"{len(ids)} ids in one claim operation; at most {MAX_CLAIM_BATCH}"
        raise ValueError(msg)
    return ", ".join("?" * len(ids))
