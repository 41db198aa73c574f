"""Excel workbooks through xlsxwriter: the one module that imports it (only when a workbook is written).

Why xlsxwriter (and not openpyxl): it only writes, which is all bsmeth needs, fast and with no dependencies of
its own; every cell is written with an explicit type (text is never run as a formula, turned into a number or a
link), and the file is byte-identical between runs (fixed document dates).  openpyxl, which reads workbooks
too, is what the tests open results.xlsx with: an independent reader.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .atomic import encode, write_via_path

MAX_NAME = 31  # Excel's limit for sheet names
_BAD_NAME = str.maketrans({c: "_" for c in "[]:*?/\\"})
FIXED_DATE = datetime.datetime(2000, 1, 1)  # document dates: a fixed value keeps the file deterministic


@dataclass(frozen=True)
class Sheet:
    """One worksheet: a header row and rows of values (str, int, float or None for an empty cell)."""

    name: str
    columns: Sequence[str]
    rows: Sequence[Sequence]
    widths: Sequence[float] = ()


def sheet_names(wanted: Sequence[str]) -> list[str]:
    """Valid, unique (case-insensitively, as Excel compares them) sheet names for ``wanted``."""
    out: list[str] = []
    seen: set[str] = set()
    for w in wanted:
        base = encode(w).decode("utf-8").translate(_BAD_NAME).strip("'").strip() or "sheet"
        if base.lower() == "history":
            base = "history_"
        name, k = base[:MAX_NAME], 2
        while name.lower() in seen:
            suffix = f"~{k}"
            name, k = base[:MAX_NAME - len(suffix)] + suffix, k + 1
        seen.add(name.lower())
        out.append(name)
    return out


def _text(s: str) -> str:
    return encode(s).decode("utf-8")  # names in a legacy encoding: their bytes as \xNN, as in the TSVs


def write_xlsx(path: str | os.PathLike, sheets: Sequence[Sheet]) -> Path:
    import xlsxwriter

    def write(tmp: Path) -> None:
        wb = xlsxwriter.Workbook(str(tmp), {"strings_to_numbers": False, "strings_to_formulas": False,
                                            "strings_to_urls": False, "nan_inf_to_errors": True})
        wb.set_properties({"title": "bsmeth results", "created": FIXED_DATE})
        wb.set_custom_property("generator", "bsmeth")
        bold = wb.add_format({"bold": True})
        for sheet, name in zip(sheets, sheet_names([s.name for s in sheets])):
            ws = wb.add_worksheet(name)
            for j, c in enumerate(sheet.columns):
                ws.write_string(0, j, _text(str(c)), bold)
            for i, row in enumerate(sheet.rows, start=1):
                for j, v in enumerate(row):
                    if v is None or v == "":
                        continue
                    if isinstance(v, bool):
                        ws.write_boolean(i, j, v)
                    elif isinstance(v, (int, float)):
                        ws.write_number(i, j, v)
                    else:
                        ws.write_string(i, j, _text(str(v)))
            ws.freeze_panes(1, 0)
            for j, w in enumerate(sheet.widths):
                ws.set_column(j, j, w)
        wb.close()

    return write_via_path(path, write)
