"""Unit tests for alert rules, in the shape of ``promtool test rules`` (the `rules test` CLI).

A test file names rule files, gives input series in promtool's expanding notation, and says
which alerts must be firing, with which labels and annotations, at which evaluation times::

    rule_files: [rules.yaml]
    evaluation_interval: 1m
    tests:
      - interval: 1m
        input_series:
          - series: 'memory_usage{host="a"}'
            values: '80 95 95 95+0x10'        # a+bxN, a-bxN, axN, _ (missing), stale
        alert_rule_test:
          - eval_time: 5m
            alertname: HighMemory
            exp_alerts:
              - exp_labels: {host: a, severity: critical}
                exp_annotations: {summary: "a at 95%"}
        promql_expr_test:                       # optional: check a condition's samples
          - expr: memory_usage > 90
            eval_time: 2m
            exp_samples: [{labels: 'memory_usage{host="a"}', value: 95}]

Each test fills a fresh :class:`SeriesStore` (sample ``i`` at ``i * interval`` seconds) and
drives a real :class:`RuleEngine` on a fake clock, so what passes here behaves the same in
production: same parser, evaluator, ``for``/``keep_firing_for``/``clear`` state machine.
"""

from __future__ import annotations

import math
import re
import sys
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from paca_otel.alerting._engine import RuleEngine
from paca_otel.errors import RuleError
from paca_otel.pipeline._store import Labels, Matcher, SeriesStore
from paca_otel.rules._evaluate import evaluate
from paca_otel.rules._expr import Selector, parse
from paca_otel.rules._models import AlertState, Notification
from paca_otel.rules._rule import Rule, load_rules, parse_duration

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:Inf|inf|NaN|nan)"
_BLANK_RE = re.compile(r"(_|stale)(?:x(\d+))?")
_SERIES_RE = re.compile(rf"({_NUM})(?:([-+])({_NUM}))?x(\d+)")
_PLAIN_RE = re.compile(_NUM)

STALE = "stale"


def expand_values(text: str) -> list[float | str | None]:
    """Expand promtool's notation: ``1+2x3`` -> 1 3 5 7, ``_x2`` -> two gaps, ``stale``.

    Returns one entry per step: a number, ``None`` for a missing sample, or ``"stale"``.

    Raises:
        RuleError: a token is none of the accepted forms.
    """
    out: list[float | str | None] = []
    for token in str(text).split():
        blank = _BLANK_RE.fullmatch(token)
        if blank:
            kind: str | None = STALE if blank.group(1) == STALE else None
            out.extend([kind] * (int(blank.group(2)) if blank.group(2) else 1))
            continue
        series = _SERIES_RE.fullmatch(token)
        if series:
            start = float(series.group(1))
            delta = float(series.group(3) or 0.0) * (-1 if series.group(2) == "-" else 1)
            out.extend(start + k * delta for k in range(int(series.group(4)) + 1))
            continue
        if _PLAIN_RE.fullmatch(token):
            out.append(float(token))
            continue
        msg = (
            f"input value {token!r} is not a number, a+bxN, a-bxN, axN, _ , _xN or stale"
            f" (in {text!r})"
        )
        raise RuleError(msg)
    return out


def parse_series(text: str) -> tuple[str, Labels]:
    """``name{a="b"}`` -> (name, labels); only ``=`` matchers make sense for input series.

    Raises:
        RuleError: the text is not a plain selector with ``=`` matchers.
    """
    try:
        node = parse(text)
    except RuleError as exc:
        msg = f'series {text!r} is not name{{label="value", ...}}: {exc}'
        raise RuleError(msg) from None
    if not isinstance(node, Selector) or any(m.op != "=" for m in node.matchers):
        msg = f"series {text!r} must be name{{label=\"value\", ...}} with '=' only"
        raise RuleError(msg)
    labels = tuple(sorted((m.name, m.value) for m in node.matchers if m.value != ""))
    return node.name, labels


