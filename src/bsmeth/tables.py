"""Load a ``bsmeth call`` output directory into pandas tables.

Pipeline position: the entry of every stage *after* ``call`` (``plot``,
``compare``, ``report``).  Those stages read only the call directory, through
this module, so the contract in docs/outputs.md is the single interface
between calling and everything downstream.  pandas is imported here, never at
``bsmeth`` package import (``bsmeth --help`` must stay instant).

Also holds the small shared helpers of the downstream stages: level ordering
(numeric when every value is a number, e.g. dose 0, 1, 3, 10).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np
import pandas as pd

from .errors import InputError
from .tsv import TableError, read_table

READS_REQUIRED = ("read", "file", "sample", "status", "reason")
READS_NUMERIC = (
    "conversion_pct", "identity_pct", "cpgs_called", "methylation_pct", "length", "aligned_start",
    "aligned_end", "mismatches", "converted", "unconverted", "mean_qual",
)
# bsmeth 0.1 wrote these shares as fractions under plain names: read back as the percent columns of today
_LEGACY_FRACTIONS = {"conversion": "conversion_pct", "identity": "identity_pct", "methylation": "methylation_pct"}
CALLS_REQUIRED = ("read", "sample", "cpg", "pos", "call", "why", "status")
CALLS_NUMERIC = ("cpg", "pos", "genome_pos", "qual", "read_pos")
SUMMARY_REQUIRED = ("sample", "cpg", "pos", "methylated", "unmethylated", "not_determined", "percent", "note")
SUMMARY_NUMERIC = ("cpg", "pos", "genome_pos", "methylated", "unmethylated", "not_determined", "percent")
SAMPLES_REQUIRED = ("sample", "reads", "pass", "cpgs_called", "methylation_pct")
SAMPLES_NUMERIC = ("reads", "pass", "cpgs_called", "methylation_pct")
# the columns of samples.tsv that bsmeth adds after the sheet columns
_SAMPLES_OWN = ("sample", "amplicon") + SAMPLES_REQUIRED[1:]


@dataclass(frozen=True, eq=False)
class CallData:
    """Everything in one call directory.  String columns stay strings ('' for empty cells)."""

    directory: Path
    reads: pd.DataFrame
    cpg_calls: pd.DataFrame
    summary: pd.DataFrame
    samples: pd.DataFrame
    run: dict
    sample_columns: tuple[str, ...]
    # a folder of the NGS engine (run.json ``engine: ngs``): the molecules as weighted patterns (patterns.tsv:
    # amplicon, sample, pattern, count), and reads/cpg_calls empty; None for a folder of clones
    patterns: Optional[pd.DataFrame] = None
    funnel: Optional[pd.DataFrame] = None

    @property
    def weighted(self) -> bool:
        """Molecules held as pattern counts (NGS) instead of one row per read (clones)."""
        return self.patterns is not None

    @property
    def alignments_path(self) -> Optional[Path]:
        p = self.directory / "alignments.txt"
        return p if p.is_file() else None

    def sample_order(self) -> list[str]:
        """Samples in the order of samples.tsv (the call's deterministic order)."""
        return list(dict.fromkeys(self.samples["sample"]))

    @property
    def amplicons(self) -> tuple[str, ...]:
        """The run's amplicon names, in panel order (run.json's ``amplicons``)."""
        return tuple(str(a.get("name", "")) for a in self.run.get("amplicons", []) if isinstance(a, dict))

    def subset(self, amplicon: str) -> "CallData":
        """The tables of one amplicon, with run.json's ``amplicon`` set to its entry: what ``plot``,
        ``compare`` and ``report`` draw, test and describe, one amplicon at a time."""
        entry = next((a for a in self.run.get("amplicons", []) if a.get("name") == amplicon), None)
        if entry is None:
            raise InputError(f"{self.directory}: no amplicon {amplicon!r}; the run has {', '.join(self.amplicons)}")

        def only(df: pd.DataFrame) -> pd.DataFrame:
            return df[df["amplicon"] == amplicon].reset_index(drop=True)

        return replace(self, reads=only(self.reads), cpg_calls=only(self.cpg_calls), summary=only(self.summary),
                       samples=only(self.samples), run={**self.run, "amplicon": entry},
                       patterns=only(self.patterns) if self.patterns is not None else None)

    def by_amplicon(self) -> Iterator[tuple[str, "CallData"]]:
        """(amplicon name, its tables) for each amplicon of the run, in panel order."""
        for name in self.amplicons:
            yield name, self.subset(name)


def _read_tsv(path: Path, required: Sequence[str], numeric: Sequence[str], legacy: Optional[dict] = None,
              scale: float = 1.0) -> pd.DataFrame:
    """A table of a call folder: required columns checked, numeric ones as floats.  ``legacy``: columns of
    bsmeth 0.1 renamed to today's (their values times ``scale``: fractions written as percent now)."""
    if not path.is_file():
        raise InputError(
            f"{path}: missing; is {path.parent} the output directory of `bsmeth call`? "
            "(expected reads.tsv, cpg_calls.tsv, summary.tsv, samples.tsv, run.json)"
        )
    try:
        # every cell a string: read ids such as '001', the call '-' and sample names such as 'NA' survive
        header, rows = read_table(path)
    except TableError as exc:
        raise InputError(f"{path}: not a table written by bsmeth ({exc})") from None
    if not header:
        raise InputError(f"{path}: empty; expected a header line (see docs/outputs.md)")
    if len(set(header)) != len(header):
        raise InputError(f"{path}: repeated column name in the header {header}")
    df = (pd.DataFrame(rows, columns=header, dtype=str) if rows
          else pd.DataFrame({c: pd.Series(dtype=str) for c in header}))
    renamed = {old: new for old, new in (legacy or {}).items() if old in df.columns and new not in df.columns}
    if renamed:
        df = df.rename(columns=renamed)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(df.columns)}. "
            "Was it written by an older or newer bsmeth? See docs/outputs.md."
        )
    for col in numeric:
        if col in df.columns:
            stripped = df[col].str.strip()
            converted = pd.to_numeric(stripped, errors="coerce")
            bad = df[col][converted.isna() & (stripped != "")]
            if len(bad):
                raise InputError(f"{path}: column {col!r} has non-numeric value {bad.iloc[0]!r}")
            df[col] = converted.astype(float) * (scale if col in renamed.values() else 1.0)
    return df


