"""``bsmeth quantify``: percent methylation per CpG from direct Sanger reads of uncloned bisulfite PCR product.

Pipeline position: a job of its own next to ``call`` (same inputs, sample sheet
and reference).  First pass per read: ``reads`` -> ``alignment`` -> peak
heights (``evidence.peak_heights``); then a calibration over all reads of the
run; second pass: the per-CpG estimate -> ``quantify.tsv``, ``quantify.json``
and a plot.

In a direct read every CpG shows a C and a T peak in the proportion of
methylated and unmethylated molecules, drawn by two different dye terminators.
What is corrected and how (docs/trace_evidence.md has the reasoning and the
measured errors; "C"/"T" mean the G/A channels on a read of the reverse
complement):

* Heights: the channel's peak at the base, minus the channel's minimum within
  ``BASELINE_SPACINGS`` bases (a T run keeps its floor), minus the channel's
  *floor*: its median height at positions where its letter cannot be (pure A
  and G), noise and tails of neighbouring peaks.
* Local full-peak height ``E``: at positions whose amplified-strand letter is
  A, G or T the product is one base.  Their heights divided by a per-letter
  brightness give a running median ``E``; each letter's brightness is the
  median of height / ``E`` (three rounds).  The T brightness ``d_t`` is thus
  measured on the read's own pure T peaks, and ``c = C / (E d_t)``,
  ``t = T / (E d_t)`` are the shares of a full T peak.
* The dye ratio ``k = d_c / d_t`` (C brightness over T) has no pure peak to be
  measured on in any read: the converted strand has no C outside CpGs.  At a
  CpG the shares add up to one, ``c / k + t = g`` (``g``: the site's context
  effect).  So:
  - *batch* (the default whenever the run's reads of one orientation span
    enough methylation -- a dose series, or samples plus 0 % / 100 %
    standards): over reads, the points ``(c, t)`` of CpG j lie on the line
    ``t = g_j - c / k_j``; the slope (errors-in-variables regression, pooled
    over sites, each site shrunk towards the pool) gives the site's own dye
    ratio with its dye-specific context effect, the intercept its context.
  - *single read* (one level only, or a lone read): ``g`` is taken as 1 (the
    CpGs' context averages like the reference peaks'), giving
    ``k = sum(c) / sum(1 - t)`` over the read's CpGs with one site of prior at
    ``k = 1``.  Unbiased over amplicons, but within one amplicon the CpGs'
    context can differ from the reference peaks' (by ~15 % with the simulator's
    context effects): a systematic error of up to ~10 points at 10-50 %.  A read whose CpG C peaks
    add up to less than one full peak (``MIN_C_SIGNAL``) is noted
    ``dye_ratio_prior``: its ratio is mostly the prior (three sites' worth at
    ``k = 1``), which matters little there since its C peaks are small.
* C share at a site: ``r = (C / k) / (C / k + T)``.
* Incomplete conversion: the read's own non-CpG C are unmethylated, so their
  median ``r`` is the background ``b``; methylation = ``(r - b) / (1 - b)``,
  clipped to [0, 1].
* Uncertainty (``low``/``high``, 95 %): the scatter (1.4826 MAD) of ``r`` over
  the non-CpG C, plus ``r (1 - r)`` times the log-sd of ``k`` (batch: the
  slope's standard error and the peaks' noise between reads, measured on pure
  peaks; single read: bootstrap over CpGs, the possible context mismatch
  estimated from the read's own spread of pure peaks, and a 10 % dye-specific
  site effect ``SITE_DYE_SD``).
"""

from __future__ import annotations

import json
import logging
import math
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import __version__
from .alignment import align
from .atomic import write_text
from .coords import one_based
from .errors import InputError
from .evidence import channel_of, geometry, peak_heights, usable
from .models import AlignedRead, Amplicon, Read, Unreadable

log = logging.getLogger("bsmeth")

QUANTIFY_COLUMNS = ("read", "sample", "cpg", "pos", "percent", "low", "high", "c_signal", "t_signal",
                    "background", "note")
