"""The rule expression language: tokenizer, AST, parser and printer.

A rule condition such as ``p95(latency{route="/api"}[5m]) > 0.5 and request_rate > 1`` is parsed
once, when the rule is validated, into a tree of small frozen nodes; the engine then evaluates
that tree against the series store on every tick (see :mod:`paca_otel.rules._evaluate`).
Nothing here ever calls ``eval``.

Grammar, lowest precedence first (all binary operators are left-associative, as in PromQL)::

    expr     := and_expr ("or" and_expr)*
    and_expr := cmp ("and" ["not"] cmp | "unless" cmp)*      # "and not" is "unless"
    cmp      := sum (("==" | "!=" | ">" | ">=" | "<" | "<=") sum)*
    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "/") unary)*
    unary    := ("-" | "+") unary | atom
    atom     := NUMBER | "(" expr ")" | selector
              | WINDOW_FN "(" selector "[" DURATION "]" ")" | "absent" "(" selector ")"
    selector := NAME ["{" [matcher ("," matcher)* [","]] "}"]
    matcher  := LABEL ("=" | "!=" | "=~" | "!~") STRING     # regexes: RE2, fully anchored

The parser is hand-written recursive descent rather than a library: no small, well-kept parser
library fits a grammar this size, and every error must name the exact column and what was
expected there (``expected a number, a metric or '(' at column 14``), which generated parsers
report poorly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from paca_otel._labelregex import RegexSyntaxError, compile_label_regex
from paca_otel.errors import ParseError

if TYPE_CHECKING:
    from paca_otel.pipeline._store import Labels

# Windowed functions over a range selector; each maps to one reduction in _evaluate.py.
WINDOW_FUNCTIONS = frozenset(
    {"avg", "min", "max", "sum", "count", "rate", "increase", "p50", "p95", "p99", "last"}
)
KEYWORDS = frozenset({"and", "or", "unless", "not"})
MATCH_OPS = ("=~", "!~", "!=", "=")
COMPARISONS = frozenset({"==", "!=", ">", ">=", "<", "<="})
ARITHMETIC = frozenset({"+", "-", "*", "/"})
SET_OPS = frozenset({"and", "or", "unless"})

# Binding strength of each binary operator (higher binds tighter); the printer uses the same table.
PRECEDENCE: dict[str, int] = {
    "or": 1,
    "and": 2,
    "unless": 2,
    **dict.fromkeys(COMPARISONS, 3),
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
}
UNARY_PRECEDENCE = 6

# Prometheus' duration units, largest first (the printer relies on the order): a year is
# always 365 days and a week 7, as in Prometheus (model.ParseDuration).
DURATION_UNITS_MS: dict[str, int] = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}

METRIC_NAME_RE = re.compile(r"[A-Za-z_:][A-Za-z0-9_:.]*")
LABEL_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NUMBER_RE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
DURATION_RE = re.compile(r"(?:[0-9]+(?:ms|[smhdwy]))+")
DURATION_PART_RE = re.compile(r"([0-9]+)(ms|[smhdwy])")
_SYMBOLS = (
    *("==", "!=", ">=", "<=", "=~", "!~", ">", "<", "=", "+", "-", "*", "/"),
    *("(", ")", "{", "}", "[", "]", ","),
)
_DIGITS = frozenset("0123456789")

#: Parentheses and prefix signs nested deeper than this are refused: the parser is recursive
#: descent (about seven Python frames per level), so this keeps it far from the recursion limit.
MAX_NESTING = 64
#: Operators nested deeper than this are refused (``a + a + ... + a`` nests one level per
#: operator): evaluating and printing walk the tree recursively, one frame per level.
MAX_DEPTH = 256
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:")


# --------------------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    """``route="/api"``: one label condition of a selector (regexes fully anchored)."""

    name: str
    op: str
    value: str


@dataclass(frozen=True, slots=True)
class Number:
    """A literal number (a PromQL scalar)."""

    value: float


@dataclass(frozen=True, slots=True)
class Selector:
    """``name{matchers}``: the latest value of every matching series (an instant vector)."""

    name: str
    matchers: tuple[LabelMatcher, ...] = ()


@dataclass(frozen=True, slots=True)
class WindowCall:
    """``fn(selector[window])``: one value per series, reduced over the last ``window`` seconds."""

    func: str
    selector: Selector
    window: float


@dataclass(frozen=True, slots=True)
class Absent:
    """``absent(selector)``: one sample when the selector matches nothing, else nothing."""

    selector: Selector


@dataclass(frozen=True, slots=True)
class Neg:
    """Unary minus."""

    operand: Expr


@dataclass(frozen=True, slots=True)
class BinOp:
    """A binary operator: arithmetic, comparison (a filter) or set operator."""

    op: str
    left: Expr
    right: Expr


Expr: TypeAlias = Number | Selector | WindowCall | Absent | Neg | BinOp


@dataclass(frozen=True, slots=True)
class EvalResult:
    """The instant vector a condition produced, and whether its selectors saw any data at all.

    ``samples`` holds one entry per label set for which the condition holds (a comparison
    filters, keeping its left-hand value). ``no_data`` is True when every selector outside
    ``absent()`` selected nothing, so the engine can apply the rule's ``no_data`` policy.
    ``measured`` (only when asked for) holds every label set those selectors returned, before
    any filtering: the series the expression still sees.
    """

    samples: dict[Labels, float]
    no_data: bool
    measured: frozenset[Labels] = frozenset()


def selectors(expr: Expr) -> list[Selector]:
    """Every selector in ``expr``, left to right (for no-data checks and exports)."""
    if isinstance(expr, Selector):
        return [expr]
    if isinstance(expr, WindowCall | Absent):
        return [expr.selector]
    if isinstance(expr, Neg):
        return selectors(expr.operand)
    if isinstance(expr, BinOp):
        return selectors(expr.left) + selectors(expr.right)
    return []


# --------------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "num", "ident", "str", "dur", "op", "eof"
    text: str
    pos: int
    value: object = None


def _describe(tok: _Token) -> str:
    if tok.kind == "eof":
        return "the end of the expression"
    if tok.kind == "ident" and tok.text in KEYWORDS:
        return f"the keyword {tok.text!r}"
    return f"{tok.text!r}"


class _Parser:
    """One parse of one text; holds the position so errors can point at it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.brackets = 0  # > 0 inside [...] where durations are tokens
        self.nesting = 0  # open parentheses and prefix signs around the current position
        self.depths: dict[int, int] = {}  # id(node) -> tree depth, for BinOp and Neg nodes
        self.tok = self._next()

    # -- errors ---------------------------------------------------------------------------

    def fail(self, expected: str, tok: _Token | None = None) -> ParseError:
        tok = tok or self.tok
        msg = f"expected {expected} at column {tok.pos + 1}, found {_describe(tok)}"
        return ParseError(msg, text=self.text, position=tok.pos)

    def fail_at(self, msg: str, pos: int) -> ParseError:
        return ParseError(f"{msg} at column {pos + 1}", text=self.text, position=pos)

    # -- tokens ---------------------------------------------------------------------------

    def _next(self) -> _Token:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            self.pos = pos
            return _Token("eof", "", pos)
        ch = text[pos]
        if self.brackets and ch in _DIGITS:
            match = DURATION_RE.match(text, pos)
            if match is None:
                msg = "expected a duration like 30s, 5m, 1h30m or 1w (ms s m h d w y)"
                raise self.fail_at(msg, pos)
            self.pos = match.end()
            total = sum(
                int(n) * DURATION_UNITS_MS[unit]
                for n, unit in DURATION_PART_RE.findall(match.group())
            )
            return _Token("dur", match.group(), pos, total)
        if ch in _DIGITS or (ch == "." and text[pos + 1 : pos + 2] in _DIGITS):
            match = _NUMBER_RE.match(text, pos)
            assert match is not None  # the guard above guarantees a digit here
            end = match.end()
            if end < len(text) and (text[end].isalpha() or text[end] == "_"):
                raise self.fail_at(
                    f"unexpected {text[end]!r} after the number {match.group()!r}"
                    " (durations like 5m are only allowed inside [...])",
                    end,
                )
            value = float(match.group())
            if not math.isfinite(value):
                raise self.fail_at(f"number {match.group()!r} is out of range", pos)
            self.pos = end
            return _Token("num", match.group(), pos, value)
        if ch in _NAME_START:
            match = METRIC_NAME_RE.match(text, pos)
            assert match is not None  # the guard above guarantees a name start
            self.pos = match.end()
            return _Token("ident", match.group(), pos)
        if ch in "\"'":
            return self._string(pos, ch)
        for sym in _SYMBOLS:
            if text.startswith(sym, pos):
                self.pos = pos + len(sym)
                return _Token("op", sym, pos)
        raise self.fail_at(f"unexpected character {ch!r}", pos)

    def _string(self, start: int, quote: str) -> _Token:
        text, pos = self.text, start + 1
        out: list[str] = []
        escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}
        while pos < len(text):
            ch = text[pos]
            if ch == quote:
                self.pos = pos + 1
                return _Token("str", text[start : pos + 1], start, "".join(out))
            if ch == "\\":
                nxt = text[pos + 1 : pos + 2]
                if nxt not in escapes:
                    raise self.fail_at(
                        f"unknown escape \\{nxt} in string (allowed: \\n \\t \\r \\\\ \\\" \\')",
                        pos,
                    )
                out.append(escapes[nxt])
                pos += 2
                continue
            out.append(ch)
            pos += 1
        raise self.fail_at("unterminated string starting", start)

    def advance(self) -> _Token:
        tok = self.tok
        self.tok = self._next()
        return tok

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def is_keyword(self, *words: str) -> bool:
        return self.tok.kind == "ident" and self.tok.text in words

    def enter(self, tok: _Token) -> None:
        """One more level of parentheses or prefix signs; refused past :data:`MAX_NESTING`."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            msg = f"expression nested too deeply (more than {MAX_NESTING} parentheses or signs)"
            raise self.fail_at(msg, tok.pos)

    def node(self, tok: _Token, op: str, left: Expr, right: Expr | None = None) -> Expr:
        """A BinOp (or, without ``right``, a Neg) at ``tok``; refused past :data:`MAX_DEPTH`."""
        depth = 1 + max(
            self.depths.get(id(child), 1) for child in (left, right) if child is not None
        )
        if depth > MAX_DEPTH:
            msg = f"expression nested too deeply (more than {MAX_DEPTH} operators deep)"
            raise self.fail_at(msg, tok.pos)
        made: Expr = Neg(left) if right is None else BinOp(op, left, right)
        self.depths[id(made)] = depth
        return made

    def expect_op(self, op: str, what: str | None = None) -> _Token:
        if not self.is_op(op):
            raise self.fail(what or f"{op!r}")
        return self.advance()

    # -- grammar --------------------------------------------------------------------------

    def parse(self) -> Expr:
        if self.tok.kind == "eof":
            raise self.fail("an expression")
        expr = self.expr()
        if self.tok.kind != "eof":
            raise self.fail("an operator (+ - * / > >= < <= == != and or unless) or the end")
        return expr

    def expr(self) -> Expr:
        left = self.and_expr()
        while self.is_keyword("or"):
            tok = self.advance()
            left = self.node(tok, "or", left, self.and_expr())
        return left

    def and_expr(self) -> Expr:
        left = self.comparison()
        while self.is_keyword("and", "unless"):
            tok = self.advance()
            op = tok.text
            if op == "and" and self.is_keyword("not"):
                self.advance()
                op = "unless"
            left = self.node(tok, op, left, self.comparison())
        return left

    def comparison(self) -> Expr:
        left = self.sum()
        while self.tok.kind == "op" and self.tok.text in COMPARISONS:
            tok = self.advance()
            left = self.node(tok, tok.text, left, self.sum())
        return left

    def sum(self) -> Expr:
        left = self.product()
        while self.is_op("+", "-"):
            tok = self.advance()
            left = self.node(tok, tok.text, left, self.product())
        return left

    def product(self) -> Expr:
        left = self.unary()
        while self.is_op("*", "/"):
            tok = self.advance()
            left = self.node(tok, tok.text, left, self.unary())
        return left

    def unary(self) -> Expr:
        if self.is_op("-"):
            tok = self.advance()
            if self.tok.kind == "num":  # fold "-1" into a literal so it prints back the same
                value = self.advance().value
                assert isinstance(value, float)  # number tokens carry floats
                return Number(-value)
            self.enter(tok)
            operand = self.unary()
            self.nesting -= 1
            return self.node(tok, "-", operand)
        if self.is_op("+"):
            self.enter(self.advance())
            operand = self.unary()
            self.nesting -= 1
            return operand
        return self.atom()

    def atom(self) -> Expr:
        tok = self.tok
        if tok.kind == "num":
            self.advance()
            assert isinstance(tok.value, float)  # number tokens carry floats
            return Number(tok.value)
        if self.is_op("("):
            self.enter(self.advance())
            inner = self.expr()
            self.expect_op(")", "')' or an operator")
            self.nesting -= 1
            return inner
        if tok.kind == "ident":
            if tok.text in KEYWORDS:
                raise self.fail("a number, a metric or '('")
            self.advance()
            if self.is_op("("):
                return self.call(tok)
            return self.selector_rest(tok)
        raise self.fail("a number, a metric or '('")

    def call(self, name: _Token) -> Expr:
        func = name.text
        if func not in WINDOW_FUNCTIONS and func != "absent":
            known = ", ".join(sorted(WINDOW_FUNCTIONS | {"absent"}))
            raise self.fail_at(f"unknown function {func!r} (known: {known})", name.pos)
        self.advance()  # "("
        if self.tok.kind != "ident" or self.tok.text in KEYWORDS:
            raise self.fail(f"a metric name inside {func}(...)")
        selector = self.selector_rest(self.advance())
        if func == "absent":
            if self.is_op("["):
                raise self.fail("')' (absent() takes a plain selector, no [range])")
            self.expect_op(")", "')' to close absent(")
            return Absent(selector)
        if not self.is_op("["):
            raise self.fail(f"a range like [5m] after the selector in {func}()")
        self.brackets += 1
        self.advance()  # "[" — the next token is read in duration mode
        if self.tok.kind != "dur":
            raise self.fail("a duration like 30s, 5m, 1h30m or 1w (ms s m h d w y)")
        dur = self.tok
        self.brackets -= 1
        self.advance()
        assert isinstance(dur.value, int)  # duration tokens carry milliseconds
        if dur.value <= 0:
            raise self.fail_at("the range must be longer than 0", dur.pos)
        self.expect_op("]", "']' after the duration")
        self.expect_op(")", f"')' to close {func}(")
        return WindowCall(func, selector, dur.value / 1000)

    def selector_rest(self, name: _Token) -> Selector:
        if not self.is_op("{"):
            return Selector(name.text)
        self.advance()
        matchers: list[LabelMatcher] = []
        while not self.is_op("}"):
            label = self.tok
            if label.kind != "ident" or not LABEL_NAME_RE.fullmatch(label.text):
                raise self.fail("a label name or '}'")
            self.advance()
            if not (self.tok.kind == "op" and self.tok.text in MATCH_OPS):
                raise self.fail("a label matcher (=, !=, =~ or !~)")
            op = self.advance().text
            if self.tok.kind != "str":
                raise self.fail("a quoted label value")
            value_tok = self.advance()
            assert isinstance(value_tok.value, str)  # string tokens carry str
            if op in ("=~", "!~"):
                try:
                    compile_label_regex(value_tok.value)
                except RegexSyntaxError as exc:
                    raise self.fail_at(
                        f"invalid regular expression {value_tok.value!r}: {exc}", value_tok.pos
                    ) from None
            matchers.append(LabelMatcher(label.text, op, value_tok.value))
            if self.is_op(","):
                self.advance()
            elif not self.is_op("}"):
                raise self.fail("',' or '}'")
        self.advance()  # "}"
        return Selector(name.text, tuple(matchers))


def parse(text: str) -> Expr:
    """Parse a rule condition into an AST.

    Raises:
        ParseError: with ``position`` (0-based) and a message naming the column and what was
            expected there.
    """
    if not isinstance(text, str):
        msg = f"a condition must be a string, got {type(text).__name__}"
        raise ParseError(msg, text=str(text), position=0)
    return _Parser(text).parse()


def format_error(err: ParseError) -> str:
    """The message plus the offending line with a caret under the column, for terminals."""
    line_start = err.text.rfind("\n", 0, err.position) + 1
    line_end = err.text.find("\n", err.position)
    line = err.text[line_start : line_end if line_end != -1 else len(err.text)]
    caret = " " * (err.position - line_start) + "^"
    return f"{err}\n  {line}\n  {caret}"


# ----------------------------------------------------------------------------------- printer


def format_number(value: float) -> str:
    """Shortest text that parses back to ``value`` (integers without a trailing ``.0``)."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_duration(seconds: float) -> str:
    """``300.0`` -> ``5m``, ``5400`` -> ``1h30m``, ``1209600`` -> ``2w``: reads back the same."""
    ms = round(seconds * 1000)
    parts = []
    for unit, size in DURATION_UNITS_MS.items():
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def format_string(value: str) -> str:
    """A double-quoted string literal that the tokenizer reads back as ``value``."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("\r", "\\r")
    )
    return f'"{escaped}"'


def format_selector(sel: Selector) -> str:
    if not sel.matchers:
        return sel.name
    inner = ", ".join(f"{m.name}{m.op}{format_string(m.value)}" for m in sel.matchers)
    return f"{sel.name}{{{inner}}}"


def unparse(expr: Expr) -> str:
    """Print ``expr`` as text that :func:`parse` turns back into an equal AST.

    Parentheses are added only where precedence or left-associativity requires them.
    """
    if isinstance(expr, Number):
        return format_number(expr.value)
    if isinstance(expr, Selector):
        return format_selector(expr)
    if isinstance(expr, WindowCall):
        return f"{expr.func}({format_selector(expr.selector)}[{format_duration(expr.window)}])"
    if isinstance(expr, Absent):
        return f"absent({format_selector(expr.selector)})"
    if isinstance(expr, Neg):
        inner = unparse(expr.operand)
        if isinstance(expr.operand, BinOp | Number):  # "-(1)" keeps Neg(Number(1)) distinct
            inner = f"({inner})"
        return f"-{inner}"
    prec = PRECEDENCE[expr.op]
    left, right = unparse(expr.left), unparse(expr.right)
    if isinstance(expr.left, BinOp) and PRECEDENCE[expr.left.op] < prec:
        left = f"({left})"
    if isinstance(expr.right, BinOp) and PRECEDENCE[expr.right.op] <= prec:
        right = f"({right})"
    return f"{left} {expr.op} {right}"