def load_call_dir(directory: str | os.PathLike) -> CallData:
    """Read every table of a call directory; raise ``InputError`` naming the file/column that is wrong."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"{d}: not a directory; give the output directory of `bsmeth call`")
    run_path = d / "run.json"
    if not run_path.is_file():
        raise InputError(f"{run_path}: missing; is {d} the output directory of `bsmeth call`?")
    try:
        run = json.loads(run_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{run_path}: not valid JSON ({exc})") from exc
    if not isinstance(run, dict):
        raise InputError(f"{run_path}: expected a JSON object")
    if run.get("engine") == "ngs":
        return _load_ngs(d, run)
    reads = _read_tsv(d / "reads.tsv", READS_REQUIRED, READS_NUMERIC, legacy=_LEGACY_FRACTIONS, scale=100.0)
    calls = _read_tsv(d / "cpg_calls.tsv", CALLS_REQUIRED, CALLS_NUMERIC)
    summary = _read_tsv(d / "summary.tsv", SUMMARY_REQUIRED, SUMMARY_NUMERIC)
    samples = _read_tsv(d / "samples.tsv", SAMPLES_REQUIRED, SAMPLES_NUMERIC,
                        legacy={"methylation": "methylation_pct"})  # 0.1: percent already, plain name
    if not isinstance(run.get("amplicons"), list):
        # a folder of bsmeth 0.1 (one amplicon, no amplicon column): every row is of run.json's amplicon
        amp = run.get("amplicon") if isinstance(run.get("amplicon"), dict) else {}
        amp = {**amp, "name": str(amp.get("name") or (run.get("reference") or {}).get("name") or "amplicon")}
        run = {**run, "amplicon": amp, "amplicons": [amp]}
        for df in (reads, calls, summary, samples):
            if "amplicon" not in df.columns:
                df["amplicon"] = str(amp.get("name", ""))
    cols = run.get("sample_columns")
    if not isinstance(cols, list):
        # run.json without the list: the sheet columns are whatever samples.tsv has besides ours
        cols = [c for c in samples.columns if c not in _SAMPLES_OWN]
    cols = [str(c) for c in cols if str(c) != "sample"]
    missing = [c for c in cols if c not in samples.columns]
    if missing:
        raise InputError(f"{d / 'samples.tsv'}: sheet column(s) {', '.join(missing)} named in run.json are missing")
    return CallData(d, reads, calls, summary, samples, run, tuple(cols))


PATTERNS_REQUIRED = ("amplicon", "sample", "pattern", "count")


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=str) for c in columns})


def _load_ngs(d: Path, run: dict) -> CallData:
    """A folder of the NGS engine: summary, samples and the molecules as pattern counts (patterns.tsv).  Its
    per-read tables, when written (``--per-read``), are not loaded: the molecules are in patterns.tsv."""
    summary = _read_tsv(d / "summary.tsv", SUMMARY_REQUIRED, SUMMARY_NUMERIC)
    samples = _read_tsv(d / "samples.tsv", SAMPLES_REQUIRED, SAMPLES_NUMERIC)
    patterns = _read_tsv(d / "patterns.tsv", PATTERNS_REQUIRED, ("count",))
    patterns["count"] = patterns["count"].astype("int64")
    funnel = _read_tsv(d / "funnel.tsv", ("sample",), ()) if (d / "funnel.tsv").is_file() else None
    reads = _empty((*READS_REQUIRED, "amplicon"))
    calls = _empty((*CALLS_REQUIRED, "amplicon"))
    cols = [str(c) for c in run.get("sample_columns", []) if str(c) != "sample"]
    missing = [c for c in cols if c not in samples.columns]
    if missing:
        raise InputError(f"{d / 'samples.tsv'}: sheet column(s) {', '.join(missing)} named in run.json are missing")
    return CallData(d, reads, calls, summary, samples, run, tuple(cols), patterns, funnel)


def pattern_matrix(patterns: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(molecules x CpGs matrix of 1 M / 0 U / NaN, count per row) of patterns.tsv rows (one amplicon)."""
    if not len(patterns):
        return np.zeros((0, 0)), np.zeros(0, np.int64)
    text = patterns["pattern"].to_numpy(str)
    width = len(text[0])
    codes = np.frombuffer("".join(text).encode("ascii"), np.uint8).reshape(len(text), width)
    x = np.where(codes == ord("M"), 1.0, np.where(codes == ord("U"), 0.0, np.nan))
    return x, patterns["count"].to_numpy(np.int64)


