"""Bisulfite-aware alignment of one read to the amplified strand.

Pipeline position: after ``reads``/``reference``, before ``evidence``/``calling``/``qc``.

1. **Orientation vote** (``kmer_hits``/``vote``): the read and its reverse complement are cut into
   12-mers in a 3-letter alphabet (C read as T, on the amplified strand: a read showing the reverse
   complement is reverse-complemented first, which is G->A on the read as given), so methylation cannot
   sway the vote; each orientation's hit count is the number of its k-mers found in the amplicon.  The
   vote is one function of (amplicon, read) so that a read can be put to several amplicons.
2. **Window**: the densest run of hits over one amplicon length, widened by a margin, is the part of the
   read that can hold the amplicon (vector far from the insert never reaches the aligner).
3. **Local alignment** (Smith-Waterman with affine gaps, parasail's SIMD C library, the only module that
   imports it) of the window against the target with a bisulfite substitution matrix: local mode is what
   removes vector flanks and noisy read ends without any trimming by the user; a read covering only part
   of the amplicon is aligned over what it covers.
4. **Gap placement**: indels are moved to the left end of runs of equal 3-letter letters.  A CpG C is
   always the last letter of its run in 3-letter space (a G follows it), so a homopolymer length error
   next to a CpG never leaves a gap at the C by chance: the CpG is read from the read base next to its G.

Scoring (target letter vs read letter): CpG C matches C and T alike; a non-CpG C matches T fully and C
weakly (an unconverted C still aligns, and is then counted by ``qc``); a read C against a genomic T is a
mismatch; N scores 0 both ways.  Why this and not plain 3-letter scoring (both orientations, C->T): vector
sequence is not converted, and in 3-letter space its C look like the converted T of the insert, so long
stretches of vector align by chance (on the real Gm9 short insert, 440 target bases instead of the 105
that are there); docs/performance.md has the measurements behind the choice of aligner.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from itertools import pairwise

import numpy as np

from .models import NO_QUAL, AlignedRead, Amplicon
from .reference import cpg_sites, revcomp

MATCH, MISMATCH, UNCONVERTED = 5, -4, 2
GAP_OPEN, GAP_EXTEND = 10, 1  # penalties: a gap of length k costs GAP_OPEN + (k - 1) * GAP_EXTEND
K = 12
MIN_END_BLOCK = 10
_READ_MAP = str.maketrans({c: "N" for c in "RYKMSWBDHVU"})
ALPHABET = "ACGTNZ"  # Z = CpG C in the target (C or T both match)


def target_code(amp: Amplicon) -> str:
    """The target with each CpG C written as Z (a C that may read C or T); derived once per amplicon."""
    return _target_code(amp.target)


@lru_cache(maxsize=16)
def _target_code(target: str) -> str:
    t = list(target)
    for i in cpg_sites(target):
        t[i] = "Z"
    return "".join(t)


def clean_read(seq: str) -> str:
    """Read letters the aligner knows: IUPAC codes become N."""
    return seq.upper().translate(_READ_MAP)


# --------------------------------------------------------------------------------------- k-mer vote

_NO_KMER = 3 ** K  # the code of every k-mer holding a letter outside the 3-letter alphabet (N): no target k-mer
_CODE3 = np.full(256, _NO_KMER, dtype=np.int64)  # 3-letter alphabet: C reads as T; N and the rest: no k-mer
_CODE3_RC = np.full(256, _NO_KMER, dtype=np.int64)  # the same for the complement (read backwards: reverse complement)
for _b, _v, _c in (("A", 0, 2), ("G", 1, 2), ("T", 2, 0), ("C", 2, 1)):
    _CODE3[ord(_b)] = _v
    _CODE3_RC[ord(_b)] = _c


def _codes_of(c: np.ndarray) -> np.ndarray:
    """Base-3 code of every k-mer of the letter codes ``c`` (``_CODE3``); ``_NO_KMER`` for k-mers holding an N.

    Codes of 2-, 4-, 8-mers by doubling, then the k-mers from those (8 + 4 for K = 12): a few whole-array
    operations.  A letter coded ``_NO_KMER`` makes its k-mers' codes at least ``_NO_KMER`` (clipped to it)."""
    if len(c) < K:
        return np.zeros(0, dtype=np.int64)
    parts = {1: c}
    w = 1
    while 2 * w <= K:
        parts[2 * w] = parts[w][:-w] * 3 ** w + parts[w][w:]
        w *= 2
    out, have = parts[w], w
    for p in sorted(parts, reverse=True):  # the rest of K in powers of two
        if have + p <= K:
            out = out[:len(out) - p] * 3 ** p + parts[p][have:]
            have += p
    return np.minimum(out, _NO_KMER)


