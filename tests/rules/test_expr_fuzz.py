"""Property tests for the expression parser: it only ever fails with ParseError, and printing
any valid AST gives text that parses back to the same AST."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paca_otel.errors import ParseError
from paca_otel.rules._expr import (
    COMPARISONS,
    KEYWORDS,
    WINDOW_FUNCTIONS,
    Absent,
    BinOp,
    Expr,
    LabelMatcher,
    Neg,
    Number,
    Selector,
    WindowCall,
    parse,
    unparse,
)

FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Fragments of the language, so random sequences get deep into the parser, not just its start.
_TOKENS = [
    *sorted(WINDOW_FUNCTIONS),
    "absent",
    "and",
    "or",
    "unless",
    "not",
    "x",
    "a.b",
    "_m:1",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    "+",
    "-",
    "*",
    "/",
    "==",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "=",
    "=~",
    "!~",
    '"v"',
    "'v'",
    '"(',
    '"\\q"',
    "5m",
    "1h30m",
    "0s",
    "250ms",
    "2w",
    "1y2w3d",
    '"(?=a)"',
    '"(a+)+b"',
    "1",
    "1.5",
    "1e3",
    ".5",
    "1e999",
    "#",
    "é",
    "٣",
    "\n",
    " ",
]


def _check(text: str) -> None:
    error: ParseError | None = None
    try:
        expr = parse(text)
    except ParseError as exc:
        error = exc
    if error is not None:
        assert 0 <= error.position <= len(text)
        assert error.text == text
    else:
        assert parse(unparse(expr)) == expr


@FUZZ
@given(st.text(max_size=40))
def test_random_text_parses_or_raises_parse_error(text: str) -> None:
    """Arbitrary text yields an AST or a ParseError with a position inside the text."""
    _check(text)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_TOKENS), max_size=14), st.sampled_from(["", " "]))
def test_random_token_soup_parses_or_raises_parse_error(tokens: list[str], sep: str) -> None:
    """Sequences of real tokens (with and without spaces) never raise anything else."""
    _check(sep.join(tokens))


# ------------------------------------------------------------------------------ random ASTs

# Built from alphabets rather than st.from_regex, which makes generation several times slower.
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
_names = st.builds(
    str.__add__, st.sampled_from("aZ_:nost"), st.text(alphabet=_ALNUM + ":.", max_size=8)
).filter(lambda n: n not in KEYWORDS)
_label_names = st.builds(
    str.__add__, st.sampled_from("aZ_r"), st.text(alphabet=_ALNUM + ".", max_size=6)
)
_regexes = st.sampled_from(["5..", "/api/.*", "a|b", "", "[0-9]+", r"\d\.\d", "(x)?y"])
_matchers = st.one_of(
    st.builds(LabelMatcher, _label_names, st.sampled_from(["=", "!="]), st.text(max_size=8)),
    st.builds(LabelMatcher, _label_names, st.sampled_from(["=~", "!~"]), _regexes),
)
_selectors = st.builds(Selector, _names, st.lists(_matchers, max_size=3).map(tuple))
_windows = st.integers(min_value=1, max_value=10**12).map(lambda ms: ms / 1000)  # up to 31y
_numbers = st.floats(allow_nan=False, allow_infinity=False).map(Number)
_leaves: st.SearchStrategy[Expr] = st.one_of(
    _numbers,
    _selectors,
    st.builds(WindowCall, st.sampled_from(sorted(WINDOW_FUNCTIONS)), _selectors, _windows),
    st.builds(Absent, _selectors),
)
_binary_ops = sorted({"+", "-", "*", "/", "and", "or", "unless", *COMPARISONS})


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.builds(Neg, children),
        st.builds(BinOp, st.sampled_from(_binary_ops), children, children),
    )


_exprs = st.recursive(_leaves, _extend, max_leaves=12)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_exprs)
def test_unparse_then_parse_is_identity(expr: Expr) -> None:
    """Any valid AST printed with unparse parses back to an equal AST."""
    text = unparse(expr)
    assert parse(text) == expr, text
