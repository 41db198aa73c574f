"""The NGS engine: a chunk of read pairs in, per-pair calls and QC out, in numpy batches.

Pipeline position: after ``fastq`` (arrays of one chunk), before ``aggregate`` (counts and patterns).  Runs in
the worker processes.  For each mate:

1. **Locate** (``locate``): the 3-letter k-mer (``index.K``) at the read's start is looked up in the panel's
   anchor table, in both orientations; a k-mer with a sequencing error or an N moves the anchor further into
   the read (``index.ANCHORS``).  The hit gives the reference (amplicon and strand frame), the orientation and
   the diagonal (where the read starts on the reference).  No hit anywhere: ``no_amplicon``; only k-mers that
   occur at several places: ``ambiguous_amplicon``.
2. **Verify without gaps** (the fast path, nearly every read): the read is compared with the reference along
   that diagonal; C or T where the reference has C, else the same letter (N matches anything).  Bases past the
   reference ends are adapter read-through and are not compared.  At most ``MAX_SUBSTITUTIONS`` mismatches, and
   at most one in the last ``LATE_WINDOW`` bases (an indel near the read's end shifts only a few bases):
   accepted.  Otherwise the read is aligned with gaps by edlib (``edit``).
3. **Extract**: the base and PHRED at every CpG's assayed C give ``M``/``U``/``-`` with a reason, exactly as for
   clones (``calling``: under a primer, not covered, gap, SNP allele, low quality, N, other base), and the bases
   at non-CpG C inside the insert (primer bases are not evidence) give the conversion counts.

Then the two mates of a pair become one molecule (``pairs``): mates must agree on amplicon, strand frame and
opposite orientations (else ``ambiguous_amplicon``); a CpG called by both keeps a concordant call and becomes
``-``/``mate_conflict`` when they disagree; a CpG called by one mate takes that call.  Conversion and identity are
pooled over both mates.  QC follows the clone order of reasons: ``no_amplicon`` (identity under
``NO_AMPLICON_IDENTITY`` or fewer than ``min_aligned`` insert bases: primer dimers, other products),
``low_identity``, ``no_cph``, ``low_conversion``, ``low_quality`` (no CpG called).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models import CallConfig, Reason, Why
from .fastq import Records
from .index import (
    A_,
    ANCHORS,
    C_,
    COMP,
    G_,
    MAXLEN,
    MULTI,
    N_,
    NONE,
    T_,
    Index,
    K,
    anchor_codes,
)

MAX_SUBSTITUTIONS = 3  # mismatches an ungapped match may have (sequencing errors) before edlib is asked
LATE_WINDOW = 15  # an indel this close to the read's end shifts few bases: there, at most one mismatch
EDGE_SLACK = 15  # reference bases either side of the diagonal that edlib may use
EDIT_SHARE = 0.15  # edlib gives up beyond this share of edits (+ 3): low identity anyway
INDEL_MARGIN = 3  # bases either side of where an indel could be (_indel_zones) that are not conversion evidence
NO_AMPLICON_IDENTITY = 0.65  # below: not this amplicon at all (the clone rule, docs/panels.md)

# per-CpG call codes (int8): M, U, then the reasons of '-'
M, U = 0, 1
WHY_CODES = (Why.GAP, Why.OTHER_BASE, Why.AMBIGUOUS, Why.LOW_QUALITY, Why.NOT_COVERED, Why.UNDER_PRIMER, Why.SNP,
             Why.MATE_CONFLICT, Why.UMI_CONFLICT)
GAP, OTHER, AMBIG, LOWQ, NOTCOV, PRIMER, SNPC, CONFLICT, UMICONF = range(2, 2 + len(WHY_CODES))
CALL_LETTERS = np.frombuffer(b"MU" + b"-" * len(WHY_CODES), np.uint8)

# per-pair outcome codes (int8): 0 pass, then reasons in the clone order
REASON_CODES = (Reason.NO_AMPLICON, Reason.AMBIGUOUS_AMPLICON, Reason.LOW_IDENTITY, Reason.NO_CPH,
                Reason.LOW_CONVERSION, Reason.LOW_QUALITY, Reason.NO_UMI, Reason.UMI_MISMATCH, Reason.DUPLICATE)
R_NOAMP, R_AMBIG, R_LOWID, R_NOCPH, R_LOWCONV, R_LOWQ, R_NOUMI, R_UMIMIS, R_DUP = range(1, 1 + len(REASON_CODES))


@dataclass(frozen=True, eq=False)
class Mates:
    """What one mate of every pair of a chunk shows."""

    ref: np.ndarray  # int32 ref_id, or NONE (no anchor) / MULTI (anchors only at several places)
    rc: np.ndarray  # bool: the read is the reverse complement of its reference strand
    calls: np.ndarray  # int8 n x max CpGs (codes above; NOTCOV past the amplicon's CpGs)
    base: np.ndarray  # uint8 n x max CpGs: the base at the assayed C (0 where none)
    qual: np.ndarray  # uint8 n x max CpGs
    converted: np.ndarray  # int32: non-CpG C read as T (PHRED >= min_qual, inside the insert)
    unconverted: np.ndarray
    cph: np.ndarray  # int8 n x max non-CpG C: 0 no evidence, 1 converted (T), 2 unconverted (C)
    edits: np.ndarray  # int32: mismatches + gap columns (identity = 1 - edits / columns)
    columns: np.ndarray  # int32: alignment columns (0: no alignment)
    insert: np.ndarray  # int32: insert (non-primer) reference bases covered
    start: np.ndarray  # int32: first reference position covered (-1 none)
    end: np.ndarray  # int32: last + 1


def locate(rec: Records, index: Index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ref_id or NONE/MULTI, read of the complementary strand, diagonal = view position of the read's first
    base; ``index.View``) of every read."""
    n = len(rec)
    ref = np.full(n, NONE, np.int32)
    rc = np.zeros(n, bool)
    diag = np.zeros(n, np.int32)
    multi = np.zeros(n, bool)
    table = index.table
    lengths = np.array([R.length for R in index.refs] or [0], np.int32)
    for p in ANCHORS:
        todo = np.flatnonzero(ref == NONE)
        if not len(todo):
            break
        ok, cf, cr = anchor_codes(rec.seq[todo], rec.length[todo], p)
        hf = np.where(ok, table[cf], NONE)
        hr = np.where(ok, table[cr], NONE)
        multi[todo[(hf == MULTI) | (hr == MULTI)]] = True
        fwd = (hf >= 0) & (hr < 0)
        rev = (hr >= 0) & (hf < 0)
        i = todo[fwd]
        ref[i] = hf[fwd] // MAXLEN
        diag[i] = hf[fwd] % MAXLEN - p
        i = todo[rev]
        rid = hr[rev] // MAXLEN
        ref[i] = rid
        rc[i] = True
        # the reverse complement of read[p:p+K] sits at reference h: read[p] is at view position L - K - h
        diag[i] = lengths[rid] - K - hr[rev] % MAXLEN - p
    ref[(ref == NONE) & multi] = MULTI
    return ref, rc, diag