OUTPUTS = ("quantify.tsv", "quantify.json")
SITE_DYE_SD = 0.10  # assumed site-specific dye effect (each dye), when no standards calibrate the sites
BASELINE_SPACINGS = 5  # baseline = channel minimum within this many base spacings (a 10-T run keeps its floor)
ENVELOPE_HALF = 7  # pure peaks each side in the running median of the local full-peak height
PRIOR_SITES = 3.0  # weight (in CpG sites) of the prior d_c = d_t
MIN_C_SIGNAL = 1.0  # single read: C peaks summing to less than one full T peak: the dye ratio is prior-driven
SHRINK = 0.2  # batch calibration: weight of the pooled slope in a site's slope (sum of squares of c)
MAX_POOL_SE = 0.1  # batch calibration only when the pooled slope is known to 10 %
Z = 1.959964


@dataclass(frozen=True)
class QuantifyConfig:
    """Options of ``bsmeth quantify``."""

    standard0: tuple[str, ...] = ()  # reads of 0 % methylated product (files, folders, patterns)
    standard100: tuple[str, ...] = ()  # reads of 100 % methylated product
    min_signal: float = 0.25  # C + T below this fraction of a full peak there: no estimate (low_signal)
    min_aligned: int = 30  # fewer amplicon bases aligned: no_amplicon
    min_identity: float = 0.90  # bisulfite-aware identity below this: low_identity, no estimate
    formats: tuple[str, ...] = ("svg", "png", "pdf")
    force: bool = False
    bootstrap: int = 200
    seed: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SiteEstimate:
    """One CpG of one read (fractions in [0, 1]; None where no estimate)."""

    cpg: int
    pos: int  # 1-based reference position
    fraction: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None
    c_signal: Optional[float] = None
    t_signal: Optional[float] = None
    background: Optional[float] = None
    note: str = ""


@dataclass(frozen=True, eq=False)
class ReadEstimate:
    """All CpGs of one read, with the read's calibration figures (dye ratio, background...) for quantify.json."""

    read_id: str
    file: str
    sample: str
    sites: tuple[SiteEstimate, ...]
    orientation: str = ""  # empty when the read could not be used (then ``note`` says why)
    figures: dict = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class _Heights:
    """Per aligned target position of one read: heights in the four channels and the local full-peak height."""

    targets: np.ndarray  # target positions (aligned, with a peak)
    h: dict  # amplified-strand letter -> heights (C, T: the C/T channels; A, G, T: pure letters)
    envelope: np.ndarray  # local full-peak height of brightness 1
    bright: dict  # amplified-strand letter (A, G, T) -> brightness relative to the envelope
    floor: dict = field(default_factory=dict)  # C, T -> channel floor removed, relative to the envelope
    spread: float = 0.0  # robust sd of log(pure peak / (E brightness)): the read's context effects and noise
    n_t: int = 0  # pure T peaks the T brightness rests on


