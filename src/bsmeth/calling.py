"""Per-CpG methylation calls of one aligned read.

Pipeline position: after ``alignment`` and ``evidence``, before ``qc``.  A CpG is ``M`` when the read
shows C at the CpG's C on the amplified strand, ``U`` for T, and ``-`` (not determined) with a reason
otherwise.  A base below the PHRED threshold is never guessed.  A read carrying the allele of a known SNP
that destroys the CpG gets ``-``/``snp``: a genotype, not a methylation state.

All CpGs of a read are called in one vectorised pass (``call_read``) over per-amplicon site tables
(``sites``, built once per amplicon and shared with ``qc``); the result is a compact ``CpGCalls``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .coords import one_based
from .evidence import PeakSignal, Signals, is_mixed
from .memo import by_identity
from .models import NO_QUAL, WHY_CODES, AlignedRead, Amplicon, CallConfig, CpG, CpGCall, CpGCalls, Why


def snp_target(amp: Amplicon, snp) -> tuple[int, str]:
    """Target coordinate and amplified-strand letter of a SNP's alternative allele."""
    frame = amp.frame
    return frame.target_of(snp.pos), frame.allele_on_target(snp.alt)


def _u(letter: str) -> int:
    """The code point a 'U1' bases array holds for ``letter`` (compared through a uint32 view)."""
    return ord(letter) if letter else 0


@dataclass(frozen=True, eq=False)
class Sites:
    """Per-amplicon tables every read is measured against (target coordinates)."""

    tgt: np.ndarray  # uint32 code points of the target letters
    is_c: np.ndarray  # bool per position: a C on the amplified strand
    cpg: np.ndarray  # bool: the C of a CpG
    gpc: np.ndarray  # bool: a non-CpG C after a G (GpC)
    primer: np.ndarray  # bool: inside a primer
    snp: np.ndarray  # bool: a known SNP's position
    c_sites: np.ndarray  # int64: every C outside primers
    cph: np.ndarray  # bool per position: a C outside primers that is not one of the amplicon's CpGs
    cpg_t: np.ndarray  # int64 per CpG: its target position
    under_primer: np.ndarray  # bool per CpG
    gcg: np.ndarray  # bool per CpG: preceded by G (GpC methylase marks it too)
    snp_t: np.ndarray  # int64 per CpG: target position of its SNP, -1 if none
    snp_alt: np.ndarray  # uint32 per CpG: amplified-strand letter of that SNP's alternative allele
    # per known SNP of the amplicon inside it: (target position, amplified-strand alt and ref letters, the
    # genotype text of each allele, e.g. ``rs2854744:A``), for ``genotype``
    alleles: tuple = ()


_SITES: dict = {}


def sites(amp: Amplicon) -> Sites:
    """The site tables of ``amp``, built on first use (kept for the last few amplicons)."""
    return by_identity(_SITES, amp, lambda: _make_sites(amp))


def _make_sites(amp: Amplicon) -> Sites:
    n = amp.length
    tgt = np.frombuffer(amp.target.encode("ascii"), dtype=np.uint8).astype(np.uint32)
    is_c = tgt == ord("C")
    nxt = np.append(tgt[1:], 0)
    prv = np.insert(tgt[:-1], 0, 0)
    cpg = is_c & (nxt == ord("G"))
    gpc = is_c & ~cpg & (prv == ord("G"))
    primer = np.zeros(n, dtype=bool)
    primer[slice(*amp.forward_span)] = True
    primer[slice(*amp.reverse_span)] = True
    snp = np.zeros(n, dtype=bool)
    for s in amp.snps:
        t = snp_target(amp, s)[0]
        if 0 <= t < n:
            snp[t] = True
    cpg_t = np.array([c.target_pos for c in amp.cpgs], dtype=np.int64)
    cph = is_c & ~primer
    cph[cpg_t] = False
    snp_t, snp_alt = [], []
    for c in amp.cpgs:
        ts, alt = snp_target(amp, c.snp) if c.snp is not None else (-1, "")
        ok = 0 <= ts < n
        snp_t.append(ts if ok else -1)
        snp_alt.append(_u(alt) if ok else 0)
    out = Sites(
        tgt=tgt, is_c=is_c, cpg=cpg, gpc=gpc, primer=primer, snp=snp, c_sites=np.flatnonzero(is_c & ~primer),
        cph=cph,
        cpg_t=cpg_t, under_primer=np.array([c.under_primer for c in amp.cpgs], dtype=bool),
        gcg=np.array([t > 0 and amp.target[t - 1] == "G" for t in cpg_t.tolist()], dtype=bool),
        snp_t=np.array(snp_t, dtype=np.int64), snp_alt=np.array(snp_alt, dtype=np.uint32),
        alleles=tuple(_alleles(amp)),
    )
    for a in vars(out).values():
        if isinstance(a, np.ndarray):
            a.flags.writeable = False  # shared between reads: never modified in place
    return out


_M, _U, _N, _SPACE, _GAP = ord("C"), ord("T"), ord("N"), ord(" "), ord("-")
# the reasons in the order of precedence of ``_calls``' np.select (0: called)
_WHY_ORDER = (None, Why.UNDER_PRIMER, Why.NOT_COVERED, Why.GAP, Why.SNP, Why.MIXED, Why.LOW_QUALITY, Why.GCG,
              Why.AMBIGUOUS, Why.OTHER_BASE)
_WHY_LETTERS = np.array([ord(WHY_CODES[w]) for w in _WHY_ORDER], dtype=np.uint8)


