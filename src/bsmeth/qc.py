"""Read-level quality control: conversion, identity, quality, clonal duplicates.

Pipeline position: after ``calling``.  Every check returns data (figures and a
``Reason``), never an exception; ``verdict`` applies the thresholds of a
``CallConfig`` in the documented order of precedence, and
``mark_duplicates`` groups clonal duplicates among the reads that pass.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterable, Optional, Sequence

import numpy as np

from .calling import sites
from .evidence import Signals
from .memo import by_identity
from .models import AlignedRead, Amplicon, Call, CallConfig, CpGCalls, Read, ReadQC, ReadResult, Reason, Status

# Below this identity the "alignment" is what unrelated sequence gets by chance
# against a C/T-lenient target (about 50-60 %): a wrong product, not a bad read.  Short alignments reach
# more by chance: see chance_identity and CallConfig.chance_identity_base.
JUNK_IDENTITY = 0.65


def hq_bases(read: Read, config: CallConfig) -> int:
    """Bases the read has that can be trusted: PHRED >= threshold, or any non-N base without qualities."""
    if read.qual is None:
        return sum(b in "ACGT" for b in read.seq)
    return int(np.count_nonzero(read.qual >= config.min_qual))


def c_positions(amp: Amplicon, aln: AlignedRead) -> np.ndarray:
    """Target positions of every C (CpG or not) inside the aligned part, outside primers."""
    idx = sites(amp).c_sites
    return idx[np.searchsorted(idx, aln.target_start):np.searchsorted(idx, aln.target_end)]


_AROUND_5 = np.arange(-5, 6)  # the 11 bases around a site, whose median quality says whether the read is good there
_REACH_5 = int(_AROUND_5[-1])
_WINDOW = np.ones(len(_AROUND_5), dtype=np.uint8)  # the 11 bases, as a sliding sum's weights


def _mixed_counts(amp: Amplicon, aln: AlignedRead, signals, config: CallConfig) -> tuple[int, int, int, int]:
    """Mixed peaks at CpG and non-CpG C, counted only where the read around them is good.

    The ends of a trace have broad, overlapping peaks that look mixed without
    being so: a site counts only when the median PHRED of the 11 bases around it
    reaches ``config.mixed_min_local_qual`` (a mixed peak lowers its own quality,
    not the median of its neighbourhood).  On real traces, two strong peaks at
    clean positions are 0.55 % of the sites with a local median of 20 or more,
    0.07 % at 30 or more (docs/trace_evidence.md).  What
    makes one site mixed (both peaks strong, the smaller a real peak) is
    ``evidence.is_mixed``.
    """
    if not isinstance(signals, Signals):  # any mapping target -> PeakSignal
        ts = sorted(signals)
        sig = [signals[t] for t in ts]
        signals = Signals(np.array(ts, dtype=np.int64), np.array([[s.c for s in sig], [s.t for s in sig]],
                                                                  dtype=float).reshape(2, -1),
                          np.array([s.ref for s in sig], dtype=float))
    t0, t1 = aln.target_start, aln.target_end
    if t1 <= t0 or len(signals) == 0:
        return 0, 0, 0, 0
    # the 11 qualities around each site, the span's end qualities repeated beyond it; their median (the 6th
    # smallest) reaches the threshold exactly when at least 6 of them do, which is cheaper to count than to sort.
    # Counted for every position of the span at once, as a sliding sum over whether each quality reaches the
    # threshold (one correlation with 11 ones; the sums are at most 11, uint8), then read at the sites: no
    # window of 11 gathered per site.  'full' sums past the span's ends as zeros: where a window passes an end,
    # the end values are repeated 5 times beyond it first.
    tg = signals.targets  # increasing
    reaches = _reaches(config.mixed_min_local_qual).take(aln.quals[t0:t1])
    if int(tg[0]) - _REACH_5 < t0 or int(tg[-1]) + _REACH_5 >= t1:
        reaches = np.concatenate((reaches[:1].repeat(_REACH_5), reaches, reaches[-1:].repeat(_REACH_5)))
        sums = np.correlate(reaches, _WINDOW, "same")
    else:
        sums = np.correlate(reaches, _WINDOW, "full")
    reach = sums.take(tg - (t0 - _REACH_5))  # the sum centred on position t sits at t - t0 + 5 either way
    # one count per kind of site: 4 good, 2 a CpG, 1 mixed
    kind = _GOOD_BIT.take(reach)
    kind += _tables(amp).cpg_bit.take(tg)
    kind += signals.mixed
    n = np.bincount(kind, minlength=8).tolist()
    return n[7], n[6] + n[7], n[5], n[4] + n[5]


# by how many of the 11 qualities reach the threshold: 4 (good) when the median does, i.e. at least 6 of them
_GOOD_BIT = np.where(np.arange(len(_AROUND_5) + 1) > len(_AROUND_5) // 2, 4, 0).astype(np.uint8)


@lru_cache(maxsize=8)
def _reaches(threshold: int) -> np.ndarray:
    """By PHRED (0-255): 1 where it reaches ``threshold``."""
    return (np.arange(256) >= threshold).astype(np.uint8)


_C, _T = ord("C"), ord("T")


# ``measure`` counts each target position by its class (``_P_*``), the read's base there (``_BASE_CLASS``),
# whether that base is the target letter, and whether its PHRED reaches ``min_qual``: one key per position, one
# bincount per read, and the figures are sums of bins (``_weights``, made once from the definitions below).
_P_PRIMER, _P_SNP, _P_OTHER, _P_CPG, _P_GPC, _P_HCH = range(6)  # position classes; _P_GPC/_P_HCH: non-CpG C
_R_GAP, _R_N, _R_C, _R_T, _R_OTHER = range(5)  # the read's base
_N_BINS = 6 * 5 * 4  # key: class * 20 + base * 4 + is the target letter * 2 + high quality
_BASE_CLASS = np.full(256, _R_OTHER, dtype=np.intp)  # by code point (clipped: beyond 255 is other)
for _b, _r in (("-", _R_GAP), ("N", _R_N), ("C", _R_C), ("T", _R_T)):
    _BASE_CLASS[ord(_b)] = _r
_FIGURES = ("span", "gaps", "known", "matches", "converted", "unconverted", "hch_converted", "hch_unconverted")


@dataclass(frozen=True, eq=False)
class _Tables:
    """Per-amplicon tables of ``measure`` and ``_mixed_counts`` (target coordinates).

    ``measure``'s key but for the quality bit depends on the position and the read's letter there only, so it
    is looked up in ``key``, one row per position and one column per letter: every letter the target holds,
    those ``_BASE_CLASS`` names ('-', 'N', 'C', 'T'), and a last column for any other letter, which is no
    target letter.  A read's keys are then one gather (``column``, ``row``, ``key``) instead of the class, base
    and target-letter arithmetic done position by position for every read.
    """

    column: np.ndarray  # intp by code point (0-255; beyond 255 clipped to 255, no target letter): the column
    row: np.ndarray  # intp per position: where its row starts in the flat ``key`` (position * columns)
    key: np.ndarray  # uint8, flat rows of columns: class * 20 + base * 4 + is the target letter * 2
    cpg_bit: np.ndarray  # uint8: 2 at the C of a CpG, as ``_mixed_counts`` builds its key


_TABLES: dict = {}


def _tables(amp: Amplicon) -> _Tables:
    return by_identity(_TABLES, amp, lambda: _make_tables(amp))


def _make_tables(amp: Amplicon) -> _Tables:
    st = sites(amp)
    cls = np.select([st.primer, st.snp, st.cpg, st.gpc, st.is_c], [_P_PRIMER, _P_SNP, _P_CPG, _P_GPC, _P_HCH],
                    _P_OTHER)
    letters = np.array(sorted(set(st.tgt.tolist()) | {ord(b) for b in "-NCT"}), dtype=np.intp)
    n_col = len(letters) + 1
    column = np.full(256, len(letters), dtype=np.intp)
    column[letters] = np.arange(len(letters))
    base = np.append(_BASE_CLASS[letters], _R_OTHER)  # by column
    same = np.append(letters, -1)[None, :] == st.tgt[:, None].astype(np.intp)  # by position and column
    key = (cls[:, None] * 20 + base[None, :] * 4 + same * 2).astype(np.uint8).ravel()
    out = _Tables(column, np.arange(amp.length, dtype=np.intp) * n_col, key, st.cpg.astype(np.uint8) * np.uint8(2))
    for a in (out.column, out.row, out.key, out.cpg_bit):
        a.flags.writeable = False
    return out


@lru_cache(maxsize=2)
def _weights(nome: bool) -> np.ndarray:
    """Which bins of the key each figure of ``measure`` (``_FIGURES``) sums: the definitions, position by
    position, over every key."""
    w = np.zeros((len(_FIGURES), _N_BINS), dtype=np.int64)
    for p in range(6):
        for r in range(5):
            for eq in (0, 1):
                for hq in (0, 1):
                    span = p != _P_PRIMER
                    gap = span and r == _R_GAP
                    known = span and not gap and r != _R_N and p != _P_SNP
                    is_c = p in (_P_CPG, _P_GPC, _P_HCH)
                    match = known and ((is_c and r in (_R_C, _R_T)) or (not is_c and bool(eq)))
                    hq_c = known and bool(hq) and p in (_P_GPC, _P_HCH)  # a high-quality non-CpG C
                    hch = hq_c and p == _P_HCH
                    counted = hch if nome else hq_c  # NOMe: GpC C are protected by the methylase
                    figures = (span, gap, known, match, counted and r == _R_T, counted and r == _R_C,
                               hch and r == _R_T, hch and r == _R_C)
                    w[:, p * 20 + r * 4 + eq * 2 + hq] = figures
    w.flags.writeable = False
    return w


_NONE = (0, 0, 0, 0)  # the mixed-site counts of a read without trace evidence


def measure(amp: Amplicon, aln: AlignedRead, read: Read, config: CallConfig, signals=None,
            n_hq: Optional[int] = None) -> ReadQC:
    """Identity, mismatches and conversion over the aligned target outside the primer sites (``n_hq``: the
    read's ``hq_bases`` when the caller has it already)."""
    tb = _tables(amp)
    t0, t1 = aln.target_start, aln.target_end
    at = tb.column.take(aln.bases.view(np.uint32)[t0:t1], mode="clip")
    at += tb.row[t0:t1]
    key = tb.key.take(at)
    key += _reaches(config.min_qual).take(aln.quals[t0:t1])
    span, gaps, known, matches, conv, unconv, hch_conv, hch_unconv = (
        _weights(config.nome) @ np.bincount(key, minlength=_N_BINS)).tolist()
    mism = gaps + known - matches + aln.insertions
    total = matches + mism
    mixed_cpgs, traced_cpgs, mixed_cph, traced_cph = _mixed_counts(amp, aln, signals, config) if signals else _NONE
    return ReadQC(
        aligned_bases=span,
        identity=matches / total if total else 0.0,
        mismatches=mism,
        converted=conv,
        unconverted=unconv,
        hq_bases=hq_bases(read, config) if n_hq is None else n_hq,
        hch_converted=hch_conv,
        hch_unconverted=hch_unconv,
        mixed_cpgs=mixed_cpgs,
        traced_cpgs=traced_cpgs,
        mixed_cph=mixed_cph,
        traced_cph=traced_cph,
    )


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def gpc_enrichment_p(gpc_kept: int, gpc_converted: int, other_kept: int, other_converted: int) -> float:
    """One-sided Fisher exact p that C at GpC are kept (unconverted) more often than the other C."""
    from math import comb

    n_kept = gpc_kept + other_kept
    n_gpc = gpc_kept + gpc_converted
    total = n_gpc + other_kept + other_converted
    denom = comb(total, n_kept)
    return sum(comb(n_gpc, k) * comb(total - n_gpc, n_kept - k)
               for k in range(gpc_kept, min(n_gpc, n_kept) + 1)) / denom


def looks_like_nome(qc: ReadQC, config: CallConfig) -> bool:
    """A GpC methylase footprint, not poor conversion: the C other than GpC are converted, and the GpC C are
    kept more often than those beyond chance (in a GC-rich amplicon most C sit at GpC, so randomly kept C land
    there often too).  Never in --nome mode, where GpC C are not counted."""
    hch = qc.hch_conversion
    gch_conv, gch_unconv = qc.converted - qc.hch_converted, qc.unconverted - qc.hch_unconverted
    return (not config.nome and hch is not None and gch_conv + gch_unconv > 0 and hch >= config.min_conversion
            and gpc_enrichment_p(gch_unconv, gch_conv, qc.hch_unconverted, qc.hch_converted) < 0.001)


def region_limit(value: int, amp: Amplicon) -> int:
    """A read-length threshold no read of a short region could meet, scaled down to half the region."""
    return min(value, max(amp.length // 2, 1))


def chance_identity(aligned: int, region: int, config: CallConfig) -> float:
    """The identity below which an alignment over ``aligned`` target bases of a ``region``-bp amplicon is
    what unrelated sequence reaches by chance against a C/T-lenient target (higher for short alignments);
    never below JUNK_IDENTITY, and just that for regions shorter than the calibration covers."""
    if region < config.chance_identity_min_region:
        return JUNK_IDENTITY
    return max(JUNK_IDENTITY, config.chance_identity_base + config.chance_identity_scale / max(aligned, 1) ** 0.5)


def flanks(aln: AlignedRead, read: Read, config: CallConfig) -> tuple[int, int]:
    """High-quality bases of the read before and after its aligned part (in the oriented read): PHRED at
    least ``min_qual``, or any A, C, G, T for sequence without qualities."""
    n = len(read.seq)
    lo, hi = (aln.read_start, aln.read_end) if aln.orientation == "+" else (n - aln.read_end, n - aln.read_start)
    if read.qual is not None:
        good = read.qual >= config.min_qual
        left, right = int(np.count_nonzero(good[:lo])), int(np.count_nonzero(good[hi:]))
    else:
        seq = read.seq.upper()
        left = sum(map(seq[:lo].count, "ACGT"))
        right = sum(map(seq[hi:].count, "ACGT"))
    return (left, right) if aln.orientation == "+" else (right, left)


def amplicon_check(aln: Optional[AlignedRead], qc: Optional[ReadQC], min_aligned: int,
                   min_identity: float, read: Optional[Read] = None,
                   config: Optional[CallConfig] = None) -> tuple[Optional[Reason], str]:
    """Is this read the amplicon at all (``no_amplicon``), and a faithful copy of it (``low_identity``)?

    No amplicon: no alignment of ``min_aligned`` bases; an identity that unrelated sequence reaches by
    chance over that many aligned bases (``chance_identity``: primer dimers, wrong products, vector); or,
    given the read, a short insert: the amplicon part is under ``config.short_insert_fraction`` of the
    amplicon and the read carries ``config.short_insert_flank`` high-quality bases of other sequence on
    both sides of it (a read that simply ends, or whose quality collapses, stays a partial read).
    Shared by ``call`` (``verdict``) and ``quantify``.
    """
    config = config or CallConfig()
    if aln is None or qc is None or aln.target_end - aln.target_start < min_aligned or aln.score < 3 * min_aligned:
        got = 0 if aln is None else aln.target_end - aln.target_start
        return Reason.NO_AMPLICON, f"no alignment to the amplicon ({got} bases aligned; empty vector or wrong product?)"
    span = aln.target_end - aln.target_start
    if qc.identity < chance_identity(span, len(aln.bases), config):
        return Reason.NO_AMPLICON, (f"identity {_pct(qc.identity)} over {span} aligned bases is what unrelated "
                                    "sequence reaches by chance (wrong product, primer dimer or vector only)")
    if read is not None and span < config.short_insert_fraction * len(aln.bases):
        left, right = flanks(aln, read, config)
        if min(left, right) >= config.short_insert_flank:
            return Reason.NO_AMPLICON, (f"short insert of {span} bp between non-amplicon sequence ({left} and "
                                        f"{right} bases): primer dimer or truncated product")
    if qc.identity < min_identity:
        return Reason.LOW_IDENTITY, f"identity {_pct(qc.identity)} < {_pct(min_identity)}"
    return None, ""


def verdict(aln: Optional[AlignedRead], qc: Optional[ReadQC], hq: int, config: CallConfig,
            read: Optional[Read] = None) -> tuple[Optional[Reason], str]:
    """The first failing check, in the documented order, with a readable detail (the short-insert check
    needs the ``read``)."""
    if hq < config.min_hq_bases:
        return Reason.LOW_QUALITY, f"{hq} high-quality bases < {config.min_hq_bases}"
    reason, detail = amplicon_check(aln, qc, config.min_aligned, config.min_identity, read, config)
    if reason is not None:
        return reason, detail
    if config.max_mismatches is not None and qc.mismatches > config.max_mismatches:
        return Reason.TOO_MANY_MISMATCHES, f"{qc.mismatches} mismatches > {config.max_mismatches}"
    # two strong peaks at two CpGs, or at three C of any kind: clean real traces show them at 0.1 % of the sites
    # looked at, a mixed clone at nearly every C where its two molecules differ (docs/trace_evidence.md)
    mixed_cpg = qc.mixed_cpgs >= config.mixed_min_sites and qc.mixed_cpgs >= config.mixed_fraction * qc.traced_cpgs
    any_c = qc.mixed_cpgs + qc.mixed_cph
    mixed_cph = (any_c >= config.mixed_any_min_sites
                 and any_c >= config.mixed_any_fraction * (qc.traced_cpgs + qc.traced_cph))
    if mixed_cpg or mixed_cph:
        detail = (f"two peaks at {qc.mixed_cpgs} of {qc.traced_cpgs} CpGs and {qc.mixed_cph} of {qc.traced_cph} "
                  "non-CpG C: two colonies picked together or a mixed template")
        if not config.keep_mixed:
            return Reason.MIXED_TRACE, detail
        mixed_note = "kept with --keep-mixed: " + detail
    else:
        mixed_note = ""
    conv = qc.conversion
    if conv is None and not config.check_conversion:
        note = "conversion not checked: the reference was given already bisulfite-converted"
        return None, f"{mixed_note}; {note}" if mixed_note else note
    if conv is None:
        return Reason.NO_CPH, "no high-quality non-CpG C aligned: conversion cannot be checked"
    if conv < config.min_conversion:
        detail = f"conversion {_pct(conv)} < {_pct(config.min_conversion)} ({qc.unconverted} unconverted C)"
        if looks_like_nome(qc, config):
            gch_conv, gch_unconv = qc.converted - qc.hch_converted, qc.unconverted - qc.hch_unconverted
            detail += (f"; over HCH only {_pct(qc.hch_conversion)}, at GpC {_pct(gch_conv / (gch_conv + gch_unconv))}: "
                       "unconverted C are at GpC, NOMe data? see --nome")
        return Reason.LOW_CONVERSION, detail
    if config.max_unconverted is not None and qc.unconverted > config.max_unconverted:
        return Reason.LOW_CONVERSION, f"{qc.unconverted} unconverted non-CpG C > {config.max_unconverted}"
    return None, mixed_note


def _state_matrix(amp: Amplicon, rows: list[ReadResult], config: CallConfig) -> np.ndarray:
    """Per read (one row each) and target position: 1 = C (methylated CpG / unconverted CpH), 0 = T, -1 =
    unknown or not a C; made in one pass over the reads' stacked arrays."""
    st = sites(amp)
    alns = [r.aligned for r in rows]
    b = np.stack([a.bases for a in alns]).view(np.uint32)
    s = np.full(b.shape, -1, dtype=np.int8)
    fast = all(isinstance(r.calls, CpGCalls) and r.calls.cpgs is amp.cpgs for r in rows)
    if not fast:  # calls as any sequence of CpGCall
        for k, r in enumerate(rows):
            for c in r.calls:
                if c.call is Call.METHYLATED:
                    s[k, c.cpg.target_pos] = 1
                elif c.call is Call.UNMETHYLATED:
                    s[k, c.cpg.target_pos] = 0
    cols = np.arange(amp.length)
    t0 = np.array([a.target_start for a in alns])[:, None]
    t1 = np.array([a.target_end for a in alns])[:, None]
    ok = st.cph & (cols >= t0) & (cols < t1) & (np.stack([a.quals for a in alns]) >= config.min_qual)
    s[ok & (b == _C)] = 1
    s[ok & (b == _T)] = 0
    if fast:
        code = np.frombuffer("".join([r.calls.codes for r in rows]).encode("ascii"), dtype=np.uint8)
        code = code.reshape(len(rows), -1)
        s[:, st.cpg_t] = np.where(code == ord("M"), 1, np.where(code == ord("U"), 0, -1))
    return s


def chance_match(a: np.ndarray, b: np.ndarray, ones: np.ndarray, known: np.ndarray,
                 max_diff: int = 0, prior: Optional[np.ndarray] = None, floor: Optional[np.ndarray] = None,
                 error_rate: Optional[float] = None) -> tuple[bool, float, int]:
    """Do two state vectors agree wherever both are determined, and how likely is that by chance?

    Returns (agree, log10 probability that an independent clone matches ``a``
    at every shared agreeing site, number of shared sites).  ``ones``/``known``
    count, per site, the *other* reads (the pair left out) showing C and showing
    anything; ``prior`` (per site, the expected rate of C) is worth two reads,
    so that with few other reads agreeing on the common state proves nothing;
    ``floor`` (per site) is the lowest rate of C taken.  Up to ``max_diff`` disagreeing sites are
    tolerated (a base-call error in one read of the same molecule); with ``error_rate`` each counts
    log10(error_rate / chance of ``b``'s state there) against the pair, else nothing.
    The one-pair definition that ``pair_evidence`` computes for many pairs at once.
    """
    both = (a >= 0) & (b >= 0)
    n = int(np.count_nonzero(both))
    same = both & (a == b)
    if n == 0 or n - int(np.count_nonzero(same)) > max_diff:
        return False, 0.0, n
    r = np.full(len(a), 0.5) if prior is None else prior
    freq = (ones + 2.0 * r) / (known + 2.0)
    if floor is not None:
        freq = np.maximum(freq, floor)
    p = np.where(a == 1, freq, 1.0 - freq)
    log_p = float(np.sum(np.log10(p[same])))
    if error_rate is not None:
        for k in np.flatnonzero(both & ~same):
            p_b = freq[k] if b[k] == 1 else 1.0 - freq[k]
            log_p -= float(np.log10(error_rate / max(p_b, 1e-12)))
    return True, log_p, n


SIMILAR_LEVEL = 0.2  # reads within this methylation level of a pair model its CpG pattern


def _sample_model(amp: Amplicon, rows: list[ReadResult], config: CallConfig):
    """State matrix (informative sites only), per-read CpG methylation level, which columns are CpGs, and
    the pooled CpH non-conversion rate of one sample."""
    cpg = sites(amp).cpg
    mat = _state_matrix(amp, rows, config)
    used = (mat >= 0).any(axis=0)  # sites no read of the sample determines carry nothing
    mat, cpg = mat[:, used], cpg[used]
    m_cpg = np.count_nonzero((mat == 1) & cpg, axis=1)
    n_cpg = np.count_nonzero((mat >= 0) & cpg, axis=1)
    level = np.where(n_cpg > 0, m_cpg / np.maximum(n_cpg, 1), 0.5)
    cph_rate = (np.count_nonzero((mat == 1) & ~cpg) + 0.5) / (np.count_nonzero((mat >= 0) & ~cpg) + 1.0)
    return mat, level, cpg, cph_rate


def candidate_pairs(mat: np.ndarray, max_diff: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) of reads that share a determined site and disagree at no more than ``max_diff``
    shared sites: the only pairs that can be one molecule.  Two matrix products over the sample, in integers
    (exact counts; numpy's own loops: BLAS would start threads that cost more than these small products)."""
    ones = (mat == 1).astype(np.int32)
    zeros = (mat == 0).astype(np.int32)
    known = ones + zeros
    diff = ones @ zeros.T
    diff += diff.T
    ok = (diff <= max_diff) & (known @ known.T > 0)
    i, j = np.nonzero(np.triu(ok, 1))
    return i, j


def pair_evidence(mat: np.ndarray, level: np.ndarray, cpg: np.ndarray, cph_rate: float, i: np.ndarray,
                  j: np.ndarray, max_diff: int, error_rate: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(agree, log10 likelihood ratio: chance match against one molecule) for the pairs (i[k], j[k]).

    Non-CpG C: every other read of the sample gives the site's non-conversion rate (prior: the sample's
    pooled rate), but never below the pair's own non-conversion rate: two reads that each left one C of 54
    unconverted share it by chance once in 54, however well the rest of the sample converted.  CpG: methylation
    patterns are structured (alleles, epialleles, imprinting), so the site frequencies come only from the other
    reads whose overall methylation is within ``SIMILAR_LEVEL`` of the pair's, with the pair's own level as
    prior: two fully unmethylated (or fully methylated) clones among others like them prove nothing.  Reads are
    sorted by level and the counts are prefix sums, so "the other reads within 0.2 of a level" costs one
    subtraction per site.

    A site where the two disagree (at most ``max_diff``) is a base-call error if they are one molecule
    (``error_rate``: the error of a base at the quality floor) and the second read's state by chance if not:
    it counts against the pair by log10(error_rate / chance), so a pair that matches but for one site
    needs more evidence than one that matches everywhere (benchmarks/duplicates.py: false duplicates at
    250 clones per sample fell from 88 to 17 pairs at the same per-pair threshold).
    """
    n_sites = mat.shape[1]
    if len(i) == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    order = np.argsort(level, kind="stable")
    sorted_level = level[order]
    is1, known = (mat == 1).astype(np.int32), (mat >= 0).astype(np.int32)
    zero = np.zeros((1, n_sites), dtype=np.int32)
    cum1 = np.vstack([zero, np.cumsum(is1[order], axis=0)])
    cumk = np.vstack([zero, np.cumsum(known[order], axis=0)])
    pl = (level[i] + level[j]) / 2
    lo_l, hi_l = pl - SIMILAR_LEVEL - 1e-12, pl + SIMILAR_LEVEL + 1e-12
    lo = np.searchsorted(sorted_level, lo_l, side="left")
    hi = np.searchsorted(sorted_level, hi_l, side="right")
    # counts over the other reads: all of them (CpH) or those of a similar level (CpG), the pair left out
    a, b = mat[i], mat[j]
    is1_i, is1_j, known_i, known_j = is1[i], is1[j], known[i], known[j]
    in_i = ((level[i] >= lo_l) & (level[i] <= hi_l))[:, None]
    in_j = ((level[j] >= lo_l) & (level[j] <= hi_l))[:, None]
    ones_sim = cum1[hi] - cum1[lo] - is1_i * in_i - is1_j * in_j
    known_sim = cumk[hi] - cumk[lo] - known_i * in_i - known_j * in_j
    ones = np.where(cpg, ones_sim, cum1[-1] - (is1_i + is1_j))
    kn = np.where(cpg, known_sim, cumk[-1] - (known_i + known_j))
    prior = np.where(cpg, np.clip(pl, 0.01, 0.99)[:, None], cph_rate)
    both = (a >= 0) & (b >= 0)
    same = both & (a == b)
    agree = (np.count_nonzero(both, axis=1) - np.count_nonzero(same, axis=1) <= max_diff) & both.any(axis=1)
    freq = (ones + 2.0 * prior) / (kn + 2.0)
    cph = ~cpg
    unconv = np.count_nonzero((a == 1) & cph, axis=1) + np.count_nonzero((b == 1) & cph, axis=1)
    seen = np.count_nonzero((a >= 0) & cph, axis=1) + np.count_nonzero((b >= 0) & cph, axis=1)
    own_rate = (unconv + 0.5) / (seen + 1.0)
    freq = np.where(cpg, freq, np.maximum(freq, own_rate[:, None]))
    p = np.where(a == 1, freq, 1.0 - freq)
    log_p = np.where(same, np.log10(np.where(same, p, 1.0)), 0.0).sum(axis=1)
    differ = both & ~same
    if differ.any():
        p_b = np.clip(np.where(b == 1, freq, 1.0 - freq), 1e-12, 1.0)
        log_p -= np.where(differ, np.log10(error_rate / np.where(differ, p_b, 1.0)), 0.0).sum(axis=1)
    return agree, np.where(agree, log_p, 0.0)


def base_error(config: CallConfig) -> float:
    """The error rate of a base at the quality floor (PHRED ``min_qual``): what a disagreement between two
    reads of one molecule costs."""
    return 10.0 ** (-config.min_qual / 10.0)


REFERENCE_READS = 12  # the sample size at which duplicate_min_evidence was calibrated (the seed study's 11-12)


def evidence_needed(n_reads: int, config: CallConfig) -> float:
    """-log10 chance match a pair must reach in a sample of ``n_reads`` passing reads.

    A fixed per-pair threshold lets false duplicates grow with the number of pairs compared (22 clones
    flagged where 2 were planted at 250 clones per sample).  Each clone is compared with the n - 1 others,
    so its chance of a false partner grows with n - 1: the threshold is ``duplicate_min_evidence`` up to
    ``REFERENCE_READS`` reads, where it was calibrated, and rises by log10 of the comparisons per clone
    beyond that (+0.65 at 50 reads, +1.36 at 250), which keeps false duplicates per clone constant;
    measured by benchmarks/duplicates.py.
    """
    return config.duplicate_min_evidence + max(0.0, float(np.log10(max(n_reads - 1, 1) / (REFERENCE_READS - 1))))


def pair_scores(amp: Amplicon, rows: list[ReadResult], config: CallConfig) -> list[tuple[str, str, float]]:
    """Evidence (-log10 chance match; 0 when they disagree) of every pair of reads of one sample that can be
    one molecule (``candidate_pairs``; every other pair scores 0).

    For calibration (benchmarks/duplicates.py): the same figures ``mark_duplicates`` thresholds.
    """
    if len(rows) < 2:
        return []
    mat, level, cpg, cph_rate = _sample_model(amp, rows, config)
    i, j = candidate_pairs(mat, config.duplicate_max_diff)
    agree, log_p = pair_evidence(mat, level, cpg, cph_rate, i, j, config.duplicate_max_diff,
                                 base_error(config))
    return [(rows[a].read_id, rows[b].read_id, -lp if ok else 0.0)
            for a, b, ok, lp in zip(i.tolist(), j.tolist(), agree.tolist(), log_p.tolist())]


def mark_duplicates(amp: Amplicon, results: Sequence[ReadResult], config: CallConfig) -> list[ReadResult]:
    """Flag clonal duplicates (one molecule picked twice) among passing reads of the same sample
    (``duplicate_links`` per sample, applied by ``as_duplicate``)."""
    out = list(results)
    for idx in sample_groups(out):
        apply_links(out, idx, duplicate_links(amp, [out[i] for i in idx], config), config)
    return out


def apply_links(out: list[ReadResult], idx: Sequence[int], links: Iterable[tuple[int, int]],
                config: CallConfig) -> None:
    """Flag, in place, the duplicates ``duplicate_links`` found among the reads ``out[i] for i in idx``."""
    for k, rep in links:
        out[idx[k]] = as_duplicate(out[idx[k]], out[idx[rep]], config)


def sample_groups(results: Sequence[ReadResult]) -> list[list[int]]:
    """The reads duplicates are looked for among: per sample (in order of first appearance), the indices of
    its passing reads in input order."""
    by_sample: dict[str, list[int]] = {}
    for i, r in enumerate(results):
        if r.status is Status.PASS:
            by_sample.setdefault(r.sample, []).append(i)
    return list(by_sample.values())


def duplicate_links(amp: Amplicon, rows: Sequence[ReadResult], config: CallConfig) -> list[tuple[int, int]]:
    """Clonal duplicates (one molecule picked twice) among ``rows``, the passing reads of one sample in input
    order: (k, rep) for each read ``rows[k]`` that duplicates the kept read ``rows[rep]``.

    Two reads are duplicates when their CpG and non-CpG conversion states agree
    at every C both determine but ``duplicate_max_diff`` (one, by default: a
    base-call error) (N, gaps and low quality are wildcards) AND such an
    agreement is unlikely by chance: the probability that an independent clone
    of the same sample matches at all shared sites (see ``pair_evidence``) is
    below ``10**-evidence_needed`` (the per-pair threshold corrected for the
    number of pairs compared in samples larger than the seed study's).  Clones that agree on the common
    pattern of their kind (fully unmethylated and converted, or an epiallele
    shared by other reads) carry no evidence of being one molecule.  The read kept is the one
    with most CpGs called, then most high-quality bases, then input order.

    Work per sample: two matrix products to find the pairs that can be one molecule, then their evidence
    in one vectorised pass, then one pass over the reads.
    """
    if len(rows) < 2:
        return []
    rows = list(rows)
    mat, level, cpg, cph_rate = _sample_model(amp, rows, config)
    a, b = candidate_pairs(mat, config.duplicate_max_diff)
    agree, log_p = pair_evidence(mat, level, cpg, cph_rate, a, b, config.duplicate_max_diff, base_error(config))
    hit = agree & (log_p <= -evidence_needed(len(rows), config))
    if not hit.any():
        return []
    partners: dict[int, set[int]] = {}
    for x, y in zip(a[hit].tolist(), b[hit].tolist()):
        partners.setdefault(x, set()).add(y)
        partners.setdefault(y, set()).add(x)
    order = sorted(range(len(rows)), key=lambda k: (-rows[k].n_called, -(rows[k].qc.hq_bases if rows[k].qc else 0), k))
    rank = {k: pos for pos, k in enumerate(order)}
    kept: set[int] = set()
    links = []
    for k in order:
        reps = [m for m in partners.get(k, ()) if m in kept]
        if not reps:
            kept.add(k)
            continue
        links.append((k, min(reps, key=rank.__getitem__)))  # the first kept read it matches
    return links


def as_duplicate(result: ReadResult, of: ReadResult, config: CallConfig) -> ReadResult:
    """``result`` flagged as a clonal duplicate of ``of`` (failing ``duplicate`` unless ``keep_duplicates``)."""
    status = Status.PASS if config.keep_duplicates else Status.FAIL
    reason = None if config.keep_duplicates else Reason.DUPLICATE
    return replace(result, status=status, reason=reason, duplicate_of=of.read_id,
                   detail=f"clonal duplicate of {of.read_id}")
