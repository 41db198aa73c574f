"""Read-level quality control: conversion, identity, quality, clonal duplicates.

Pipeline position: after ``calling``.  Every check returns data (figures and a
``Reason``), never an exception; ``assess`` applies the thresholds of a
``CallConfig`` in the documented order of precedence, and
``mark_duplicates`` groups clonal duplicates among the reads that pass.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

import numpy as np

from .calling import snp_target
from .models import AlignedRead, Amplicon, Call, CallConfig, Read, ReadQC, ReadResult, Reason, Status

NO_QUAL = 99  # the quality given to sequence that came without qualities
# Below this identity the "alignment" is what unrelated sequence gets by chance
# against a C/T-lenient target (about 50-60 %): a wrong product, not a bad read.
JUNK_IDENTITY = 0.65


def hq_bases(read: Read, config: CallConfig) -> int:
    """Bases the read has that can be trusted: PHRED >= threshold, or any non-N base without qualities."""
    if read.qual is None:
        return sum(b in "ACGT" for b in read.seq)
    return int(np.count_nonzero(read.qual >= config.min_qual))


def c_positions(amp: Amplicon, aln: AlignedRead) -> list[int]:
    """Target positions of every C (CpG or not) inside the aligned part, outside primers."""
    return [t for t in range(aln.target_start, aln.target_end) if amp.target[t] == "C" and not amp.in_primer(t)]


def _mixed_counts(amp: Amplicon, aln: AlignedRead, signals: dict, config: CallConfig) -> tuple[int, int, int, int]:
    """Mixed peaks at CpG and non-CpG C, counted only where the read around them is good.

    The ends of a trace have broad, overlapping peaks that look mixed without
    being so: a site counts only when the median PHRED of the 11 bases around it
    reaches the threshold (a mixed peak itself lowers its own quality).
    """
    m_cpg = n_cpg = m_cph = n_cph = 0
    target = amp.target
    for t, sig in signals.items():
        lo, hi = max(aln.target_start, t - 5), min(aln.target_end, t + 6)
        if np.median(aln.quals[lo:hi]) < config.min_qual:
            continue
        cpg = t + 1 < len(target) and target[t + 1] == "G"
        if cpg:
            n_cpg += 1
            m_cpg += sig.mixed
        else:
            n_cph += 1
            m_cph += sig.mixed
    return m_cpg, n_cpg, m_cph, n_cph


def measure(amp: Amplicon, aln: AlignedRead, read: Read, config: CallConfig, signals: Optional[dict] = None) -> ReadQC:
    """Identity, mismatches and conversion over the aligned target outside the primer sites."""
    target = amp.target
    snp_pos = {snp_target(amp, s)[0] for s in amp.snps}
    matches = mism = conv = unconv = aligned = hch_conv = hch_unconv = 0
    for t in range(aln.target_start, aln.target_end):
        if amp.in_primer(t):
            continue
        b = aln.bases[t]
        g = target[t]
        aligned += 1
        if b == "-":
            mism += 1
            continue
        if b == "N" or t in snp_pos:
            continue
        if g == "C":
            cpg = t + 1 < len(target) and target[t + 1] == "G"
            if b not in "CT":
                mism += 1
                continue
            matches += 1
            if cpg:
                continue
            if aln.quals[t] < config.min_qual:
                continue
            gpc = t > 0 and target[t - 1] == "G"
            if not gpc:
                hch_conv += b == "T"
                hch_unconv += b == "C"
            if config.nome and gpc:
                continue  # GpC: protected by the methylase in NOMe experiments
            if b == "T":
                conv += 1
            else:
                unconv += 1
        elif b == g:
            matches += 1
        else:
            mism += 1
    mism += aln.insertions
    total = matches + mism
    return ReadQC(
        aligned_bases=aligned,
        identity=matches / total if total else 0.0,
        mismatches=mism,
        converted=conv,
        unconverted=unconv,
        hq_bases=hq_bases(read, config),
        hch_converted=hch_conv,
        hch_unconverted=hch_unconv,
        **dict(zip(("mixed_cpgs", "traced_cpgs", "mixed_cph", "traced_cph"),
                   _mixed_counts(amp, aln, signals, config) if signals else (0, 0, 0, 0))),
    )


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def verdict(aln: Optional[AlignedRead], qc: Optional[ReadQC], hq: int, config: CallConfig) -> tuple[Optional[Reason], str]:
    """The first failing check, in the documented order, with a readable detail."""
    if hq < config.min_hq_bases:
        return Reason.LOW_QUALITY, f"{hq} high-quality bases < {config.min_hq_bases}"
    if aln is None or qc is None or aln.target_end - aln.target_start < config.min_aligned or aln.score < 3 * config.min_aligned:
        got = 0 if aln is None else aln.target_end - aln.target_start
        return Reason.NO_AMPLICON, f"no alignment to the amplicon ({got} bases aligned; empty vector or wrong product?)"
    if qc.identity < JUNK_IDENTITY:
        return Reason.NO_AMPLICON, (f"identity {_pct(qc.identity)} is what unrelated sequence reaches by chance "
                                    "(wrong product or vector only)")
    if qc.identity < config.min_identity:
        return Reason.LOW_IDENTITY, f"identity {_pct(qc.identity)} < {_pct(config.min_identity)}"
    if config.max_mismatches is not None and qc.mismatches > config.max_mismatches:
        return Reason.TOO_MANY_MISMATCHES, f"{qc.mismatches} mismatches > {config.max_mismatches}"
    mixed_cpg = qc.mixed_cpgs >= config.mixed_min_sites and qc.mixed_cpgs >= config.mixed_fraction * qc.traced_cpgs
    mixed_cph = qc.mixed_cph >= 5 and qc.mixed_cph >= 0.1 * qc.traced_cph
    if mixed_cpg or mixed_cph:
        detail = (f"two peaks at {qc.mixed_cpgs} of {qc.traced_cpgs} CpGs and {qc.mixed_cph} of {qc.traced_cph} "
                  "non-CpG C: two colonies picked together or a mixed template")
        if not config.keep_mixed:
            return Reason.MIXED_TRACE, detail
        mixed_note = "kept with --keep-mixed: " + detail
    else:
        mixed_note = ""
    conv = qc.conversion
    if conv is None:
        return Reason.NO_CPH, "no high-quality non-CpG C aligned: conversion cannot be checked"
    if conv < config.min_conversion:
        detail = f"conversion {_pct(conv)} < {_pct(config.min_conversion)} ({qc.unconverted} unconverted C)"
        hch = qc.hch_conversion
        if not config.nome and hch is not None and hch >= config.min_conversion:
            detail += f"; over HCH only {_pct(hch)}: unconverted C are at GpC, NOMe data? see --nome"
        return Reason.LOW_CONVERSION, detail
    if config.max_unconverted is not None and qc.unconverted > config.max_unconverted:
        return Reason.LOW_CONVERSION, f"{qc.unconverted} unconverted non-CpG C > {config.max_unconverted}"
    return None, mixed_note


def _states(amp: Amplicon, r: ReadResult, config: CallConfig) -> np.ndarray:
    """Per target position: 1 = C (methylated CpG / unconverted CpH), 0 = T, -1 = unknown or not a C."""
    s = np.full(amp.length, -1, dtype=np.int8)
    aln = r.aligned
    for c in r.calls:
        if c.call is Call.METHYLATED:
            s[c.cpg.target_pos] = 1
        elif c.call is Call.UNMETHYLATED:
            s[c.cpg.target_pos] = 0
    cpg_t = {c.cpg.target_pos for c in r.calls}
    for t in range(aln.target_start, aln.target_end):
        if amp.target[t] == "C" and t not in cpg_t and not amp.in_primer(t) and aln.quals[t] >= config.min_qual:
            b = aln.bases[t]
            if b == "C":
                s[t] = 1
            elif b == "T":
                s[t] = 0
    return s


def chance_match(a: np.ndarray, b: np.ndarray, ones: np.ndarray, known: np.ndarray,
                 max_diff: int = 0) -> tuple[bool, float, int]:
    """Do two state vectors agree wherever both are determined, and how likely is that by chance?

    Returns (agree, log10 probability that an independent clone of the sample
    matches ``a`` at every shared agreeing site, number of shared sites).
    ``ones``/``known`` count, per site, the sample's reads showing C and showing
    anything; the pair itself is left out of these frequencies, else a
    duplicate would dilute its own evidence.  Up to ``max_diff`` disagreeing
    sites are tolerated (a base-call error in one read of the same molecule);
    they add no evidence.
    """
    both = (a >= 0) & (b >= 0)
    n = int(np.count_nonzero(both))
    same = both & (a == b)
    if n == 0 or n - int(np.count_nonzero(same)) > max_diff:
        return False, 0.0, n
    others_ones = ones[same] - (a[same] == 1) - (b[same] == 1)
    others_known = known[same] - 2
    freq = (others_ones + 0.5) / (others_known + 1.0)  # Jeffreys-like pseudocount keeps 0 and 1 away
    p = np.where(a[same] == 1, freq, 1.0 - freq)
    return True, float(np.sum(np.log10(p))), n


def mark_duplicates(amp: Amplicon, results: Sequence[ReadResult], config: CallConfig) -> list[ReadResult]:
    """Flag clonal duplicates (one molecule picked twice) among passing reads of the same sample.

    Two reads are duplicates when their CpG and non-CpG conversion states agree
    at every C both determine but ``duplicate_max_diff`` (one, by default: a
    base-call error) (N, gaps and low quality are wildcards) AND such an
    agreement is unlikely by chance: the probability that an independent clone
    of the same sample matches at all shared sites, from the sample's per-site
    frequencies, is below ``10**-duplicate_min_evidence``.  Fully converted,
    unmethylated clones agree everywhere yet carry no evidence of being one
    molecule, so they are never called duplicates.  The read kept is the one
    with most CpGs called, then most high-quality bases, then input order.
    """
    out = list(results)
    by_sample: dict[str, list[int]] = {}
    for i, r in enumerate(out):
        if r.status is Status.PASS:
            by_sample.setdefault(r.sample, []).append(i)
    for idx in by_sample.values():
        if len(idx) < 2:
            continue
        states = {i: _states(amp, out[i], config) for i in idx}
        mat = np.stack([states[i] for i in idx])
        ones = np.count_nonzero(mat == 1, axis=0)
        known = np.count_nonzero(mat >= 0, axis=0)
        order = sorted(idx, key=lambda i: (-out[i].n_called, -(out[i].qc.hq_bases if out[i].qc else 0), i))
        kept: list[int] = []
        for i in order:
            dup_of = None
            for j in kept:
                agree, log_p, _ = chance_match(states[i], states[j], ones, known, config.duplicate_max_diff)
                if agree and log_p <= -config.duplicate_min_evidence:
                    dup_of = j
                    break
            if dup_of is None:
                kept.append(i)
                continue
            status = Status.PASS if config.keep_duplicates else Status.FAIL
            reason = None if config.keep_duplicates else Reason.DUPLICATE
            out[i] = replace(
                out[i], status=status, reason=reason, duplicate_of=out[dup_of].read_id,
                detail=f"clonal duplicate of {out[dup_of].read_id}",
            )
    return out