def _kmer_codes(seq: str) -> np.ndarray:
    """Base-3 code of every k-mer of ``seq`` in the 3-letter alphabet; ``_NO_KMER`` for k-mers holding an N."""
    return _codes_of(_CODE3[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)])


@lru_cache(maxsize=16)
def _target_table(target: str) -> np.ndarray:
    """Which 3-letter k-mers occur in the target: a lookup table over all 3**K codes (531 kB)."""
    table = np.zeros(_NO_KMER + 1, dtype=bool)  # the last entry is what k-mers holding an N look up
    codes = _kmer_codes(target)
    table[codes] = True
    table[_NO_KMER] = False
    return table


def kmer_hits(amp: Amplicon, seq: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the target's 3-letter k-mers in the read as given ('+') and in its reverse complement
    ('-').  ``seq`` is a cleaned read (``clean_read``).  The counts are the orientation vote."""
    b = np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)
    n = len(b) - K + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # both orientations in one pass; the k-mers that span the junction of the two are left out
    hit = _target_table(amp.target)[_codes_of(np.concatenate((_CODE3[b], _CODE3_RC[b[::-1]])))]
    return np.flatnonzero(hit[:n]), np.flatnonzero(hit[n + K - 1:])


def vote(amp: Amplicon, seq: str) -> tuple[str, int, int]:
    """(orientation with more hits, its hit count, the other orientation's count) for a cleaned read."""
    hf, hr = kmer_hits(amp, seq)
    return ("+", len(hf), len(hr)) if len(hf) >= len(hr) else ("-", len(hr), len(hf))


def orient(amp: Amplicon, seq: str) -> list[tuple[str, str, np.ndarray]]:
    """Orientations to try, best first: (orientation, oriented read, positions of its k-mer hits).

    One orientation when it has at least three times the other's hits; both otherwise (the alignment
    score decides).
    """
    hf, hr = kmer_hits(amp, seq)
    cands = [("+", seq, hf), ("-", revcomp(seq), hr)]
    cands.sort(key=lambda c: -len(c[2]))
    if len(cands[0][2]) >= 3 * max(len(cands[1][2]), 1):
        cands = cands[:1]
    return cands


def window(n_read: int, hits: np.ndarray, n_target: int) -> tuple[int, int]:
    """The part of the read that can hold the amplicon.

    The densest run of k-mer hits over one amplicon length (chance hits in T-rich vector sequence are
    scattered), widened by a margin for indels and for ends the k-mers miss.
    """
    if len(hits) == 0:
        return 0, n_read
    first = np.searchsorted(hits, hits - n_target, side="left")  # first hit within n_target of each hit
    best = int(np.argmax(np.arange(len(hits)) - first))  # the first of the densest runs
    end = int(hits[best]) + K
    start = end - n_target - K
    margin = n_target // 10 + 30  # room for indels the k-mers do not see and for noisy insert ends
    return max(0, start - margin), min(n_read, end + margin)


# --------------------------------------------------------------------------------------- parasail


@lru_cache(maxsize=1)
def _matrix():
    import parasail

    m = parasail.matrix_create(ALPHABET, MATCH, MISMATCH)
    ix = {c: i for i, c in enumerate(ALPHABET)}

    def put(target: str, read: str, value: int) -> None:
        m.set_value(ix[read], ix[target], value)  # parasail's matrix is [database letter][query letter]

    for x in ALPHABET:
        put("N", x, 0)
        put(x, "N", 0)
    put("C", "T", MATCH)
    put("C", "C", UNCONVERTED)
    put("Z", "C", MATCH)
    put("Z", "T", MATCH)
    put("Z", "Z", MISMATCH)  # Z never occurs in reads
    return m


@lru_cache(maxsize=16)
def _profile(tcode: str):
    """The target's query profile (built once per amplicon: the target is the query of every alignment)."""
    import parasail

    return parasail.profile_create_16(tcode, _matrix())


def _score(tcode: str, q: str) -> int:
    import parasail

    return parasail.sw_scan_profile_16(_profile(tcode), q, GAP_OPEN, GAP_EXTEND).score if q else 0


def _local(tcode: str, q: str) -> tuple[int, list[list[int]]]:
    """Score and gap-free blocks [t0, t1, q0, q1] of the best local alignment of ``q`` to the target."""
    import parasail

    if not q:
        return 0, []
    res = parasail.sw_trace_scan_profile_16(_profile(tcode), q, GAP_OPEN, GAP_EXTEND)
    score = res.score
    if score <= 0:
        return score, []
    # the CIGAR straight from the C library (parasail's Python wrapper re-encodes both sequences and
    # rebuilds ctypes signatures on every call); a copy of its array, then the C struct is freed
    lib = parasail.bindings_v2._lib
    tb = tcode.encode("ascii")
    qb = q.encode("ascii", "replace")
    ptr = lib.parasail_result_get_cigar(res.pointer, tb, len(tb), qb, len(qb), _matrix().pointer)
    cig = ptr[0]
    try:
        ops = np.frombuffer(ctypes.string_at(cig.seq, 4 * cig.len), dtype=np.uint32)
        t, r = cig.beg_query, cig.beg_ref
    finally:
        lib.parasail_cigar_free(ptr)
    # gap-free blocks: runs of M/=/X operations between the gaps (parasail writes a mismatch as its own X)
    n, code = ops >> 4, ops & 15
    t_end = (t + np.cumsum(np.where(code == 2, 0, n))).tolist()  # D: read letters only (an insertion in the read)
    r_end = (r + np.cumsum(np.where(code == 1, 0, n))).tolist()  # I: target letters only (a deletion in the read)
    gaps = ((code == 1) | (code == 2)).nonzero()[0].tolist()
    blocks: list[list[int]] = []
    for a, b in zip([-1, *gaps], [*gaps, len(ops)]):
        if b - a > 1:  # M operations a+1 .. b-1: from where the one before ended to where the last ends
            blocks.append([t_end[a] if a >= 0 else t, t_end[b - 1], r_end[a] if a >= 0 else r, r_end[b - 1]])
    return score, blocks


def _clip_ends(blocks: list[list[int]]) -> list[list[int]]:
    """Drop short gap-free blocks stranded at either end behind a gap.

    A local alignment gains score from a handful of chance matches on the far side of a gap (4 matches
    pay for a 6-base gap); such a tail is noise, and a CpG in it would be called from noise.
    """
    while len(blocks) > 1 and blocks[0][1] - blocks[0][0] < MIN_END_BLOCK:
        blocks = blocks[1:]
    while len(blocks) > 1 and blocks[-1][1] - blocks[-1][0] < MIN_END_BLOCK:
        blocks = blocks[:-1]
    return blocks


_TO3 = str.maketrans("C", "T")


@lru_cache(maxsize=1)
def _pair_scores() -> dict[tuple[str, str], int]:
    """(target code letter, read letter) -> substitution score, as in ``_matrix``."""
    out = {}
    for t in ALPHABET:
        for r in ALPHABET:
            out[t, r] = 0 if "N" in (t, r) else MATCH if t == r else MISMATCH
    out["C", "T"] = out["Z", "C"] = out["Z", "T"] = MATCH
    out["C", "C"] = UNCONVERTED
    return out


def normalise_gaps(blocks: list[list[int]], tcode: str, q: str) -> list[list[int]]:
    """Move every pure deletion or insertion to the left end of its run of equal 3-letter letters.

    ``tcode``: the target code (Z at CpG C), ``q``: the oriented read.  A shift keeps every aligned pair's
    3-letter letters equal and is made only where the column it moves scores no worse (so a read C is not
    moved off a genomic C onto a T: where a CpG's G itself is missing, the read's C stays at the C); a gap
    never moves past the start of the block before it (gaps are not merged).  Every shift that moves a
    read base onto a CpG C is allowed (C and T score alike there), so a homopolymer length error in the
    run before a CpG's G always leaves the C aligned with the read base next to the G.
    """
    t3, q3 = tcode.replace("Z", "C").translate(_TO3), q.translate(_TO3)
    score = _pair_scores()
    for i in range(1, len(blocks)):
        prev, cur = blocks[i - 1], blocks[i]
        deletion, insertion = cur[0] - prev[1], cur[2] - prev[3]
        if (deletion > 0) == (insertion > 0):
            continue  # no gap, or a deletion next to an insertion: left as the aligner placed it
        shift = 0
        while prev[1] - prev[0] - shift > 1:
            a, b, k, m = prev[1] - shift, cur[0] - shift, prev[3] - shift, cur[2] - shift
            if deletion:  # read base k-1 moves from target a-1 to target b-1
                ok = t3[a - 1] == t3[b - 1] and score.get((tcode[b - 1], q[k - 1]), 0) >= score.get(
                    (tcode[a - 1], q[k - 1]), 0)
            else:  # target a-1 is paired with read m-1 instead of read k-1
                ok = q3[k - 1] == q3[m - 1] and score.get((tcode[a - 1], q[m - 1]), 0) >= score.get(
                    (tcode[a - 1], q[k - 1]), 0)
            if not ok:
                break
            shift += 1
        if shift:
            prev[1] -= shift
            prev[3] -= shift
            cur[0] -= shift
            cur[2] -= shift
    return blocks


def align(amp: Amplicon, seq: str, qual: np.ndarray | None) -> AlignedRead | None:
    """Best local alignment of the read (either orientation) to the target; None if nothing aligns."""
    tcode = target_code(amp)
    cands = orient(amp, clean_read(seq))
    best = None
    for o, q, hits in cands:
        lo, hi = window(len(q), hits, amp.length)
        # with one clear orientation the score pass is skipped: the alignment carries its score
        score = _score(tcode, q[lo:hi]) if len(cands) > 1 else 1
        if best is None or score > best[1]:
            best = (o, score, q, lo, hi)
    if best is None or best[1] <= 0:
        return None
    o, _, q, lo, hi = best
    score, blocks = _local(tcode, q[lo:hi])
    if score <= 0 or not blocks:
        return None
    for b in blocks:
        b[2] += lo
        b[3] += lo
    blocks = normalise_gaps(_clip_ends(blocks), tcode, q)
    quals = None
    if qual is not None:
        quals = qual if o == "+" else qual[::-1]
    return _project(amp, blocks, o, float(score), q, quals)


@lru_cache(maxsize=16)
def _target_marks(target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per target position: the letter's code point, is a C, is a CpG C (for the mark line)."""
    g = np.frombuffer(target.encode("ascii"), dtype=np.uint8).astype(np.uint32)
    is_c = g == ord("C")
    cpg = is_c & np.append(g[1:] == ord("G"), False)
    return g, is_c, cpg


def _project(amp: Amplicon, blocks: list[list[int]], orientation: str, score: float, q: str,
             qual: np.ndarray | None) -> AlignedRead:
    """Per-target-position read bases, qualities and read positions from the aligned blocks."""
    n = amp.length
    ri = np.full(n, -1, dtype=np.int32)  # index in the oriented read of the base at each target position
    for t0, t1, q0, q1 in blocks:
        ri[t0:t1] = np.arange(q0, q1, dtype=np.int32)
    t_start, t_end = blocks[0][0], blocks[-1][1]
    on = ri >= 0
    at = ri[on]
    codes = np.full(n, ord(" "), dtype=np.uint32)  # the code points of a 'U1' array, viewed as one below
    codes[t_start:t_end] = ord("-")
    codes[on] = np.frombuffer(q.encode("ascii", "replace"), dtype=np.uint8)[at]
    quals = np.zeros(n, dtype=np.uint8)
    quals[on] = qual[at] if qual is not None else NO_QUAL
    if orientation == "-":
        ri[on] = len(q) - 1 - at
    insertions = sum(cur[2] - prev[3] for prev, cur in pairwise(blocks))
    return AlignedRead(
        orientation=orientation, score=score, target_start=t_start, target_end=t_end,
        read_start=blocks[0][2], read_end=blocks[-1][3], bases=codes.view("U1"), quals=quals, read_pos=ri,
        insertions=int(insertions), lines=_lines(amp.target, blocks, q, codes),
    )


_MARK = {k: ord(v) for k, v in (("match", "|"), ("mismatch", "x"), ("converted", "."), ("unconverted", "!"),
                                ("cpg", "*"), ("n", " "))}


def _lines(target: str, blocks: list[list[int]], q: str, codes: np.ndarray) -> tuple[str, str, str]:
    """Target, mark and read lines for alignments.txt (insertions shown against '-' in the target line).

    Marks: | match, . converted C, ! unconverted C, * CpG, x mismatch, blank for N.
    """
    t_start, t_end = blocks[0][0], blocks[-1][1]
    g, is_c, cpg = (a[t_start:t_end] for a in _target_marks(target))
    r = codes[t_start:t_end]
    m = np.where(r == g, _MARK["match"], _MARK["mismatch"])
    m[is_c & (r == ord("T"))] = _MARK["converted"]
    m[is_c & (r == ord("C"))] = _MARK["unconverted"]
    m[cpg] = _MARK["cpg"]
    m[r == ord("N")] = _MARK["n"]
    marks = m.astype(np.uint8).tobytes().decode("ascii")
    tl, ml, rl = [], [], []
    prev = None
    for t0, t1, q0, q1 in blocks:
        if prev is not None:
            if t0 > prev[1]:  # deletion in the read
                tl.append(target[prev[1]:t0])
                ml.append(" " * (t0 - prev[1]))
                rl.append("-" * (t0 - prev[1]))
            if q0 > prev[3]:  # insertion in the read
                tl.append("-" * (q0 - prev[3]))
                ml.append(" " * (q0 - prev[3]))
                rl.append(q[prev[3]:q0].lower())
        tl.append(target[t0:t1])
        ml.append(marks[t0 - t_start:t1 - t_start])
        rl.append(q[q0:q1])
        prev = (t0, t1, q0, q1)
    return "".join(tl), "".join(ml), "".join(rl)
