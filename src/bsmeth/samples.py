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
from .output import READ_COLUMNS
from .reads import InputFile


@dataclass(frozen=True)
class SampleSheet:
    path: str
    columns: tuple[str, ...]  # extra columns, in sheet order
    rows: dict  # resolved file path -> (sample, {column: value})
    order: tuple[Path, ...] = field(default=())
    mates: dict = field(default_factory=dict)  # resolved R1 path -> R2 path (column ``file2``, paired-end FASTQ)


# columns that bsmeth writes itself next to the sheet columns (reads.tsv, samples.tsv): a sheet column
# with one of these names would make two columns of the same name
RESERVED = frozenset(READ_COLUMNS) | {"reads", "pass", "cpgs_called", "methylation"}


def _text(p: Path) -> str:
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise SampleSheetError(f"sample sheet {p}: cannot read ({e.strerror or e})") from None
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # "Unicode text" from Excel / Notepad
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    elif b"\x00" not in raw:
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Excel's "CSV (Comma delimited)" on Windows is Windows-1252 (e.g. a dose written '10 \xb5M')
            try:
                return raw.decode("cp1252")
            except UnicodeDecodeError:
                pass
    raise SampleSheetError(f"sample sheet {p}: not a text CSV file (UTF-8 or Windows-1252); save it as CSV")


def _trim(fields: list[str]) -> list[str]:
    """Drop trailing empty fields (spreadsheets export empty columns as trailing separators)."""
    while fields and not fields[-1].strip():
        fields = fields[:-1]
    return fields


def read_sheet(path: str | Path) -> SampleSheet:
    """Read and check a sample sheet; every error names the sheet and the line (1-based, as in an editor)."""
    p = Path(path)
    if p.is_dir():
        raise SampleSheetError(f"sample sheet {p}: is a folder; give the CSV file")
    text = _text(p)
    # (line number in the file, line), without blank and comment lines
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise SampleSheetError(f"sample sheet {p}: empty; expected a header line with columns file,sample")
    head_no, head_line = lines[0]
    delim = max(",\t;", key=head_line.count)
    try:
        parsed = [(n, next(csv.reader([ln], delimiter=delim), [])) for n, ln in lines]
    except csv.Error as e:
        raise SampleSheetError(f"sample sheet {p}: not a valid CSV file ({e})") from None
    header = [h.strip() for h in _trim(parsed[0][1])]
    low = [h.lower() for h in header]
    missing = [c for c in ("file", "sample") if c not in low]
    if missing:
        raise SampleSheetError(
            f"sample sheet {p}, line {head_no}: missing column(s) {', '.join(missing)} (found: {', '.join(header) or 'none'}); "
            "the header must name 'file' and 'sample'"
        )
    if "" in header:
        raise SampleSheetError(f"sample sheet {p}, line {head_no}: column {header.index('') + 1} of the header has no name")
    if len(set(low)) != len(low):
        raise SampleSheetError(f"sample sheet {p}, line {head_no}: repeated column name in {', '.join(header)}")
    clash = [h for h in header if h.lower() in RESERVED and h.lower() not in ("file", "sample")]
    if clash:
        raise SampleSheetError(
            f"sample sheet {p}, line {head_no}: column name(s) {', '.join(clash)} are bsmeth output columns; rename them"
        )
    fi, si = low.index("file"), low.index("sample")
    f2 = low.index("file2") if "file2" in low else None  # R2 of paired-end FASTQ
    extra = [(i, header[i]) for i in range(len(header)) if i not in (fi, si, f2)]
    mates: dict = {}
    rows: dict = {}
    line_of: dict = {}
    order: list[Path] = []
    for n, row in parsed[1:]:
        if len(row) > len(header):
            row = row[: len(header)] + _trim(row[len(header):])
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
            raise SampleSheetError(
                f"sample sheet {p}, line {n}: file {f} is listed again with different values "
                f"(first on line {line_of[key]}); keep one row per file"
            )
        if not fp.exists():
            raise SampleSheetError(f"sample sheet {p}, line {n}: file {f} does not exist (looked for {fp})")
        if fp.is_dir():
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


def resolve_inputs(inputs, sheet_path: Optional[str]) -> tuple[Optional[SampleSheet], list[tuple[InputFile, str, dict]]]:
    """The sheet (if any) and (file, sample, condition values) for every input; the sheet's files without inputs."""
    from .errors import InputError
    from .reads import collect

    sheet = read_sheet(sheet_path) if sheet_path else None
    if not inputs:
        if sheet is None:
            raise InputError("no input reads: give files, folders or patterns, or a --samples sheet")
        files = [InputFile(p, str(p), p.stem) for p in sheet.order]
    else:
        files = collect(list(inputs))
    return sheet, assign(files, sheet)
