"""Per-CpG methylation calls of one aligned read.

Pipeline position: after ``alignment``, before ``qc``.  A CpG is ``M`` when the
read shows C at the CpG's C on the amplified strand, ``U`` for T, and ``-``
(not determined) with a reason otherwise.  A base below the PHRED threshold is
never guessed.  A read carrying the allele of a known SNP that destroys the
CpG gets ``-``/``snp``: a genotype, not a methylation state.
"""

from __future__ import annotations

from typing import Optional

from .evidence import PeakSignal
from .coords import one_based
from .models import NO_QUAL, AlignedRead, Amplicon, Call, CallConfig, CpG, CpGCall, Why


def snp_target(amp: Amplicon, snp) -> tuple[int, str]:
    """Target coordinate and amplified-strand letter of a SNP's alternative allele."""
    frame = amp.frame
    return frame.target_of(snp.pos), frame.allele_on_target(snp.alt)


def call_cpg(amp: Amplicon, cpg: CpG, aln: AlignedRead, config: CallConfig,
             signal: Optional[PeakSignal] = None) -> CpGCall:
    """The call of one CpG, with the trace evidence attached when there is a trace."""
    c = _call(amp, cpg, aln, config, signal)
    if signal is None or c.why in (Why.NOT_COVERED, Why.GAP):
        return c
    f = signal.c_frac
    contradicted = f is not None and (
        (c.call is Call.METHYLATED and f < 0.5) or (c.call is Call.UNMETHYLATED and f > 0.5))
    return CpGCall(c.cpg, c.call, c.why, c.base, c.qual, round(signal.c, 1), round(signal.t, 1), contradicted)


def _call(amp: Amplicon, cpg: CpG, aln: AlignedRead, config: CallConfig, signal: Optional[PeakSignal]) -> CpGCall:
    t = cpg.target_pos
    base = str(aln.bases[t])
    qual = int(aln.quals[t]) if base not in (" ", "-") and aln.quals[t] != NO_QUAL else None
    shown = base.strip()
    if cpg.under_primer:
        return CpGCall(cpg, Call.NOT_DETERMINED, Why.UNDER_PRIMER, shown, qual)
    if base == " ":
        return CpGCall(cpg, Call.NOT_DETERMINED, Why.NOT_COVERED, "", None)
    if base == "-":
        return CpGCall(cpg, Call.NOT_DETERMINED, Why.GAP, "-", None)
    if cpg.snp is not None:
        ts, alt = snp_target(amp, cpg.snp)
        if 0 <= ts < amp.length and aln.bases[ts] == alt:
            return CpGCall(cpg, Call.NOT_DETERMINED, Why.SNP, shown, qual)
    if signal is not None and signal.mixed and base in "CTN":
        return CpGCall(cpg, Call.NOT_DETERMINED, Why.MIXED, shown, qual)
    if qual is not None and qual < config.min_qual:
        return CpGCall(cpg, Call.NOT_DETERMINED, Why.LOW_QUALITY, shown, qual)
    if config.nome and t > 0 and amp.target[t - 1] == "G":
        # GpC methylase marks GCG as well: C there is not CpG methylation evidence
        return CpGCall(cpg, Call.NOT_DETERMINED, Why.GCG, shown, qual)
    if base == "C":
        return CpGCall(cpg, Call.METHYLATED, None, shown, qual)
    if base == "T":
        return CpGCall(cpg, Call.UNMETHYLATED, None, shown, qual)
    if base == "N":
        return CpGCall(cpg, Call.NOT_DETERMINED, Why.AMBIGUOUS, shown, qual)
    return CpGCall(cpg, Call.NOT_DETERMINED, Why.OTHER_BASE, shown, qual)


def call_read(amp: Amplicon, aln: AlignedRead, config: CallConfig,
              signals: Optional[dict[int, PeakSignal]] = None) -> tuple[CpGCall, ...]:
    signals = signals or {}
    return tuple(call_cpg(amp, c, aln, config, signals.get(c.target_pos)) for c in amp.cpgs)


def genotype(amp: Amplicon, aln: AlignedRead) -> str:
    """Alleles this read shows at the amplicon's known SNPs, e.g. ``rs2854744:A``; '' if none covered."""
    out = []
    for snp in amp.snps:
        ts, alt = snp_target(amp, snp)
        b = str(aln.bases[ts]) if 0 <= ts < amp.length else " "
        if b in (" ", "-", "N"):
            continue
        name = snp.name or str(one_based(snp.pos))
        ref = amp.frame.allele_on_target(snp.ref)
        if b == alt:
            out.append(f"{name}:{snp.alt}")
        elif b == ref or (ref == "C" and b == "T"):  # a converted C is still the C allele
            out.append(f"{name}:{snp.ref}")
    return ",".join(out)
