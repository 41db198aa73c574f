"""results.xlsx: the call folder's tables in one workbook (``exports``; written through ``xlsx``).

Sheets, in order: ``about`` (what each sheet holds), ``samples`` (samples.tsv), ``summary`` (summary.tsv, the
per-CpG counts), ``stats`` (stats.tsv, when ``compare`` or ``run`` made it), ``qc`` (reads.tsv: every read with
its status and reason), then one clone x CpG matrix per sample and amplicon, QUMA-style: a row per pass read
(clone), a column per CpG of the amplicon (its number), 1 = methylated, 0 = unmethylated, ``-`` = not
determined, then the clone's methylated and called CpGs and its percent.  Cells hold the TSVs' values:
numbers as numbers (the same digits), text as text (never run as a formula).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from .tsv import read_table
from .xlsx import Sheet, write_xlsx

RESULTS_XLSX = "results.xlsx"
# columns written as numbers (every other column is text, e.g. read ids such as 001), plus the sheet columns
# whose every value is a number (dose)
NUMERIC = frozenset((
    "conversion_pct", "identity_pct", "cpgs_called", "methylation_pct", "length", "aligned_start", "aligned_end",
    "mismatches", "converted", "unconverted", "mean_qual", "cpg", "pos", "genome_pos", "qual", "read_pos",
    "methylated", "unmethylated", "not_determined", "percent", "reads", "pass", "c_signal", "t_signal", "c_frac",
    "confidence", "statistic", "p", "p_adj", "effect", "ci_low", "ci_high", "n",
))


def number(text: str):
    """A TSV cell as a number when it is one (int when integral as written), else None."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        x = float(text)
    except ValueError:
        return None
    return x if x == x and abs(x) != float("inf") else None


def typed_rows(header: list[str], rows: list[list[str]], sheet_columns=()) -> list[list]:
    numeric = [c in NUMERIC for c in header]
    for j, c in enumerate(header):
        if c in sheet_columns and rows and all(r[j] == "" or number(r[j]) is not None for r in rows):
            numeric[j] = True
    out = []
    for r in rows:
        out.append([(number(v) if v != "" else None) if numeric[j] and number(v) is not None else v
                    for j, v in enumerate(r)])
    return out


def _sheet(path: Path, name: str, sheet_columns=()) -> Optional[Sheet]:
    if not path.is_file():
        return None
    header, rows = read_table(path)
    return Sheet(name, header, typed_rows(header, rows, sheet_columns))


def matrix_sheets(d: Path, run: dict, stems: dict[str, str]) -> list[Sheet]:
    """One clone x CpG matrix per sample and amplicon (pass reads, in reads.tsv order)."""
    rh, reads = read_table(d / "reads.tsv")
    ch, calls = read_table(d / "cpg_calls.tsv")
    ri = {c: i for i, c in enumerate(rh)}
    ci = {c: i for i, c in enumerate(ch)}
    amplicons = [a for a in run.get("amplicons", []) if isinstance(a, dict)]
    by_read: dict[str, dict[int, str]] = {}
    for c in calls:
        by_read.setdefault(c[ci["read"]], {})[int(c[ci["cpg"]])] = c[ci["call"]]
    out = []
    one = len(amplicons) == 1
    for s in run.get("samples", []):
        for amp in amplicons:
            numbers = [int(c["cpg"]) for c in amp.get("cpgs", [])]
            rows = []
            for r in reads:
                if r[ri["sample"]] != s or r[ri["status"]] != "pass":
                    continue
                if "amplicon" in ri and r[ri["amplicon"]] != amp["name"]:
                    continue
                got = by_read.get(r[ri["read"]], {})
                cells = [{"M": 1, "U": 0}.get(got.get(k, "-"), "-") for k in numbers]
                m = sum(v == 1 for v in cells)
                n = sum(v in (0, 1) for v in cells)
                rows.append([r[ri["read"]], *cells, m, n, round(100 * m / n, 2) if n else None])
            name = stems.get(s, s) if one else f"{stems.get(s, s)} {amp['name']}"
            out.append(Sheet(name, ["read", *[str(k) for k in numbers], "methylated", "called", "percent"], rows,
                             widths=[18] + [4] * len(numbers)))
    return out


ABOUT = (
    ("samples", "samples.tsv: per sample and amplicon, reads, pass reads, CpGs called, percent methylated"),
    ("summary", "summary.tsv: per sample, amplicon and CpG, methylated / unmethylated / not determined clones"),
    ("stats", "stats.tsv: the statistics of `bsmeth compare` (present when compare or run made it)"),
    ("qc", "reads.tsv: every input read, its status (pass/fail), reason and QC figures"),
    ("<sample>", "one clone x CpG matrix per sample (and amplicon): 1 methylated, 0 unmethylated, - not "
                 "determined; pass reads only"),
)


def write_results_workbook(call_dir: str | os.PathLike, stems: dict[str, str]) -> Path:
    d = Path(call_dir)
    run = json.loads((d / "run.json").read_text(encoding="utf-8"))
    sheet_cols = tuple(run.get("sample_columns") or ())
    about = Sheet("about", ["sheet", "what"], [list(x) for x in ABOUT] +
                  [["bsmeth", f"version {run.get('version', '')}; columns as in docs/outputs.md"]], widths=[12, 100])
    sheets = [about]
    for name, fname in (("samples", "samples.tsv"), ("summary", "summary.tsv"), ("stats", "stats.tsv"),
                        ("qc", "reads.tsv")):
        s = _sheet(d / fname, name, sheet_cols)
        if s is not None:
            sheets.append(s)
    sheets += matrix_sheets(d, run, stems)
    return write_xlsx(d / RESULTS_XLSX, sheets)
