"""The panel as the NGS engine sees it: per amplicon two converted strands, their k-mer anchors and the
positions that carry evidence.

Pipeline position: built once per run from the ``Panel`` (``models``), shared by the workers (fork).

A bisulfite amplicon library holds up to four strands per amplicon (Bismark's names, here relative to the
amplicon's amplified strand, not the genome):

* ``OT``: the amplified (assayed) converted strand, read 5'->3' from the forward primer;
* ``CTOT``: its complement (the other strand of the PCR product), read from the reverse primer;
* ``OB``: the opposite original strand, converted, read 5'->3';
* ``CTOB``: its complement.

A read of a complementary strand (CTOT, CTOB) is reverse-complemented first, which makes it a read of OT or OB:
so each amplicon has two *references* (``ref_id = 2 * amplicon + s``; ``s`` 0 = OT frame = the target as written,
1 = OB frame = the reverse complement of the target), and a read is located on one of them in one orientation.
Matching is in the 3-letter alphabet (C read as T): methylation cannot sway it.

Positions on a reference ``r`` are converted to the amplicon's target frame by ``target_of`` (``coords``
defines target); for OB the assayed C of the CpG whose C is at target ``t`` is the complement of the G at
``t + 1``, i.e. reference ``L - 2 - t``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..calling import snp_target
from ..coords import complement, revcomp
from ..models import Panel

K = 13  # anchor k-mer length (3-letter alphabet: 3^13 = 1.6 million codes, a dense table)
ANCHORS = (0, 9, 18, 27, 40, 55)  # read positions tried as anchors, in order (reads start at the primer)
MAXLEN = 1 << 15  # a reference is at most this long (hit code = ref_id * MAXLEN + position)
NONE, MULTI = -1, -2  # table entries: no k-mer there / the k-mer occurs at several places
STRAND_NAMES = ("OT", "CTOT", "OB", "CTOB")  # index = 2 * s + (read of the complement)

_DIGIT_F = np.full(256, 255, np.uint8)  # base -> 3-letter digit (A 0, G 1, T/C 2)
_DIGIT_R = np.full(256, 255, np.uint8)  # base -> digit of its complement, C->T converted
for _b, _f, _r in ((b"A", 0, 2), (b"C", 2, 1), (b"G", 1, 2), (b"T", 2, 0)):
    _DIGIT_F[_b[0]] = _f
    _DIGIT_R[_b[0]] = _r
COMP = np.arange(256, dtype=np.uint8)
for _a, _c in zip(b"ACGTNacgtn", b"TGCANtgcan"):
    COMP[_a] = _c
POW3 = 3 ** np.arange(K, dtype=np.int64)
A_, C_, G_, T_, N_ = (ord(x) for x in "ACGTN")


@dataclass(frozen=True, eq=False)
class Reference:
    """One converted strand frame of one amplicon (``s`` 0: OT, 1: OB)."""

    amplicon: int
    s: int
    seq: np.ndarray  # uint8 genomic letters of the strand, 5'->3' (N for IUPAC codes)
    insert: np.ndarray  # bool per position: outside the primers (primer bases are not evidence)
    cph: np.ndarray  # positions of non-CpG C inside the insert (conversion is counted there)
    cpg: np.ndarray  # per amplicon CpG (models order): position of its assayed C on this strand
    cpg_primer: np.ndarray  # bool per CpG: under a primer
    snp_pos: np.ndarray  # per CpG: position of a known SNP that destroys it (-1 none) and its allele
    snp_alt: np.ndarray

    @property
    def length(self) -> int:
        return len(self.seq)


@dataclass(frozen=True, eq=False)
class View:
    """A reference as a read shows it in one orientation (``rc``: the read is of the complementary strand, so
    the view is the reference's reverse complement and a converted C reads A for G).  Positions are view
    positions; the arrays list the reference's CpGs and non-CpG C in the reference's order."""

    ref: int
    rc: bool
    seq: np.ndarray  # uint8 letters as the read shows them
    c_letter: int  # the letter of an unconverted C (C, or G on a complementary read)
    t_letter: int  # ... of a converted C (T, or A)
    cpg: np.ndarray  # view position of each CpG's assayed C
    cph: np.ndarray  # view position of each non-CpG C of the insert
    insert_cum: np.ndarray  # cumulative count of insert positions (len + 1)
    insert: np.ndarray  # bool per view position
    snp_pos: np.ndarray  # per CpG: view position of the SNP allele that destroys it (-1 none)
    snp_alt: np.ndarray  # its letter as the read shows it
    three: bytes  # the view in the 3-letter alphabet (converted letter merged), for edlib
    cpg_primer: np.ndarray | None = None  # bool per CpG: under a primer
    code3: np.ndarray | None = None  # uint8 per position: 3-letter code (engine._FWD3 / _REV3), 0 for N
    has_n: bool = False


@dataclass(frozen=True, eq=False)
class Index:
    panel: Panel
    refs: tuple[Reference, ...]  # ref_id = 2 * amplicon + s
    table: np.ndarray  # int32, 3^K: hit code or NONE / MULTI
    n_cpgs: tuple[int, ...]  # per amplicon
    views: tuple[View, ...] = ()  # view id = 2 * ref_id + rc


def _with_codes(v: View) -> View:
    """The view's letters in the 3-letter code the engine compares reads with (A 1, G 2, C/T 3 on a forward
    view; A/G 1, C 2, T 3 on a complementary one; N 0)."""
    fwd = {A_: 1, C_: 3, G_: 2, T_: 3}
    rev = {A_: 1, C_: 2, G_: 1, T_: 3}
    table = np.zeros(256, np.uint8)
    for k, val in (rev if v.rc else fwd).items():
        table[k] = val
    code = table[v.seq]
    return replace(v, code3=code, has_n=bool((code == 0).any()))


def make_view(R: Reference, rc: bool) -> View:
    L = R.length
    if not rc:
        seq = R.seq
        three = seq.copy()
        three[three == C_] = T_
        return View(0, False, seq, C_, T_, R.cpg, R.cph, np.r_[0, np.cumsum(R.insert)], R.insert, R.snp_pos,
                    R.snp_alt, three.tobytes(), R.cpg_primer)
    seq = COMP[R.seq[::-1]]
    three = seq.copy()
    three[three == G_] = A_
    ins = R.insert[::-1].copy()

    def flip(a: np.ndarray) -> np.ndarray:
        return np.where(a >= 0, L - 1 - a, -1).astype(np.int32)

    return View(0, True, seq, G_, A_, flip(R.cpg), flip(R.cph), np.r_[0, np.cumsum(ins)], ins, flip(R.snp_pos),
                COMP[R.snp_alt], three.tobytes(), R.cpg_primer)


def _letters(seq: str) -> np.ndarray:
    a = np.frombuffer(seq.upper().encode("ascii", "replace"), np.uint8).copy()
    a[~np.isin(a, np.frombuffer(b"ACGT", np.uint8))] = N_
    return a


def _reference(amp, ai: int, s: int) -> Reference:
    L = amp.length
    target = amp.target.upper()
    seq = _letters(target if s == 0 else revcomp(target))
    tpos = np.arange(L)
    t_of = tpos if s == 0 else L - 1 - tpos  # target position of each reference position
    f0, f1 = amp.forward_span
    r0, r1 = amp.reverse_span
    insert = ~(((t_of >= f0) & (t_of < f1)) | ((t_of >= r0) & (t_of < r1)))
    nxt = np.r_[seq[1:], N_]
    cph = np.flatnonzero((seq == C_) & (nxt != G_) & (nxt != N_) & insert)
    cpg = np.array([c.target_pos if s == 0 else L - 2 - c.target_pos for c in amp.cpgs], np.int32)
    primer = np.array([c.under_primer for c in amp.cpgs], bool)
    snp_pos = np.full(len(amp.cpgs), -1, np.int32)
    snp_alt = np.zeros(len(amp.cpgs), np.uint8)
    for k, c in enumerate(amp.cpgs):
        if c.snp is not None:
            ts, alt = snp_target(amp, c.snp)
            if 0 <= ts < L:
                snp_pos[k] = ts if s == 0 else L - 1 - ts
                snp_alt[k] = ord(alt if s == 0 else complement(alt))
    return Reference(ai, s, seq, insert, cph.astype(np.int32), cpg, primer, snp_pos, snp_alt)


def three_letter(seq: np.ndarray) -> np.ndarray:
    """C read as T (uint8 ASCII in, out)."""
    out = seq.copy()
    out[out == C_] = T_
    return out


def build_index(panel: Panel) -> Index:
    """References and the anchor table of every amplicon of the panel."""
    refs = []
    table = np.full(3 ** K, NONE, np.int32)
    for ai, amp in enumerate(panel):
        if amp.length >= MAXLEN:
            raise ValueError(f"amplicon {amp.name}: {amp.length} bp; the NGS engine takes amplicons under {MAXLEN} bp")
        for s in (0, 1):
            ref = _reference(amp, ai, s)
            refs.append(ref)
            d = _DIGIT_F[ref.seq]
            if len(d) < K:
                continue
            win = np.lib.stride_tricks.sliding_window_view(d, K)
            ok = (win != 255).all(axis=1)
            codes = (win.astype(np.int64) * POW3).sum(axis=1)
            for p in np.flatnonzero(ok):
                c = codes[p]
                hit = (2 * ai + s) * MAXLEN + int(p)
                table[c] = hit if table[c] == NONE else MULTI
    views = tuple(_with_codes(replace(make_view(R, rc), ref=rid)) for rid, R in enumerate(refs) for rc in (False, True))
    return Index(panel, tuple(refs), table, tuple(len(a.cpgs) for a in panel), views)


def anchor_codes(seq: np.ndarray, length: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(usable, forward code, reverse-complement code) of the k-mer at read position ``p`` of every read."""
    n = len(length)
    if seq.shape[1] < p + K:
        z = np.zeros(n, np.int64)
        return np.zeros(n, bool), z, z
    w = seq[:, p:p + K]
    df = _DIGIT_F[w]
    ok = (df != 255).all(axis=1) & (length >= p + K)
    cf = (df.astype(np.int64) * POW3).sum(axis=1)
    dr = _DIGIT_R[w][:, ::-1]
    cr = (dr.astype(np.int64) * POW3).sum(axis=1)
    cf[~ok] = 0
    cr[~ok] = 0
    return ok, cf, cr
