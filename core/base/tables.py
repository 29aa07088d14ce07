"""The one text-table printer (the CLI's tables, the benchmarks' tables), its cell formatting, and counts in words.

Low in the stack so that everything that prints a table (``core.cli``,
``bench/``) uses the same one without importing the CLI, and every message
that counts things (the engine's, the CLI's, the pages') says "1 epoch", "2 epochs"
through :func:`plural`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO


def print_table(rows: Sequence[Mapping[str, Any]], cols: Sequence[tuple[str, str]], file: TextIO | None = None) -> None:
    """Rows as aligned text columns; ``cols`` are ``(key, header)`` pairs; a missing cell prints empty."""
    file = file or sys.stdout
    cells = [[str(r.get(k, "") if r.get(k) is not None else "-") for k, _ in cols] for r in rows]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, (_, h) in enumerate(cols)]
    print("  ".join(h.ljust(w) for (_, h), w in zip(cols, widths, strict=True)).rstrip(), file=file)
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip(), file=file)


def number(v: Any, fmt: str = "") -> str:
    """A cell: '-' for a missing value, thousands separators for ints, ``fmt`` for floats."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return format(v, fmt or ".1f")
    return str(v)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 epoch"``, ``"2 epochs"``, ``"1,200 images"``: a count and its noun, singular for exactly one.

    ``words`` is the plural when it is not ``word + "s"`` (``plural(n, "class", "classes")``).
    """
    return f"{number(n)} {word if n == 1 else (words or word + 's')}"


def stored_line(total: int, stored: int, what: str) -> str:
    """How many of ``total`` trainings came back from the run store; ``what`` is the singular noun ("point")."""
    if stored == total:
        if stored == 1:
            return f"The {what} was stored already: nothing was trained."
        return f"All {plural(stored, what)} were stored already: nothing was trained."
    return f"{plural(total - stored, what)} trained, {stored} came back from the store."
