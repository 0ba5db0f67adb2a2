"""Plain-text tables, as every question prints them: columns two spaces apart.

Pure; the rows are strings already formatted by the question.
"""

from __future__ import annotations

from collections.abc import Sequence


def format_table(rows: Sequence[Sequence[str]], *, numbers_right: bool = False) -> str:
    """Aligned columns, the first row the header. Left-aligned, or with ``numbers_right`` every
    column but the first right-aligned (columns of figures)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(cell.rjust(w) if numbers_right and i else cell.ljust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows)
    return "\n".join(line.rstrip() for line in lines)
