"""What mutes notifications while alert state moves on: silences and the flap detector.

A silence is what an on-call engineer sets during maintenance: alerts whose labels match keep
moving through pending/firing/resolved (so the dashboard and history stay true), but nothing is
sent for them until the silence expires. Matching follows Alertmanager: every matcher must hold,
regexes are fully anchored, and a missing label matches like the empty string.

The flap detector is the automatic counterpart: an alert that fires and resolves more than
``threshold`` times within ``window`` seconds is muted after one summary notification, until a
whole window passes without a change (Nagios' flap detection, simplified). Its entries are
alert state like the alert rows: the detector tracks which ones changed, the engine's write-back
stores them in the state file (``_writeback.py``), and an engine that starts or takes over as
leader loads them (``_sharing.py``). Without that, a restart (gunicorn ``--max-requests``
recycles the leader routinely) would forget a flapping alert: a new storm, and never the
"stopped flapping" announcement.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from paca_otel._labelregex import LabelRegex, RegexSyntaxError, compile_label_regex, regex_fullmatch
from paca_otel.alerting._state import SilenceRecord, StateStore
from paca_otel.errors import RuleError
from paca_otel.rules._models import AlertEvent

OPS = ("=", "!=", "=~", "!~")

#: Expired silences are kept this long (for the API's "recently expired" view), then deleted.
RETENTION = 24 * 3600.0


def _regex(pattern: str) -> LabelRegex:
    """RE2, anchored, cached: linear time whatever the pattern (see paca_otel._labelregex)."""
    return compile_label_regex(pattern)


def matcher_holds(op: str, want: str, have: str) -> bool:
    """Whether one matcher (``op``, ``want``) accepts the label value ``have``."""
    if op == "=":
        return have == want
    if op == "!=":
        return have != want
    hit = regex_fullmatch(_regex(want), have)
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
            except RegexSyntaxError as exc:
                msg = f"silence matcher {name}{op}{value!r}: invalid regex ({exc})"
                raise RuleError(msg) from exc
    return tuple(triples)


class Silences:
    """The active set of silences, persisted through a :class:`StateStore`.

    Reads (``is_silenced``) happen once per notified alert on the engine thread; writes come from
    API threads and the event loop. A lock guards the list; the list is small (tens), so a scan
    is fine. Adding or expiring one changes memory at once and queues the SQLite write on the
    storage writer thread, so a caller on the event loop never waits on the file.

    Workers sharing a state file see each other's silences through :meth:`reload`; a silence
    whose write is still queued stays as this process made it.
    """

    def __init__(self, state: StateStore, clock: Callable[[], float]) -> None:
        self._state = state
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[str, SilenceRecord] = {s.id: s for s in state.load_silences()}
        self._unsaved: dict[str, SilenceRecord] = {}  # queued (or failed) writes, by id
        self._failed: set[str] = set()  # ids whose write failed: queued again on reload

    def _put(self, record: SilenceRecord) -> None:
        """Keep ``record`` in memory now and store it on the writer thread (not on the caller's).

        Until the write lands, :meth:`reload` keeps ``record`` as it is here.
        """
        with self._lock:
            self._items[record.id] = record
            self._unsaved[record.id] = record
        self._save(record)

    def _save(self, record: SilenceRecord) -> None:
        def saved(stored: bool) -> None:
            with self._lock:
                if self._unsaved.get(record.id) is not record:
                    return  # changed again meanwhile: that write is the one that counts
                if stored:
                    del self._unsaved[record.id]
                else:
                    self._failed.add(record.id)

        self._state.save_silence_later(record, saved)

    def retry(self) -> None:
        """Queue again the writes that failed (the file was busy for longer than its budget)."""
        if not self._failed:
            return
        with self._lock:
            failed = [self._unsaved[i] for i in self._failed if i in self._unsaved]
            self._failed.clear()
        for record in failed:
            self._save(record)

    def reload(self) -> None:
        """Replace the set by the stored one (another worker changed it), keeping queued writes.

        Raises:
            StorageError: the file cannot be read.
        """
        stored = {s.id: s for s in self._state.load_silences()}
        with self._lock:
            stored.update(self._unsaved)
            self._items = stored

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
        self._put(record)
        return record.id

    def adopt(self, record: SilenceRecord) -> None:
        """Take over a silence made elsewhere (another engine), keeping its id.

        An id handed out before the runtime was rebuilt must keep working; the write is queued
        like :meth:`add`'s.
        """
        self._put(record)

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
        self._put(record)

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
        if not self._items:  # the common case: no silences at all, no lock, no copy
            return None
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


@dataclass(slots=True)
class Flap:
    """Recent firing/resolved transitions of one alert.

    Attributes:
        rule: The alert's rule name.
        times: When it changed state within the window, oldest first.
        flapping: Whether it is muted as flapping.
        last_event: Its most recent transition (what to announce when it settles).
    """

    rule: str
    times: deque[float] = field(default_factory=deque)
    flapping: bool = False
    last_event: AlertEvent | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored form (JSON-ready), for the ``flaps`` table."""
        return {
            "rule": self.rule,
            "times": list(self.times),
            "flapping": self.flapping,
            "last_event": None if self.last_event is None else self.last_event.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Flap:
        """Inverse of :meth:`to_dict`."""
        event = data.get("last_event")
        return cls(
            rule=str(data["rule"]),
            times=deque(float(t) for t in data.get("times", ())),
            flapping=bool(data.get("flapping", False)),
            last_event=None if event is None else AlertEvent.from_dict(dict(event)),
        )


class FlapDetector:
    """Counts each alert's state changes in a sliding window; used under the engine's lock.

    It remembers which entries changed since :meth:`take` (the engine owes them to storage
    after the cycle, outside its lock) and :meth:`load` replaces its content by stored entries.

    Args:
        threshold: More changes than this within ``window`` make an alert flapping.
        window: Seconds over which changes count; quiet for this long, it settles.
    """

    def __init__(self, threshold: int, window: float) -> None:
        self.threshold = threshold
        self.window = window
        self._flaps: dict[str, Flap] = {}
        self._changed: set[str] = set()  # fingerprints to store (or delete) since last taken

    def note(self, fp: str, rule: str, event: AlertEvent, now: float) -> bool:
        """Record a transition of alert ``fp``; ``True`` if it starts flapping with this one."""
        flap = self._flaps.get(fp)
        if flap is None:
            flap = self._flaps[fp] = Flap(rule=rule)
        flap.times.append(now)
        flap.last_event = event
        self._changed.add(fp)
        self._trim(flap, now)
        if not flap.flapping and len(flap.times) > self.threshold:
            flap.flapping = True
            return True
        return False

    def changes(self, fp: str) -> int:
        """Changes of ``fp`` in the current window."""
        flap = self._flaps.get(fp)
        return 0 if flap is None else len(flap.times)

    def is_flapping(self, fp: str) -> bool:
        """Whether ``fp`` is muted as flapping."""
        flap = self._flaps.get(fp)
        return flap is not None and flap.flapping

    def __contains__(self, fp: object) -> bool:
        """Whether ``fp`` changed state within the window (it is being watched)."""
        return fp in self._flaps

    def settle(self, now: float) -> Iterator[tuple[str, Flap]]:
        """Forget alerts quiet for a window; yield those among them that were flapping."""
        for fp, flap in list(self._flaps.items()):
            self._trim(flap, now)
            if flap.times:
                continue
            del self._flaps[fp]
            self._changed.add(fp)
            if flap.flapping:
                yield fp, flap

    def take(self, *, deletes: bool = True) -> dict[str, dict[str, Any] | None]:
        """Entries changed since the last call, as stored (``None``: settled, delete it).

        With ``deletes=False`` only the upserts are taken and the deletions stay owed (the
        engine writes a settled entry's deletion only after its announcement is enqueued, so
        a successor that finds no entry has nothing left to announce).
        """
        taken: dict[str, dict[str, Any] | None] = {}
        for fp in list(self._changed):
            flap = self._flaps.get(fp)
            if flap is None and not deletes:
                continue
            taken[fp] = None if flap is None else flap.to_dict()
            self._changed.discard(fp)
        return taken

    def load(self, entries: Mapping[str, Mapping[str, Any]], now: float) -> None:
        """Replace every entry by ``entries`` (stored payloads), dropping times out of the window.

        An entry left with no time in the window is kept: the next :meth:`settle` announces it
        if it was flapping and owes its deletion, as if this process had watched it all along.
        Nothing loaded is owed to storage again.
        """
        flaps = {fp: Flap.from_dict(data) for fp, data in entries.items()}
        for flap in flaps.values():
            self._trim(flap, now)
        self._flaps = flaps
        self._changed.clear()

    def _trim(self, flap: Flap, now: float) -> None:
        while flap.times and flap.times[0] <= now - self.window:
            flap.times.popleft()
