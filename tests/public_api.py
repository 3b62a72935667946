"""Reading and writing tests/public_api.txt, the committed list of paca-otel's public names.

Shared by tests/test_public_api.py (which compares the code against the file) and
scripts/public-api (which rewrites the file from the code).
"""

from __future__ import annotations

from pathlib import Path

FILE = Path(__file__).resolve().parent / "public_api.txt"

HEADER = """\
# The public surface of paca-otel: each public module, then its __all__, sorted.
# tests/test_public_api.py fails while the code and this file differ. When a change to the
# public surface is intended, run `python scripts/public-api` and commit this file with it.
# Anything not listed here is internal and may change without notice.
"""


def read_surface(text: str | None = None) -> dict[str, list[str]]:
    """Module name -> its public names, from the file (or ``text``), in file order."""
    surface: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in (FILE.read_text(encoding="utf-8") if text is None else text).splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = surface.setdefault(line[1:-1], [])
        elif current is None:
            msg = f"{FILE.name}: name {line!r} before any [module] line"
            raise ValueError(msg)
        else:
            current.append(line)
    return surface


def render_surface(surface: dict[str, list[str]]) -> str:
    """The file's text for ``surface``: modules sorted, each module's names sorted."""
    parts = [HEADER]
    for module in sorted(surface):
        parts.append(f"\n[{module}]\n" + "".join(f"{name}\n" for name in sorted(surface[module])))
    return "".join(parts)