def _running_median(values: np.ndarray, half: int) -> np.ndarray:
    """Median of ``values`` over a window of ``2 half + 1`` entries (shrunk at the ends)."""
    n = len(values)
    if n == 0:
        return values
    padded = np.pad(values.astype(float), half, mode="constant", constant_values=np.nan)
    win = sliding_window_view(padded, 2 * half + 1)
    ok = ~np.isnan(win)
    srt = np.sort(np.where(ok, win, np.inf), axis=1)
    k = ok.sum(axis=1)
    rows = np.arange(n)
    return (srt[rows, (k - 1) // 2] + srt[rows, k // 2]) / 2


def measure(amp: Amplicon, read: Read, aln: AlignedRead) -> Optional[_Heights]:
    """Channel heights at every aligned target position, the envelope and letter brightness."""
    tr = read.trace
    t_all = np.arange(aln.target_start, aln.target_end)
    idx = aln.read_pos[t_all]
    keep = idx >= 0
    t_all, idx = t_all[keep], idx[keep]
    n_points = len(tr.channels["A"])
    xs = tr.peaks[idx].astype(np.int64)
    ok = (xs >= 0) & (xs < n_points)
    t_all, xs = t_all[ok], xs[ok]
    if len(t_all) < 10:
        return None
    half, _ = geometry(tr.peaks)
    window = max(4, int(round(BASELINE_SPACINGS * float(np.median(np.diff(tr.peaks))))))
    h = {x: peak_heights(tr.channels[channel_of(x, aln.orientation)], xs, half, window) for x in "ACGT"}
    letters = np.array([amp.target[t] for t in t_all])
    in_primer = np.array([amp.in_primer(t) for t in t_all])
    pure = np.isin(letters, ["A", "G", "T"]) & ~in_primer
    if pure.sum() < 10:
        return None
    own = np.select([letters == x for x in "AGT"], [h["A"], h["G"], h["T"]], 0.0)
    bright = {x: 1.0 for x in "AGT"}
    order = np.argsort(t_all)  # target order; read order is the same or reversed, the window is symmetric
    pure_sorted = order[pure[order]]
    for _ in range(3):
        scaled = own[pure_sorted] / np.array([bright[x] for x in letters[pure_sorted]])
        env_pure = _running_median(scaled, ENVELOPE_HALF)
        env = np.interp(t_all, t_all[pure_sorted], env_pure)
        ratio = own / np.maximum(env, 1e-9)
        bright = {x: float(np.median(ratio[pure & (letters == x)])) if (pure & (letters == x)).any() else 1.0
                  for x in "AGT"}
        norm = float(np.median([bright[x] for x in letters[pure_sorted]]))
        bright = {x: v / norm for x, v in bright.items()}
    scaled = own[pure_sorted] / np.array([bright[x] for x in letters[pure_sorted]])
    env = np.maximum(np.interp(t_all, t_all[pure_sorted], _running_median(scaled, ENVELOPE_HALF)), 1e-9)
    # the floor of the C and T channels where their letter cannot be (pure A and G positions): noise and
    # the tails of neighbouring peaks, present at every site; removed before the ratio
    other = pure & (letters != "T")
    floor = {x: float(np.median(h[x][other] / env[other])) if other.sum() >= 5 else 0.0 for x in "CT"}
    h = {**h, **{x: np.maximum(h[x] - floor[x] * env, 0.0) for x in "CT"}}
    scale = env[pure] * np.array([bright[x] for x in letters[pure]])
    logs = np.log(np.maximum(own[pure], 1e-9) / scale)
    spread = float(1.4826 * np.median(np.abs(logs - np.median(logs))))
    return _Heights(t_all, h, env, bright, floor, spread, int(np.count_nonzero(pure & (letters == "T"))))


def _c_sites(amp: Amplicon, hts: _Heights) -> tuple[np.ndarray, np.ndarray]:
    """Indexes into ``hts.targets`` of assessable CpG Cs and of non-CpG Cs outside primers."""
    cpg_t = {c.target_pos for c in amp.cpgs if not c.under_primer}
    tgt = amp.target
    cpg, cph = [], []
    for i, t in enumerate(hts.targets):
        t = int(t)
        if tgt[t] != "C" or amp.in_primer(t):
            continue
        if t in cpg_t:
            cpg.append(i)
        elif not (t + 1 < len(tgt) and tgt[t + 1] == "G"):
            cph.append(i)
    return np.array(cpg, dtype=int), np.array(cph, dtype=int)


@dataclass(frozen=True, eq=False)
class Measured:
    """One read after alignment and peak measurement (first pass), or why it cannot be used."""

    read_id: str
    file: str
    sample: str
    orientation: str = ""
    hts: Optional[_Heights] = None
    note: str = ""  # read-level: unreadable, no_trace, no_amplicon, low_signal (with the reason)
    detail: str = ""
    cpg_i: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # indexes into hts.targets
    cph_i: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def relative(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """C and T heights relative to a full T peak there (C/(E d_t), T/(E d_t)), CpG and CpH indexes."""
        hts = self.hts
        d_t = hts.bright["T"]
        return hts.h["C"] / (hts.envelope * d_t), hts.h["T"] / (hts.envelope * d_t), self.cpg_i, self.cph_i


def measure_read(amp: Amplicon, item: Union[Read, Unreadable], sample: str, config: QuantifyConfig,
                 file: str = "") -> Measured:
    """First pass over one read: alignment and peak heights (nothing is dropped: failures carry a note)."""
    file = file or item.file
    aln, note = _aligned(amp, item, config)
    if aln is None:
        detail = item.message if isinstance(item, Unreadable) else ""
        return Measured(item.id, file, sample, note=note, detail=detail)
    hts = measure(amp, item, aln)
    if hts is None:
        return Measured(item.id, file, sample, aln.orientation, note="low_signal",
                        detail="too few measurable peaks in the aligned part")
    cpg_i, cph_i = _c_sites(amp, hts)
    return Measured(item.id, file, sample, aln.orientation, hts, cpg_i=cpg_i, cph_i=cph_i)


# ---------------------------------------------------------------------------------------------- calibration


def _dye_ratio(c_rel: np.ndarray, t_rel: np.ndarray) -> tuple[float, float]:
    """Single read: (k = d_c / d_t, information) from its CpGs; one site of prior at k = 1."""
    info = max(float(np.sum(1 - t_rel)), 0.0)  # summed over sites: per-site noise cancels, clipping would not
    k = (float(np.sum(c_rel)) + PRIOR_SITES) / (info + PRIOR_SITES)
    return min(max(k, 0.05), 20.0), info


def _noise_ratio(stats) -> float:
    """Error variance of t over that of c: peak-height noise is proportional to the height."""
    c = sum(v[1] * v[0] for v in stats)
    t = sum(v[2] * v[0] for v in stats)
    return float(np.clip((t / c) ** 2, 0.25, 4.0)) if c > 0 and t > 0 else 1.0


def _deming(sxx: float, sxy: float, syy: float, delta: float) -> float:
    """Slope of y on x when both carry errors (variance ratio ``delta`` = var(y err) / var(x err))."""
    if sxy == 0:
        return 0.0
    d = syy - delta * sxx
    return (d + math.sqrt(d * d + 4 * delta * sxy * sxy)) / (2 * sxy)


@dataclass(frozen=True)
class SiteCalibration:
    """Per orientation, from all reads of the run: ``t = gamma_j - beta_j c`` at every CpG j."""

    beta: dict  # CpG target position -> 1 / k_j
    beta_se: dict
    gamma: dict  # the site's full-peak height (its context effect)
    beta_pool: float
    beta_pool_se: float
    n_reads: int
    peak_sd: float  # relative peak-height noise of one peak between reads (log scale)


def calibrate_batch(amp: Amplicon, measured: Sequence[Measured], config: QuantifyConfig) -> dict:
    """orientation -> SiteCalibration, for the orientations whose reads span enough methylation.

    At a CpG the C and T shares add up to one, so over reads of different methylation the relative
    heights lie on a line ``t = gamma_j - c / k_j``: the slope gives the site's dye ratio (its
    dye-specific context included) and the intercept its full-peak height.  The slope is pooled over
    sites (site fixed effects) and each site's own slope shrunk towards it (``SHRINK``, in units of
    the sum of squares of ``c``).  Reads of one methylation level leave the slope unidentified: then
    (relative se of the pooled slope above ``MAX_POOL_SE``) no calibration, each read calibrates itself.
    """
    cpg_t = [c.target_pos for c in amp.cpgs if not c.under_primer]
    out = {}
    for orient in "+-":
        data: dict = {t: [] for t in cpg_t}
        reads = [m for m in measured if m.hts is not None and m.orientation == orient]
        for m in reads:
            c_rel, t_rel, cpg_i, _ = m.relative()
            for i in cpg_i:
                if max(c_rel[i], t_rel[i]) >= config.min_signal / 2:
                    data[int(m.hts.targets[i])].append((float(c_rel[i]), float(t_rel[i])))
        stats = {}
        for t, pts in data.items():
            if len(pts) >= 3:
                a = np.array(pts)
                dc, dt = a[:, 0] - a[:, 0].mean(), a[:, 1] - a[:, 1].mean()
                stats[t] = (len(a), a[:, 0].mean(), a[:, 1].mean(), float(dc @ dc), float(dc @ dt), a,
                            float(dt @ dt))
        scc = sum(v[3] for v in stats.values())
        if len(reads) < 3 or not stats or scc <= 0:
            continue
        sct = sum(v[4] for v in stats.values())
        stt = sum(v[6] for v in stats.values())
        beta_pool = -_deming(scc, sct, stt, _noise_ratio(stats.values()))
        if beta_pool <= 0:
            continue
        res = [((v[5][:, 1] - v[2]) + beta_pool * (v[5][:, 0] - v[1])) for v in stats.values()]
        dof = max(sum(v[0] for v in stats.values()) - len(stats) - 1, 1)
        sigma = float(np.sqrt(sum(float(r @ r) for r in res) / dof))
        pool_se = sigma / math.sqrt(scc)
        if pool_se / beta_pool > MAX_POOL_SE:
            log.info("reads in orientation %s span too little methylation to calibrate the dye ratio across "
                     "reads (slope %.2f +- %.2f): each read calibrates itself", orient, beta_pool, pool_se)
            continue
        beta, beta_se, gamma = {}, {}, {}
        for t, (n, cm, tm, sxx, sxy, a, syy) in stats.items():
            own = -_deming(sxx, sxy, syy, _noise_ratio([stats[t]])) if sxy < 0 else beta_pool
            own = min(max(own, beta_pool / 3), beta_pool * 3)  # a site with little spread must not run away
            b = (sxx * own + SHRINK * beta_pool) / (sxx + SHRINK)
            r = a[:, 1] - (tm + b * cm) + b * a[:, 0]
            sd = float(np.sqrt(float(r @ r) / max(n - 2, 1))) if n > 3 else sigma
            beta[t], gamma[t] = b, tm + b * cm
            beta_se[t] = math.sqrt(max(sd, sigma) ** 2 / (sxx + SHRINK) + (SHRINK / (sxx + SHRINK) * pool_se) ** 2)
        out[orient] = SiteCalibration(beta, beta_se, gamma, beta_pool, pool_se, len(reads),
                                      _peak_noise(amp, reads))
    return out


def _peak_noise(amp: Amplicon, reads: Sequence[Measured]) -> float:
    """Relative noise of one peak between reads: the sd over reads of log(height / (E brightness)) at a pure
    position (its context effect is the same in every read), median over positions."""
    logs: dict = {}
    for m in reads:
        hts = m.hts
        for i, t in enumerate(hts.targets):
            x = amp.target[int(t)]
            if x in "AGT" and not amp.in_primer(int(t)) and hts.h[x][i] > 0:
                logs.setdefault(int(t), []).append(math.log(hts.h[x][i] / (hts.envelope[i] * hts.bright[x])))
    sds = [float(np.std(v, ddof=1)) for v in logs.values() if len(v) >= 3]
    return float(np.median(sds)) if sds else SITE_DYE_SD


# ---------------------------------------------------------------------------------------------- estimate


def estimate(amp: Amplicon, m: Measured, config: QuantifyConfig,
             calibration: Optional[SiteCalibration] = None) -> ReadEstimate:
    """Second pass: per-CpG estimates of one measured read (batch calibration if given, else its own)."""
    if m.hts is None:
        sites = tuple(SiteEstimate(c.number, one_based(c.ref_pos), note="under_primer" if c.under_primer else m.note)
                      for c in amp.cpgs)
        return ReadEstimate(m.read_id, m.file, m.sample, sites, m.orientation,
                            note=m.note + (f": {m.detail}" if m.detail else ""))
    hts = m.hts
    c_rel, t_rel, cpg_i, cph_i = m.relative()
    # sites where neither channel carries a peak (a gap, a compression): out of the dye-ratio estimate;
    # the final low_signal check comes once the C peaks are corrected for their dye
    use = cpg_i[np.maximum(c_rel, t_rel)[cpg_i] >= config.min_signal / 2]
    k_site: dict = {}
    site_se: dict = {}
    peak_sd = SITE_DYE_SD
    if calibration is not None:
        peak_sd = calibration.peak_sd
        k_read = 1 / calibration.beta_pool
        k_sd = calibration.beta_pool_se / calibration.beta_pool
        info = max(float(np.sum(1 - t_rel[use])), 0.0)
        source = f"batch of {calibration.n_reads} reads"
        for t, b in calibration.beta.items():
            k_site[t] = 1 / max(b, 1e-3)
            site_se[t] = calibration.beta_se[t] / max(b, 1e-3)
    else:
        k_read, info = _dye_ratio(c_rel[use], t_rel[use])
        source = "read" if float(np.sum(c_rel[use])) >= MIN_C_SIGNAL else "prior"
        rng = np.random.default_rng(config.seed)
        boots = [_dye_ratio(c_rel[s], t_rel[s])[0] for s in
                 (rng.choice(use, len(use)) for _ in range(config.bootstrap))] if len(use) > 1 else [k_read]
        # the bootstrap sees the sites' noise, not that the CpGs' context effects need not average like the
        # pure T peaks': their means differ by about d = spread * sqrt(1/n_cpg + 1/n_t), which moves
        # sum(1 - t) by d per site against sum(c) / k = m per site: log k by d / m at a methylation share m
        m_hat = min(max(info / max(len(use), 1), 0.05), 1.0)
        ctx = hts.spread * math.sqrt(1 / max(len(use), 1) + 1 / max(hts.n_t, 1)) / m_hat
        k_sd = math.sqrt(float(np.var(np.log(boots))) + min(ctx, 1.0) ** 2)
    k_at = np.array([k_site.get(int(t), k_read) for t in hts.targets])
    total_ok = (c_rel / k_at + t_rel) >= config.min_signal
    c_adj = hts.h["C"] / k_at
    denom = c_adj + hts.h["T"]
    r = np.where(denom > 0, c_adj / np.maximum(denom, 1e-12), np.nan)
    cph_ok = cph_i[total_ok[cph_i]] if len(cph_i) else cph_i
    if len(cph_ok) >= 3:
        b = float(np.nanmedian(r[cph_ok]))
        s_b = float(1.4826 * np.nanmedian(np.abs(r[cph_ok] - b)))
    else:
        b, s_b = 0.0, 0.05
    b = min(max(b, 0.0), 0.5)
    pos_of = {int(t): i for i, t in enumerate(hts.targets)}
    out = []
    for c in amp.cpgs:
        base = dict(cpg=c.number, pos=one_based(c.ref_pos))
        if c.under_primer:
            out.append(SiteEstimate(**base, note="under_primer"))
            continue
        i = pos_of.get(c.target_pos)
        if i is None:
            out.append(SiteEstimate(**base, note="not_covered"))
            continue
        sig = dict(c_signal=round(float(hts.h["C"][i]), 1), t_signal=round(float(hts.h["T"][i]), 1),
                   background=round(b, 4))
        if not total_ok[i] or not np.isfinite(r[i]):
            out.append(SiteEstimate(**base, **sig, note="low_signal"))
            continue
        ri = float(r[i])
        f = (ri - b) / (1 - b)
        if c.target_pos in k_site:  # calibrated site: the peaks' noise between reads and the slope's se
            var = s_b**2 + (ri * (1 - ri)) ** 2 * (2 * peak_sd**2 + site_se[c.target_pos] ** 2)
        else:
            var = s_b**2 + (ri * (1 - ri)) ** 2 * (k_sd**2 + 2 * SITE_DYE_SD**2)
        se = math.sqrt(var) / (1 - b)
        notes = []
        if c.snp is not None:
            notes.append(f"snp:{c.snp.name or one_based(c.snp.pos)}")
        if source == "prior":
            notes.append("dye_ratio_prior")
        clip = lambda x: min(max(x, 0.0), 1.0)  # noqa: E731
        out.append(SiteEstimate(**base, fraction=clip(f), low=clip(f - Z * se), high=clip(f + Z * se), **sig,
                                note=",".join(notes)))
    figures = {"orientation": m.orientation, "dye_ratio": round(k_read, 4), "dye_ratio_source": source,
               "dye_ratio_log_sd": round(k_sd, 4), "methylation_information": round(info, 2),
               "background": round(b, 4), "background_sd": round(s_b, 4),
               "brightness": {x: round(v, 4) for x, v in hts.bright.items()},
               "floor": {x: round(v, 4) for x, v in hts.floor.items()}}
    return ReadEstimate(m.read_id, m.file, m.sample, tuple(out), m.orientation, figures)


# ---------------------------------------------------------------------------------------------- reads


def _aligned(amp: Amplicon, item: Union[Read, Unreadable],
             config: QuantifyConfig) -> tuple[Optional[AlignedRead], str]:
    """The read's alignment, or None and the read-level note (unreadable, no_trace, no_amplicon, low_identity).

    The same checks as ``call``'s (``qc.amplicon_check``): too short or too weak an alignment, or an
    identity that unrelated sequence reaches by chance, is no amplicon; below ``min_identity``, low identity.
    """
    from .models import CallConfig
    from .qc import amplicon_check, region_limit
    from .qc import measure as qc_measure

    if isinstance(item, Unreadable):
        return None, "unreadable"
    if not usable(item):
        return None, "no_trace"
    aln = align(amp, item.seq, item.qual)
    qc = qc_measure(amp, aln, item, CallConfig(min_identity=config.min_identity)) if aln is not None else None
    reason, _ = amplicon_check(aln, qc, region_limit(config.min_aligned, amp), config.min_identity)
    if reason is not None:
        return None, reason.value
    return aln, ""


def quantify_reads(amp: Amplicon, items: Iterable[tuple[Union[Read, Unreadable], str]],
                   config: QuantifyConfig = QuantifyConfig(), standards: Iterable[Union[Read, Unreadable]] = (),
                   ) -> tuple[list[ReadEstimate], dict]:
    """(read, sample) pairs -> estimates in input order, and the batch calibration used (per orientation).

    ``standards``: reads of 0 % / 100 % methylated product; they join the calibration, not the output.
    """
    measured = [measure_read(amp, item, sample, config) for item, sample in items]
    extra = [measure_read(amp, item, "standard", config) for item in standards]
    for m in extra:
        if m.hts is None:
            log.warning("standard %s: %s; not used", m.file, m.note)
    calibration = calibrate_batch(amp, [*measured, *extra], config)
    return [estimate(amp, m, config, calibration.get(m.orientation)) for m in measured], calibration


# ---------------------------------------------------------------------------------------------- outputs


def _pct(x: Optional[float]) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def quantify_table(estimates: Sequence[ReadEstimate], conditions: dict, columns: Sequence[str]) -> str:
    """quantify.tsv through the one table writer (text quoted and formula-safe; numbers as formatted here)."""
    from .tsv import table_text, text_cell

    head = ["read", "sample", *columns, *QUANTIFY_COLUMNS[2:]]
    lines = []
    for e in estimates:
        cond = [text_cell(str(conditions.get(e.sample, {}).get(c, ""))) for c in columns]
        for s in e.sites:
            num = lambda x: "" if x is None else f"{x:.1f}"  # noqa: E731
            bg = "" if s.background is None else f"{s.background:.4f}"
            lines.append("\t".join([text_cell(e.read_id), text_cell(e.sample), *cond, str(s.cpg), str(s.pos),
                                    _pct(s.fraction), _pct(s.low), _pct(s.high), num(s.c_signal), num(s.t_signal),
                                    bg, text_cell(s.note)]))
    return table_text(head, lines)


def sample_summary(estimates: Sequence[ReadEstimate], samples: Sequence[str]) -> dict:
    """sample -> cpg -> (percent, low, high): the mean over the sample's reads and its 95 % interval.

    A plain mean: the reads' own uncertainties grow with r (1 - r), so inverse-variance weights would
    favour the reads that happen to read lowest at low methylation.  The interval combines the reads'
    own errors (sqrt(sum se^2) / n) and, from three reads on, their scatter (sd / sqrt(n)): the larger.
    """
    out: dict = {}
    for sample in samples:
        per: dict = {}
        for e in estimates:
            if e.sample != sample:
                continue
            for s in e.sites:
                if s.fraction is not None:
                    se = (s.high - s.low) / (2 * Z)
                    per.setdefault(s.cpg, []).append((s.fraction, se))
        res = {}
        for cpg, vals in sorted(per.items()):
            fs = np.array([v for v, _ in vals])
            n = len(fs)
            f = float(fs.mean())
            se = float(np.sqrt(np.sum(np.square([e for _, e in vals]))) / n)
            if n >= 3:
                se = max(se, float(fs.std(ddof=1) / np.sqrt(n)))
            res[cpg] = (100 * f, 100 * max(f - Z * se, 0), 100 * min(f + Z * se, 1))
        out[sample] = res
    return out


def quantify_figure(amp: Amplicon, estimates: Sequence[ReadEstimate], samples: Sequence[str]):
    """Percent methylation per CpG, one line per sample (error bars: 95 % interval of the reads' mean)."""
    from .figures.plots import LINE_COLOURS, _new_figure

    summary = sample_summary(estimates, samples)
    numbers = [c.number for c in amp.cpgs]
    fig = _new_figure(max(6.0, 0.28 * len(numbers) + 2.5), 4.2)
    ax = fig.add_axes((0.09, 0.14, 0.68, 0.76))
    markers = "osD^vP*X"
    drawn = 0
    for i, sample in enumerate(samples):
        pts = summary.get(sample, {})
        if not pts:
            continue
        xs = sorted(pts)
        ys = [pts[x][0] for x in xs]
        err = [[pts[x][0] - pts[x][1] for x in xs], [pts[x][2] - pts[x][0] for x in xs]]
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        offset = (i - (len(samples) - 1) / 2) * min(0.08, 0.5 / max(len(samples), 1))
        ax.errorbar([x + offset for x in xs], ys, yerr=err, color=colour, marker=markers[(i // len(LINE_COLOURS)) % 8],
                    markersize=3.5, linewidth=1.1, elinewidth=0.8, capsize=2, label=sample)
        drawn += 1
    ax.set_xlim(min(numbers) - 0.7, max(numbers) + 0.7)
    ax.set_ylim(-3, 103)
    ax.set_xticks(numbers)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("CpG (number along the amplicon)")
    ax.set_ylabel("methylation (%)")
    ax.set_title(f"Direct sequencing: {amp.name}", fontsize=10)
    for c in amp.cpgs:
        if c.under_primer:
            ax.axvspan(c.number - 0.4, c.number + 0.4, color="#DDDDDD", zorder=0, linewidth=0)
    ax.grid(axis="y", color="#E5E5E5", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    if drawn:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False, title="sample",
                  title_fontsize=8)
    fig.text(0.09, 0.02, "Points: mean of the sample's reads; error bars: its 95 % interval; "
             "grey: CpG under a primer (not assessable).", fontsize=6.5, color="#333333")
    return fig


def run_quantify(inputs: Sequence[str], amplicon: Amplicon, out_dir, config: QuantifyConfig = QuantifyConfig(),
                 sheet_path: Optional[str] = None, command: Sequence[str] = ()) -> Path:
    """Quantify every read of ``inputs``; write quantify.tsv, quantify.json and the plot.  Returns quantify.tsv."""
    from .figures.plots import FORMATS
    from .outdir import QUANTIFY, new_result_set
    from .samples import resolve_inputs

    out = Path(out_dir)
    bad = [f for f in config.formats if f not in FORMATS]
    if bad:
        raise InputError(f"format {bad[0]!r}: choose from {', '.join(FORMATS)}")
    sheet, assigned = resolve_inputs(inputs, sheet_path)
    columns = tuple(sheet.columns) if sheet else ()
    clash = [c for c in columns if c in QUANTIFY_COLUMNS]
    if clash:
        raise InputError(
            f"sample sheet {sheet_path}: column(s) {', '.join(clash)} are quantify.tsv columns; rename them")
    with new_result_set(out, QUANTIFY, config.force) as staging:  # held, staged, swapped in whole (outdir)
        _quantify(assigned, amplicon, staging.path, config, sheet_path, command, columns)
    return out / "quantify.tsv"


def _quantify(assigned, amplicon: Amplicon, out: Path, config: QuantifyConfig, sheet_path, command, columns) -> Path:
    from .figures.plots import save_figure
    from .reads import collect, read_file

    conditions: dict = {}
    for _, sample, values in assigned:
        conditions.setdefault(sample, values)
    # a generator: each read (with its trace) is dropped once measured
    items = ((item, sample) for f, sample, _ in assigned for item in read_file(f.path))
    standard_files = []
    for option, paths in (("--standard0", config.standard0), ("--standard100", config.standard100)):
        try:
            standard_files += collect(list(paths)) if paths else []
        except InputError as e:
            raise InputError(f"{option}: {e}") from None
    standards = (item for f in standard_files for item in read_file(f.path))
    if bool(config.standard0) != bool(config.standard100):
        log.warning("only one kind of standard: the calibration line of a CpG needs reads of different "
                    "methylation; the samples' own spread is used as well")
    estimates, calibration = quantify_reads(amplicon, items, config, standards)
    seen: dict = {}
    for i, e in enumerate(estimates):
        n = seen[e.read_id] = seen.get(e.read_id, 0) + 1
        if n > 1:  # read ids made unique (id#2...), as in call
            estimates[i] = replace(e, read_id=f"{e.read_id}#{n}")
    samples = tuple(dict.fromkeys(s for _, s, _ in assigned))
    table = write_text(out / "quantify.tsv", quantify_table(estimates, conditions, columns))
    figures = save_figure(quantify_figure(amplicon, estimates, samples), out / "quantify", config.formats)
    meta = {
        "version": __version__, "command": list(command) or sys.argv, "parameters": config.as_dict(),
        "sample_sheet": sheet_path, "amplicon": {"name": amplicon.name, "strand": amplicon.strand.value,
                                                  "start": one_based(amplicon.start), "end": amplicon.end,
                                                  "cpgs": len(amplicon.cpgs)},
        "sample_columns": list(columns), "samples": list(samples),
        "calibration": {o: {"reads": c.n_reads, "dye_ratio": round(1 / c.beta_pool, 4),
                            "dye_ratio_rel_se": round(c.beta_pool_se / c.beta_pool, 4),
                            "cpgs": {str(next(x.number for x in amplicon.cpgs if x.target_pos == t)):
                                     round(1 / b, 4) for t, b in sorted(c.beta.items())}}
                        for o, c in calibration.items()},
        "standards": {"0": list(config.standard0), "100": list(config.standard100)},
        "reads": [{"read": e.read_id, "file": e.file, "sample": e.sample, "note": e.note, **e.figures}
                  for e in estimates],
        "outputs": ["quantify.tsv", *(p.name for p in figures), "quantify.json"],
    }
    write_text(out / "quantify.json", json.dumps(meta, indent=1, default=str) + "\n")
    return table
