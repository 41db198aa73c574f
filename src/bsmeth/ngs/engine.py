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
from typing import Optional

import numpy as np

from ..models import CallConfig, Reason, Why
from .fastq import Records
from .index import ANCHORS, COMP, MAXLEN, MULTI, NONE, A_, C_, G_, K, N_, T_, Index, anchor_codes, three_letter

MAX_SUBSTITUTIONS = 3  # mismatches an ungapped match may have (sequencing errors) before edlib is asked
LATE_WINDOW = 15  # an indel this close to the read's end shifts few bases: there, at most one mismatch
EDGE_SLACK = 15  # reference bases either side of the diagonal that edlib may use
EDIT_SHARE = 0.15  # edlib gives up beyond this share of edits (+ 3): low identity anyway
NO_AMPLICON_IDENTITY = 0.65  # below: not this amplicon at all (the clone rule, docs/panels.md)

# per-CpG call codes (int8): M, U, then the reasons of '-'
M, U = 0, 1
WHY_CODES = (Why.GAP, Why.OTHER_BASE, Why.AMBIGUOUS, Why.LOW_QUALITY, Why.NOT_COVERED, Why.UNDER_PRIMER, Why.SNP,
             Why.MATE_CONFLICT)
GAP, OTHER, AMBIG, LOWQ, NOTCOV, PRIMER, SNPC, CONFLICT = range(2, 2 + len(WHY_CODES))
CALL_LETTERS = np.frombuffer(b"MU" + b"-" * len(WHY_CODES), np.uint8)

# per-pair outcome codes (int8): 0 pass, then reasons in the clone order
REASON_CODES = (Reason.NO_AMPLICON, Reason.AMBIGUOUS_AMPLICON, Reason.LOW_IDENTITY, Reason.NO_CPH,
                Reason.LOW_CONVERSION, Reason.LOW_QUALITY, Reason.DUPLICATE)
R_NOAMP, R_AMBIG, R_LOWID, R_NOCPH, R_LOWCONV, R_LOWQ, R_DUP = range(1, 1 + len(REASON_CODES))


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
    """(ref_id or NONE/MULTI, reverse-complemented, diagonal = reference position of the oriented read's
    first base) of every read."""
    n = len(rec)
    ref = np.full(n, NONE, np.int32)
    rc = np.zeros(n, bool)
    off = np.zeros(n, np.int32)
    multi = np.zeros(n, bool)
    table = index.table
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
        off[i] = hf[fwd] % MAXLEN - p
        i = todo[rev]
        ref[i] = hr[rev] // MAXLEN
        rc[i] = True
        # the k-mer sits at position n - p - K of the reverse-complemented read
        off[i] = hr[rev] % MAXLEN - (rec.length[i] - p - K)
    ref[(ref == NONE) & multi] = MULTI
    return ref, rc, off


