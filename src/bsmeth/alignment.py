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

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from .memo import by_identity
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
    return _tables(amp).tcode


def _target_code(target: str) -> str:
    t = list(target)
    for i in cpg_sites(target):
        t[i] = "Z"
    return "".join(t)


def clean_read(seq: str) -> str:
    """Read letters the aligner knows: IUPAC codes become N (and lower case upper)."""
    if seq.isascii():  # every read from a file: one bytes.translate (a str.translate by dict costs 6x as much)
        return seq.encode("ascii").translate(_CLEAN_ASCII).decode("ascii")
    return seq.upper().translate(_READ_MAP)


# ``clean_read``'s rule for each ASCII letter, as a bytes.translate table (the other 128 bytes never occur)
_CLEAN_ASCII = bytes(ord(chr(i).upper().translate(_READ_MAP)) for i in range(128)) + bytes(range(128, 256))


# --------------------------------------------------------------------------------------- k-mer vote

_NO_KMER = 3 ** K  # the code of every k-mer holding a letter outside the 3-letter alphabet (N): no target k-mer


def _digit_map(pairs: str) -> bytes:
    """A ``bytes.translate`` table: each letter of ``pairs`` ("A0G1...") to its base-3 digit, the rest to 3."""
    table = bytearray([3]) * 256
    for letter, digit in zip(pairs[::2], pairs[1::2]):
        table[ord(letter)] = int(digit)
    return bytes(table)


_DIGIT3 = _digit_map("A0G1T2C2")  # 3-letter alphabet: C reads as T; N and the rest: 3 (no k-mer)
_DIGIT3_RC = _digit_map("A2G2T0C1")  # the same for the complement (read backwards: the reverse complement)
_DIGIT_VALUE = np.array([0, 1, 2, _NO_KMER], dtype=np.int64)  # a 3 weighs so much that its k-mers pass the table
_WEIGHTS = 3 ** np.arange(K - 1, -1, -1, dtype=np.int64)  # the first letter of a k-mer is its top digit


def _codes_of(digits: bytes) -> np.ndarray:
    """Base-3 code of every k-mer of ``digits`` (one byte 0-3 a letter, ``_DIGIT3``); at least ``_NO_KMER``
    for k-mers holding a 3 (N).

    One correlation with the digit weights: a single C loop (a few whole-array operations by doubling
    cost twice as much on a read).  A 3 is worth ``_NO_KMER`` so its k-mers' codes land past every real
    code (at most 3**23 * 2: no overflow); the table lookup clips them to its last, empty entry."""
    if len(digits) < K:
        return np.zeros(0, dtype=np.int64)
    return np.correlate(_DIGIT_VALUE.take(np.frombuffer(digits, dtype=np.uint8)), _WEIGHTS)


def _kmer_codes(seq: str) -> np.ndarray:
    """Base-3 code of every k-mer of ``seq`` in the 3-letter alphabet; ``_NO_KMER`` for k-mers holding an N."""
    return np.minimum(_codes_of(seq.encode("ascii", "replace").translate(_DIGIT3)), _NO_KMER)


def _kmer_table(target: str) -> np.ndarray:
    """Which 3-letter k-mers occur in the target: a lookup table over all 3**K codes (531 kB)."""
    table = np.zeros(_NO_KMER + 1, dtype=bool)  # the last entry is what k-mers holding an N look up
    table[_kmer_codes(target)] = True
    table[_NO_KMER] = False
    return table


def _read_codes(seq: str) -> tuple[np.ndarray, int]:
    """The codes of a read's k-mers in both orientations (one correlation) and ``n``, how many k-mers each has:
    the read's ``n`` first, then K - 1 that span the junction of the two (left out), then its reverse
    complement's ``n``.  They depend on the read alone: a panel's vote codes them once for all amplicons."""
    b = seq.encode("ascii", "replace")
    n = len(b) - K + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64), 0
    return _codes_of(b.translate(_DIGIT3) + b[::-1].translate(_DIGIT3_RC)), n


