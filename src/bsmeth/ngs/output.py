"""The result tables of an NGS run: summary, samples, patterns, funnel, per-strand counts, run.json, and the
optional per-read tables.

Pipeline position: last stage of ``ngs.run``.  Column names are an interface (docs/outputs.md, docs/ngs.md);
``summary.tsv`` and ``samples.tsv`` have exactly the clone workflow's columns (the unit is the read pair: one
molecule), so every downstream stage reads them unchanged.  Every table goes through ``tsv`` and is written
atomically; the per-read tables are streamed into a temporary file and renamed when the run is complete.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import encode, write_text, write_with
from ..coords import one_based
from ..models import Panel
from ..output import (
    CALL_COLUMNS,
    SUMMARY_COLUMNS,
    genome_cells,
    pct_cell,
    read_columns,
    samples_columns,
    write_json,
)
from ..tsv import line, table_text
from .aggregate import FUNNEL, N_CODES, split_pattern_key
from .engine import CONFLICT, REASON_CODES, UMICONF, WHY_CODES, M, U
from .index import STRAND_NAMES

PATTERNS_FILE = "patterns.tsv"
FUNNEL_FILE = "funnel.tsv"
STRANDS_FILE = "cpg_strands.tsv"
FAMILIES_FILE = "umi_families.tsv"
PATTERN_COLUMNS = ("amplicon", "sample", "pattern", "count", "fraction")
STRAND_COLUMNS = ("sample", "amplicon", "cpg", "pos", "strand", "methylated", "unmethylated", "not_determined",
                  "mate_conflict", "umi_conflict")
FAMILY_COLUMNS = ("sample", "amplicon", "family_size", "families", "pairs")
FUNNEL_UMI = ("families", "family_size_median", "family_size_max", "single_pair_families")
REASON_NAMES = tuple(r.value for r in REASON_CODES)
NGS_READ_EXTRA = ("strand",)  # reads.tsv of an NGS run: the clone columns plus the strand of the molecule
OUTPUTS = ("summary.tsv", "samples.tsv", PATTERNS_FILE, FUNNEL_FILE, STRANDS_FILE, "run.json")


def funnel_columns(sheet_columns: Sequence[str], umi: bool = False) -> tuple[str, ...]:
    return ("sample", *sheet_columns, *FUNNEL, *REASON_NAMES, *(FUNNEL_UMI if umi else ()))


def _share(m: int, n: int) -> str:
    return f"{100 * m / n:.2f}" if n else ""


def summary_text(run, samples: Sequence[str]) -> str:
    tally, panel = run.tally, run.panel
    rows = []
    for si, s in enumerate(samples):
        for ai, amp in enumerate(panel):
            genome = genome_cells(amp)
            codes = tally.codes.get((si, ai))
            per = codes.sum(axis=0) if codes is not None else np.zeros((len(amp.cpgs), N_CODES), np.int64)
            for k, cpg in enumerate(amp.cpgs):
                m, u = int(per[k, M]), int(per[k, U])
                nd = int(per[k].sum()) - m - u
                note = "under_primer" if cpg.under_primer else (f"snp:{cpg.snp.name}" if cpg.snp else "")
                rows.append("\t".join((line([s, amp.name, cpg.number, one_based(cpg.ref_pos)]), genome[cpg.number],
                                       line([m, u, nd, _share(m, m + u), note]))))
    return table_text(SUMMARY_COLUMNS, rows)


def samples_text(run, samples: Sequence[str], conditions: dict, columns: Sequence[str]) -> str:
    tally, panel = run.tally, run.panel
    per_amp: dict = {}
    for (si, ai, code), n in tally.reasons.items():
        got = per_amp.setdefault((si, ai), [0, 0])
        got[0] += n
        if code == 0:
            got[1] += n
    rows = []
    for si, s in enumerate(samples):
        cond = conditions.get(s, {})
        for ai, name in [*enumerate(panel.names), (-1, "")]:
            reads, passing = per_amp.get((si, ai), (0, 0))
            if ai == -1 and not reads:
                continue
            codes = tally.codes.get((si, ai)) if ai >= 0 else None
            m = int(codes[:, :, M].sum()) if codes is not None else 0
            n = m + (int(codes[:, :, U].sum()) if codes is not None else 0)
            rows.append([s, *[cond.get(c, "") for c in columns], name, reads, passing, n, _share(m, n)])
    return table_text(samples_columns(columns), rows)


def pattern_lines(run, samples: Sequence[str]):
    """patterns.tsv, a block of lines per (amplicon, sample): every epiallele, most frequent first, ties by
    pattern.  A generator: the file is written as it is made.  The patterns come out of the run's store (sorted
    by amplicon, sample and pattern, each once with its count; ``spill``), and go through a second store sorted
    by amplicon, sample, count (descending) and pattern: both keep a bounded number of records in memory, so a run
    of millions of distinct patterns holds neither them nor their text at once."""
    from .spill import Store, word_bytes

    yield line(PATTERN_COLUMNS) + "\n"
    tally = run.tally
    store = tally.patterns
    width = tally.width
    kw = store.dtype["key"].shape[0]
    ordered = Store(np.dtype([("key", np.uint64, (kw + 1,))]), {}, store.bound, store.folder)
    totals: dict = {}
    top = np.uint64((1 << 63) - 1)
    try:
        for block in store.sorted_blocks():
            head = block["key"][:, 0]
            u, inv = np.unique(head, return_inverse=True)
            for h, c in zip(u.tolist(), np.bincount(inv.ravel(), weights=block["n"]).tolist()):
                totals[h] = totals.get(h, 0) + int(c)
            recs = np.zeros(len(block), ordered.dtype)
            recs["key"][:, 0] = head
            recs["key"][:, 1] = top - block["n"].astype(np.uint64)
            recs["key"][:, 2:] = block["key"][:, 1:]
            ordered.add(recs)
        for block in ordered.sorted_blocks():
            key = block["key"]
            amp, smp = split_pattern_key(key)
            counts = (top - key[:, 1]).astype(np.int64).tolist()
            letters = word_bytes(key[:, 2:], width)
            group = np.flatnonzero(np.r_[True, key[1:, 0] != key[:-1, 0]])
            out = []
            for g0, g1 in zip(group.tolist(), [*group[1:].tolist(), len(key)]):
                ai, si = int(amp[g0]), int(smp[g0])
                nk = len(run.panel.amplicons[ai].cpgs)
                total = totals[int(key[g0, 0])]
                head = line([run.panel.amplicons[ai].name, samples[si]])
                texts = (np.ascontiguousarray(letters[g0:g1, :nk]).view(f"S{nk}").ravel().tolist() if nk
                         else [b""] * (g1 - g0))
                for t, c in zip(texts, counts[g0:g1]):
                    t = t.decode("ascii")
                    # the letters M, U, - need no quoting; a leading '-' gets the formula guard (tsv.text_cell)
                    out.append(f"{head}\t{chr(39) if t[:1] == '-' else ''}{t}\t{c}\t{c / total:.6f}\n")
            yield "".join(out)
    finally:
        ordered.close()


def patterns_text(run, samples: Sequence[str]) -> str:
    return "".join(pattern_lines(run, samples))


def funnel_text(run, samples: Sequence[str], conditions: dict, columns: Sequence[str]) -> str:
    umi = run.tally.umi
    rows = []
    for si, s in enumerate(samples):
        f = run.tally.funnel.get(si, np.zeros(len(FUNNEL), np.int64))
        reasons = [0] * len(REASON_NAMES)
        for (sj, _a, code), n in run.tally.reasons.items():
            if sj == si and code:
                reasons[code - 1] += n
        cond = conditions.get(s, {})
        extra = []
        if umi:
            sizes: dict = {}
            for (sj, _a), hist in run.tally.family_sizes.items():
                if sj == si:
                    for size, k in hist.items():
                        sizes[size] = sizes.get(size, 0) + k
            extra = _family_summary(sizes)
        rows.append([s, *[cond.get(c, "") for c in columns], *[int(x) for x in f], *reasons, *extra])
    return table_text(funnel_columns(columns, umi), rows)


def _family_summary(sizes: dict) -> list:
    """families, median and largest family size (pairs), families of one pair."""
    n = sum(sizes.values())
    if not n:
        return [0, None, None, 0]
    order = sorted(sizes)
    counts = np.cumsum([sizes[k] for k in order])
    lo, hi = order[int(np.searchsorted(counts, (n + 1) // 2))], order[int(np.searchsorted(counts, n // 2 + 1))]
    median = lo if lo == hi else (lo + hi) / 2
    return [n, median, order[-1], sizes.get(1, 0)]


def families_text(run, samples: Sequence[str]) -> str:
    """umi_families.tsv: per sample and amplicon, how many UMI families had each size (read pairs)."""
    rows = []
    for si, s in enumerate(samples):
        for ai, amp in enumerate(run.panel):
            hist = run.tally.family_sizes.get((si, ai), {})
            rows += [[s, amp.name, size, hist[size], size * hist[size]] for size in sorted(hist)]
    return table_text(FAMILY_COLUMNS, rows)


def strands_text(run, samples: Sequence[str]) -> str:
    rows = []
    for si, s in enumerate(samples):
        for ai, amp in enumerate(run.panel):
            codes = run.tally.codes.get((si, ai))
            if codes is None:
                continue
            for st, name in enumerate(STRAND_NAMES):
                if not codes[st].any():
                    continue
                for k, cpg in enumerate(amp.cpgs):
                    c = codes[st, k]
                    m, u = int(c[M]), int(c[U])
                    rows.append([s, amp.name, cpg.number, one_based(cpg.ref_pos), name, m, u,
                                 int(c.sum()) - m - u, int(c[CONFLICT]), int(c[UMICONF])])
    return table_text(STRAND_COLUMNS, rows)


class PerReadWriter:
    """reads.tsv and cpg_calls.tsv streamed in input order into temporary files, renamed by ``finish``."""

    def __init__(self, out: Path, panel: Panel, columns: Sequence[str], umi: bool = False):
        self.out = out
        self.paths = {name: out / f".{name}.partial" for name in ("reads.tsv", "cpg_calls.tsv")}
        self.handles = {name: open(p, "w", encoding="utf-8", newline="\n") for name, p in self.paths.items()}
        extra = (*NGS_READ_EXTRA, *(("umi",) if umi else ()))
        self.handles["reads.tsv"].write(line([*read_columns(columns), *extra]) + "\n")
        self.handles["cpg_calls.tsv"].write(line(CALL_COLUMNS) + "\n")

    def write(self, lines: tuple[str, str]) -> None:
        self.handles["reads.tsv"].write(lines[0])
        self.handles["cpg_calls.tsv"].write(lines[1])

    def finish(self) -> list[str]:
        for name, h in self.handles.items():
            h.close()
            os.replace(self.paths[name], self.out / name)
        return list(self.paths)

    def abort(self) -> None:
        for name, h in self.handles.items():
            h.close()
            Path(self.paths[name]).unlink(missing_ok=True)


def per_read_lines(p, rec1, rec2, sample: int, index, per_read, names, file: str = "",
                   umis: list[str] | None = None) -> tuple[str, str]:
    """The rows of reads.tsv and cpg_calls.tsv of one chunk (one row per pair, named after R1; ``umis``: the
    pairs' UMIs, a last column, with ``--umi``)."""
    _columns, cond_of = per_read
    s = names["samples"][sample]
    cond = cond_of[s]
    panel = index.panel
    genome = {ai: genome_cells(a) for ai, a in enumerate(panel)}
    reads, calls = [], []
    letters = "MU" + "-" * len(WHY_CODES)
    whys = ["", ""] + [w.value for w in WHY_CODES]
    for i, rid in enumerate(rec1.names):
        ai = int(p.amplicon[i])
        code = int(p.reason[i])
        amp = panel.amplicons[ai] if ai >= 0 else None
        status = "pass" if code == 0 else "fail"
        reason = "" if code == 0 else REASON_NAMES[code - 1]
        nk = len(amp.cpgs) if amp else 0
        row_calls = p.calls[i, :nk]
        m = int((row_calls == M).sum())
        n = m + int((row_calls == U).sum())
        conv, unconv = int(p.converted[i]), int(p.unconverted[i])
        ident = p.identity[i]
        strand = STRAND_NAMES[p.strand[i]] if p.strand[i] >= 0 else ""
        length = int(rec1.length[i]) + (int(rec2.length[i]) if rec2 is not None else 0)
        reads.append(line([rid, file, s, *cond, amp.name if amp else "", status, reason,
                           ("-" if strand.startswith("CT") else "+") if strand else "",
                           pct_cell(conv / (conv + unconv)) if conv + unconv else None,
                           None if np.isnan(ident) else pct_cell(float(ident)), n if amp else None,
                           pct_cell(m / n) if n else None, "", "", length,
                           one_based(int(p.start[i])) if amp and p.start[i] >= 0 else None,
                           int(p.end[i]) if amp and p.end[i] >= 0 else None,
                           int(p.edits[i]) if amp else None, conv if amp else None, unconv if amp else None,
                           None, "", "", strand, *((umis[i],) if umis is not None else ())]))
        if amp is None:
            continue
        head = line([rid, s, amp.name])
        g = genome[ai]
        for k, cpg in enumerate(amp.cpgs):
            c = int(row_calls[k])
            b = int(p.base[i, k])
            calls.append("\t".join((head, str(cpg.number), str(one_based(cpg.ref_pos)), g[cpg.number], letters[c],
                                    whys[c], status, chr(b) if b else "", str(int(p.qual[i, k])) if b else "", "",
                                    "", "", "", "", "")))
    return ("\n".join(reads) + "\n" if reads else "", "\n".join(calls) + "\n" if calls else "")


def write_tables(run, conditions: dict, columns: Sequence[str], config, command, sheet_path, writer,
                 files: Sequence[tuple[str, str, str]], extra: dict | None = None,
                 folder: Path | None = None) -> list[str]:
    """Every table of the run into ``folder`` (default ``run.out``; ``run_ngs`` gives the staged result set),
    then run.json last (its presence marks a complete set of outputs)."""
    from ..pipeline import amplicon_dict

    out, panel, samples = Path(folder or run.out), run.panel, list(run.samples)

    def write_patterns(fh) -> None:
        for block in pattern_lines(run, samples):
            fh.write(encode(block))

    write_with(out / PATTERNS_FILE, write_patterns)
    texts = {
        **({FAMILIES_FILE: families_text(run, samples)} if run.tally.umi else {}),
        "summary.tsv": summary_text(run, samples),
        "samples.tsv": samples_text(run, samples, conditions, columns),
        FUNNEL_FILE: funnel_text(run, samples, conditions, columns),
        STRANDS_FILE: strands_text(run, samples),
    }
    for name, text in texts.items():
        write_text(out / name, text)
    outputs = list(OUTPUTS)
    if run.tally.umi:
        outputs[-1:-1] = [FAMILIES_FILE]
    if writer is not None:
        writer.finish()
        outputs[-1:-1] = ["reads.tsv", "cpg_calls.tsv"]
    amplicons = [amplicon_dict(a) for a in panel]
    meta = {
        "version": __version__,
        "engine": "ngs",
        "unit": "read pair",
        "command": list(command),
        "parameters": {**config.as_dict(), **(extra or {})},
        "sample_sheet": sheet_path,
        "panel": panel.source or None,
        "reference": {"name": panel.amplicons[0].name, "source": panel.amplicons[0].source,
                      "length": len(panel.amplicons[0].reference)},
        **({"amplicon": amplicons[0]} if len(panel) == 1 else {}),
        "amplicons": amplicons,
        "results_dir": os.path.abspath(run.out),
        "warnings": list(run.warnings),
        "sample_columns": list(columns),
        "samples": samples,
        "files": [{"file": f, "file2": f2, "sample": s} for f, f2, s in files],
        "counts": {"reads": run.n_pairs, "pass": run.n_pass, "fail": run.n_pairs - run.n_pass,
                   "by_reason": run.reasons()},
        "seconds": round(run.seconds, 3),
        "outputs": outputs,
    }
    write_json(out / "run.json", meta)
    return outputs
