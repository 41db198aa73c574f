"""The one writer and the one reader of bsmeth's tab-separated tables.

Bottom of the import graph (next to ``atomic``): every ``.tsv`` bsmeth writes
(reads, cpg_calls, summary, samples, stats, heterogeneity, quantify, the
simulator's truth) goes through ``table_text``/``write_table``, and everything
that reads one back goes through ``read_table``.  The format (docs/outputs.md):

* UTF-8, one header line, ``\\n`` line ends, fields separated by a tab.
* RFC 4180 quoting with ``"``: a field holding a tab, a line break (``\\n`` or
  ``\\r``) or a ``"`` is written in double quotes, with ``"`` doubled.  This
  is the default dialect of Python's ``csv`` module (``delimiter="\\t"``),
  pandas ``read_csv(sep="\\t")`` and R's ``read.delim``, so all of them cut the
  same rows and cells.
* Formula-safe text (the OWASP CSV-injection rule): a text cell starting with
  ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is written with one
  ``'`` in front, so a spreadsheet shows it as text instead of running it; so
  is a cell starting with ``'`` (so that the guard can always be undone).
  ``read_table`` removes that one ``'``; other readers see it.  Not guarded,
  because a spreadsheet cannot run them: a lone ``-`` or ``+`` (the call ``-``,
  orientation ``-``) and numbers (``-0.25`` stays a number).
* Text that is not valid Unicode (a file name in a legacy encoding reaches
  Python with surrogate escapes) is written with its undecodable bytes as
  ``\\xNN`` escapes; ``undo_byte_escapes`` gives the original name back.
* Empty cell: no value.  Floats with 4 decimals unless the caller formats them.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from pathlib import Path
from typing import Iterable, Optional, Sequence

from .atomic import encode, write_text

FORMULA_START = frozenset("=+-@\t\r")
_SPECIAL = ("\t", "\n", "\r", '"')
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?inf")


def needs_guard(s: str) -> bool:
    """Would a spreadsheet run this text as a formula (or is it text that starts with the guard itself)?"""
    if not s:
        return False
    if s[0] == "'":
        return True
    return s[0] in FORMULA_START and len(s) > 1 and not _NUMBER.fullmatch(s)


def text_cell(s: str) -> str:
    """A text value as written in a table: formula-safe, quoted when needed."""
    if s.isascii() and s.isprintable() and '"' not in s and not needs_guard(s):
        return s  # the common case, as it is: no tab, line end, quote, non-ASCII character or formula start
    if needs_guard(s):
        s = "'" + s
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes of a name in another encoding
        s = encode(s).decode("utf-8")
    if any(c in s for c in _SPECIAL):
        return '"' + s.replace('"', '""') + '"'
    return s


def cell(x) -> str:
    """One value as written: '' for None, ints as they are, floats with 4 decimals, text via ``text_cell``."""
    t = type(x)
    if t is str:
        return text_cell(x)
    if t is int:
        return str(x)
    if x is None:
        return ""
    if t is bool:
        return "yes" if x else "no"
    if isinstance(x, float):  # numpy floats too
        return f"{x:.4f}" if x == x else ""
    if isinstance(x, int):  # numpy integers
        return str(int(x))
    return text_cell(str(x))


def line(values: Iterable) -> str:
    """One row (no line end)."""
    return "\t".join([cell(v) for v in values])


def table_text(columns: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A whole table as text.  ``rows`` may also hold already formatted lines (str)."""
    out = [line(columns)]
    for r in rows:
        out.append(r if isinstance(r, str) else line(r))
    return "\n".join(out) + "\n"


def write_table(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """Write a table atomically (see ``atomic``)."""
    return write_text(path, table_text(columns, rows))


def unescape(s: str) -> str:
    """A cell as ``read_table`` returns it: the formula guard removed."""
    return s[1:] if s[:1] == "'" else s


def parse(text: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a table's text; every cell a string, the formula guard removed."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quotechar='"', doublequote=True, strict=True)
    # the guard is a leading apostrophe: text without one has none to remove (cpg_calls.tsv of 2,000 reads, 1.1 M
    # cells: 0.45 s of CPU in unescape)
    rows = [[unescape(c) for c in r] for r in reader] if "'" in text else list(reader)
    if not rows:
        return [], []
    return rows[0], rows[1:]


class TableError(ValueError):
    """A table that is not one bsmeth wrote (the caller turns it into a user-facing error)."""


def read_table(path: str | os.PathLike) -> tuple[list[str], list[list[str]]]:
    """Read a table written by ``write_table``: (header, rows of strings).

    Raises ``TableError`` (with the line) for text that is not a table of this format: undecodable bytes,
    broken quoting, or a row whose number of cells differs from the header's.
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise TableError(f"not UTF-8 text (byte {e.start})") from None
    try:
        header, rows = parse(text)
    except csv.Error as e:
        raise TableError(str(e)) from None
    for i, r in enumerate(rows, start=1):
        if len(r) != len(header):
            raise TableError(f"data row {i}: {len(r)} cells, the header has {len(header)}")
    return header, rows


def undo_byte_escapes(s: str) -> Optional[str]:
    """The original (surrogate-escaped) text of a cell written with ``\\xNN`` byte escapes; None if it has none."""
    if "\\x" not in s:
        return None
    try:
        raw = codecs.escape_decode(s.encode("utf-8"))[0]
    except ValueError:
        return None
    return os.fsdecode(raw)