def kmer_hits(amp: Amplicon, seq: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the target's 3-letter k-mers in the read as given ('+') and in its reverse complement
    ('-').  ``seq`` is a cleaned read (``clean_read``).  The counts are the orientation vote."""
    codes, n = _read_codes(seq)
    if n <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    fwd, rev = _hits(amp, codes, n)
    return fwd.nonzero()[0], rev.nonzero()[0]


def best_hits(amps: Sequence[Amplicon], seq: str) -> list[int]:
    """Per amplicon, the read's k-mer hits (``kmer_hits``) in its better orientation (``orient``'s first), the
    read's k-mers coded once for all (``assign``'s vote over a panel)."""
    codes, n = _read_codes(seq)
    if n <= 0:
        return [0] * len(amps)
    return [max(int(np.count_nonzero(fwd)), int(np.count_nonzero(rev)))
            for fwd, rev in (_hits(amp, codes, n) for amp in amps)]


def _hits(amp: Amplicon, codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Whether the target holds each of the read's k-mers (``_read_codes``, n > 0): as given, and reverse
    complemented (the K - 1 codes spanning the junction between the two left out)."""
    hit = _tables(amp).kmers.take(codes, mode="clip")  # codes past the table (holding an N) read its last entry
    return hit[:n], hit[n + K - 1:]


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
    best, other = (("+", hf), ("-", hr)) if len(hf) >= len(hr) else (("-", hr), ("+", hf))
    keep = (best,) if len(best[1]) >= 3 * max(len(other[1]), 1) else (best, other)
    return [(o, seq if o == "+" else revcomp(seq), hits) for o, hits in keep]  # reversed only when tried


def window(n_read: int, hits: np.ndarray, n_target: int) -> tuple[int, int]:
    """The part of the read that can hold the amplicon.

    The densest run of k-mer hits over one amplicon length (chance hits in T-rich vector sequence are
    scattered), widened by a margin for indels and for ends the k-mers miss.
    """
    if len(hits) == 0:
        return 0, n_read
    last = int(hits[-1])
    if last - int(hits[0]) > n_target:  # hits further apart than the amplicon: the densest run decides
        first = hits.searchsorted(hits - n_target)  # first hit within n_target of each hit
        last = int(hits[int((np.arange(len(hits)) - first).argmax())])  # the end of the first of the densest runs
    # else all hits lie within n_target of the first: each hit's run holds every hit before it, the last's most
    end = last + K
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


@dataclass(frozen=True, eq=False)
class _Tables:
    """What the aligner derives from one amplicon, once (``_tables``)."""

    tcode: str  # the target code (Z at CpG C)
    tsame: bytes  # one letter for each target letter, for parasail's CIGAR (``_local``)
    kmers: np.ndarray  # bool over all 3**K codes (+1): which 3-letter k-mers the target holds (``_kmer_table``)
    profile: object  # parasail's query profile of the target (the target is the query of every alignment)
    mark_keys: np.ndarray  # uint32 per target position: its code letter << 8, the high byte of a ``_marks`` key
    row: np.dtype  # a numpy string as long as the target: ``_project`` cuts it into the letters of ``bases``


_TABLES: dict = {}


def _tables(amp: Amplicon) -> _Tables:
    """The amplicon's aligner tables, made once per amplicon (``memo.by_identity``)."""
    return by_identity(_TABLES, amp, lambda: _make_tables(amp.target))


def _make_tables(target: str) -> _Tables:
    """The aligner's tables of one target (``_tables`` keeps them per amplicon)."""
    import parasail

    tcode = _target_code(target)
    return _Tables(tcode=tcode, tsame=b"A" * len(tcode), kmers=_kmer_table(target),
                   profile=parasail.profile_create_16(tcode, _matrix()),
                   mark_keys=np.frombuffer(tcode.encode("ascii"), dtype=np.uint8).astype(np.uint32) << 8,
                   row=np.dtype(("U", len(tcode))))


@lru_cache(maxsize=1)
def _lib():
    """parasail's C library (its Python wrapper re-encodes both sequences, decodes the profile's target twice
    and makes a result object per call: more than the fill of a short read costs)."""
    import parasail

    return parasail.bindings_v2._lib


def _score(tab: _Tables, q: str) -> int:
    """Score of the best local alignment of ``q`` to the target (no traceback)."""
    if not q:
        return 0
    lib = _lib()
    qb = q.encode("latin_1")  # what parasail's wrapper passes
    res = lib.parasail_sw_scan_profile_16(tab.profile.pointer, qb, len(qb), GAP_OPEN, GAP_EXTEND)
    try:
        return res[0].score
    finally:
        lib.parasail_result_free(res)


