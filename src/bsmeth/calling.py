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
from functools import lru_cache
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
    snp_at: np.ndarray  # intp per CpG: target position of its SNP (0 if none)
    snp_code: np.ndarray  # uint32 per CpG: code point of the SNP's amplified-strand alt letter (``_NO_BASE``: none)
    any_snp: bool  # some CpG has a SNP
    # per CpG, the read-independent bits of its rule key (``_CallKey``), without and with --nome
    key_plain: np.ndarray
    key_nome: np.ndarray
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
    snp_at, snp_code = [], []
    for c in amp.cpgs:
        ts, alt = snp_target(amp, c.snp) if c.snp is not None else (-1, "")
        ok = 0 <= ts < n
        snp_at.append(ts if ok else 0)
        snp_code.append(_u(alt) if ok else _NO_BASE)
    under_primer = np.array([c.under_primer for c in amp.cpgs], dtype=bool)
    gcg = np.array([t > 0 and amp.target[t - 1] == "G" for t in cpg_t.tolist()], dtype=bool)
    plain = np.where(under_primer, _K_PRIMER, 0).astype(np.intp)
    out = Sites(
        tgt=tgt, is_c=is_c, cpg=cpg, gpc=gpc, primer=primer, snp=snp, c_sites=np.flatnonzero(is_c & ~primer),
        cph=cph,
        cpg_t=cpg_t, under_primer=under_primer, gcg=gcg,
        snp_at=np.array(snp_at, dtype=np.intp), snp_code=np.array(snp_code, dtype=np.uint32),
        any_snp=bool(np.any(np.array(snp_code, dtype=np.uint32) != _NO_BASE)),
        key_plain=plain, key_nome=plain + np.where(gcg, _K_GCG, 0),
        alleles=tuple(_alleles(amp)),
    )
    for a in vars(out).values():
        if isinstance(a, np.ndarray):
            a.flags.writeable = False  # shared between reads: never modified in place
    return out


# What decides a CpG's call is a handful of facts about it, packed into one small integer key per CpG; the
# call, its reason and what is kept with it are looked up in tables made once from the rules (``_rule``) over
# every key.  A read's calls cost a few array operations, however many rules there are.
_K_PRIMER, _K_GCG, _K_SNP, _K_MIXED, _K_LOW, _K_QUAL = 1, 2, 4, 8, 16, 32  # the key's bits
_K_BASE = 64  # the class of the base shown (``_B_*``), times this
_B_OTHER, _B_C, _B_T, _B_N, _B_SPACE, _B_GAP = range(6)
_N_KEYS = 6 * _K_BASE
_NO_BASE = 0xFFFFFFFF  # a code point no base has: "no SNP" in ``Sites.snp_code``

_BASE_KEY = np.full(256, _B_OTHER * _K_BASE, dtype=np.intp)  # by code point; beyond 255 (clipped): other
for _b, _cls in (("C", _B_C), ("T", _B_T), ("N", _B_N), (" ", _B_SPACE), ("-", _B_GAP)):
    _BASE_KEY[ord(_b)] = _cls * _K_BASE


@lru_cache(maxsize=8)
def _qual_key(min_qual: int) -> np.ndarray:
    """The quality bits of the key by PHRED (0-255): known (not ``NO_QUAL``) and, if known, below ``min_qual``."""
    q = np.arange(256)
    known = q != NO_QUAL
    return np.where(known, _K_QUAL, 0) + np.where(known & (q < min_qual), _K_LOW, 0)


def _rule(key: int) -> tuple[str, Optional[Why]]:
    """The call ('M', 'U' or '-') of a CpG with this key and its reason: the first that applies, in order."""
    base = key // _K_BASE
    if key & _K_PRIMER:
        return "-", Why.UNDER_PRIMER
    if base == _B_SPACE:
        return "-", Why.NOT_COVERED
    if base == _B_GAP:
        return "-", Why.GAP
    if key & _K_SNP:  # the read shows the SNP allele that destroys the CpG
        return "-", Why.SNP
    if key & _K_MIXED and base in (_B_C, _B_T, _B_N):  # two templates where the read shows C, T or N
        return "-", Why.MIXED
    if key & _K_LOW:  # a known PHRED below the threshold
        return "-", Why.LOW_QUALITY
    if key & _K_GCG:  # set with --nome only
        return "-", Why.GCG
    if base in (_B_C, _B_T):
        return ("M" if base == _B_C else "U"), None
    return "-", Why.AMBIGUOUS if base == _B_N else Why.OTHER_BASE


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """Per key: (code letter, reason letter, 255 where no quality is shown, 1 where the trace evidence is kept),
    and +1 / -1 where a kept M / U call is contradicted by a C share below / above one half."""
    rules = [_rule(k) for k in range(_N_KEYS)]
    key = np.arange(_N_KEYS)
    base = key // _K_BASE
    shown = (base != _B_SPACE) & (base != _B_GAP)
    table = np.zeros((_N_KEYS, 4), dtype=np.uint8)
    table[:, 0] = [ord(c) for c, _ in rules]
    table[:, 1] = [ord(WHY_CODES[w]) for _, w in rules]
    table[:, 2] = np.where(shown & (key & _K_QUAL > 0), 0, 255)  # the PHRED of a shown base, when known
    table[:, 3] = [w not in (Why.NOT_COVERED, Why.GAP) for _, w in rules]  # wherever the read has a base there
    against = table[:, 3] * np.select([table[:, 0] == ord("M"), table[:, 0] == ord("U")], [1.0, -1.0], 0.0)
    table.flags.writeable = against.flags.writeable = False
    return table, against


