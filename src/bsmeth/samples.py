"""The sample sheet: which read file belongs to which sample and condition.

Pipeline position: input stage, next to ``reads``.  A CSV (comma, tab or
semicolon separated) with columns ``file`` and ``sample`` and any further
condition columns (``cell_line``, ``dose``...).  Relative paths are relative to
the sheet's folder.  Without a sheet each input file (or folder) is a sample.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import SampleSheetError
from .reads import InputFile


@dataclass(frozen=True)
class SampleSheet:
    path: str
    columns: tuple[str, ...]  # extra columns, in sheet order
    rows: dict  # resolved file path -> (sample, {column: value})
    order: tuple[Path, ...] = field(default=())


def read_sheet(path: str | Path) -> SampleSheet:
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise SampleSheetError(f"sample sheet {p}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise SampleSheetError(f"sample sheet {p}: not a text (UTF-8) CSV file") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise SampleSheetError(f"sample sheet {p}: empty; expected a header line with columns file,sample")
    delim = max(",\t;", key=lines[0].count)
    reader = csv.reader(lines, delimiter=delim)
    header = [h.strip() for h in next(reader)]
    low = [h.lower() for h in header]
    missing = [c for c in ("file", "sample") if c not in low]
    if missing:
        raise SampleSheetError(
            f"sample sheet {p}, line 1: missing column(s) {', '.join(missing)} (found: {', '.join(header) or 'none'}); "
            "the header must name 'file' and 'sample'"
        )
    if len(set(low)) != len(low):
        raise SampleSheetError(f"sample sheet {p}, line 1: repeated column name in {', '.join(header)}")
    fi, si = low.index("file"), low.index("sample")
    extra = [(i, header[i]) for i in range(len(header)) if i not in (fi, si)]
    rows: dict = {}
    order: list[Path] = []
    for n, row in enumerate(reader, start=2):
        if len(row) != len(header):
            raise SampleSheetError(f"sample sheet {p}, line {n}: {len(row)} fields, the header has {len(header)}")
        f, sample = row[fi].strip(), row[si].strip()
        if not f or not sample:
            raise SampleSheetError(f"sample sheet {p}, line {n}: empty 'file' or 'sample'")
        fp = Path(f) if Path(f).is_absolute() else p.parent / f
        key = fp.resolve()
        values = {name: row[i].strip() for i, name in extra}
        if key in rows:
            if rows[key] == (sample, values):
                continue  # an exact repeated row is harmless
            raise SampleSheetError(f"sample sheet {p}, line {n}: file {f} is listed twice with different samples")
        if not fp.exists():
            raise SampleSheetError(f"sample sheet {p}, line {n}: file {f} does not exist (looked for {fp})")
        rows[key] = (sample, values)
        order.append(fp)
    if not rows:
        raise SampleSheetError(f"sample sheet {p}: no rows after the header")
    # one sample must have one set of conditions
    seen: dict = {}
    for sample, values in rows.values():
        if seen.setdefault(sample, values) != values:
            raise SampleSheetError(f"sample sheet {p}: sample {sample} has different condition values on different rows")
    return SampleSheet(str(p), tuple(name for _, name in extra), rows, tuple(order))


def assign(files: list[InputFile], sheet: Optional[SampleSheet]) -> list[tuple[InputFile, str, dict]]:
    """(file, sample, condition values) for every input file."""
    if sheet is None:
        return [(f, f.default_sample, {}) for f in files]
    out, missing = [], []
    for f in files:
        hit = sheet.rows.get(f.path.resolve())
        if hit is None:
            missing.append(str(f.path))
        else:
            out.append((f, hit[0], hit[1]))
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise SampleSheetError(
            f"sample sheet {sheet.path} does not list {len(missing)} input file(s): {', '.join(missing[:5])}{more}; "
            "add them to the sheet or leave them out of the inputs"
        )
    return out
