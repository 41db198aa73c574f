"""Bisulfite-aware alignment of one read to the amplified strand.

Pipeline position: after ``reads``/``reference``, before ``calling``/``qc``.
Both read orientations are considered: a cheap 3-letter k-mer vote (C and T
merged, so methylation cannot bias it) picks the orientation, then Biopython's
C aligner makes a *local* alignment against the target with a bisulfite
substitution matrix.  Local mode is what removes vector flanks and noisy read
ends without any trimming by the user; a read that covers only part of the
amplicon is aligned over what it covers.

Scoring (target letter vs read letter): CpG C matches C and T alike; a non-CpG
C matches T fully and C weakly (an unconverted C still aligns, and is then
counted by ``qc``); N scores 0 both ways.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .models import NO_QUAL, AlignedRead, Amplicon
from .reference import cpg_sites, revcomp

MATCH, MISMATCH, UNCONVERTED = 5.0, -4.0, 2.0
GAP_OPEN, GAP_EXTEND = -10.0, -1.0
K = 12
_READ_MAP = str.maketrans({c: "N" for c in "RYKMSWBDHVU"})
ALPHABET = "ACGTNZ"  # Z = CpG C in the target (C or T both match)


def target_code(amp: Amplicon) -> str:
    """The target with each CpG C written as Z (a C that may read C or T); derived once per amplicon."""
    return _target_code(amp.target)


@lru_cache(maxsize=8)
def _target_code(target: str) -> str:
    t = list(target)
    for i in cpg_sites(target):
        t[i] = "Z"
    return "".join(t)


@lru_cache(maxsize=1)
def _aligner():
    from Bio.Align import PairwiseAligner, substitution_matrices

    m = substitution_matrices.Array(alphabet=ALPHABET, dims=2)
    for a in ALPHABET:
        for b in ALPHABET:
            m[a, b] = MATCH if a == b else MISMATCH
    for x in ALPHABET:
        m["N", x] = m[x, "N"] = 0.0
    m["C", "T"] = MATCH
    m["C", "C"] = UNCONVERTED
    m["Z", "C"] = m["Z", "T"] = MATCH
    m["Z", "Z"] = MISMATCH  # Z never occurs in reads
    al = PairwiseAligner()
    al.mode = "local"
    al.substitution_matrix = m
    al.open_gap_score = GAP_OPEN
    al.extend_gap_score = GAP_EXTEND
    return al


_CODE = np.full(256, 3, dtype=np.int64)  # 3-letter alphabet: C reads as T; N and the rest are 3
for _b, _v in (("A", 0), ("G", 1), ("T", 2), ("C", 2)):
    _CODE[ord(_b)] = _v
_WEIGHTS = 4 ** np.arange(K, dtype=np.int64)


def _kmer_codes(seq: str) -> np.ndarray:
    """Integer code of every k-mer of ``seq`` in the 3-letter alphabet; -1 for k-mers holding an N."""
    if len(seq) < K:
        return np.zeros(0, dtype=np.int64)
    from numpy.lib.stride_tricks import sliding_window_view

    codes = _CODE[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]
    win = sliding_window_view(codes, K)
    out = win @ _WEIGHTS
    out[(win == 3).any(axis=1)] = -1
    return out


@lru_cache(maxsize=8)
def _target_kmers(target: str) -> np.ndarray:
    codes = _kmer_codes(target)
    return np.unique(codes[codes >= 0])


def clean_read(seq: str) -> str:
    """Read letters the aligner knows: IUPAC codes become N."""
    return seq.upper().translate(_READ_MAP)


def _hits(seq: str, tk: np.ndarray) -> list[int]:
    """Positions of the read's k-mers that occur in the target (3-letter alphabet)."""
    codes = _kmer_codes(seq)
    if codes.size == 0 or tk.size == 0:
        return []
    i = np.minimum(np.searchsorted(tk, codes), tk.size - 1)  # tk is sorted and unique
    return np.nonzero(tk[i] == codes)[0].tolist()


def orient(amp: Amplicon, seq: str) -> list[tuple[str, str, list[int]]]:
    """Orientations to try, best first: (orientation, oriented read, positions of its k-mer hits).

    The k-mers are taken in a 3-letter alphabet (C read as T), so methylation
    cannot sway the vote.
    """
    tk = _target_kmers(amp.target)
    fwd, rc = seq, revcomp(seq)
    hf, hr = _hits(fwd, tk), _hits(rc, tk)
    cands = [("+", fwd, hf), ("-", rc, hr)]
    cands.sort(key=lambda c: -len(c[2]))
    if len(cands[0][2]) >= 3 * max(len(cands[1][2]), 1):
        cands = cands[:1]
    return cands


def _window(q: str, hits: list[int], n_target: int) -> tuple[int, int]:
    """The part of the read that can hold the amplicon.

    The densest run of k-mer hits over one amplicon length (chance hits in
    T-rich vector sequence are scattered), widened by a margin for indels and
    for ends the k-mers miss.
    """
    if not hits:
        return 0, len(q)
    best_i, best_n, j = 0, 0, 0
    for i in range(len(hits)):
        while hits[i] - hits[j] > n_target:
            j += 1
        if i - j + 1 > best_n:
            best_n, best_i = i - j + 1, i
    end = hits[best_i] + K
    start = end - n_target - K
    margin = n_target // 10 + 30  # room for indels the k-mers do not see and for noisy insert ends
    return max(0, start - margin), min(len(q), end + margin)