def _local(tab: _Tables, q: str, lo: int = 0) -> tuple[int, list[list[int]]]:
    """Score and gap-free blocks [t0, t1, q0, q1] of the best local alignment of ``q`` to the target (read
    positions ``lo`` on: ``q`` is the window of the read that starts at ``lo``)."""
    if not q:
        return 0, []
    lib = _lib()
    qb = q.encode("latin_1")  # what parasail's wrapper passes
    res = lib.parasail_sw_trace_scan_profile_16(tab.profile.pointer, qb, len(qb), GAP_OPEN, GAP_EXTEND)
    try:
        score = res[0].score
        if score <= 0:
            return score, []
        # the CIGAR (query: the target, reference: the read) copied out of the C struct, which is then freed.
        # parasail's traceback follows its trace table alone and looks at the letters only to write a diagonal
        # step as = or X: given one letter throughout, it writes each gap-free run as one = (not a = or X per
        # mismatch, a hundred operations on a typical read), which is all the blocks need
        same = b"A" * len(qb)
        ptr = lib.parasail_result_get_cigar(res, tab.tsame, len(tab.tsame), same, len(same), _matrix().pointer)
        try:
            cig = ptr[0]
            ops = cig.seq[:cig.len]  # the operations as Python ints (a handful)
            t, r = cig.beg_query, cig.beg_ref + lo
        finally:
            lib.parasail_cigar_free(ptr)
    finally:
        lib.parasail_result_free(res)
    # gap-free blocks: the runs of M/=/X operations between the gaps (a few operations: walked in Python)
    blocks: list[list[int]] = []
    t0, r0 = t, r  # where the current block starts
    for op in ops:
        n, code = op >> 4, op & 15
        if code == 1 or code == 2:
            if t > t0:
                blocks.append([t0, t, r0, r])
            if code == 1:  # I: target letters only (a deletion in the read)
                t += n
            else:  # D: read letters only (an insertion in the read)
                r += n
            t0, r0 = t, r
        else:
            t += n
            r += n
    if t > t0:
        blocks.append([t0, t, r0, r])
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
    if len(blocks) < 2:
        return blocks  # no gap
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
    steps = align_steps(amp, seq, qual)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def align_steps(amp: Amplicon, seq: str, qual: np.ndarray | None):
    """``align`` in steps (a generator returning its value): the vote, the alignment, the projection."""
    tab = _tables(amp)
    cands = orient(amp, clean_read(seq))
    best = None
    for o, q, hits in cands:
        lo, hi = window(len(q), hits, amp.length)
        # with one clear orientation the score pass is skipped: the alignment carries its score
        score = _score(tab, q[lo:hi]) if len(cands) > 1 else 1
        if best is None or score > best[1]:
            best = (o, score, q, lo, hi)
    if best is None or best[1] <= 0:
        return None
    o, _, q, lo, hi = best
    yield
    score, blocks = _local(tab, q[lo:hi], lo)
    if score <= 0 or not blocks:
        return None
    yield
    blocks = normalise_gaps(_clip_ends(blocks), tab.tcode, q)
    quals = None
    if qual is not None:
        quals = qual if o == "+" else qual[::-1]
    return _project(amp, tab, blocks, o, float(score), q, quals)


