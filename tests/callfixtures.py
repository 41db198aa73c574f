"""Hand-made `bsmeth call` output directories for the tests of plot/compare/report.

Writes every file of docs/outputs.md (reads.tsv, cpg_calls.tsv, summary.tsv,
samples.tsv, alignments.txt, run.json) from a compact description, so the
downstream stages are tested against the contract, not against ``call``.

A clone is a string with one character per amplicon CpG:
``M`` methylated, ``U`` unmethylated, ``-`` not determined (low_quality),
``.`` not covered, ``s`` the read carries the SNP allele (why = snp).
CpGs listed in ``under_primer`` are always written as ``-``/under_primer.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Optional, Sequence

DEFAULT_POS = (35, 41, 48, 60, 66, 89, 95, 130, 133, 170)

_WHY = {"-": "low_quality", ".": "not_covered", "s": "snp"}


def _fmt(x) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.4f}"
    return str(x)


def _tsv(path: Path, header: Sequence[str], rows: list[dict]) -> None:
    lines = ["\t".join(header)]
    for r in rows:
        lines.append("\t".join(_fmt(r.get(h)) for h in header))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_call_dir(
    directory: Path,
    samples: list[dict],
    positions: Sequence[int] = DEFAULT_POS,
    sheet_columns: Sequence[str] = ("cell_line", "dose"),
    under_primer: Sequence[int] = (),
    snp_cpg: Optional[int] = None,
    snp_name: str = "rs2854744",
    run_sample_columns: bool = True,
    amplicon: str = "IGFBP3_promoter",
    legacy: bool = False,
) -> Path:
    """``samples``: dicts with ``sample``, the sheet columns, ``clones`` (strings) and optional
    ``failed`` (list of (reason, detail)).  Returns ``directory``.  ``legacy``: the layout of bsmeth 0.1
    (no amplicon column, run.json without ``amplicons``)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    n_cpg = len(positions)
    reads, calls, summary, srows, align = [], [], [], [], []
    by_reason: dict = {}
    counts = {"reads": 0, "pass": 0, "fail": 0, "by_reason": by_reason}
    for s in samples:
        name = s["sample"]
        sheet = {c: s.get(c, "") for c in sheet_columns}
        tallies = [[0, 0, 0] for _ in range(n_cpg)]
        n_reads = n_pass = called_total = meth_total = 0
        items = [(c, None) for c in s.get("clones", [])] + [(None, f) for f in s.get("failed", [])]
        for k, (clone, failed) in enumerate(items):
            rid = f"{name}_r{k + 1:02d}"
            n_reads += 1
            counts["reads"] += 1
            status = "pass" if failed is None else "fail"
            counts[status] += 1
            if failed is not None:
                by_reason[failed[0]] = by_reason.get(failed[0], 0) + 1
                clone = "U" * n_cpg if failed[0] not in ("unreadable", "no_amplicon") else None
            row = {"read": rid, "file": f"reads/{rid}.ab1", "sample": name, **sheet, "amplicon": amplicon,
                   "status": status,
                   "reason": "" if failed is None else failed[0], "detail": "" if failed is None else failed[1],
                   "length": 420}
            if clone is not None:
                assert len(clone) == n_cpg, (clone, n_cpg)
                m = u = 0
                for i, ch in enumerate(clone):
                    number = i + 1
                    if number in under_primer:
                        ch, why = "-", "under_primer"
                    else:
                        why = _WHY.get(ch, "")
                    call = ch if ch in "MU" else "-"
                    m += call == "M"
                    u += call == "U"
                    base = {"M": "C", "U": "T", "-": "N", ".": "", "s": "A"}[ch]
                    calls.append({"read": rid, "sample": name, "amplicon": amplicon, "cpg": number,
                                  "pos": positions[i], "call": call,
                                  "why": why, "status": status, "base": base,
                                  "qual": "" if ch == "." else (12 if ch == "-" else 40)})
                    if status == "pass":
                        t = tallies[i]
                        t[0 if call == "M" else 1 if call == "U" else 2] += 1
                row.update(orientation="+", conversion_pct=99.0, identity_pct=97.0, cpgs_called=m + u,
                           methylation_pct=(100 * m / (m + u)) if m + u else None, aligned_start=1, aligned_end=200,
                           mismatches=1, converted=60, unconverted=1, mean_qual=38.5)
                if legacy:  # bsmeth 0.1: these shares as fractions under plain names
                    for new in ("conversion_pct", "identity_pct", "methylation_pct"):
                        v = row.pop(new)
                        row[new[:-4]] = None if v is None else v / 100
                if snp_cpg is not None:
                    row["genotype"] = f"{snp_name}:{'A' if clone[snp_cpg - 1] == 's' else 'C'}"
                if status == "pass":
                    n_pass += 1
                    called_total += m + u
                    meth_total += m
                reason = f" reason={row['reason']}" if row["reason"] else ""
                align.append(f">{rid} sample={name} status={status}{reason} orientation=+ identity=97.0% "
                             f"conversion=99.0% file={row['file']}")
                align.append("    1 TTGGGTATATTTCGGTTTTTG")
                align.append("      ||||||||||||*||||||||")
                align.append("      TTGGGTATATTTCGGTTTTTG")
                align.append("                  " + clone[0])
                align.append("")
            reads.append(row)
        for i in range(n_cpg):
            mm, uu, nd = tallies[i]
            number = i + 1
            note = "under_primer" if number in under_primer else (f"snp:{snp_name}" if number == snp_cpg else "")
            summary.append({"sample": name, "amplicon": amplicon, "cpg": number, "pos": positions[i],
                            "methylated": mm,
                            "unmethylated": uu, "not_determined": nd,
                            "percent": f"{100 * mm / (mm + uu):.2f}" if mm + uu else "", "note": note})
        srows.append({"sample": name, **sheet, "amplicon": amplicon, "reads": n_reads, "pass": n_pass,
                      "cpgs_called": called_total,
                      f"methylation{'' if legacy else '_pct'}": f"{100 * meth_total / called_total:.2f}"
                      if called_total else ""})
    amp_col = [] if legacy else ["amplicon"]
    pct = "" if legacy else "_pct"
    read_cols = ["read", "file", "sample", *sheet_columns, *amp_col, "status", "reason", "orientation",
                 f"conversion{pct}", f"identity{pct}", "cpgs_called", f"methylation{pct}", "duplicate_of", "detail",
                 "length", "aligned_start", "aligned_end", "mismatches", "converted", "unconverted", "mean_qual",
                 "genotype", "mixed_sites"]
    _tsv(d / "reads.tsv", read_cols, reads)
    _tsv(d / "cpg_calls.tsv", ["read", "sample", *amp_col, "cpg", "pos", "call", "why", "status", "base", "qual",
                               "c_signal", "t_signal", "c_frac", "confidence", "trace_flag"], calls)
    _tsv(d / "summary.tsv", ["sample", *amp_col, "cpg", "pos", "methylated", "unmethylated", "not_determined",
                             "percent", "note"], summary)
    _tsv(d / "samples.tsv", ["sample", *sheet_columns, *amp_col, "reads", "pass", "cpgs_called", f"methylation{pct}"],
         srows)
    preamble = ["# bsmeth alignments against IGFBP3_promoter (top strand, amplified strand shown 5'->3')",
                "# marks: | match, . converted C, ! unconverted non-CpG C, * CpG, x mismatch; call line: M/U/- at CpGs",
                ""]
    (d / "alignments.txt").write_text("\n".join(preamble + align) + "\n", encoding="utf-8")
    run = {
        "version": "0.1.0",
        "command": ["bsmeth", "call", "--sheet", "sheet.tsv", "reads/", "-o", str(d)],
        "parameters": {"min_qual": 20, "min_conversion": 0.95, "min_identity": 0.9},
        "reference": {"name": "IGFBP3_promoter", "source": "embedded default", "length": 400},
        "amplicon": {
            "name": amplicon, "strand": "top", "start": 21, "end": 220, "length": 200,
            "forward": "TGGGTATATTTTGGTTTTTGTAGA", "reverse": "AAAACCAAAATAACCCAAAACAC", "warnings": [],
            "snps": [{"name": snp_name, "pos": positions[snp_cpg - 1], "ref": "C", "alt": "A"}] if snp_cpg else [],
            "cpgs": [{"cpg": i + 1, "pos": p, "under_primer": (i + 1) in under_primer,
                      "snp": snp_name if (i + 1) == snp_cpg else None} for i, p in enumerate(positions)],
        },
        "samples": [s["sample"] for s in samples],
        "counts": counts,
        "outputs": ["reads.tsv", "cpg_calls.tsv", "summary.tsv", "samples.tsv", "alignments.txt", "run.json"],
    }
    if not legacy:
        run["amplicons"] = [run["amplicon"]]
    if run_sample_columns:
        run["sample_columns"] = list(sheet_columns)
    (d / "run.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
    return d


def random_clones(rng: random.Random, n: int, p: float, n_cpg: int, p_nd: float = 0.05,
                  clone_sd: float = 0.0) -> list[str]:
    """``n`` clones whose CpGs are methylated with probability ``p`` (per-clone jitter ``clone_sd``)."""
    out = []
    for _ in range(n):
        pc = min(1.0, max(0.0, p + rng.gauss(0, clone_sd))) if clone_sd else p
        s = "".join("-" if rng.random() < p_nd else ("M" if rng.random() < pc else "U") for _ in range(n_cpg))
        out.append(s)
    return out


def dose_design(directory: Path, effect: dict, n_clones: int = 12, seed: int = 1,
                positions: Sequence[int] = DEFAULT_POS, clone_sd: float = 0.05, **kw) -> Path:
    """Samples ``<line>_d<dose>`` for ``effect = {(line, dose): p_methylated}``."""
    rng = random.Random(seed)
    samples = []
    for (line, dose), p in effect.items():
        n = n_clones(line, dose) if callable(n_clones) else n_clones
        samples.append({"sample": f"{line}_d{dose}", "cell_line": line, "dose": str(dose),
                        "clones": random_clones(rng, n, p, len(positions), clone_sd=clone_sd)})
    return write_call_dir(directory, samples, positions=positions, **kw)


def write_panel_call_dir(directory: Path, amplicons: dict, **kw) -> Path:
    """A call folder of a panel: ``amplicons`` maps an amplicon name to the ``samples`` of ``write_call_dir``
    (read ids are prefixed with the amplicon name).  The tables are the concatenation of the amplicons', and
    run.json lists every amplicon, as ``bsmeth call --panel`` writes them."""
    d = Path(directory)
    parts = []
    for name, samples in amplicons.items():
        renamed = [{**s, "sample": s["sample"]} for s in samples]
        sub = write_call_dir(d / f".{name}", renamed, amplicon=name, **kw)
        parts.append((name, sub))
    d.mkdir(parents=True, exist_ok=True)
    for table in ("reads.tsv", "cpg_calls.tsv", "summary.tsv", "samples.tsv"):
        lines: list[str] = []
        for name, sub in parts:
            text = (sub / table).read_text(encoding="utf-8").splitlines()
            body = text[1:]
            if table in ("reads.tsv", "cpg_calls.tsv"):  # read ids distinct across amplicons
                body = [f"{name}_{ln}" for ln in body]
            lines += (text[:1] if not lines else []) + body
        (d / table).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (d / "alignments.txt").write_text("", encoding="utf-8")
    runs = [json.loads((sub / "run.json").read_text()) for _, sub in parts]
    run = {**runs[0], "amplicons": [r["amplicon"] for r in runs]}
    del run["amplicon"]
    (d / "run.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
    return d
