"""Tests for the rule expression language: parsing, printing and evaluation on a real store."""

from __future__ import annotations

import math

import pytest

from paca_otel._labelregex import compile_label_regex
from paca_otel.errors import ParseError, RuleError
from paca_otel.pipeline._store import SeriesStore, labels_of
from paca_otel.rules._evaluate import evaluate, extrapolated_delta, quantile
from paca_otel.rules._expr import (
    MAX_DEPTH,
    MAX_NESTING,
    Absent,
    BinOp,
    LabelMatcher,
    Neg,
    Number,
    Selector,
    WindowCall,
    format_duration,
    format_error,
    parse,
    selectors,
    unparse,
)
from paca_otel.rules._rule import Rule

NOW = 10_000.0


def sel(name: str, **eq: str) -> Selector:
    return Selector(name, tuple(LabelMatcher(k, "=", v) for k, v in eq.items()))


# ------------------------------------------------------------------------------------ parsing


def test_precedence_multiplication_before_addition() -> None:
    """``*`` binds tighter than ``+`` and ``-`` is left-associative."""
    assert parse("a + b * c") == BinOp("+", sel("a"), BinOp("*", sel("b"), sel("c")))
    assert parse("a - b - c") == BinOp("-", BinOp("-", sel("a"), sel("b")), sel("c"))
    assert parse("(a + b) * c") == BinOp("*", BinOp("+", sel("a"), sel("b")), sel("c"))


def test_precedence_comparison_between_arithmetic_and_logic() -> None:
    """Arithmetic binds tighter than comparisons, which bind tighter than and, then or."""
    expr = parse("a + 1 > 2 and b < 3 or c")
    assert expr == BinOp(
        "or",
        BinOp(
            "and",
            BinOp(">", BinOp("+", sel("a"), Number(1)), Number(2)),
            BinOp("<", sel("b"), Number(3)),
        ),
        sel("c"),
    )


def test_and_not_is_unless() -> None:
    """``a and not b`` and ``a unless b`` give the same AST."""
    assert parse("a and not b") == parse("a unless b") == BinOp("unless", sel("a"), sel("b"))


def test_unary_minus() -> None:
    """A minus before a number folds into the literal; before anything else it is Neg."""
    assert parse("-1") == Number(-1)
    assert parse("-x * 2") == BinOp("*", Neg(sel("x")), Number(2))
    assert parse("x - -2") == BinOp("-", sel("x"), Number(-2))
    assert parse("+x") == sel("x")


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", 1.0), ("1.5", 1.5), ("1e3", 1000.0), ("2.5E-2", 0.025), (".5", 0.5), ("7.", 7.0)],
)
def test_numbers(text: str, value: float) -> None:
    """Integers, decimals and exponents parse to floats."""
    assert parse(text) == Number(value)


def test_dotted_metric_names() -> None:
    """OTel metric names with dots are plain selectors."""
    assert parse("system.cpu.utilization > 0.9") == BinOp(
        ">", Selector("system.cpu.utilization"), Number(0.9)
    )


def test_all_matcher_ops() -> None:
    """``=``, ``!=``, ``=~`` and ``!~`` with either quote style and a trailing comma."""
    expr = parse("""http_errors{route="/api", method!='GET', code=~"5..", x.y!~"a|b",}""")
    assert expr == Selector(
        "http_errors",
        (
            LabelMatcher("route", "=", "/api"),
            LabelMatcher("method", "!=", "GET"),
            LabelMatcher("code", "=~", "5.."),
            LabelMatcher("x.y", "!~", "a|b"),
        ),
    )
    assert parse("x{}") == Selector("x")


def test_string_escapes() -> None:
    """Backslash escapes in label values are decoded and printed back."""
    expr = parse(r'x{a="q\"uo\\te\n"}')
    assert isinstance(expr, Selector)
    assert expr.matchers[0].value == 'q"uo\\te\n'
    assert parse(unparse(expr)) == expr


@pytest.mark.parametrize("func", ["avg", "min", "max", "sum", "count", "rate", "increase", "last"])
def test_window_functions(func: str) -> None:
    """Every windowed function takes a range selector."""
    assert parse(f'{func}(m{{a="b"}}[5m])') == WindowCall(func, sel("m", a="b"), 300.0)