def oriented(seq: np.ndarray, qual: np.ndarray, length: np.ndarray, rc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reads as their reference strand reads them: rows with ``rc`` reverse-complemented (within length)."""
    seq, qual = seq.copy(), qual.copy()
    rows = np.flatnonzero(rc)
    if len(rows):
        w = seq.shape[1]
        col = np.arange(w)
        ln = length[rows][:, None]
        j = np.clip(ln - 1 - col[None, :], 0, w - 1)
        inside = col[None, :] < ln
        s = seq[rows[:, None], j]
        q = qual[rows[:, None], j]
        seq[rows] = np.where(inside, COMP[s], 0)
        qual[rows] = np.where(inside, q, 0)
    return seq, qual


def _compatible(b: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Read base ``b`` fits reference letter ``g`` (bisulfite-aware; N on either side fits)."""
    return (b == g) | ((g == C_) & (b == T_)) | (g == N_) | (b == N_)


def mates(rec: Records, index: Index, config: CallConfig, max_cpgs: int) -> Mates:
    """Locate, verify (ungapped or edlib) and extract every read of one mate."""
    n = len(rec)
    ref, rc, off = locate(rec, index)
    for i in np.flatnonzero(ref == MULTI):  # only k-mers found at several places: align to every reference
        ref[i], rc[i], off[i] = _rescue(rec.seq[i, :rec.length[i]], index)
    max_cph = max((len(R.cph) for R in index.refs), default=0)
    cph_state = np.zeros((n, max_cph), np.int8)
    calls = np.full((n, max_cpgs), NOTCOV, np.int8)
    base = np.zeros((n, max_cpgs), np.uint8)
    qual = np.zeros((n, max_cpgs), np.uint8)
    z = lambda: np.zeros(n, np.int32)  # noqa: E731
    conv, unconv, edits, cols, insert = z(), z(), z(), z(), z()
    start, end = np.full(n, -1, np.int32), np.full(n, -1, np.int32)
    for rid in np.unique(ref[ref >= 0]):
        rows = np.flatnonzero(ref == rid)
        R = index.refs[rid]
        L = R.length
        seq, qv = oriented(rec.seq[rows], rec.qual[rows], rec.length[rows], rc[rows])
        ln = rec.length[rows]
        o = off[rows]
        r = np.arange(L, dtype=np.int32)
        X = r[None, :] - o[:, None]  # read column of each reference position
        cover = (X >= 0) & (X < ln[:, None])
        X = np.where(cover, X, -1)
        b = np.take_along_axis(seq, np.maximum(X, 0), axis=1)
        bad = cover & ~_compatible(b, R.seq[None, :])
        nmis = bad.sum(axis=1)
        first = np.where(cover.any(axis=1), cover.argmax(axis=1), 0)
        last = L - 1 - np.where(cover.any(axis=1), cover[:, ::-1].argmax(axis=1), 0)
        # the read's own end: the last covered position for a forward read, the first for a reverse one
        near_end = np.where(rc[rows][:, None], r[None, :] < first[:, None] + 15, r[None, :] > last[:, None] - 15)
        late = (bad & near_end).sum(axis=1)
        ok = (nmis <= MAX_SUBSTITUTIONS) & (late <= 1) & cover.any(axis=1)
        ed = nmis.astype(np.int32)
        nc = cover.sum(axis=1).astype(np.int32)
        for k in np.flatnonzero(~ok):
            res = _gapped(seq[k], int(ln[k]), int(o[k]), R)
            if res is None:
                X[k] = -1
                ed[k], nc[k] = 0, 0
                continue
            e, r0, colmap, n_cols = res
            X[k] = -1
            X[k, r0:r0 + len(colmap)] = colmap
            ed[k], nc[k] = e, n_cols
        edits[rows], cols[rows] = ed, nc
        covered = X >= 0
        aligned = covered | (X == -2)
        has = aligned.any(axis=1)
        start[rows] = np.where(has, aligned.argmax(axis=1), -1)
        end[rows] = np.where(has, L - aligned[:, ::-1].argmax(axis=1), -1)
        insert[rows] = (covered & R.insert[None, :]).sum(axis=1)
        # conversion at non-CpG C of the insert
        if len(R.cph):
            xc = X[:, R.cph]
            bc = np.take_along_axis(seq, np.maximum(xc, 0), axis=1)
            qc = np.take_along_axis(qv, np.maximum(xc, 0), axis=1)
            good = (xc >= 0) & (qc >= config.min_qual)
            st = np.where(good & (bc == T_), 1, np.where(good & (bc == C_), 2, 0)).astype(np.int8)
            cph_state[rows, :len(R.cph)] = st
            conv[rows] = (st == 1).sum(axis=1)
            unconv[rows] = (st == 2).sum(axis=1)
        nk = len(R.cpg)
        if nk:
            xk = X[:, R.cpg]
            bk = np.take_along_axis(seq, np.maximum(xk, 0), axis=1)
            qk = np.take_along_axis(qv, np.maximum(xk, 0), axis=1)
            code = np.full(xk.shape, OTHER, np.int8)
            code[bk == N_] = AMBIG
            code[~np.isin(bk, (A_, C_, G_, T_, N_))] = AMBIG  # IUPAC codes
            code[bk == C_] = M
            code[bk == T_] = U
            code[(qk < config.min_qual) & (xk >= 0)] = LOWQ
            sp = R.snp_pos
            if (sp >= 0).any():
                for j in np.flatnonzero(sp >= 0):
                    xs = X[:, sp[j]]
                    bs = np.take_along_axis(seq, np.maximum(xs, 0)[:, None], axis=1)[:, 0]
                    code[(xs >= 0) & (bs == R.snp_alt[j]), j] = SNPC
            code[xk == -2] = GAP
            code[xk == -1] = NOTCOV
            code[:, R.cpg_primer] = PRIMER
            calls[rows, :nk] = code
            base[rows, :nk] = np.where(xk >= 0, bk, 0)
            qual[rows, :nk] = np.where(xk >= 0, qk, 0)
    return Mates(ref, rc, calls, base, qual, conv, unconv, cph_state, edits, cols, insert, start, end)


RESCUE_TIE = 0.02  # two references aligned this close in identity: ambiguous_amplicon


def _rescue(read: np.ndarray, index: Index) -> tuple[int, bool, int]:
    """A read whose anchors all occur at several places: aligned (edlib) to every reference in both orientations;
    the best identity wins, a near tie is MULTI (ambiguous), no alignment is NONE (no amplicon)."""
    from .edit import align_columns

    ln = len(read)
    fwd3 = three_letter(read).tobytes()
    rev3 = three_letter(COMP[read[::-1]]).tobytes()
    found = []
    for rid, R in enumerate(index.refs):
        ref3 = three_letter(R.seq).tobytes()
        for is_rc, q in ((False, fwd3), (True, rev3)):
            res = align_columns(q[:R.length], ref3, int(EDIT_SHARE * min(ln, R.length)) + 3)
            if res is not None:
                e, s, _cols, _ins, n_cols = res
                found.append((1 - e / max(n_cols, 1), rid, is_rc, s))
    if not found:
        return NONE, False, 0
    found.sort(reverse=True)
    if len(found) > 1 and found[1][0] >= found[0][0] - RESCUE_TIE and found[1][1] // 2 != found[0][1] // 2:
        return MULTI, False, 0
    _ident, rid, is_rc, s = found[0]
    # the diagonal: where the oriented read's first base lies (a reverse read's adapter end is cut before)
    return rid, is_rc, s


def _gapped(seq: np.ndarray, ln: int, off: int, R) -> Optional[tuple[int, int, np.ndarray, int]]:
    """edlib alignment of one oriented read near its diagonal: (edits, first reference position, read column
    per reference position from there (-2 deletion), alignment columns), or None."""
    from .edit import align_columns

    L = R.length
    c0 = max(0, -off - 5)  # adapter before the reference start (a reverse read's 3' end)
    c1 = min(ln, L - off + 5)  # ... after its end (read-through of a short insert)
    if c1 - c0 < 10:
        return None
    w0 = max(0, off + c0 - EDGE_SLACK)
    w1 = min(L, off + c1 + EDGE_SLACK)
    read3 = three_letter(seq[c0:c1]).tobytes()
    ref3 = three_letter(R.seq[w0:w1]).tobytes()
    res = align_columns(read3, ref3, int(EDIT_SHARE * (c1 - c0)) + 3)
    if res is None:
        return None
    _e, s, colmap, _ins, n_cols = res
    colmap = np.where(colmap >= 0, colmap + c0, -2).astype(np.int32)
    # bisulfite-aware edits: edlib saw 3 letters, so a read C where the reference has T is counted here
    at = np.flatnonzero(colmap >= 0)
    mis = int((~_compatible(seq[colmap[at]], R.seq[w0 + s + at])).sum())
    return n_cols - len(at) + mis, w0 + s, colmap, n_cols


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


def pairs(m1: Mates, m2: Optional[Mates], index: Index, config: CallConfig,
          min_aligned: Optional[np.ndarray] = None) -> Pairs:
    """Two mates -> one molecule each, with its QC outcome (module docstring).  ``min_aligned``: per amplicon
    (``config.min_aligned`` scaled to short amplicons by the run)."""
    n = len(m1.ref)
    if m2 is None:
        ref = m1.ref.copy()
        calls, base, qual = m1.calls, m1.base, m1.qual
        conv, unconv, edits, cols, insert = m1.converted, m1.unconverted, m1.edits, m1.columns, m1.insert
        r1_rc = m1.rc
        start, end = m1.start, m1.end
        ambiguous = ref == MULTI
    else:
        a1, a2 = m1.ref >= 0, m2.ref >= 0
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
    nocph = ok & (conv + unconv == 0)
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