def _compatible(b: np.ndarray, g: np.ndarray, c_letter: int, t_letter: int) -> np.ndarray:
    """Read base ``b`` fits view letter ``g`` (bisulfite-aware; N on either side fits)."""
    return (b == g) | ((g == c_letter) & (b == t_letter)) | (g == N_) | (b == N_)


def mates(rec: Records, index: Index, config: CallConfig, max_cpgs: int) -> Mates:
    """Locate, verify (ungapped or edlib) and extract every read of one mate."""
    n = len(rec)
    ref, rc, diag = locate(rec, index)
    for i in np.flatnonzero(ref == MULTI):  # only k-mers found at several places: align to every reference
        ref[i], rc[i], diag[i] = _rescue(rec.seq[i, :rec.length[i]], index)
    max_cph = max((len(R.cph) for R in index.refs), default=0)
    out = {
        "calls": np.full((n, max_cpgs), NOTCOV, np.int8), "base": np.zeros((n, max_cpgs), np.uint8),
        "qual": np.zeros((n, max_cpgs), np.uint8), "cph": np.zeros((n, max_cph), np.int8),
        "edits": np.zeros(n, np.int32), "columns": np.zeros(n, np.int32), "insert": np.zeros(n, np.int32),
        "start": np.full(n, -1, np.int32), "end": np.full(n, -1, np.int32)}
    W = rec.seq.shape[1]
    located = np.flatnonzero(ref >= 0)
    if len(located):
        vid = (2 * ref[located] + rc[located]).astype(np.int64)
        key = vid * (4 * MAXLEN) + (diag[located] + 2 * MAXLEN)
        order = np.argsort(key, kind="stable")
        keys, first = np.unique(key[order], return_index=True)
        bounds = np.r_[first, len(order)]
        for g, k in enumerate(keys.tolist()):
            rows = located[order[bounds[g]:bounds[g + 1]]]
            v = index.views[k // (4 * MAXLEN)]
            d = k % (4 * MAXLEN) - 2 * MAXLEN
            _ungapped_group(rows, v, d, rec, W, config, out)
    cols = out.pop("columns")
    return Mates(ref, rc, out["calls"], out["base"], out["qual"], _count(out["cph"], 1), _count(out["cph"], 2),
                 out["cph"], out["edits"], cols, out["insert"], out["start"], out["end"])


def _count(a: np.ndarray, value: int) -> np.ndarray:
    return (a == value).sum(axis=1).astype(np.int32)


def _ungapped_group(rows, v, d: int, rec: Records, W: int, config: CallConfig, out: dict) -> None:
    """Reads of one view and diagonal: compared without gaps in one broadcast; those that do not fit go to
    edlib one by one."""
    L = len(v.seq)
    seq, ln = rec.seq[rows], rec.length[rows]
    c0, c1 = max(0, -d), min(W, L - d)  # read columns that can lie on the view
    if c1 <= c0:
        _gapped_rows(rows, seq, ln, d, v, rec, config, out)
        return
    col = np.arange(c0, c1)
    # 3-letter comparison (the converted letter merged with C, N matching anything): one lookup and a compare
    r3 = (_FWD3 if not v.rc else _REV3)[seq[:, c0:c1]]
    g3 = v.code3[c0 + d:c1 + d]
    bad = (r3 != g3[None, :]) & (r3 != 0)
    if v.has_n:
        bad &= g3[None, :] != 0
    if int(ln.min()) < c1:
        bad &= col[None, :] < ln[:, None]
    nmis = bad.sum(axis=1)
    last = np.minimum(ln, c1) - 1  # last read column on the view: the read's 3' end (or the view's end)
    if int(ln.min()) >= c1:  # every read reaches c1: the late window is the last columns
        late = bad[:, -LATE_WINDOW:].sum(axis=1)
    else:
        late = (bad & (col[None, :] > (last - LATE_WINDOW)[:, None])).sum(axis=1)
    ok = (nmis <= MAX_SUBSTITUTIONS) & (late <= 1) & (last >= c0)
    good = rows[ok]
    if len(good):
        sg, lg = seq[ok], ln[ok]
        out["edits"][good] = nmis[ok]
        out["columns"][good] = (np.minimum(lg, c1) - c0).astype(np.int32)
        lo = np.full(len(good), c0 + d, np.int32)
        hi = (np.minimum(lg, c1) + d).astype(np.int32)
        out["start"][good], out["end"][good] = lo, hi
        out["insert"][good] = v.insert_cum[hi] - v.insert_cum[lo]
        _extract(good, sg, rec, lg, None, v, config, out, diagonal=d)
    if not ok.all():
        _gapped_rows(rows[~ok], seq[~ok], ln[~ok], d, v, rec, config, out)


def _extract(rows, seq, rec: Records, ln, column_of, v, config: CallConfig, out: dict,
             diagonal: int | None = None) -> None:
    """Calls at the CpGs and conversion at the non-CpG C of reads ``rows``: each read's column at a view
    position is ``position - diagonal`` (ungapped reads), or ``column_of(view positions)`` (-1 not covered,
    -2 a deletion)."""
    W = seq.shape[1]

    def at(pos):
        if diagonal is not None:  # the same column in every read
            c = pos - diagonal
            cc = np.clip(c, 0, W - 1)
            cover = (c >= 0)[None, :] & (c[None, :] < ln[:, None])
            x = np.where(cover, c[None, :], -1)
            return x, seq[:, cc], rec.quals(rows, cc)
        x = np.asarray(column_of(pos))
        cover = (x >= 0) & (x < ln[:, None])
        xi = np.where(cover, x, 0)
        return np.where(cover, x, np.where(x == -2, -2, -1)), np.take_along_axis(seq, xi, axis=1), rec.quals(rows, xi)

    luts = _CPH_LUT[int(v.rc)], _CALL_LUT[int(v.rc)]
    if len(v.cph):
        x, b, q = at(v.cph)
        st = luts[0][b]  # 1 converted, 2 unconverted, 0 anything else
        st[(x < 0) | (q < config.min_qual)] = 0
        out["cph"][rows, :len(v.cph)] = st
    nk = len(v.cpg)
    if not nk:
        return
    x, b, q = at(v.cpg)
    code = luts[1][b]  # M, U, AMBIG (N, IUPAC) or OTHER
    code[(q < config.min_qual) & (x >= 0)] = LOWQ
    sp = v.snp_pos
    for j in np.flatnonzero(sp >= 0):
        xs, bs, _ = at(sp[j:j + 1])
        code[(xs[:, 0] >= 0) & (bs[:, 0] == v.snp_alt[j]), j] = SNPC
    code[x == -2] = GAP
    code[x == -1] = NOTCOV
    code[:, v.cpg_primer] = PRIMER
    out["calls"][rows, :nk] = code
    shown = COMP[b] if v.rc else b  # the base as the amplified strand reads it
    out["base"][rows, :nk] = np.where(x >= 0, shown, 0)
    out["qual"][rows, :nk] = np.where(x >= 0, q, 0)


_FWD3 = np.zeros(256, np.uint8)  # read letter -> 3-letter code on a forward view (C and T merged); 0: N etc.
_REV3 = np.zeros(256, np.uint8)  # ... on a complementary view (G and A merged)
for _l, _f, _r in ((A_, 1, 1), (C_, 3, 2), (G_, 2, 1), (T_, 3, 3)):
    _FWD3[_l], _REV3[_l] = _f, _r
_IUPAC = np.ones(256, bool)  # N and IUPAC codes (anything but A, C, G, T): ambiguous
_IUPAC[[A_, C_, G_, T_]] = False
# per orientation (index: read of the complementary strand): read letter -> conversion state at a non-CpG C
# (1 converted, 2 unconverted) and -> call code at a CpG's C
_CPH_LUT = np.zeros((2, 256), np.int8)
_CALL_LUT = np.where(_IUPAC, AMBIG, OTHER).astype(np.int8)[None, :].repeat(2, axis=0)
for _rc, (_c, _t) in enumerate(((C_, T_), (G_, A_))):
    _CPH_LUT[_rc, _t], _CPH_LUT[_rc, _c] = 1, 2
    _CALL_LUT[_rc, _c], _CALL_LUT[_rc, _t] = M, U


def _gapped_rows(rows, seq, ln, d: int, v, rec: Records, config: CallConfig, out: dict) -> None:
    """Reads that do not fit their diagonal without gaps: each aligned by edlib near it, then all extracted
    together."""
    X = np.full((len(rows), len(v.seq)), -1, np.int32)
    aligned = np.zeros(len(rows), bool)
    for j, i in enumerate(rows):
        aligned[j] = _one_gapped(i, seq[j], int(ln[j]), d, v, X[j], out)
    if aligned.any():
        Xa = X[aligned]
        _extract(rows[aligned], seq[aligned], rec, ln[aligned], lambda pos: Xa[:, pos], v, config, out)
        if len(v.cph):
            # bases beside an indel are placed by the aligner's choice among equal alignments (an inserted C may
            # land on a converted C): they are not conversion evidence
            near = _indel_zones(Xa, seq[aligned], v)
            cph = out["cph"][rows[aligned], :len(v.cph)]
            cph[near[:, v.cph]] = 0
            out["cph"][rows[aligned], :len(v.cph)] = cph


def _indel_zones(X: np.ndarray, seq: np.ndarray, v) -> np.ndarray:
    """Per read (rows of ``X``: read column per view position, -2 deletion, -1 not aligned; ``seq``: the reads),
    the view positions whose read base depends on where the aligner put an indel: every place the indel could
    slide to at the same cost in the 3-letter alphabet (in a converted T run an inserted C can sit anywhere in
    the run), plus ``INDEL_MARGIN`` bases either side."""
    zone = np.zeros(X.shape, bool)
    gap, on = X == -2, X >= 0
    starts = gap[:, 1:] & ~gap[:, :-1]  # a deletion starts at p
    starts |= on[:, 1:] & on[:, :-1] & (X[:, 1:] - X[:, :-1] > 1)  # k read bases inserted before p
    rows, ps = np.nonzero(starts)
    if not len(rows):
        return zone
    ps += 1
    table = _C2T if v.c_letter == C_ else _G2A
    ref3, L = v.three, X.shape[1]
    reads: dict[int, bytes] = {}
    for j, p in zip(rows.tolist(), ps.tolist()):
        x = X[j]
        if x[p] == -2:  # a deletion: view positions p .. q-1 have no read base
            q = p
            while q < L and x[q] == -2:
                q += 1
            k = q - p
            lo, hi = p, q
            while lo >= 1 and x[lo - 1] >= 0 and ref3[lo - 1] == ref3[lo - 1 + k]:
                lo -= 1
            while hi < L and x[hi] >= 0 and ref3[hi] == ref3[hi - k]:
                hi += 1
        else:  # an insertion of k read bases before p
            r3 = reads.get(j)
            if r3 is None:
                r3 = reads[j] = seq[j].tobytes().translate(table)
            c, k = int(x[p - 1]), int(x[p] - x[p - 1] - 1)
            lo, hi = p, p
            while lo >= 1 and x[lo - 1] >= 0 and r3[c - (p - lo)] == r3[c - (p - lo) + k]:
                lo -= 1
            while (hi < L and x[hi] >= 0 and c + 1 + (hi - p) + k < len(r3)
                   and r3[c + 1 + (hi - p)] == r3[c + 1 + (hi - p) + k]):
                hi += 1
        zone[j, max(0, lo - INDEL_MARGIN):hi + INDEL_MARGIN] = True
    return zone


def _one_gapped(i: int, seq: np.ndarray, ln: int, d: int, v, row: np.ndarray, out: dict) -> bool:
    """edlib alignment of one read near its diagonal: fills ``row`` (read column per view position, -2 for a
    deletion) and the read's alignment figures; False when it does not align."""
    from .edit import align_columns

    L = len(v.seq)
    c0, c1 = max(0, -d - 5), min(ln, L - d + 5)  # adapter beyond the view's ends is cut off
    if c1 - c0 < 10:
        return False
    w0, w1 = max(0, d + c0 - EDGE_SLACK), min(L, d + c1 + EDGE_SLACK)
    read3 = seq[c0:c1].tobytes().translate(_C2T if v.c_letter == C_ else _G2A)
    res = align_columns(read3, v.three[w0:w1], int(EDIT_SHARE * (c1 - c0)) + 3)
    if res is None:
        return False  # columns stay 0: no alignment
    _e, s, colmap, _ins, n_cols = res
    p0 = w0 + s
    colmap = np.where(colmap >= 0, colmap + c0, -2).astype(np.int32)
    at = np.flatnonzero(colmap >= 0)
    # bisulfite-aware edits: edlib saw 3 letters, so a read C where the view has T is counted here
    mis = int((~_compatible(seq[colmap[at]], v.seq[p0 + at], v.c_letter, v.t_letter)).sum())
    row[p0:p0 + len(colmap)] = colmap
    out["edits"][i] = n_cols - len(at) + mis
    out["columns"][i] = n_cols
    out["start"][i], out["end"][i] = p0, p0 + len(colmap)
    out["insert"][i] = int(((row >= 0) & v.insert).sum())
    return True


_C2T = bytes.maketrans(b"C", b"T")
_G2A = bytes.maketrans(b"G", b"A")
RESCUE_TIE = 0.02  # two amplicons aligned this close in identity: ambiguous_amplicon


def _rescue(read: np.ndarray, index: Index) -> tuple[int, bool, int]:
    """A read whose anchors all occur at several places: aligned (edlib) to every view; the best identity wins,
    a near tie between amplicons is MULTI (ambiguous), no alignment NONE (no amplicon)."""
    from .edit import align_columns

    found = []
    for v in index.views:
        L = len(v.seq)
        q = read[:L + 5].copy()
        q[q == v.c_letter] = v.t_letter
        res = align_columns(q.tobytes(), v.three, int(EDIT_SHARE * len(q)) + 3)
        if res is not None:
            e, s, colmap, _ins, n_cols = res
            first_col = int(np.flatnonzero(colmap >= 0)[0]) if (colmap >= 0).any() else 0
            found.append((1 - e / max(n_cols, 1), v.ref, v.rc, s + first_col - int(colmap[first_col])))
    if not found:
        return NONE, False, 0
    found.sort(key=lambda f: -f[0])
    if len(found) > 1 and found[1][0] >= found[0][0] - RESCUE_TIE and found[1][1] // 2 != found[0][1] // 2:
        return MULTI, False, 0
    _ident, rid, is_rc, d = found[0]
    return rid, is_rc, d


@dataclass(frozen=True, eq=False)
class Pairs:
    """One molecule per pair: its amplicon (-1 none), strand (index into STRAND_NAMES), outcome and calls."""

    amplicon: np.ndarray  # int32
    strand: np.ndarray  # int8
    reason: np.ndarray  # int8: 0 pass, else 1 + index into REASON_CODES
    calls: np.ndarray  # int8 n x max CpGs
    base: np.ndarray  # uint8: the base of the call (R1's where both mates cover the CpG and agree)
    qual: np.ndarray
    converted: np.ndarray
    unconverted: np.ndarray
    identity: np.ndarray  # float (nan: no alignment)
    start: np.ndarray  # int32: first / last + 1 target... reference position covered (-1)
    end: np.ndarray
    edits: np.ndarray


def pairs(m1: Mates, m2: Mates | None, index: Index, config: CallConfig,
          min_aligned: np.ndarray | None = None) -> Pairs:
    """Two mates -> one molecule each, with its QC outcome (module docstring).  ``min_aligned``: per amplicon
    (``config.min_aligned`` scaled to short amplicons by the run)."""
    n = len(m1.ref)
    if m2 is None:
        ref = np.where((m1.ref >= 0) & (m1.columns == 0), NONE, m1.ref).astype(np.int32)
        calls, base, qual = m1.calls, m1.base, m1.qual
        conv, unconv, edits, cols, insert = m1.converted, m1.unconverted, m1.edits, m1.columns, m1.insert
        r1_rc = m1.rc
        start, end = m1.start, m1.end
        ambiguous = ref == MULTI
    else:
        # a mate counts when it aligned: an anchor hit that would not align (a k-mer met by chance after a
        # sequencing error, adapter, a primer dimer) is no evidence for or against its mate's amplicon
        a1, a2 = (m1.ref >= 0) & (m1.columns > 0), (m2.ref >= 0) & (m2.columns > 0)
        both = a1 & a2
        agree = both & (m1.ref == m2.ref) & (m1.rc != m2.rc)
        ref = np.where(a1, m1.ref, m2.ref).astype(np.int32)
        ambiguous = (both & ~agree) | (~a1 & ~a2 & ((m1.ref == MULTI) | (m2.ref == MULTI)))
        ref[~a1 & ~a2] = NONE
        use1 = a1[:, None]
        use2 = (a2 & (agree | ~a1))[:, None]
        c1 = np.where(use1, m1.calls, NOTCOV)
        c2 = np.where(use2, m2.calls, NOTCOV)
        inf1, inf2 = c1 <= U, c2 <= U
        calls = np.where(inf1, c1, np.where(inf2, c2, np.where(c1 != NOTCOV, c1, c2))).astype(np.int8)
        calls[inf1 & inf2 & (c1 != c2)] = CONFLICT
        from1 = inf1 | (~inf2 & (c1 != NOTCOV))
        base = np.where(from1, m1.base, m2.base)
        qual = np.where(from1, m1.qual, m2.qual)
        u1, u2 = a1, (a2 & (agree | ~a1))
        # each non-CpG C of the molecule counted once: R1's evidence, R2's where R1 has none
        k1 = np.where(u1[:, None], m1.cph, 0)
        k2 = np.where(u2[:, None], m2.cph, 0)
        merged = np.where(k1 > 0, k1, k2)
        conv = (merged == 1).sum(axis=1).astype(np.int32)
        unconv = (merged == 2).sum(axis=1).astype(np.int32)
        edits = np.where(u1, m1.edits, 0) + np.where(u2, m2.edits, 0)
        # a mate that anchored but would not align counts as a mate of identity 0
        cols = (np.where(u1, np.where(m1.columns > 0, m1.columns, 1), 0)
                + np.where(u2, np.where(m2.columns > 0, m2.columns, 1), 0))
        edits = edits + np.where(u1 & (m1.columns == 0), 1, 0) + np.where(u2 & (m2.columns == 0), 1, 0)
        insert = np.maximum(np.where(u1, m1.insert, 0), np.where(u2, m2.insert, 0))
        r1_rc = np.where(a1, m1.rc, ~m2.rc)
        s1 = np.where(u1, m1.start, MAXLEN)
        s2 = np.where(u2 & (m2.start >= 0), m2.start, MAXLEN)
        s1 = np.where(s1 < 0, MAXLEN, s1)
        start = np.minimum(s1, s2)
        start[start == MAXLEN] = -1
        end = np.maximum(np.where(u1, m1.end, -1), np.where(u2, m2.end, -1))
        ref[ambiguous] = MULTI
    assigned = ref >= 0
    amp = np.where(assigned, ref // 2, -1).astype(np.int32)
    strand = np.where(assigned, 2 * (ref % 2) + r1_rc.astype(np.int32), -1).astype(np.int8)
    with np.errstate(invalid="ignore", divide="ignore"):
        identity = np.where(cols > 0, 1.0 - edits / np.maximum(cols, 1), np.nan)
        conversion = conv / (conv + unconv)
    reason = np.zeros(n, np.int8)
    reason[~assigned] = R_NOAMP
    reason[ambiguous] = R_AMBIG
    ok = assigned & ~ambiguous
    if min_aligned is None:
        min_aligned = np.full(len(index.panel), config.min_aligned)
    noamp = ok & ((~(identity >= NO_AMPLICON_IDENTITY)) | (insert < min_aligned[np.maximum(amp, 0)]))
    reason[noamp] = R_NOAMP
    ok &= ~noamp
    lowid = ok & (identity < config.min_identity)
    reason[lowid] = R_LOWID
    ok &= ~lowid
    # amplicons whose reference was given already converted have no C outside CpGs to check conversion on
    checked = np.array([config.check_conversion and not a.converted_reference for a in index.panel] + [True])
    nocph = ok & (conv + unconv == 0) & checked[amp]
    reason[nocph] = R_NOCPH
    ok &= ~nocph
    lowconv = ok & (conversion < config.min_conversion)
    if config.max_unconverted is not None:
        lowconv |= ok & (unconv > config.max_unconverted)
    reason[lowconv] = R_LOWCONV
    ok &= ~lowconv
    if config.max_mismatches is not None:
        many = ok & (edits > config.max_mismatches)
        reason[many] = R_LOWID
        ok &= ~many
    called = (calls <= U).any(axis=1)
    assessable = np.array([any(not c.under_primer for c in a.cpgs) for a in index.panel] + [False])
    lowq = ok & ~called & assessable[amp]
    reason[lowq] = R_LOWQ
    return Pairs(amp, strand, reason, calls, base, qual, conv, unconv, identity, start, end, edits)