@pytest.mark.parametrize("func", ["p50", "p95", "p99"])
def test_percentile_functions(func: str) -> None:
    """p50/p95/p99 are windowed functions too."""
    assert parse(f"{func}(latency[1m])") == WindowCall(func, sel("latency"), 60.0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1w", 604_800),
        ("2w3d", 1_468_800),
        ("1y", 31_536_000),
        ("1y2w", 32_745_600),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    """Durations use Prometheus' ms/s/m/h/d/w/y units, may be compound, and print back the same."""
    expr = parse(f"avg(x[{text}])")
    assert isinstance(expr, WindowCall)
    assert expr.window == seconds
    assert format_duration(seconds) == text


def test_absent_parses() -> None:
    """``absent`` takes a plain selector."""
    assert parse('absent(up{job="w"})') == Absent(sel("up", job="w"))


def test_function_names_are_metrics_without_parentheses() -> None:
    """A metric may be called ``rate``; only ``rate(`` is a call."""
    assert parse("rate > 1") == BinOp(">", Selector("rate"), Number(1))


def test_selectors_lists_every_selector() -> None:
    """``selectors`` walks the whole tree left to right."""
    expr = parse("a + rate(b[1m]) > 1 unless absent(c)")
    assert [s.name for s in selectors(expr)] == ["a", "b", "c"]


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("cpu_usage >", 12, "expected a number, a metric or '(' at column 12"),
        ("cpu_usage > > 1", 13, "expected a number, a metric or '(' at column 13"),
        ("cpu_usage 90", 11, "expected an operator"),
        ("cpu_usage > 5m", 14, "durations like 5m are only allowed inside [...]"),
        ("avg(cpu_usage)", 14, "expected a range like [5m]"),
        ("avg(cpu_usage[5])", 15, "expected a duration"),
        ("avg(cpu_usage[5m)", 17, "expected ']'"),
        ("avg(cpu_usage[0s])", 15, "longer than 0"),
        ("median(x[5m])", 1, "unknown function 'median'"),
        ("absent(x[5m])", 9, "absent() takes a plain selector"),
        ("x{route=/api}", 9, "expected a quoted label value"),
        ("x{route>'a'}", 8, "expected a label matcher"),
        ('x{route="a" method="b"}', 13, "expected ',' or '}'"),
        ('x{route="(}', 9, "unterminated string"),
        ('x{route=~"("}', 10, "invalid regular expression"),
        ("(a + b", 7, "expected ')'"),
        ("a and or b", 7, "found the keyword 'or'"),
        ("a # b", 3, "unexpected character '#'"),
        ("", 1, "expected an expression"),
        ("1e999 > x", 1, "out of range"),
        (r'x{a="\q"}', 6, "unknown escape"),
    ],
)
def test_errors_name_column_and_expectation(text: str, column: int, fragment: str) -> None:
    """Each error message names the 1-based column and what was expected there."""
    with pytest.raises(ParseError) as info:
        parse(text)
    err = info.value
    assert fragment in str(err)
    assert f"column {column}" in str(err)
    assert err.column == column
    assert err.position == column - 1
    assert err.text == text
    assert isinstance(err, RuleError)


def test_format_error_draws_a_caret() -> None:
    """The terminal rendering points at the bad column."""
    with pytest.raises(ParseError) as info:
        parse("cpu_usage > > 1")
    lines = format_error(info.value).splitlines()
    assert lines[1] == "  cpu_usage > > 1"
    assert lines[2] == "  " + " " * 12 + "^"


def test_non_string_condition() -> None:
    """A non-string condition is a ParseError, not a TypeError."""
    with pytest.raises(ParseError, match="must be a string"):
        parse(42)  # type: ignore[arg-type]  # the point of the test is a wrong type


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("(" * 400 + "x" + ")" * 400, id="parentheses"),
        pytest.param("-" * 2000 + "x", id="unary-minus"),
        pytest.param("+" * 2000 + "x", id="unary-plus"),
        pytest.param("avg(x[5m])" + " + x" * 3000 + " > 1", id="long-chain"),
        pytest.param("x" + " or x" * 3000, id="long-or-chain"),
    ],
)
def test_deep_expressions_fail_with_parse_error(text: str) -> None:
    """A condition nested or chained too deeply is a ParseError, never a RecursionError."""
    with pytest.raises(ParseError, match="too deeply"):
        parse(text)
    with pytest.raises(RuleError, match="too deeply"):
        Rule(name="deep", condition=text)