def _project(amp: Amplicon, tab: _Tables, blocks: list[list[int]], orientation: str, score: float, q: str,
             qual: np.ndarray | None) -> AlignedRead:
    """Per-target-position read bases, qualities and read positions from the aligned blocks, and the lines.

    One pass over the blocks (a handful per read): slices of the arrays, and the row of read letters at each
    target position (' ' outside the aligned part, '-' in deletions) as one string, which is also the read
    line of ``_lines`` and, as one numpy string cut into letters, ``bases``."""
    n = len(tab.tcode)
    t_start, t_end = blocks[0][0], blocks[-1][1]
    ri = np.empty(n, dtype=np.int32)  # index in the read as given of the base at each target position
    ri.fill(-1)
    quals = np.zeros(n, dtype=np.uint8)
    last = len(q) - 1
    parts = [" " * t_start]
    gaps = []  # (target position, read letters inserted before it, deletion length before it)
    prev_t, prev_q = t_start, blocks[0][2]
    aligned = 0  # read letters in the blocks
    for t0, t1, q0, q1 in blocks:
        if t0 > prev_t or q0 > prev_q:
            parts.append("-" * (t0 - prev_t))
            gaps.append((t0, q[prev_q:q0], t0 - prev_t))
        parts.append(q[q0:q1])
        ri[t0:t1] = np.arange(q0, q1, dtype=np.int32) if orientation == "+" else np.arange(
            last - q0, last - q1, -1, dtype=np.int32)
        quals[t0:t1] = qual[q0:q1] if qual is not None else NO_QUAL
        aligned += q1 - q0
        prev_t, prev_q = t1, q1
    parts.append(" " * (n - t_end))
    row = "".join(parts)
    # a letter the aligner cannot name is '?' in bases (one '?' a letter: the row keeps its length)
    bases = np.array([row if row.isascii() else row.encode("ascii", "replace").decode("ascii")],
                     dtype=tab.row).view("U1")
    return AlignedRead(
        orientation=orientation, score=score, target_start=t_start, target_end=t_end,
        read_start=blocks[0][2], read_end=prev_q, bases=bases, quals=quals, read_pos=ri,
        insertions=prev_q - blocks[0][2] - aligned, lines=_lines(amp.target, tab, t_start, t_end, row, bases, gaps),
    )


_MARK = {k: ord(v) for k, v in (("match", "|"), ("mismatch", "x"), ("converted", "."), ("unconverted", "!"),
                                ("cpg", "*"), ("n", " "))}


@lru_cache(maxsize=1)
def _marks() -> np.ndarray:
    """The mark of every (target code letter, read letter) pair, at ``code << 8 | read``: the rule once, for
    all pairs (a Z is a CpG C: its mark is '*' whatever the read shows, unless an N)."""
    key = np.arange(1 << 16)
    t, r = key >> 8, key & 255
    is_cpg = t == ord("Z")
    is_c = is_cpg | (t == ord("C"))
    g = np.where(is_cpg, ord("C"), t)
    m = np.where(r == g, _MARK["match"], _MARK["mismatch"])
    m[is_c & (r == ord("T"))] = _MARK["converted"]
    m[is_c & (r == ord("C"))] = _MARK["unconverted"]
    m[is_cpg] = _MARK["cpg"]
    m[r == ord("N")] = _MARK["n"]
    return m.astype(np.uint8)


def _lines(target: str, tab: _Tables, t_start: int, t_end: int, row: str, bases: np.ndarray,
           gaps: list[tuple[int, str, int]]) -> tuple[str, str, str]:
    """Target, mark and read lines for alignments.txt (insertions shown against '-' in the target line).

    Marks: | match, . converted C, ! unconverted C, * CpG, x mismatch, blank for N and in gaps.  ``row``: the
    read letter at each target position, ``bases`` the same as an array (``_project``); ``gaps``: where the
    aligned part has a gap, as (target position, read letters inserted before it, deletion length before it).
    Each line is a slice of the aligned part, cut where letters are inserted."""
    key = tab.mark_keys[t_start:t_end] | bases.view(np.uint32)[t_start:t_end]
    marks = _marks().take(key)
    for t, _, deleted in gaps:
        marks[t - t_start - deleted:t - t_start] = _MARK["n"]  # a deletion's columns: blank
    ml = marks.tobytes().decode("ascii")
    if not any(ins for _, ins, _ in gaps):
        return target[t_start:t_end], ml, row[t_start:t_end]
    tl, ml_parts, rl = [], [], []
    prev = t_start
    for t, ins, _ in gaps:
        if ins:  # insertion in the read, before target position t
            tl += (target[prev:t], "-" * len(ins))
            ml_parts += (ml[prev - t_start:t - t_start], " " * len(ins))
            rl += (row[prev:t], ins.lower())
            prev = t
    tl.append(target[prev:t_end])
    ml_parts.append(ml[prev - t_start:])
    rl.append(row[prev:t_end])
    return "".join(tl), "".join(ml_parts), "".join(rl)
