"""Which C library aligns reads: parasail, edlib and WFA2 (pywfa) measured on the real problem.

Every read of the real sets in tests/data (BiQ demo, QUMA Gm9 with pGEM vector, NOMePlot Oct4 with vector,
the 454 set with its primer dimers) and the 96 simulated example traces is oriented and windowed as bsmeth
does (3-letter k-mer vote), then aligned to its amplicon by each candidate:

* ``biopython``: Biopython's PairwiseAligner, local, with bsmeth's bisulfite matrix (the engine before);
* ``parasail-bs``: parasail's SIMD Smith-Waterman (scan, 16 bit, traceback) with the same matrix (chosen);
* ``parasail-3l``: the same in plain 3-letter space (read and target with C->T);
* ``edlib-3l``: edlib's infix (HW) edit-distance alignment in 3-letter space, then the best-scoring
  stretch of its path (5/-4/-10/-1) as the local alignment (edlib has no local mode);
* ``wfa-3l``: WFA2 (pywfa), gap-affine, the read window's ends free (infix), then the same local trim.

Printed per set: CPU microseconds per alignment (best of 3 passes), and against Biopython's alignment:
CpGs whose read base differs and reads whose covered span differs, over the reads bsmeth does not reject as
no_amplicon / low_identity / low_quality (their alignments are junk whatever the aligner).

    pip install edlib pywfa      # optional: a missing library is skipped with a note
    python benchmarks/bench_aligners.py
    python benchmarks/bench_aligners.py --smoke   # two files a set (CI: checks the script runs)
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from bsmeth import alignment as A
from bsmeth.models import CallConfig
from bsmeth.pipeline import fit_to_amplicon, process_read
from bsmeth.reads import read_file
from bsmeth.reference import load_amplicon

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SETS = {
    "BiQ demo (233 bp)": (DATA / "biq_demo/Master_Sequence.txt", [DATA / "biq_demo/multiFASTA.fasta"], {}),
    "QUMA Gm9 (453 bp, vector)": (DATA / "quma_gm9/sample_genome_fasta.txt",
                                  [DATA / "quma_gm9/Gm9_J1_multi_fasta.txt",
                                   DATA / "quma_gm9/Gm9_16aabb_multi_fasta.txt"], {}),
    "NOMePlot Oct4 (390 bp, vector)": (DATA / "nomeplot/Oct4/Oct4-Reference-Genomic.txt",
                                       sorted((DATA / "nomeplot/Oct4").glob("*.seq")), {"nome": True}),
    "454 EPM2AIP1 (630 bp)": (DATA / "mapit454/reference.fa", [DATA / "mapit454/reads.fasta"], {"nome": True}),
    "simulated traces (226 bp)": (None, sorted((ROOT / "example_reads").glob("*/*.ab1")), {}),
}
_TO3 = str.maketrans("C", "T")
SKIP = {"no_amplicon", "low_identity", "low_quality"}


def _ri(n: int, blocks) -> np.ndarray:
    """Read index per target position (-1 gap, -2 not covered) from gap-free blocks [t0, t1, q0, q1]."""
    ri = np.full(n, -2, dtype=np.int64)
    if blocks:
        ri[blocks[0][0]:blocks[-1][1]] = -1
    for t0, t1, q0, q1 in blocks:
        ri[t0:t1] = np.arange(q0, q1)
    return ri


def _blocks_from_ops(t: int, q: int, ops) -> list[list[int]]:
    out = []
    for op, n in ops:
        if op == "M":
            out.append([t, t + n, q, q + n])
            t, q = t + n, q + n
        elif op == "D":
            t += n
        else:
            q += n
    return out


def _local_trim(t: int, q: int, ops, tq: str, rq: str):
    """The best-scoring contiguous stretch (5/-4/-10/-1, N 0) of a global path: a local alignment."""
    t_first, q_first = t, q
    cols = []
    for op, n in ops:
        if op == "M":
            a = np.frombuffer(tq[t:t + n].encode(), np.uint8)
            b = np.frombuffer(rq[q:q + n].encode(), np.uint8)
            s = np.where(a == b, 5, -4)
            s[b == ord("N")] = 0
            cols += [(int(x), 1, 1) for x in s]
            t, q = t + n, q + n
        elif op == "D":
            cols += [(-10, 1, 0)] + [(-1, 1, 0)] * (n - 1)
            t += n
        else:
            cols += [(-10, 0, 1)] + [(-1, 0, 1)] * (n - 1)
            q += n
    best = cur = start = bs = be = 0
    for k, (sc, _, _) in enumerate(cols):
        if cur <= 0:
            cur, start = 0, k
        cur += sc
        if cur > best:
            best, bs, be = cur, start, k + 1
    t0 = t_first + sum(c[1] for c in cols[:bs])
    q0 = q_first + sum(c[2] for c in cols[:bs])
    out = []
    for _, dt, dq in cols[bs:be]:
        op = "M" if dt and dq else ("D" if dt else "I")
        if out and out[-1][0] == op:
            out[-1][1] += 1
        else:
            out.append([op, 1])
    return t0, q0, out


RAW = {}  # the library call alone (edlib and WFA need a local trim in Python after it)


def candidates():
    """name -> function(tcode, t3, window, window3) -> blocks in window coordinates."""
    out = {}
    from Bio.Align import PairwiseAligner, substitution_matrices

    m = substitution_matrices.Array(alphabet=A.ALPHABET, dims=2)
    for a in A.ALPHABET:
        for b in A.ALPHABET:
            m[a, b] = A.MATCH if a == b else A.MISMATCH
    for x in A.ALPHABET:
        m["N", x] = m[x, "N"] = 0.0
    m["C", "T"], m["C", "C"] = A.MATCH, A.UNCONVERTED
    m["Z", "C"], m["Z", "T"], m["Z", "Z"] = A.MATCH, A.MATCH, A.MISMATCH
    bio = PairwiseAligner()
    bio.mode, bio.substitution_matrix = "local", m
    bio.open_gap_score, bio.extend_gap_score = -A.GAP_OPEN, -A.GAP_EXTEND

    def biopython(tcode, t3, w, w3):
        aln = bio.align(tcode, w)[0]
        return [[int(t0), int(t1), int(q0), int(q1)] for (t0, t1), (q0, q1) in zip(*aln.aligned)]

    out["biopython"] = biopython
    tables = {}  # the aligner's per-amplicon tables, by target code (Z marks a CpG C of the target)

    def parasail_bs(tcode, t3, w, w3):
        if tcode not in tables:
            tables[tcode] = A._make_tables(tcode.replace("Z", "C"))
        return A._local(tables[tcode], w)[1]

    out["parasail-bs"] = parasail_bs
    import parasail

    m3 = parasail.matrix_create("AGTN", A.MATCH, A.MISMATCH)
    for i in range(4):
        m3.set_value(3, i, 0)
        m3.set_value(i, 3, 0)
    profiles = {}

    def parasail_3l(tcode, t3, w, w3):
        if t3 not in profiles:
            profiles[t3] = parasail.profile_create_16(t3, m3)
        r = parasail.sw_trace_scan_profile_16(profiles[t3], w3, A.GAP_OPEN, A.GAP_EXTEND)
        cig = r.get_cigar()
        t, q, ops = cig.beg_query, cig.beg_ref, []
        for code in np.array(cig.seq).tolist():
            n, op = code >> 4, "MIDNSHP=XB"[code & 15]
            op = "M" if op in "=XM" else ("D" if op == "I" else "I")
            if not ops and op != "M":
                t, q = (t + n, q) if op == "D" else (t, q + n)
                continue
            ops.append((op, n))
        return _blocks_from_ops(t, q, ops)

    out["parasail-3l"] = parasail_3l
    try:
        import edlib

        eq = [("N", x) for x in "AGT"]

        def edlib_3l(tcode, t3, w, w3):
            r = edlib.align(t3, w3, mode="HW", task="path", additionalEqualities=eq)
            ops = [("M" if op in "=X" else ("D" if op == "I" else "I"), int(n))
                   for n, op in re.findall(r"(\d+)([=XID])", r["cigar"] or "")]
            return _blocks_from_ops(*_local_trim(0, r["locations"][0][0], ops, t3, w3))

        out["edlib-3l"] = edlib_3l
        RAW["edlib-3l"] = lambda tcode, t3, w, w3: edlib.align(t3, w3, mode="HW", task="path", additionalEqualities=eq)
    except ImportError:
        print("edlib not installed: skipped (pip install edlib)")
    try:
        from pywfa import WavefrontAligner

        def wfa_3l(tcode, t3, w, w3):
            a = WavefrontAligner(t3, span="ends-free", mismatch=4, gap_opening=6, gap_extension=2,
                                 pattern_begin_free=0, pattern_end_free=0, text_begin_free=len(w3),
                                 text_end_free=len(w3))
            r = a(w3, clip_cigar=False)
            ops, t, q = [], 0, 0
            for code, n in r.cigartuples:
                op = {0: "M", 7: "M", 8: "M", 1: "I", 2: "D"}.get(code)
                if op is None:
                    continue
                if not ops and op != "M":
                    t, q = (t + n, q) if op == "D" else (t, q + n)
                    continue
                ops.append((op, n))
            return _blocks_from_ops(*_local_trim(t, q, ops, t3, w3))

        out["wfa-3l"] = wfa_3l

        def wfa_raw(tcode, t3, w, w3):
            a = WavefrontAligner(t3, span="ends-free", mismatch=4, gap_opening=6, gap_extension=2,
                                 pattern_begin_free=0, pattern_end_free=0, text_begin_free=len(w3),
                                 text_end_free=len(w3))
            return a(w3, clip_cigar=False).cigartuples

        RAW["wfa-3l"] = wfa_raw
    except ImportError:
        print("pywfa not installed: skipped (pip install pywfa)")
    return out


def main(smoke: bool = False) -> None:
    cands = candidates()
    print(f"{'set':32s} {'reads':>5s}  " + "  ".join(f"{n:>22s}" for n in cands))
    for name, (ref, files, kw) in SETS.items():
        files = files[:2] if smoke else files
        amp = load_amplicon(ref) if ref else load_amplicon()
        cfg = fit_to_amplicon(CallConfig(**kw), amp)
        tcode, t3 = A.target_code(amp), amp.target.translate(_TO3)
        items = []
        for f in files:
            for rd in read_file(f):
                if not hasattr(rd, "seq"):
                    continue
                seq = A.clean_read(rd.seq)
                o, q, hits = A.orient(amp, seq)[0]
                lo, hi = A.window(len(q), hits, amp.length)
                keep = (process_read(rd, "s", amp, cfg).reason or "") not in SKIP
                items.append((q[lo:hi], q[lo:hi].translate(_TO3), keep))
        ref_ri = [_ri(amp.length, A._clip_ends(cands["biopython"](tcode, t3, w, w3))) for w, w3, _ in items]
        cpg_t = [c.target_pos for c in amp.cpgs]
        cells = []
        for cname, fn in cands.items():
            best = float("inf")
            for _ in range(3):
                c = time.process_time()
                got = [fn(tcode, t3, w, w3) for w, w3, _ in items]
                best = min(best, time.process_time() - c)
            diff_cpg = diff_span = n_cpg = 0
            for (w, _w3, keep), blocks, rr in zip(items, got, ref_ri):
                if not keep:
                    continue
                ri = _ri(amp.length, A._clip_ends([list(b) for b in blocks]) if blocks else [])
                base = lambda x, t, w=w: w[x[t]] if x[t] >= 0 else ("-" if x[t] == -1 else " ")  # noqa: E731
                n_cpg += len(cpg_t)
                diff_cpg += sum(base(ri, t) != base(rr, t) for t in cpg_t)
                diff_span += (np.flatnonzero(ri != -2)[[0, -1]].tolist() if (ri != -2).any() else []) != \
                             (np.flatnonzero(rr != -2)[[0, -1]].tolist() if (rr != -2).any() else [])
            raw = ""
            if cname in RAW:
                rb = float("inf")
                for _ in range(3):
                    c = time.process_time()
                    for w, w3, _ in items:
                        RAW[cname](tcode, t3, w, w3)
                    rb = min(rb, time.process_time() - c)
                raw = f" ({1e6 * rb / len(items):.0f} raw)"
            cells.append(f"{1e6 * best / len(items):6.0f} us{raw} {diff_cpg:4d}/{n_cpg:<5d} {diff_span:3d}")
        print(f"{name:32s} {len(items):5d}  " + "  ".join(f"{c:>22s}" for c in cells))
    print("cells: CPU per alignment (the library call alone in brackets, where a local trim in Python follows), "
          "CpGs read differently from Biopython / CpGs compared, reads whose span differs")


if __name__ == "__main__":
    import sys

    main(smoke="--smoke" in sys.argv[1:])