def test_deepest_allowed_expressions_parse_print_and_evaluate() -> None:
    """Right at the limits a condition still parses, prints back and evaluates."""
    nested = "(" * MAX_NESTING + "x" + ")" * MAX_NESTING
    chain = "x" + " + x" * (MAX_DEPTH - 1)
    for text in (nested, chain, "-" * MAX_NESTING + "x"):
        expr = parse(text)
        assert parse(unparse(expr)) == expr
        evaluate(expr, SeriesStore(), 0.0)


# ----------------------------------------------------------------------------------- printing


@pytest.mark.parametrize(
    "text",
    [
        "a + b * c",
        "(a + b) * c",
        "a - (b - c)",
        "a / (b * c)",
        "-(a + b)",
        "--a",
        "-(1)",
        "a > 1 and b < 2 or c",
        "a and (b or c)",
        "(a > 1) > 2",
        'p95(http.server.duration{route=~"/api/.*", method!="GET"}[1h30m]) > 0.5',
        'absent(x{a="b"}) or rate(y[250ms]) == 0',
        "1e-05 * x",
    ],
)
def test_unparse_round_trips(text: str) -> None:
    """Printing and re-parsing gives an equal AST."""
    expr = parse(text)
    assert parse(unparse(expr)) == expr


def test_unparse_minimal_parentheses() -> None:
    """The printer adds parentheses only where precedence needs them."""
    assert unparse(parse("((a)) + (b * c)")) == "a + b * c"
    assert unparse(parse("(a + b) * c")) == "(a + b) * c"
    assert unparse(parse("a and not b")) == "a unless b"


# --------------------------------------------------------------------------------- evaluation


@pytest.fixture
def store() -> SeriesStore:
    """A real series store with a few hand-written series."""
    s = SeriesStore()
    for route, value in (("/a", 0.2), ("/b", 0.01), ("/c", 0.09)):
        s.append("error_rate", labels_of({"route": route}), value, NOW - 10)
        s.append("request_rate", labels_of({"route": route}), 5.0, NOW - 10)
    s.append("cpu_usage", (), 95.0, NOW - 5)
    return s


def test_plain_selector_takes_latest(store: SeriesStore) -> None:
    """A selector yields each series' latest point, keyed by label set."""
    store.append("cpu_usage", (), 50.0, NOW - 1)
    result = evaluate(parse("cpu_usage"), store, NOW)
    assert result.samples == {(): 50.0}
    assert not result.no_data


def test_comparison_filters_per_label_set(store: SeriesStore) -> None:
    """A comparison keeps one sample per label set that passes, with the left value."""
    result = evaluate(parse("error_rate > 0.05"), store, NOW)
    assert result.samples == {(("route", "/a"),): 0.2, (("route", "/c"),): 0.09}


def test_matchers_select_series(store: SeriesStore) -> None:
    """Equality, inequality and anchored regex matchers select series."""
    assert set(evaluate(parse('error_rate{route="/a"}'), store, NOW).samples) == {
        (("route", "/a"),)
    }
    assert len(evaluate(parse('error_rate{route!="/a"}'), store, NOW).samples) == 2
    assert len(evaluate(parse('error_rate{route=~"/[ab]"}'), store, NOW).samples) == 2
    assert len(evaluate(parse('error_rate{route=~"/"}'), store, NOW).samples) == 0  # anchored
    assert len(evaluate(parse('error_rate{route!~"/a|/b"}'), store, NOW).samples) == 1


def test_stale_points_are_ignored(store: SeriesStore) -> None:
    """A plain selector ignores points older than five minutes."""
    store.append("old", (), 1.0, NOW - 301)
    result = evaluate(parse("old > 0"), store, NOW)
    assert result.samples == {}
    assert result.no_data


def test_vector_scalar_arithmetic(store: SeriesStore) -> None:
    """Arithmetic with a scalar maps every sample; scalar on the left works too."""
    result = evaluate(parse("error_rate * 100 > 5"), store, NOW)
    assert result.samples == {(("route", "/a"),): 20.0, (("route", "/c"),): 9.0}
    assert evaluate(parse("100 - cpu_usage"), store, NOW).samples == {(): 5.0}


def test_vector_vector_matches_equal_label_sets(store: SeriesStore) -> None:
    """Two vectors combine sample by sample on equal label sets; the rest drops out."""
    store.append("request_rate", labels_of({"route": "/only-here"}), 1.0, NOW - 1)
    result = evaluate(parse("error_rate * request_rate"), store, NOW)
    assert result.samples == pytest.approx(
        {(("route", "/a"),): 1.0, (("route", "/b"),): 0.05, (("route", "/c"),): 0.45}
    )