# ---------------------------------------------------------------------------------------------
# level ordering


def _as_number(value) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return None if (isinstance(value, float) and math.isnan(value)) else float(value)
    try:
        x = float(str(value).strip())
    except ValueError:
        return None
    return None if math.isnan(x) else x


def is_numeric_levels(values: Iterable) -> bool:
    """True when every (non-empty) value parses as a number."""
    vals = [v for v in values if str(v) != ""]
    return bool(vals) and all(_as_number(v) is not None for v in vals)


def order_levels(values: Iterable) -> list:
    """Distinct values, numerically sorted when all parse as numbers (0, 1, 3, 10), else first-appearance order.

    Empty strings (no value in the sheet) are dropped: they are not a level.
    """
    from .figures.layout import ordered_levels

    return ordered_levels([v for v in values if str(v) != ""])


# ---------------------------------------------------------------------------------------------
# derived tables


def min_clone_coverage(data: CallData) -> float:
    """The share (0-1) of an amplicon's assessable CpGs a clone must have called to count in clone-level
    statistics (run.json parameter ``min_clone_coverage_pct``; 0 for folders of bsmeth 0.1, which had no such
    rule)."""
    params = data.run.get("parameters") or {}
    try:
        return float(params.get("min_clone_coverage_pct", 0.0)) / 100
    except (TypeError, ValueError):
        return 0.0


def assessable_cpgs(data: CallData) -> int:
    """CpGs of the amplicon (``data``: one amplicon's tables) that a read can show: not under a primer."""
    amp = data.run.get("amplicon") or {}
    cpgs = [c for c in amp.get("cpgs", []) or [] if isinstance(c, dict)]
    if cpgs:
        return sum(not c.get("under_primer") for c in cpgs)
    return int(data.summary.loc[data.summary["note"] != "under_primer", "cpg"].nunique()) if len(data.summary) else 0