_TABLE, _AGAINST = _tables()
# constants as 0-d arrays: numpy combines an array with a 0-d array faster than with a Python number
_NAN, _HALF, _ZERO, _TINY = (np.array(x) for x in (np.nan, 0.5, 0.0, 5e-324))  # _TINY: the least float > 0
_K_SNP_A, _K_MIXED_A = np.array(_K_SNP), np.array(_K_MIXED)


def _calls(amp: Amplicon, st: Sites, aln: AlignedRead, config: CallConfig, idx: Optional[np.ndarray],
           ct: Optional[np.ndarray], mixed: Optional[np.ndarray], hit: Optional[np.ndarray]) -> CpGCalls:
    """Calls of the CpGs ``idx`` (indexes into amp.cpgs; None: all of them); ``st``: ``sites(amp)``; ``ct``:
    their C and T peak signals (2 rows, any value where ``hit`` is False), ``mixed``: two templates there
    (``evidence.is_mixed``) and ``hit``: a signal was measured there, or Nones for a read without trace evidence.

    The signals are masked once, where none was measured or none is kept (one ``np.where``: on arrays of one
    entry per CpG each operation costs more than its work), and the contradiction is read from what is kept."""
    pos, snp_at, snp_code = st.cpg_t, st.snp_at, st.snp_code
    key0 = st.key_nome if config.nome else st.key_plain
    if idx is not None:
        pos, snp_at, snp_code, key0 = pos[idx], snp_at[idx], snp_code[idx], key0[idx]
    codes = aln.bases.view(np.uint32)
    b = codes[pos]
    q = aln.quals[pos]
    key = _BASE_KEY.take(b, mode="clip")
    key += _qual_key(config.min_qual)[q]
    key += key0
    if st.any_snp:
        key += (codes[snp_at] == snp_code) * _K_SNP_A
    if mixed is not None:
        key += mixed * _K_MIXED_A
    row = _TABLE[key]
    n = len(pos)
    text = row[:, :2].tobytes(order="F").decode("ascii")  # the codes, then the reasons
    cs = ts = None
    contra = b""
    if ct is not None:
        cs, ts = np.where(row[:, 3] & hit, ct, _NAN)  # NaN where no evidence is kept, or none was found
        c, t = cs, ts  # no contradiction without evidence (``_AGAINST`` is 0 where none is kept)
        total = c + t
        f = c / np.maximum(total, _TINY)  # c's share of the signal (NaN compares false), where there is some
        contra = ((_AGAINST[key] * (_HALF - f) > _ZERO) & (total > _ZERO)).view(np.uint8).tobytes()
    return CpGCalls(amp.cpgs if n == len(amp.cpgs) else tuple(amp.cpgs[i] for i in idx.tolist()),
                    text[:n], text[n:], b.astype(np.uint8).tobytes().decode("ascii"),
                    np.maximum(q, row[:, 2]).astype(np.uint8, copy=False).tobytes(), cs, ts, contra)


def _signal_arrays(pos: np.ndarray, signals) -> tuple:
    """Per-CpG C and T signals (2 rows, any value where a CpG has none), mixed flags and whether the CpG has a
    signal, from ``signals`` at the CpGs' target positions ``pos``; Nones without signals."""
    if not signals:
        return None, None, None
    if isinstance(signals, Signals):
        tg = signals.targets
        j = tg.searchsorted(pos)  # len(tg) past the last: clipped, and no hit
        hit = tg.take(j, mode="clip") == pos
        return signals.heights.take(j, axis=1, mode="clip"), hit & signals.mixed.take(j, mode="clip"), hit
    out = np.full((3, len(pos)), np.nan)
    hit = np.zeros(len(pos), dtype=bool)
    for k, p in enumerate(pos.tolist()):
        s = signals.get(p)
        if s is not None:
            out[:, k] = (s.c, s.t, s.ref)
            hit[k] = True
    return out[:2], is_mixed(out[0], out[1], out[2]), hit  # NaN (no signal) is not mixed


def call_read(amp: Amplicon, aln: AlignedRead, config: CallConfig, signals=None) -> CpGCalls:
    """The calls of every CpG of the amplicon, with the trace evidence attached when there is a trace.

    ``signals``: ``evidence.Signals`` (or any mapping target position -> ``PeakSignal``), or None.
    """
    st = sites(amp)
    return _calls(amp, st, aln, config, None, *_signal_arrays(st.cpg_t, signals))


def call_cpg(amp: Amplicon, cpg: CpG, aln: AlignedRead, config: CallConfig,
             signal: Optional[PeakSignal] = None) -> CpGCall:
    """The call of one CpG (the same rules as ``call_read``, which calls them all at once)."""
    idx = np.array([amp.cpgs.index(cpg)])
    sig = ((None, None, None) if signal is None else
           (np.array([[signal.c], [signal.t]]), np.array([signal.mixed]), np.ones(1, dtype=bool)))
    return _calls(amp, sites(amp), aln, config, idx, *sig)[0]


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