def test_scalar_on_left_of_comparison_keeps_vector_value(store: SeriesStore) -> None:
    """``0.05 < error_rate`` filters like PromQL and keeps the vector's values."""
    result = evaluate(parse("0.05 < error_rate"), store, NOW)
    assert result.samples == {(("route", "/a"),): 0.2, (("route", "/c"),): 0.09}


def test_scalar_comparison() -> None:
    """Two scalars compared give one label-less sample when true, none when false."""
    empty = SeriesStore()
    assert evaluate(parse("2 > 1"), empty, NOW).samples == {(): 2.0}
    assert evaluate(parse("1 > 2"), empty, NOW).samples == {}
    assert evaluate(parse("1 + 2 * 3"), empty, NOW).samples == {(): 7.0}
    assert not evaluate(parse("1 > 2"), empty, NOW).no_data


def test_division_by_zero_follows_ieee(store: SeriesStore) -> None:
    """x/0 is ±Inf and 0/0 is NaN instead of an exception."""
    empty = SeriesStore()
    assert evaluate(parse("1 / 0"), empty, NOW).samples == {(): math.inf}
    assert evaluate(parse("-1 / 0"), empty, NOW).samples == {(): -math.inf}
    assert math.isnan(evaluate(parse("0 / 0"), empty, NOW).samples[()])
    assert evaluate(parse("cpu_usage / 0 > 1"), store, NOW).samples == {(): math.inf}


def test_set_operators(store: SeriesStore) -> None:
    """and / or / unless match on label sets."""
    high = "error_rate > 0.05"
    busy = 'request_rate{route=~"/a|/b"} > 1'
    assert set(evaluate(parse(f"{high} and {busy}"), store, NOW).samples) == {(("route", "/a"),)}
    assert set(evaluate(parse(f"{high} and not {busy}"), store, NOW).samples) == {
        (("route", "/c"),)
    }
    got = evaluate(parse(f"{high} or {busy}"), store, NOW).samples
    assert got == {(("route", "/a"),): 0.2, (("route", "/c"),): 0.09, (("route", "/b"),): 5.0}


def test_neg(store: SeriesStore) -> None:
    """Unary minus negates every sample."""
    assert evaluate(parse("-cpu_usage"), store, NOW).samples == {(): -95.0}


def test_absent(store: SeriesStore) -> None:
    """absent() yields one sample, labelled by the equality matchers, only when nothing matches."""
    result = evaluate(parse('absent(heartbeat{job="w", env=~"p.*"})'), store, NOW)
    assert result.samples == {(("job", "w"),): 1.0}
    assert not result.no_data  # selectors inside absent() do not count towards no_data
    assert evaluate(parse("absent(cpu_usage)"), store, NOW).samples == {}


def test_no_data_only_when_every_selector_is_empty(store: SeriesStore) -> None:
    """no_data is set when all selectors miss, not when one of them does."""
    assert evaluate(parse("missing > 1"), store, NOW).no_data
    assert evaluate(parse("avg(missing[5m]) > 1 or nothing"), store, NOW).no_data
    assert not evaluate(parse("missing > 1 or cpu_usage > 1000"), store, NOW).no_data


def _fill(store: SeriesStore, name: str, values: list[float], step: float = 10.0) -> None:
    start = NOW - step * (len(values) - 1)
    for i, value in enumerate(values):
        store.append(name, (("k", "v"),), value, start + i * step)


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        ("avg", 3.0),
        ("min", 1.0),
        ("max", 5.0),
        ("sum", 15.0),
        ("count", 5.0),
        ("last", 2.0),
        ("p50", 3.0),
        ("p95", 4.8),
        ("p99", 4.96),
    ],
)
def test_window_reductions(func: str, expected: float) -> None:
    """Each windowed function reduces the raw values inside the window."""
    store = SeriesStore()
    _fill(store, "m", [1.0, 3.0, 5.0, 4.0, 2.0])
    store.append("m", (("k", "v"),), 1000.0, NOW - 100)  # outside the 1m window
    result = evaluate(parse(f"{func}(m[1m])"), store, NOW)
    assert result.samples == {(("k", "v"),): pytest.approx(expected)}


