"""Silences: label matchers with an expiry that mute notifications, never alert state.

A silence is what an on-call engineer sets during maintenance: alerts whose labels match keep
moving through pending/firing/resolved (so the dashboard and history stay true), but nothing is
sent for them until the silence expires. Matching follows Alertmanager: every matcher must hold,
regexes are fully anchored, and a missing label matches like the empty string.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

from paca_otel.alerting.state import SilenceRecord, StateStore
from paca_otel.errors import RuleError

OPS = ("=", "!=", "=~", "!~")

#: Expired silences are kept this long (for the API's "recently expired" view), then deleted.
RETENTION = 24 * 3600.0


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(f"(?:{pattern})\\Z")


def matcher_holds(op: str, want: str, have: str) -> bool:
    """Whether one matcher (``op``, ``want``) accepts the label value ``have``."""
    if op == "=":
        return have == want
    if op == "!=":
        return have != want
    hit = _regex(want).match(have) is not None
    return hit if op == "=~" else not hit


def normalise_matchers(
    matchers: Mapping[str, str] | Sequence[object],
) -> tuple[tuple[str, str, str], ...]:
    """Turn ``{"route": "/x"}`` or store ``Matcher`` objects into validated triples.

    Raises:
        RuleError: an operator is unknown, a regex does not compile, or there are no matchers
            (a silence that matches everything is almost always a mistake).
    """
    triples: list[tuple[str, str, str]] = []
    if isinstance(matchers, Mapping):
        triples = [(str(k), "=", str(v)) for k, v in matchers.items()]
    else:
        for m in matchers:
            name, op, value = (
                getattr(m, "name", None),
                getattr(m, "op", None),
                getattr(m, "value", None),
            )
            if name is None or op is None or value is None:
                msg = f"silence matcher {m!r} is not a Matcher(name, op, value) or mapping item"
                raise RuleError(msg)
            triples.append((str(name), str(op), str(value)))
    if not triples:
        msg = "a silence needs at least one matcher; an empty silence would mute every alert"
        raise RuleError(msg)
    for name, op, value in triples:
        if op not in OPS:
            msg = f"silence matcher {name}{op}{value!r}: operator {op!r} is not one of {OPS}"
            raise RuleError(msg)
        if op in ("=~", "!~"):
            try:
                _regex(value)
            except re.error as exc:
                msg = f"silence matcher {name}{op}{value!r}: invalid regex ({exc})"
                raise RuleError(msg) from exc
    return tuple(triples)


class Silences:
    """The active set of silences, persisted through a :class:`StateStore`.

    Reads (``is_silenced``) happen once per notified alert on the engine thread; writes come from
    API threads. A lock guards the list; the list is small (tens), so a scan is fine.
    """

    def __init__(self, state: StateStore, clock: Callable[[], float]) -> None:
        self._state = state
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[str, SilenceRecord] = {s.id: s for s in state.load_silences()}

    def add(
        self,
        matchers: Mapping[str, str] | Sequence[object],
        *,
        duration: float | None = None,
        until: float | None = None,
        comment: str = "",
        created_by: str = "",
        now: float | None = None,
    ) -> str:
        """Create a silence from now for ``duration`` seconds or until ``until``; return its id.

        Raises:
            RuleError: bad matchers, neither or both of ``duration``/``until``, or an end that
                is not in the future.
        """
        triples = normalise_matchers(matchers)
        start = self._clock() if now is None else now
        if (duration is None) == (until is None):
            msg = "silence needs exactly one of duration= (seconds) or until= (Unix time)"
            raise RuleError(msg)
        if duration is not None:
            end = start + float(duration)
        else:
            assert until is not None  # checked above: exactly one of the two is set
            end = float(until)
        if not end > start:
            msg = f"silence end {end!r} must be after its start {start!r} (duration > 0)"
            raise RuleError(msg)
        record = SilenceRecord(
            id=uuid.uuid4().hex,
            matchers=triples,
            starts_at=start,
            ends_at=end,
            comment=comment,
            created_by=created_by,
        )
        with self._lock:
            self._items[record.id] = record
        self._state.save_silence(record)
        return record.id

    def expire(self, silence_id: str, *, now: float | None = None) -> None:
        """End a silence now (kept, expired, for the record).

        Raises:
            RuleError: no silence has that id.
        """
        at = self._clock() if now is None else now
        with self._lock:
            record = self._items.get(silence_id)
            if record is None:
                msg = f"no silence with id {silence_id!r}; known ids: {sorted(self._items)[:10]}"
                raise RuleError(msg)
            if record.ends_at <= at:
                return
            record = SilenceRecord(
                id=record.id,
                matchers=record.matchers,
                starts_at=record.starts_at,
                ends_at=at,
                comment=record.comment,
                created_by=record.created_by,
            )
            self._items[silence_id] = record
        self._state.save_silence(record)

    def active(self, now: float) -> list[SilenceRecord]:
        """Silences in force at ``now``."""
        with self._lock:
            return [s for s in self._items.values() if s.starts_at <= now < s.ends_at]

    def all(self) -> list[SilenceRecord]:
        """Every known silence, expired ones included, oldest first."""
        with self._lock:
            return sorted(self._items.values(), key=lambda s: s.starts_at)

    def matching(self, labels: Mapping[str, str], now: float) -> SilenceRecord | None:
        """The first silence in force at ``now`` that matches ``labels``, else ``None``."""
        for silence in self.active(now):
            if all(matcher_holds(op, v, labels.get(n, "")) for n, op, v in silence.matchers):
                return silence
        return None

    def gc(self, now: float) -> None:
        """Delete silences expired for longer than :data:`RETENTION`."""
        with self._lock:
            old = [i for i, s in self._items.items() if s.ends_at + RETENTION < now]
            for i in old:
                del self._items[i]
        self._state.delete_silences(old)
