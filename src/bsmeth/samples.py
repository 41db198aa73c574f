"""The sample sheet: which read file belongs to which sample and condition.

Pipeline position: input stage, next to ``reads``.  A CSV (comma, tab or
semicolon separated) with columns ``file`` and ``sample`` and any further
condition columns (``cell_line``, ``dose``...).  Relative paths are relative to
the sheet's folder.  Without a sheet each input file (or folder) is a sample.
Comments are ``#`` lines before the header only; quoted cells may span lines
(see ``_records``).  Sheet rows are matched to input files by identity
(device and inode, ``reads.file_key``), not by resolving paths.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import SampleSheetError
from .files import Refused, decode_text, file_key, link_problem, read_input_bytes, shown
from .output import READ_COLUMNS
from .reads import InputFile


@dataclass(frozen=True)
class SampleSheet:
    path: str
    columns: tuple[str, ...]  # extra columns, in sheet order
    rows: dict  # file identity (reads.file_key) -> (sample, {column: value})
    order: tuple[Path, ...] = field(default=())
    mates: dict = field(default_factory=dict)  # resolved R1 path -> R2 path (column ``file2``, paired-end FASTQ)


# columns that bsmeth writes itself next to the sheet columns (reads.tsv, samples.tsv): a sheet column
# with one of these names would make two columns of the same name
RESERVED = frozenset(READ_COLUMNS) | {"reads", "pass", "cpgs_called", "methylation_pct"}


def _text(p: Path) -> str:
    try:
        raw = read_input_bytes(p)
    except Refused as e:
        raise SampleSheetError(
            f"sample sheet {shown(p)}: {f'cannot read ({e.strerror})' if e.strerror else e.why}") from None
    text = decode_text(raw)
    if text is None:
        raise SampleSheetError(f"sample sheet {p}: not a text CSV file (UTF-8, UTF-16 or Windows-1252); save it as CSV")
    return text


def _trim(fields: list[str]) -> list[str]:
    """Drop trailing empty fields (spreadsheets export empty columns as trailing separators)."""
    while fields and not fields[-1].strip():
        fields = fields[:-1]
    return fields


def _records(text: str, p: Path) -> list[tuple[int, list[str]]]:
    """(line number where the record starts, fields) for the header and every row.

    Comments are lines starting with ``#`` *before* the header (a preamble some instruments and LIMS
    write); after the header every line is a row, so a file named ``#3.ab1`` is never dropped.  Blank
    lines and rows of empty fields are skipped.  Quoted fields may hold the separator, quotes (doubled)
    and line breaks, as spreadsheets write them.
    """
    lines = text.splitlines(keepends=True)
    skip = 0
    while skip < len(lines) and (not lines[skip].strip() or lines[skip].lstrip().startswith("#")):
        skip += 1
    if skip == len(lines):
        raise SampleSheetError(f"sample sheet {p}: empty; expected a header line with columns file,sample")
    delim = max(",\t;", key=lines[skip].count)
    # strict: a quote left open swallows the rest of the file into one cell; it must be an error, not a row
    reader = csv.reader(io.StringIO("".join(lines[skip:]), newline=""), delimiter=delim, strict=True)
    out = []
    while True:
        start = skip + reader.line_num + 1
        try:
            row = next(reader, None)
        except csv.Error as e:
            what = ("a quote (\") opened in this row is never closed" if "end of data" in str(e)
                    else f"not valid CSV ({e}); a quote inside a cell must be doubled and the cell quoted")
            raise SampleSheetError(f"sample sheet {p}, line {start}: {what}") from None
        if row is None:
            break
        if any(f.strip() for f in row):
            out.append((start, row))
    return out


def _finite_check(p: Path, extra: list[tuple[int, str]], rows: dict, line_of: dict) -> None:
    """A column of numbers (e.g. dose) holding ``inf`` or ``nan`` is an error naming the row: statistics and
    plots take such a column as numeric, where a non-finite value breaks every fit."""
    for _, name in extra:
        values = []
        for key, (_, cond) in rows.items():
            try:
                values.append((float(cond[name]), cond[name], line_of[key]))
            except ValueError:
                break
        else:
            bad = [(v, n) for x, v, n in values if not math.isfinite(x)]
            if bad:
                v, n = min(bad, key=lambda b: b[1])
                raise SampleSheetError(
                    f"sample sheet {p}, line {n}: {name} {v!r} is not a finite number; the column holds numbers, "
                    "so give a number (or words in every row, if it is not a quantity)")


# Columns whose values are quantities (``10 uM``): a unit written with the numbers is taken out of them into a
# ``<column>_unit`` column, so statistics see numbers and figures show the unit (docs/outputs.md).
QUANTITY_NAMES = ("dose", "concentration", "conc", "time", "duration")
_QUANTITY = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([^\d\s+-][^\s]*)?\s*")


# a value ending in one of these is meant as a quantity even when its number cannot be read ("ten uM")
_KNOWN_UNIT = re.compile(r"(?i)\s(?:[pnuµμm]?M|[pnuµμm]?g/m?l|mg/kg|[pnuµμm]?mol/l|h|hrs?|hours?|min|d|days?|%)\s*$")


def is_quantity_column(name: str) -> bool:
    low = name.lower()
    return any(low == q or low.startswith(q + "_") or low.endswith("_" + q) for q in QUANTITY_NAMES) \
        and not low.endswith("_unit")


def _unit_key(unit: str) -> str:
    """Units compared as written, but µ/μ/u and case of a trailing M/m aside: ``µM`` = ``uM``."""
    return unit.replace("µ", "u").replace("μ", "u")


def _split_units(p: Path, extra: list[tuple[int, str]], rows: dict, line_of: dict) -> list[tuple[int, str]]:
    """Numbers with a unit in a quantity column (``10 uM``): the number stays, the unit goes to ``<column>_unit``.

    One unit per column: another unit in a row, or a value that is not a number (with or without the unit), is
    an error naming the line; 0 may come without a unit.  Returns the columns, with the unit columns added.
    """
    out = list(extra)
    for pos, name in extra:
        if not is_quantity_column(name):
            continue
        parsed = {}
        for key, (_, cond) in rows.items():
            text = cond[name]
            m = _QUANTITY.fullmatch(text) if text else None
            parsed[key] = (m.group(1), m.group(2) or "") if m else None
        units = {_unit_key(u) for v in parsed.values() if v for u in [v[1]] if u}
        if not units:
            meant = [k for k, v in parsed.items() if v is None and _KNOWN_UNIT.search(" " + rows[k][1][name])]
            if meant:
                k = min(meant, key=lambda k: line_of[k])
                raise SampleSheetError(f"sample sheet {p}, line {line_of[k]}: {name} {rows[k][1][name]!r} is not a "
                                       "number with a unit; write e.g. '10 uM'")
            continue  # plain numbers (or words): nothing to split
        unit_col = f"{name}_unit"
        if any(n.lower() == unit_col.lower() for _, n in extra):
            raise SampleSheetError(f"sample sheet {p}: column {name} writes units with its values and there is a "
                                   f"{unit_col} column too; give the unit in one place")
        first: dict = {}
        for key in sorted(rows, key=lambda k: line_of[k]):
            got, text, n = parsed[key], rows[key][1][name], line_of[key]
            if got is None:
                raise SampleSheetError(f"sample sheet {p}, line {n}: {name} {text!r} is not a number with a unit "
                                       f"(the column gives units: {', '.join(sorted(units))}); write e.g. '10 uM'")
            number, unit = got
            if not unit:
                if float(number) != 0:
                    raise SampleSheetError(f"sample sheet {p}, line {n}: {name} {text!r} has no unit while other rows "
                                           f"give {', '.join(sorted(units))}; write it with its unit")
                continue
            first.setdefault(_unit_key(unit), (unit, n, text))
            if len(first) > 1:
                (u1, n1, t1), (u2, n2, t2) = first.values()
                raise SampleSheetError(f"sample sheet {p}, line {n2}: {name} {t2!r} is in {u2}, line {n1} in {u1}; "
                                       f"give every {name} in one unit (convert one of them)")
        unit = next(iter(first.values()))[0]
        for key, (_, cond) in rows.items():
            number, _u = parsed[key]
            cond[name] = number
            cond[unit_col] = unit
        out.append((pos, unit_col))
    out.sort(key=lambda x: (x[0], x[1].endswith("_unit")))
    return out


def read_sheet(path: str | Path) -> SampleSheet:
    """Read and check a sample sheet; every error names the sheet and the line (1-based, as in an editor)."""
    p = Path(path)
    if p.is_dir():
        raise SampleSheetError(f"sample sheet {p}: is a folder; give the CSV file")
    parsed = _records(_text(p), p)
    head_no = parsed[0][0]
    header = [h.strip() for h in _trim(parsed[0][1])]
    low = [h.lower() for h in header]
    missing = [c for c in ("file", "sample") if c not in low]
    if missing:
        raise SampleSheetError(
            f"sample sheet {p}, line {head_no}: missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(header) or 'none'}); the header must name 'file' and 'sample'"
        )
    if "" in header:
        raise SampleSheetError(
            f"sample sheet {p}, line {head_no}: column {header.index('') + 1} of the header has no name")
    if len(set(low)) != len(low):
        raise SampleSheetError(f"sample sheet {p}, line {head_no}: repeated column name in {', '.join(header)}")
    clash = [h for h in header if h.lower() in RESERVED and h.lower() not in ("file", "sample")]
    if clash:
        raise SampleSheetError(
            f"sample sheet {p}, line {head_no}: column name(s) {', '.join(clash)} are bsmeth output columns; "
            "rename them"
        )
    fi, si = low.index("file"), low.index("sample")
    f2 = low.index("file2") if "file2" in low else None  # R2 of paired-end FASTQ
    extra = [(i, header[i]) for i in range(len(header)) if i not in (fi, si, f2)]
    mates: dict = {}
    rows: dict = {}
    line_of: dict = {}
    order: list[Path] = []
    folder = str(p.parent)
    for n, row in parsed[1:]:
        if len(row) > len(header):
            row = row[: len(header)] + _trim(row[len(header):])
        if len(row) != len(header):
            raise SampleSheetError(f"sample sheet {p}, line {n}: {len(row)} fields, the header has {len(header)}")
        f, sample = row[fi].strip(), row[si].strip()
        if not f or not sample:
            raise SampleSheetError(f"sample sheet {p}, line {n}: empty 'file' or 'sample'")
        fp = Path(f if os.path.isabs(f) else os.path.join(folder, f))
        try:
            st = os.stat(fp)
        except (OSError, ValueError):
            st = None
        key = file_key(fp, st) if st is not None else os.path.abspath(fp)
        values = {name: row[i].strip() for i, name in extra}
        if key in rows:
            if rows[key] == (sample, values):
                continue  # an exact repeated row is harmless
            raise SampleSheetError(
                f"sample sheet {p}, line {n}: file {f} is listed again with different values "
                f"(first on line {line_of[key]}); keep one row per file"
            )
        if st is None:
            why = link_problem(fp) or "does not exist"
            hint = ("; after the header a line starting with # is a row, not a comment: delete the row to leave "
                    "the file out" if f.startswith("#") else "")
            raise SampleSheetError(f"sample sheet {p}, line {n}: file {f} {why} (looked for {fp}){hint}")
        if stat.S_ISDIR(st.st_mode):
            raise SampleSheetError(f"sample sheet {p}, line {n}: {f} is a folder; list the read files, one per row")
        rows[key] = (sample, values)
        line_of[key] = n
        order.append(fp)
        if f2 is not None and row[f2].strip():
            fp2 = Path(row[f2].strip()) if Path(row[f2].strip()).is_absolute() else p.parent / row[f2].strip()
            if not fp2.is_file():
                raise SampleSheetError(f"sample sheet {p}, line {n}: file2 {row[f2].strip()} does not exist "
                                       f"(looked for {fp2})")
            mates[key] = fp2
    if not rows:
        raise SampleSheetError(f"sample sheet {p}: no rows after the header")
    _finite_check(p, extra, rows, line_of)
    extra = _split_units(p, extra, rows, line_of)
    # one sample must have one set of conditions
    seen: dict = {}
    for key, (sample, values) in rows.items():
        first = seen.setdefault(sample, (values, line_of[key]))
        if first[0] != values:
            diff = ", ".join(f"{c}={first[0][c]!r} vs {values[c]!r}" for c in values if first[0][c] != values[c])
            raise SampleSheetError(
                f"sample sheet {p}, line {line_of[key]}: sample {sample} has other condition values than on "
                f"line {first[1]} ({diff}); one sample has one set of conditions"
            )
    return SampleSheet(str(p), tuple(name for _, name in extra), rows, tuple(order), mates)


def assign(files: list[InputFile], sheet: Optional[SampleSheet]) -> list[tuple[InputFile, str, dict]]:
    """(file, sample, condition values) for every input file."""
    if sheet is None:
        return [(f, f.default_sample, {}) for f in files]
    out, missing = [], []
    for f in files:
        hit = sheet.rows.get(f.key if f.key is not None else file_key(f.path))
        if hit is None:
            missing.append(shown(f.path))
        else:
            out.append((f, hit[0], hit[1]))
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise SampleSheetError(
            f"sample sheet {sheet.path} does not list {len(missing)} input file(s): {', '.join(missing[:5])}{more}; "
            "add them to the sheet or leave them out of the inputs"
        )
    return out


def resolve_inputs(
    inputs, sheet_path: Optional[str]
) -> tuple[Optional[SampleSheet], list[tuple[InputFile, str, dict]]]:
    """The sheet (if any) and (file, sample, condition values) for every input; the sheet's files without inputs."""
    from .errors import InputError
    from .reads import collect

    sheet = read_sheet(sheet_path) if sheet_path else None
    if not inputs:
        if sheet is None:
            raise InputError("no input reads: give files, folders or patterns, or a --samples sheet")
        files = [InputFile(p, str(p), shown(p.stem), file_key(p)) for p in sheet.order]
    else:
        files = collect(list(inputs))
    return sheet, assign(files, sheet)