class _StaleAwareStore(SeriesStore):
    """A store that also honours ``stale`` markers: a series is absent after one.

    Prometheus writes a staleness marker when a series disappears; the production store has no
    such marker (series just age out after 5 minutes), so tests model it here.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # (name, labels) -> (sample times, marker times), both sorted
        self.marks: dict[tuple[str, Labels], tuple[list[float], list[float]]] = {}

    def latest(
        self, name: str, matchers: Sequence[Matcher] = (), *, at: float, lookback: float = 300.0
    ) -> list[tuple[Labels, float]]:
        found = super().latest(name, matchers, at=at, lookback=lookback)
        if not self.marks:
            return found
        kept = []
        for labels, value in found:
            marks = self.marks.get((name, labels))
            if marks is not None:
                samples, stale = marks
                last_stale = bisect_right(stale, at)
                last_sample = bisect_right(samples, at)
                if last_stale and (
                    not last_sample or stale[last_stale - 1] > samples[last_sample - 1]
                ):
                    continue
            kept.append((labels, value))
        return kept


class _Discard:
    """The outbox of a test run: notifications are not what rule tests check."""

    def enqueue(self, notification: Notification) -> bool:
        return True


def _duration(value: object, where: str) -> float:
    try:
        return parse_duration(value, where)
    except RuleError as exc:
        raise RuleError(f"{where}: {exc}") from None


def _fmt(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _load_store(test: Mapping[str, Any], interval: float, where: str) -> tuple[SeriesStore, float]:
    series = test.get("input_series") or []
    if not isinstance(series, list):
        msg = f"{where}: input_series must be a list"
        raise RuleError(msg)
    parsed = []
    longest = 0
    for i, item in enumerate(series):
        if not isinstance(item, Mapping) or "series" not in item:
            msg = f"{where}: input_series #{i + 1} needs 'series' and 'values'"
            raise RuleError(msg)
        name, labels = parse_series(str(item["series"]))
        values = expand_values(str(item.get("values", "")))
        parsed.append((name, labels, values))
        longest = max(longest, len(values))
    span = longest * interval
    store = _StaleAwareStore(
        max_series=max(len(parsed), 1),
        max_points=max(longest, 2),
        max_window=span + 3600.0,
    )
    for name, labels, values in parsed:
        samples: list[float] = []
        stale: list[float] = []
        for step, value in enumerate(values):
            t = step * interval
            if value == STALE:
                stale.append(t)
            elif isinstance(value, float):
                store.append(name, labels, value, t)
                samples.append(t)
        if stale:
            store.marks[(name, labels)] = (samples, stale)
    return store, span


def _check_alerts(
    engine: RuleEngine, case: Mapping[str, Any], rules: Mapping[str, Rule], where: str
) -> list[str]:
    name = str(case.get("alertname", ""))
    if name not in rules:
        return [f"{where}: no rule named {name!r} in the rule files ({sorted(rules)})"]
    rule = rules[name]
    expected: list[tuple[str, str]] = []
    for exp in case.get("exp_alerts") or []:
        labels = {str(k): str(v) for k, v in (exp.get("exp_labels") or {}).items()}
        labels.pop("alertname", None)
        annotations = {str(k): str(v) for k, v in (exp.get("exp_annotations") or {}).items()}
        expected.append((_fmt(labels), _fmt(annotations)))
    # severity is a field of our rules but a label in Prometheus': accept it either way
    wants_severity = any('severity="' in labels for labels, _ in expected)
    got: list[tuple[str, str]] = []
    for alert in engine.active_alerts():
        if alert.rule != name or alert.state is not AlertState.FIRING:
            continue
        labels = dict(alert.labels)
        if wants_severity:
            labels.setdefault("severity", rule.severity.value)
        got.append((_fmt(labels), _fmt(alert.annotations)))
    if sorted(got) == sorted(expected):
        return []
    lines = [f"{where}: alertname {name!r}: firing alerts differ"]
    lines += [f"    expected: labels={lb} annotations={an}" for lb, an in sorted(expected)] or [
        "    expected: no alerts"
    ]
    lines += [f"    got:      labels={lb} annotations={an}" for lb, an in sorted(got)] or [
        "    got:      no alerts"
    ]
    return ["\n".join(lines)]


def _check_expr(store: SeriesStore, case: Mapping[str, Any], where: str) -> list[str]:
    try:
        expr = parse(str(case.get("expr", "")))
    except RuleError as exc:
        return [f"{where}: {exc}"]
    result = evaluate(expr, store, _duration(case.get("eval_time", 0), f"{where}: eval_time"))
    got = sorted((_fmt(dict(lb)), v) for lb, v in result.samples.items())
    expected = []
    for sample in case.get("exp_samples") or []:
        labels_text = str(sample.get("labels", "")).strip()
        labels: Labels = ()
        if labels_text:
            if labels_text.startswith("{"):
                labels_text = "x" + labels_text
            labels = parse_series(labels_text)[1]
        expected.append((_fmt(dict(labels)), float(sample.get("value", 0))))
    expected.sort()
    same = len(got) == len(expected) and all(
        gl == el
        and (gv == ev or math.isclose(gv, ev, rel_tol=1e-9) or (math.isnan(gv) and math.isnan(ev)))
        for (gl, gv), (el, ev) in zip(got, expected, strict=True)
    )
    if same:
        return []
    return [f"{where}: expr {case.get('expr')!r}: expected {expected}, got {got}"]


def _run_one(
    test: Mapping[str, Any], rules: list[Rule], evaluation_interval: float, where: str
) -> tuple[int, int, list[str]]:
    interval = _duration(test.get("interval", evaluation_interval), f"{where}: interval")
    if not interval > 0:
        msg = f"{where}: interval must be > 0"
        raise RuleError(msg)
    store, _ = _load_store(test, interval, where)
    clock_now = [0.0]
    engine = RuleEngine(
        store,
        outbox=_Discard(),
        clock=lambda: clock_now[0],
        evaluation_interval=min(max(evaluation_interval, 1.0), 86_400.0),
    )
    by_name = {rule.name: rule for rule in rules}
    for rule in rules:
        engine.add_rule(rule)
    cases = list(test.get("alert_rule_test") or [])
    timed = sorted(
        (_duration(c.get("eval_time", 0), f"{where}: alert_rule_test #{i + 1}: eval_time"), i, c)
        for i, c in enumerate(cases)
    )
    passed = failed = 0
    messages: list[str] = []
    step = 0
    try:
        for eval_time, index, case in timed:
            while step * evaluation_interval <= eval_time + 1e-9:
                clock_now[0] = step * evaluation_interval
                engine.evaluate_once(clock_now[0])
                step += 1
            problems = _check_alerts(
                engine, case, by_name, f"{where}: alert_rule_test #{index + 1} at {eval_time:g}s"
            )
            passed, failed = (passed, failed + 1) if problems else (passed + 1, failed)
            messages += problems
    finally:
        engine.close()
    for i, case in enumerate(test.get("promql_expr_test") or []):
        problems = _check_expr(store, case, f"{where}: promql_expr_test #{i + 1}")
        passed, failed = (passed, failed + 1) if problems else (passed + 1, failed)
        messages += problems
    return passed, failed, messages


def run_rule_tests(path: str | Path) -> tuple[int, int, list[str]]:
    """Run a promtool-style rule test file; return (passed, failed, failure messages).

    Each ``alert_rule_test`` and ``promql_expr_test`` entry counts once. Rule files are read
    relative to the test file.

    Raises:
        RuleError: the test file or a rule file cannot be read or is malformed.
    """
    source = Path(path)
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"cannot read rule test file {str(source)!r}: {exc.strerror or exc}"
        raise RuleError(msg) from None
    except yaml.YAMLError as exc:
        msg = f"{source}: not valid YAML: {exc}"
        raise RuleError(msg) from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("tests"), list):
        msg = f"{source}: expected a mapping with 'rule_files' and a 'tests' list"
        raise RuleError(msg)
    rules: list[Rule] = []
    for name in doc.get("rule_files") or []:
        rule_path = Path(str(name))
        rules += load_rules(rule_path if rule_path.is_absolute() else source.parent / rule_path)
    evaluation_interval = _duration(
        doc.get("evaluation_interval", "1m"), f"{source}: evaluation_interval"
    )
    if not evaluation_interval > 0:
        msg = f"{source}: evaluation_interval must be > 0"
        raise RuleError(msg)
    passed = failed = 0
    messages: list[str] = []
    for i, test in enumerate(doc["tests"]):
        where = f"{source}: test #{i + 1}"
        if not isinstance(test, Mapping):
            msg = f"{where}: each test must be a mapping"
            raise RuleError(msg)
        p, f, m = _run_one(test, rules, evaluation_interval, where)
        passed, failed, messages = passed + p, failed + f, messages + m
    return passed, failed, messages


def main(path: str | Path) -> int:
    """``paca-otel rules test FILE``: print failures and a summary; 0 if all passed, else 1."""
    try:
        passed, failed, messages = run_rule_tests(path)
    except RuleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for message in messages:
        print(f"FAILED {message}")
    status = "SUCCESS" if failed == 0 else "FAILED"
    print(f"{status}: {passed} passed, {failed} failed ({path})")
    return 0 if failed == 0 else 1