def align(amp: Amplicon, seq: str, qual: np.ndarray | None) -> AlignedRead | None:
    """Best local alignment of the read (either orientation) to the target; None if nothing aligns."""
    al = _aligner()
    tcode = target_code(amp)
    cands = orient(amp, clean_read(seq))
    best = None
    for o, q, hits in cands:
        lo, hi = _window(q, hits, amp.length)
        # with one clear orientation the score pass is skipped: the alignment carries its score
        score = al.score(tcode, q[lo:hi]) if len(cands) > 1 else 1.0
        if best is None or score > best[1]:
            best = (o, score, q, lo, hi)
    if best is None or best[1] <= 0:
        return None
    o, _, q, lo, hi = best
    aln = al.align(tcode, q[lo:hi])[0]
    score = aln.score
    if score <= 0:
        return None
    quals = None
    if qual is not None:
        quals = qual if o == "+" else qual[::-1]
    return _project(amp, aln, o, float(score), q, quals, lo)


MIN_END_BLOCK = 10


def _clip_ends(tblocks: np.ndarray, qblocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop short gap-free blocks stranded at either end behind a gap.

    A local alignment gains score from a handful of chance matches on the far
    side of a gap (4 matches pay for a 6-base gap); such a tail is noise, and a
    CpG in it would be called from noise.
    """
    while len(tblocks) > 1 and tblocks[0][1] - tblocks[0][0] < MIN_END_BLOCK:
        tblocks, qblocks = tblocks[1:], qblocks[1:]
    while len(tblocks) > 1 and tblocks[-1][1] - tblocks[-1][0] < MIN_END_BLOCK:
        tblocks, qblocks = tblocks[:-1], qblocks[:-1]
    return tblocks, qblocks


def _project(amp: Amplicon, aln, orientation: str, score: float, q: str, qual: np.ndarray | None,
             offset: int) -> AlignedRead:
    """Per-target-position read bases, qualities and read positions from the aligned blocks."""
    n = amp.length
    bases = np.full(n, " ", dtype="U1")
    quals = np.zeros(n, dtype=np.uint8)
    read_pos = np.full(n, -1, dtype=np.int32)
    tblocks, qblocks = _clip_ends(*aln.aligned)
    insertions = 0
    t_lines, m_lines, r_lines = [], [], []
    prev_t = prev_q = None
    qblocks = qblocks + offset
    for (t0, t1), (q0, q1) in zip(tblocks, qblocks):
        if prev_t is not None:
            if t0 > prev_t:  # deletion in the read
                bases[prev_t:t0] = "-"
                t_lines.append(amp.target[prev_t:t0])
                m_lines.append(" " * (t0 - prev_t))
                r_lines.append("-" * (t0 - prev_t))
            if q0 > prev_q:  # insertion in the read
                insertions += q0 - prev_q
                t_lines.append("-" * (q0 - prev_q))
                m_lines.append(" " * (q0 - prev_q))
                r_lines.append(q[prev_q:q0].lower())
        seg = q[q0:q1]
        bases[t0:t1] = list(seg)
        quals[t0:t1] = qual[q0:q1] if qual is not None else NO_QUAL
        idx = np.arange(q0, q1, dtype=np.int32)
        read_pos[t0:t1] = idx if orientation == "+" else len(q) - 1 - idx
        t_lines.append(amp.target[t0:t1])
        m_lines.append(_marks(amp.target, t0, seg))
        r_lines.append(seg)
        prev_t, prev_q = t1, q1
    return AlignedRead(
        orientation=orientation, score=score,
        target_start=int(tblocks[0][0]), target_end=int(tblocks[-1][1]),
        read_start=int(qblocks[0][0]), read_end=int(qblocks[-1][1]),
        bases=bases, quals=quals, read_pos=read_pos, insertions=insertions,
        lines=("".join(t_lines), "".join(m_lines), "".join(r_lines)),
    )


def _marks(target: str, t0: int, seg: str) -> str:
    """The mark line under one gap-free block: | match, . converted C, ! unconverted C, * CpG, x mismatch."""
    n = len(seg)
    g = np.frombuffer(target[t0:t0 + n].encode("ascii"), dtype="S1")
    nxt = np.frombuffer(target[t0 + 1:t0 + n + 1].ljust(n).encode("ascii"), dtype="S1")
    r = np.frombuffer(seg.encode("ascii"), dtype="S1")
    out = np.where(r == g, b"|", b"x").astype("S1")
    is_c = g == b"C"
    out[is_c & (r == b"T")] = b"."
    out[is_c & (r == b"C")] = b"!"
    out[is_c & (nxt == b"G")] = b"*"
    out[r == b"N"] = b" "
    return out.tobytes().decode("ascii")