def clone_table(data: CallData, all_clones: bool = False) -> pd.DataFrame:
    """One row per pass read (clone) with called CpGs: m, u, n, fraction, plus the sample's sheet columns.

    Counted from cpg_calls.tsv (pass rows) so it agrees with summary.tsv by construction.
    Clones with no called CpG carry no methylation information and are left out; so are clones with fewer
    called CpGs than ``min_clone_coverage`` of the assessable ones (a clone read over 1 of 25 CpGs is a 0 or
    100 % clone), unless ``all_clones``.  Rows keep reads.tsv input order.  ``attrs["partial"]``: how many
    clones the coverage rule left out.

    A folder of molecules as patterns (``data.weighted``): one row per (sample, pattern) with its ``weight``
    (the number of molecules showing it); ``read`` is the pattern.  Clone folders have no ``weight`` column.
    """
    if data.weighted:
        return _pattern_clone_table(data)
    calls = data.cpg_calls[data.cpg_calls["status"] == "pass"]
    m = calls[calls["call"] == "M"].groupby("read", sort=False).size()
    u = calls[calls["call"] == "U"].groupby("read", sort=False).size()
    reads = data.reads[data.reads["status"] == "pass"][["read", "sample"]].copy()
    reads["m"] = reads["read"].map(m).fillna(0).astype(int)
    reads["u"] = reads["read"].map(u).fillna(0).astype(int)
    reads["n"] = reads["m"] + reads["u"]
    reads = reads[reads["n"] > 0].copy()
    need = 0 if all_clones else math.ceil(min_clone_coverage(data) * assessable_cpgs(data) - 1e-9)
    partial = int((reads["n"] < need).sum())
    reads = reads[reads["n"] >= need].copy()
    reads["fraction"] = reads["m"] / reads["n"]
    sheet = data.samples[["sample", *data.sample_columns]].drop_duplicates("sample")
    out = reads.merge(sheet, on="sample", how="left", sort=False)
    for c in data.sample_columns:
        out[c] = out[c].fillna("")
    out = out.reset_index(drop=True)
    out.attrs["partial"] = partial
    return out


def _pattern_clone_table(data: CallData) -> pd.DataFrame:
    p = data.patterns
    text = p["pattern"].astype(str)
    m = text.str.count("M").astype(int)
    u = text.str.count("U").astype(int)
    out = pd.DataFrame({"read": text, "sample": p["sample"], "m": m, "u": u, "n": m + u,
                        "weight": p["count"].astype("int64")})
    out = out[out["n"] > 0].copy()
    out["fraction"] = out["m"] / out["n"]
    sheet = data.samples[["sample", *data.sample_columns]].drop_duplicates("sample")
    out = out.merge(sheet, on="sample", how="left", sort=False)
    for c in data.sample_columns:
        out[c] = out[c].fillna("")
    return out.reset_index(drop=True)


def cpg_table(data: CallData) -> pd.DataFrame:
    """The amplicon CpGs: ``cpg``, ``pos``, ``note`` ('' / 'under_primer' / 'snp:<name>'), sorted by number."""
    s = data.summary
    if len(s):
        notes = s.groupby("cpg", sort=True).agg(pos=("pos", "first"),
                                                note=("note", lambda x: next((v for v in x if v), "")))
        out = notes.reset_index()
    else:
        out = data.cpg_calls.groupby("cpg", sort=True).agg(pos=("pos", "first")).reset_index()
        out["note"] = ""
    # CpGs in run.json but seen in no table (e.g. no read aligned) still belong on the axis
    extra = []
    known = set(out["cpg"])
    for c in (data.run.get("amplicon") or {}).get("cpgs", []) or []:
        number = c.get("cpg", c.get("number")) if isinstance(c, dict) else None
        if number is None or float(number) in known:
            continue
        note = "under_primer" if c.get("under_primer") else (f"snp:{c['snp']}" if c.get("snp") else "")
        extra.append({"cpg": float(number), "pos": float(c.get("pos", float("nan"))), "note": note})
    if extra:
        out = pd.concat([out, pd.DataFrame(extra)], ignore_index=True).sort_values("cpg", kind="stable")
    out["cpg"] = out["cpg"].astype(int)
    return out.reset_index(drop=True)


def sheet_columns(data: CallData) -> list[str]:
    """Columns usable for grouping: ``sample`` plus the sheet columns."""
    return ["sample", *data.sample_columns]


def require_column(data: CallData, column: str, option: str) -> str:
    cols = sheet_columns(data)
    if column not in cols:
        raise InputError(f"{option} {column!r}: no such sample column; available: {', '.join(cols)}")
    return column