def _calls(amp: Amplicon, aln: AlignedRead, config: CallConfig, idx: np.ndarray,
           c: Optional[np.ndarray], t: Optional[np.ndarray], ref: Optional[np.ndarray]) -> CpGCalls:
    """Calls of the CpGs ``idx`` (indexes into amp.cpgs); c/t/ref: their peak signals (NaN where none),
    or None for a read without trace evidence."""
    st = sites(amp)
    pos = st.cpg_t[idx]
    b = aln.bases.view(np.uint32)[pos]
    q = aln.quals[pos].astype(np.int64)
    shown = (b != _SPACE) & (b != _GAP)
    has_q = shown & (q != NO_QUAL)
    snp_t = st.snp_t[idx]
    snp_hit = (snp_t >= 0) & (aln.bases.view(np.uint32)[np.maximum(snp_t, 0)] == st.snp_alt[idx])
    has_sig = None if c is None else ~np.isnan(c)
    # NaN (no signal) compares false: is_mixed is False there
    mixed = np.zeros(len(idx), dtype=bool) if c is None else (is_mixed(c, t, ref) & ((b == _M) | (b == _U) | (b == _N)))
    # the reason, by precedence: the first that applies (assigned last to first, so the first wins)
    why = np.full(len(idx), 9, dtype=np.intp)  # other_base
    why[b == _N] = 8
    why[(b == _M) | (b == _U)] = 0
    if config.nome:
        why[st.gcg[idx]] = 7
    why[has_q & (q < config.min_qual)] = 6
    why[mixed] = 5
    why[snp_hit] = 4
    why[b == _GAP] = 3
    why[b == _SPACE] = 2
    why[st.under_primer[idx]] = 1
    code = np.where(why == 0, np.where(b == _M, ord("M"), ord("U")), ord("-")).astype(np.uint8)
    whys = _WHY_LETTERS[why]
    bases = np.where(b == _GAP, _GAP, np.where(shown, b, _SPACE)).astype(np.uint8)
    quals = np.where(has_q, q, 255).astype(np.uint8)
    cs = ts = contra = None
    if c is not None:
        # the evidence is attached wherever the read has a base at the CpG
        keep = has_sig & (why != 2) & (why != 3)
        cs, ts = np.where(keep, c, np.nan), np.where(keep, t, np.nan)
        total = c + t
        some = total > 0  # NaN (no signal) compares false
        f = c / np.where(some, total, 1.0)
        contra = keep & some & (((code == ord("M")) & (f < 0.5)) | ((code == ord("U")) & (f > 0.5)))
        contra = contra.astype(np.uint8).tobytes()
    return CpGCalls(tuple(amp.cpgs[i] for i in idx.tolist()) if len(idx) != len(amp.cpgs) else amp.cpgs,
                    code.tobytes().decode("ascii"), whys.tobytes().decode("ascii"),
                    bases.tobytes().decode("ascii"), quals.tobytes(), cs, ts, contra or b"")


def _signal_arrays(amp: Amplicon, idx: np.ndarray, signals) -> tuple:
    """Per-CpG (c, t, ref) arrays from ``signals`` (NaN where a CpG has none); Nones without signals."""
    if not signals:
        return None, None, None
    pos = sites(amp).cpg_t[idx]
    if isinstance(signals, Signals):
        tg = signals.targets
        j = np.minimum(np.searchsorted(tg, pos), len(tg) - 1)
        hit = tg[j] == pos
        return (np.where(hit, signals.c[j], np.nan), np.where(hit, signals.t[j], np.nan),
                np.where(hit, signals.ref[j], np.nan))
    out = np.full((3, len(pos)), np.nan)
    for k, p in enumerate(pos.tolist()):
        s = signals.get(p)
        if s is not None:
            out[:, k] = (s.c, s.t, s.ref)
    return out[0], out[1], out[2]


def call_read(amp: Amplicon, aln: AlignedRead, config: CallConfig, signals=None) -> CpGCalls:
    """The calls of every CpG of the amplicon, with the trace evidence attached when there is a trace.

    ``signals``: ``evidence.Signals`` (or any mapping target position -> ``PeakSignal``), or None.
    """
    idx = np.arange(len(amp.cpgs))
    return _calls(amp, aln, config, idx, *_signal_arrays(amp, idx, signals))


def call_cpg(amp: Amplicon, cpg: CpG, aln: AlignedRead, config: CallConfig,
             signal: Optional[PeakSignal] = None) -> CpGCall:
    """The call of one CpG (the same rules as ``call_read``, which calls them all at once)."""
    idx = np.array([amp.cpgs.index(cpg)])
    sig = (None, None, None) if signal is None else (np.array([signal.c]), np.array([signal.t]),
                                                     np.array([signal.ref]))
    return _calls(amp, aln, config, idx, *sig)[0]


def _alleles(amp: Amplicon):
    """``Sites.alleles``: the amplicon's SNPs that lie inside it, as ``genotype`` reads them."""
    for snp in amp.snps:
        ts, alt = snp_target(amp, snp)
        if 0 <= ts < amp.length:
            name = snp.name or str(one_based(snp.pos))
            yield ts, alt, amp.frame.allele_on_target(snp.ref), f"{name}:{snp.alt}", f"{name}:{snp.ref}"


def genotype(amp: Amplicon, aln: AlignedRead) -> str:
    """Alleles this read shows at the amplicon's known SNPs, e.g. ``rs2854744:A``; '' if none covered."""
    out = []
    for ts, alt, ref, shows_alt, shows_ref in sites(amp).alleles:
        b = str(aln.bases[ts])
        if b in (" ", "-", "N"):
            continue
        if b == alt:
            out.append(shows_alt)
        elif b == ref or (ref == "C" and b == "T"):  # a converted C is still the C allele
            out.append(shows_ref)
    return ",".join(out)
