#!/usr/bin/env python3
"""Move modules to the layout in ``scripts/relayout.map`` and rewrite every reference to them.

Why a tool and not a hand-made commit: the relayout touches most files, while other branches
keep changing them. The map is the decision; this tool applies it to whatever tree it is run
on, the same way each time, so the move can be redone on the newest main in one command.

Usage (from the repository root, on a clean work tree)::

    python scripts/relayout.py --dry-run   # the plan and every file it would change
    python scripts/relayout.py             # apply: git mv, rewrite, ruff --fix, ruff format

What it does, in order:

1. Reads the map (``old.module -> new.module``; ``copy old -> new``; ``new PATH: docstring``;
   ``public module``) and refuses to run when a source module is missing (already applied?),
   a target exists, or the work tree has uncommitted changes.
2. In every tracked text file (``*.py``, ``*.md``, ``*.toml``, ``*.txt``, ``*.yaml``, ``*.yml``,
   ``*.cfg``, ``*.ini``, ``.ci/run``, ``scripts/*``; not ``CHANGELOG.md``, which records
   history, nor the map and this tool) rewrites:

   - in Python, by syntax tree: relative imports to absolute ones, ``from pkg import module``
     forms to ``from newpkg import _module as module``, and ``getLogger(__name__)`` in a moved
     module to the old name as a literal (logger names are configuration users rely on);
   - dotted module paths, word-boundary safe and longest first, in code and strings alike
     (monkeypatch targets, lazy-import tables, ``python -m`` lines, entry points), except a
     string literal that is exactly a logger name used somewhere (``getLogger("x")``,
     ``logger="x"``): those stay;
   - file paths (``paca_otel/alerting/engine.py``, ``alerting/engine.py``,
     ``tests/alerting/test_x.py::test``, a moved package's ``dir/``).
3. ``git mv``s each file, writes the rewritten texts, adds the new files, lists the ``public``
   modules in ``tests/public_api.txt`` and regenerates it with ``scripts/public-api``.
4. Imports every moved module in a fresh interpreter, then runs ``ruff check --fix`` and
   ``ruff format``.

It fails loudly (exit 1, nothing written) when a reference to an old module survives the
rewrite, and warns about bare file names in prose (``notify.py``) it cannot place.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import shutil
import subprocess
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAP_FILE = ROOT / "scripts" / "relayout.map"
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".yaml", ".yml", ".cfg", ".ini"}
EXTRA_TEXT = {".ci/run"}
NEVER_REWRITE = {"CHANGELOG.md", "scripts/relayout.py", "scripts/relayout.map"}
PUBLIC_API = "tests/public_api.txt"
ROOT_PACKAGES = ("paca_otel", "tests")
LOGGER_LITERAL = re.compile(r"""(?:getLogger\(\s*|logger\s*=\s*)(["'])([\w.]+)\1""")
# what comes before a string literal that names a logger: getLogger("x"), logger="x",
# record.name == "x"
LOGGER_CONTEXT = re.compile(r"""(?:getLogger\(\s*|logger\s*=\s*|\.name\s*[!=]=\s*)["']$""")


class RelayoutError(Exception):
    """The tree or the map is not in a state this tool can apply to; nothing was written."""


@dataclass
class Plan:
    """The map, resolved against the tree."""

    moves: dict[str, str] = field(default_factory=dict)  # old module -> new module
    copies: dict[str, str] = field(default_factory=dict)  # old module -> new module (copy)
    files: dict[str, str] = field(default_factory=dict)  # old path -> new path (moves)
    copy_files: dict[str, str] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)  # old dir/ -> new dir/
    new_files: dict[str, str] = field(default_factory=dict)  # path -> text
    public: list[str] = field(default_factory=list)


def git(*args: str, capture: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, check=True, text=True, capture_output=capture)
    return result.stdout if capture else ""


def module_file(module: str) -> str:
    """The tracked file of a dotted module: ``a/b.py`` or ``a/b/__init__.py``."""
    base = module.replace(".", "/")
    if (ROOT / f"{base}.py").is_file():
        return f"{base}.py"
    if (ROOT / base / "__init__.py").is_file():
        return f"{base}/__init__.py"
    msg = f"module {module} has no file ({base}.py or {base}/__init__.py): already applied?"
    raise RelayoutError(msg)


def target_file(module: str, *, package: bool) -> str:
    base = module.replace(".", "/")
    return f"{base}/__init__.py" if package else f"{base}.py"


def read_map(path: Path) -> Plan:
    plan = Plan()
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("new ") else raw
        line = line.strip()
        if not line:
            continue
        where = f"{path.name}:{number}"
        if line.startswith("new "):
            name, _, doc = line[4:].partition(":")
            plan.new_files[name.strip()] = f'"""{doc.strip()}"""\n' if doc.strip() else ""
        elif line.startswith("public "):
            plan.public.append(line[7:].strip())
        elif "->" in line:
            copy = line.startswith("copy ")
            old, _, new = (line[5:] if copy else line).partition("->")
            old, new = old.strip(), new.strip()
            table = plan.copies if copy else plan.moves
            if old in plan.moves or old in plan.copies:
                msg = f"{where}: {old} is mapped twice"
                raise RelayoutError(msg)
            table[old] = new
        else:
            want = "'old -> new', 'copy old -> new', 'new PATH: doc' or 'public MODULE'"
            msg = f"{where}: cannot read {raw!r} (want {want})"
            raise RelayoutError(msg)
    olds = set(plan.moves) | set(plan.copies)
    for new in [*plan.moves.values(), *plan.copies.values()]:
        for old in olds:
            if new == old or new.startswith(old + "."):
                msg = f"target {new} lies under the source {old}: the rewrite would not be one pass"
                raise RelayoutError(msg)
    if len(set(plan.moves.values())) != len(plan.moves):
        msg = "two modules map to the same target"
        raise RelayoutError(msg)
    return plan


def resolve(plan: Plan) -> None:
    """Attach files to modules; refuse when a source is missing or a target exists."""
    for table, files in ((plan.moves, plan.files), (plan.copies, plan.copy_files)):
        for old, new in table.items():
            src = module_file(old)
            package = src.endswith("/__init__.py")
            dst = target_file(new, package=package)
            if (ROOT / dst).exists():
                msg = f"target {dst} of {old} exists already: already applied?"
                raise RelayoutError(msg)
            files[src] = dst
            if package and table is plan.moves:
                plan.packages[src.removesuffix("__init__.py")] = dst.removesuffix("__init__.py")
    for path in plan.new_files:
        if (ROOT / path).exists():
            msg = f"new file {path} exists already: already applied?"
            raise RelayoutError(msg)


def text_files() -> list[str]:
    out = []
    for name in sorted(git("ls-files").splitlines()):
        if name in NEVER_REWRITE or not (ROOT / name).is_file():
            continue
        if Path(name).suffix in TEXT_SUFFIXES or name in EXTRA_TEXT or name.startswith("scripts/"):
            out.append(name)
    return out


def file_module(path: str) -> str | None:
    if not path.endswith(".py") or not path.startswith(ROOT_PACKAGES):
        return None
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


# ------------------------------------------------------------------ Python: by syntax tree
def _offsets(text: str) -> list[int]:
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def python_edits(path: str, text: str, plan: Plan, mapping: dict[str, str]) -> str:
    """Relative imports made absolute, ``from pkg import module`` split, logger names kept."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        msg = f"{path}: not valid Python ({exc}); cannot rewrite its imports"
        raise RelayoutError(msg) from None
    own = file_module(path)
    is_package = path.endswith("__init__.py")
    starts = _offsets(text)
    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if own is None:
                    msg = f"{path}:{node.lineno}: relative import outside a package"
                    raise RelayoutError(msg)
                parts = own.split(".")
                drop = node.level - 1 if is_package else node.level
                anchor = parts[: len(parts) - drop] if drop else parts
                base = ".".join([*anchor, base] if base else anchor)
            modules = [a for a in node.names if f"{base}.{a.name}" in mapping]
            if not modules and not node.level:
                continue
            others = [a for a in node.names if a not in modules]
            lines = []
            if others:
                names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in others)
                lines.append(f"from {base} import {names}")
            for alias in modules:
                new_parent, _, new_leaf = mapping[f"{base}.{alias.name}"].rpartition(".")
                shown = alias.asname or alias.name
                suffix = "" if new_leaf == shown else f" as {shown}"
                lines.append(f"from {new_parent} import {new_leaf}{suffix}")
            start = starts[node.lineno - 1] + node.col_offset
            end = starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
            line_head = text[starts[node.lineno - 1] : start]
            joiner = "\n" + line_head if not line_head.strip() else "; "
            edits.append((start, end, joiner.join(lines)))
        elif (
            isinstance(node, ast.Call)
            and own in plan.moves
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) == "getLogger"
            and len(node.args) == 1
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == "__name__"
        ):
            arg = node.args[0]
            start = starts[arg.lineno - 1] + arg.col_offset
            end = starts[arg.end_lineno - 1] + arg.end_col_offset  # type: ignore[operator]
            edits.append((start, end, f'"{own}"'))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


# ------------------------------------------------------------------ every text: by pattern
def alternation(keys: list[str]) -> str:
    return "|".join(re.escape(k) for k in sorted(keys, key=lambda k: (-len(k), k)))


@dataclass
class Patterns:
    dotted: re.Pattern[str]
    paths: re.Pattern[str]
    short: re.Pattern[str]
    dotted_map: dict[str, str]
    path_map: dict[str, str]
    short_map: dict[str, str]


def patterns(plan: Plan) -> Patterns:
    dotted_map = dict(plan.moves)
    path_map: dict[str, str] = {}
    for old, new in plan.files.items():
        if old.endswith("/__init__.py"):
            path_map[old] = new
        else:
            path_map[old] = new
    path_map.update(plan.packages)
    short_map = {
        old.removeprefix("paca_otel/"): new.removeprefix("paca_otel/")
        for old, new in path_map.items()
        if old.startswith("paca_otel/") and new.startswith("paca_otel/")
    }
    return Patterns(
        dotted=re.compile(rf"(?<![\w.])({alternation(list(dotted_map))})(?!\w)"),
        paths=re.compile(rf"(?<![\w.\-])({alternation(list(path_map))})(?![\w])"),
        short=re.compile(rf"(?<![\w.\-/])({alternation(list(short_map))})(?![\w])"),
        dotted_map=dotted_map,
        path_map=path_map,
        short_map=short_map,
    )


def logger_names(files: list[str]) -> set[str]:
    names: set[str] = set()
    for name in files:
        if name.endswith(".py"):
            names.update(m.group(2) for m in LOGGER_LITERAL.finditer((ROOT / name).read_text()))
    return names


def is_logger_name(text: str, match: re.Match[str], loggers: set[str]) -> bool:
    """Whether the match is a whole string literal naming a logger in a logger context."""
    if match.group(1) not in loggers:
        return False
    quote = text[match.start() - 1 : match.start()]
    if quote not in ("'", '"') or text[match.end() : match.end() + 1] != quote:
        return False
    return LOGGER_CONTEXT.search(text, max(0, match.start() - 40), match.start()) is not None


def rewrite_text(text: str, pat: Patterns, loggers: set[str]) -> str:
    def dotted(match: re.Match[str]) -> str:
        if is_logger_name(text_ref, match, loggers):
            return match.group(1)  # a logger name, not a module path
        return pat.dotted_map[match.group(1)]

    text_ref = text
    text = pat.dotted.sub(dotted, text)
    text = pat.paths.sub(lambda m: pat.path_map[m.group(1)], text)
    return pat.short.sub(lambda m: pat.short_map[m.group(1)], text)


def leftovers(name: str, text: str, pat: Patterns, loggers: set[str]) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in pat.dotted.finditer(line):
            if is_logger_name(line, match, loggers):
                continue
            found.append(f"{name}:{number}: {match.group(1)}")
        found += [f"{name}:{number}: {m.group(1)}" for m in pat.paths.finditer(line)]
    return found


def bare_map(plan: Plan) -> dict[str, dict[str, str]]:
    """Per old folder: a moved module's bare file name -> how its sibling files should name it.

    Docstrings say ``policy.py`` for a sibling. A sibling that stays beside the file gets its
    new name (``_policy.py``); one that moved elsewhere gets its path under ``paca_otel/``
    (``delivery/_notify.py``).
    """
    out: dict[str, dict[str, str]] = {}
    for old, new in plan.files.items():
        if old.startswith("paca_otel/") and not old.endswith("__init__.py"):
            folder = str(Path(old).parent)
            out.setdefault(folder, {})[Path(old).name] = new
    return out


def rewrite_bare(name: str, text: str, plan: Plan, bare: dict[str, dict[str, str]]) -> str:
    siblings = bare.get(str(Path(name).parent))
    if not siblings or not name.startswith("paca_otel/"):
        return text
    here = str(Path(plan.files.get(name, name)).parent)
    pattern = re.compile(rf"(?<![\w./\-])({alternation(list(siblings))})(?!\w)")

    def named(match: re.Match[str]) -> str:
        new = siblings[match.group(1)]
        if str(Path(new).parent) == here:
            return Path(new).name
        return new.removeprefix("paca_otel/")

    return pattern.sub(named, text)


def bare_names(name: str, text: str, plan: Plan) -> list[str]:
    """Prose like ``notify.py`` outside its package: not rewritten, reported."""
    tracked = git("ls-files", "paca_otel").splitlines()
    kept = {Path(p).name for p in tracked if p not in plan.files}
    moved = sorted(
        {Path(p).name for p in plan.files if p.startswith("paca_otel/")} - kept - {"__init__.py"}
    )
    if not moved:
        return []
    bare = re.compile(rf"(?<![\w./\-])({alternation(moved)})(?!\w)")
    return [
        f"{name}:{n}: {m.group(1)}"
        for n, line in enumerate(text.splitlines(), 1)
        for m in bare.finditer(line)
    ]


def wrap_prose(text: str, before: str, width: int = 100) -> str:
    """Re-wrap docstring and comment lines the rewrite pushed past ``width`` (ruff leaves them).

    Only lines that are new (not in ``before``) and lie in a multi-line string or a comment
    are touched: the overflow moves to a next line with the same indentation.
    """
    lines = text.splitlines(keepends=True)
    old = set(before.splitlines())
    if all(len(line.rstrip("\n")) <= width or line.rstrip("\n") in old for line in lines):
        return text
    prose: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                prose.add(tok.start[0])
            elif tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                prose.update(range(tok.start[0], tok.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        return text
    out = []
    for number, line in enumerate(lines, 1):
        body = line.rstrip("\n")
        if len(body) <= width or body in old or number not in prose:
            out.append(line)
            continue
        stripped = body.lstrip()
        lead = body[: len(body) - len(stripped)]
        if stripped.startswith("#"):
            lead += "# "
        elif stripped.startswith("- "):
            lead += "  "
        while len(body) > width:
            cut = body.rfind(" ", len(lead) + 1, width + 1)
            if cut <= len(lead):
                break
            out.append(body[:cut] + "\n")
            body = lead + body[cut + 1 :]
        out.append(body + "\n")
    return "".join(out)


# ------------------------------------------------------------------ apply
def run(dry_run: bool, allow_dirty: bool) -> int:
    plan = read_map(MAP_FILE)
    resolve(plan)
    if not allow_dirty and git("status", "--porcelain", "--untracked-files=no").strip():
        msg = "the work tree has uncommitted changes; commit or stash them first"
        raise RelayoutError(msg)
    files = text_files()
    loggers = logger_names(files)
    mapping = {**plan.moves, **plan.copies}
    pat = patterns(plan)
    bare = bare_map(plan)
    new_texts: dict[str, str] = {}
    problems: list[str] = []
    warnings: list[str] = []
    for name in files:
        old_text = (ROOT / name).read_text()
        text = python_edits(name, old_text, plan, mapping) if name.endswith(".py") else old_text
        text = rewrite_bare(name, rewrite_text(text, pat, loggers), plan, bare)
        if name.endswith(".py"):
            text = wrap_prose(text, old_text)
        problems += leftovers(name, text, pat, loggers)
        warnings += bare_names(name, text, plan)
        if text != old_text:
            new_texts[name] = text
    print(
        f"{len(plan.files)} files move, {len(plan.copy_files)} copied, {len(plan.new_files)} new;"
    )
    print(
        f"{len(new_texts)} of {len(files)} text files rewritten; logger names kept: "
        + ", ".join(sorted(n for n in loggers if n in pat.dotted_map))
        or "none"
    )
    for old, new in sorted(plan.files.items()):
        print(f"  mv {old} -> {new}")
    for old, new in sorted(plan.copy_files.items()):
        print(f"  cp {old} -> {new}")
    for path in sorted(plan.new_files):
        print(f"  new {path}")
    if dry_run:
        for name in sorted(new_texts):
            print(f"  edit {name}")
    for line in warnings:
        print(f"warning: bare file name left as is: {line}", file=sys.stderr)
    if problems:
        for line in problems:
            print(f"error: reference not rewritten: {line}", file=sys.stderr)
        return 1
    if dry_run:
        return 0
    # copies first (from the rewritten source text), then moves, then the texts
    for src, dst in sorted(plan.copy_files.items()):
        (ROOT / dst).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / dst).write_text(new_texts.get(src, (ROOT / src).read_text()))
    for src, dst in sorted(plan.files.items()):
        (ROOT / dst).parent.mkdir(parents=True, exist_ok=True)
        git("mv", src, dst)
    for name, text in sorted(new_texts.items()):
        (ROOT / plan.files.get(name, name)).write_text(text)
    for path, text in sorted(plan.new_files.items()):
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(text)
    git("add", *sorted(plan.copy_files.values()), *sorted(plan.new_files))
    remove_vacated(plan)
    if plan.public:
        add_public(plan.public)
    check_imports(plan)
    subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--fix", "--quiet", "."], cwd=ROOT, check=False
    )
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", "."], cwd=ROOT, check=True)
    git("add", "-u")
    git("add", *sorted({*plan.files.values(), *plan.copy_files.values(), *plan.new_files}))
    print("done: review with `git status` and `git diff --cached --stat`")
    return 0


def remove_vacated(plan: Plan) -> None:
    """Drop directories left with no tracked file (only caches), so no stale package stays."""
    tracked = git("ls-files").splitlines()
    for src in sorted(plan.files, reverse=True):
        folder = str(Path(src).parent) + "/"
        if (ROOT / folder).is_dir() and not any(t.startswith(folder) for t in tracked):
            shutil.rmtree(ROOT / folder)


def add_public(modules: list[str]) -> None:
    path = ROOT / PUBLIC_API
    text = path.read_text()
    for module in modules:
        if f"[{module}]\n" not in text:
            text = text.rstrip("\n") + f"\n\n[{module}]\n"
    path.write_text(text)
    subprocess.run([sys.executable, "scripts/public-api"], cwd=ROOT, check=True)


def check_imports(plan: Plan) -> None:
    modules = sorted(
        m for m in [*plan.moves.values(), *plan.copies.values()] if m.startswith("paca_otel")
    )
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    result = subprocess.run(
        [sys.executable, "-c", code, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        msg = f"a moved module does not import:\n{result.stderr}"
        raise RelayoutError(msg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--allow-dirty", action="store_true", help="run on uncommitted changes")
    args = parser.parse_args(argv)
    try:
        return run(args.dry_run, args.allow_dirty)
    except RelayoutError as exc:
        print(f"relayout: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