def test_increase_and_rate_handle_counter_resets() -> None:
    """A drop in a counter is a reset: the new value counts in full, as in PromQL."""
    store = SeriesStore()
    # From 0 and up to `now`: Prometheus would not extrapolate, so the sum is exact.
    _fill(store, "c", [0, 10, 30, 5, 15, 35], step=10.0)
    increase = evaluate(parse("increase(c[1m])"), store, NOW).samples[(("k", "v"),)]
    assert increase == pytest.approx(65.0)  # +10 +20, reset to 5 counts +5, +10 +20
    rate = evaluate(parse("rate(c[1m])"), store, NOW).samples[(("k", "v"),)]
    assert rate == pytest.approx(65.0 / 60.0)


def test_rate_extrapolates_like_prometheus() -> None:
    """Matches Prometheus' extrapolatedRate on a counter sampled mid-window."""
    # Prometheus: samples at 15,30,45 (values 10,20,30) in window (0,60]:
    # delta 20 over 30 s, average step 15; start gap 15 < 16.5 but to-zero = 15 ... -> 40.
    times, values = [15.0, 30.0, 45.0], [10.0, 20.0, 30.0]
    assert extrapolated_delta(times, values, 0.0, 60.0, is_rate=False) == pytest.approx(40.0)
    assert extrapolated_delta(times, values, 0.0, 60.0, is_rate=True) == pytest.approx(40 / 60)
    assert extrapolated_delta([1.0], [1.0], 0.0, 60.0, is_rate=True) is None


def test_rate_needs_two_points() -> None:
    """A series with one point in the window has no rate, but still counts as data."""
    store = SeriesStore()
    store.append("c", (), 5.0, NOW - 1)
    result = evaluate(parse("rate(c[1m]) > 0"), store, NOW)
    assert result.samples == {}
    assert not result.no_data


def test_quantile_interpolates() -> None:
    """quantile() interpolates linearly between ranks like quantile_over_time."""
    assert quantile(0.5, [4.0, 1.0, 3.0, 2.0]) == 2.5
    assert quantile(0.95, [7.0]) == 7.0


def test_multi_dimensional_window_function() -> None:
    """A windowed function yields one sample per series."""
    store = SeriesStore()
    for route in ("/a", "/b"):
        for i in range(5):
            store.append(
                "lat", labels_of({"route": route}), i * (2 if route == "/a" else 1), NOW - i
            )
    result = evaluate(parse("max(lat[1m]) > 5"), store, NOW)
    assert result.samples == {(("route", "/a"),): 8.0}


# ------------------------------------------------------------------------- label regexes (RE2)


def test_label_regexes_compile_with_re2() -> None:
    """Matchers compile with RE2 (linear time), never Python's backtracking ``re``."""
    assert type(compile_label_regex("(a+)+b")).__module__ == "re2"


@pytest.mark.timeout(20)
def test_catastrophic_regex_evaluates_in_bounded_time() -> None:
    """``(a+)+b`` against long non-matching values (hours with backtracking) ends promptly."""
    store = SeriesStore()
    for i in range(200):
        store.append("x", (("user", "a" * (2000 + i) + "c"),), 1.0, NOW)
    store.append("x", (("user", "aaab"),), 2.0, NOW)
    matched = evaluate(parse('x{user=~"(a+)+b"} > 0'), store, NOW)
    assert matched.samples == {(("user", "aaab"),): 2.0}
    assert len(evaluate(parse('x{user!~"(a+)+b"}'), store, NOW).samples) == 200


def test_label_regexes_are_anchored_and_dot_matches_newline(store: SeriesStore) -> None:
    """As in Prometheus (``^(?s:re)$``): the whole value must match and ``.`` matches ``\\n``."""
    store.append("multi", (("msg", "a\nb"),), 1.0, NOW)
    assert evaluate(parse('multi{msg=~"a.b"}'), store, NOW).samples == {(("msg", "a\nb"),): 1.0}
    assert evaluate(parse('multi{msg=~"a"}'), store, NOW).samples == {}


@pytest.mark.parametrize("regex", ["(?=a)", "(?<!a)b", "(a)\\\\1", "a\\\\Z", "a{1001}", "("])
def test_regex_syntax_re2_rejects_is_a_parse_error(regex: str) -> None:
    """Lookaround, backreferences and other non-RE2 syntax fail at parse time, naming the column."""
    with pytest.raises(ParseError, match=r"invalid regular expression .* at column 9") as info:
        parse(f'x{{user=~"{regex}"}} > 0')
    assert info.value.position == 8
    assert "RE2" in str(info.value)
