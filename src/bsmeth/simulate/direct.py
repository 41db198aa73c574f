"""Simulated Sanger traces of *uncloned* bisulfite PCR product (direct sequencing), with the truth.

Pipeline position: outside the analysis path, a test-data generator for
``quantify`` (as ``simulate`` is for ``call``).  Every read is the product of
one bisulfite PCR sequenced directly: at every CpG the trace carries a C and a
T peak in the proportion of methylated and unmethylated molecules.

The product is sequenced from an M13-tailed PCR primer with the M13 primer, so
the read starts at the gene-specific primer: orientation ``+`` reads the
amplified strand from the forward primer, ``-`` its reverse complement from
the reverse primer (the C/T information then is in the G and A channels).

Peak height of letter X at read position j (everything multiplicative):

    scale * trend(j) * context(j) * DYE[X] * dye_context(j, X) * share(j, X) * noise

* ``DYE``: dye-terminator brightness at equal template.  **The C dye is weaker
  than T by a factor of 0.6** (G 0.8, A and T 1.0): BigDye-like, where C peaks
  are typically the smallest.  Nothing in ``quantify`` knows these numbers.
* ``context(j)``: the sequence-context effect shared by all four dyes at a
  position, log-normal with sd ``context_sd`` (0.25: peaks of one letter vary
  about 1.3-fold along a read), fixed per amplicon position and orientation (the
  same in every read of the amplicon, as real context effects are: drawn from
  the amplicon sequence and ``context_seed``, not from ``seed``).
* ``dye_context(j, X)``: the part of the context effect that differs between
  terminators, sd ``dye_context_sd`` (0.10), fixed per position as well.
* ``noise``: independent per peak and read, sd ``peak_sd`` (0.05); plus a
  baseline noise of ``noise`` (1.2 %) of the mean peak height on every channel.

Template shares: a CpG C with true methylation fraction f reads C in
``f + (1 - f) * (1 - conversion)`` of the molecules; a non-CpG C in
``1 - conversion`` of them (incomplete conversion gives a small C peak);
per-read conversion ~ N(``conversion``, 0.004), per-site ~ N(read's, 0.01).
Per-CpG truth varies around the fraction level: Beta with mean the level and
sd ``cpg_sd`` (0.05); exactly 0 and 1 for the 0 % and 100 % levels.
"""

from __future__ import annotations

import csv
import io
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Union

import numpy as np

from ..abif import AbifRecord, write_abif
from ..atomic import write_text
from ..coords import one_based
from ..models import Amplicon
from ..reference import IUPAC_SETS, revcomp

_ORDER = "GATC"  # channel order of the written traces (FWO_)
_COL = {b: i for i, b in enumerate(_ORDER)}
_COMP_COL = np.array([_COL[{"G": "C", "A": "T", "T": "A", "C": "G"}[b]] for b in _ORDER])
DYE = {"A": 1.0, "C": 0.6, "G": 0.8, "T": 1.0}


@dataclass(frozen=True)
class DirectModel:
    """Peak-height model of a direct read (see the module docstring)."""

    context_sd: float = 0.25
    dye_context_sd: float = 0.10
    peak_sd: float = 0.05
    noise: float = 0.012
    cpg_sd: float = 0.05
    conversion_sd: float = 0.004
    site_conversion_sd: float = 0.01
    peak_spacing: tuple[float, float] = (10.0, 12.0)
    orientation: str = "both"  # '+', '-' or 'both' (reads alternate, starting with '+')
    context_seed: int = 0  # another chemistry: other context effects for the same amplicon

    def __post_init__(self) -> None:
        if self.orientation not in ("+", "-", "both"):
            raise ValueError("orientation must be '+', '-' or 'both'")


@dataclass(frozen=True)
class DirectResult:
    out_dir: Path
    traces: tuple[Path, ...]
    sample_sheet: Path
    truth: Path
    readme: Path
    n_reads: int


def _cpg_truth(level: float, n: int, sd: float, rng: np.random.Generator) -> np.ndarray:
    if level <= 0 or level >= 1 or sd <= 0:
        return np.full(n, float(level))
    kappa = max(level * (1 - level) / sd**2 - 1, 1.0)
    return rng.beta(level * kappa, (1 - level) * kappa, n)


def _shares(amp: Amplicon, truth: np.ndarray, conv: float, model: DirectModel,
            rng: np.random.Generator) -> np.ndarray:
    """(amplicon length, 4) template share of G, A, T, C at every position of the amplified strand."""
    n = amp.length
    share = np.zeros((n, 4))
    conv_site = np.clip(rng.normal(conv, model.site_conversion_sd, n), 0, 1)
    cpg_f = {c.target_pos: f for c, f in zip(amp.cpgs, truth)}
    primer = {}
    for (a, b), p in ((amp.forward_span, amp.forward), (amp.reverse_span, revcomp(amp.reverse or ""))):
        if b > a and p:
            primer.update({a + i: letter for i, letter in enumerate(p)})
    for t, g in enumerate(amp.target):
        if t in primer:  # the product carries the primer; a degenerate letter copies both bases
            options = IUPAC_SETS.get(primer[t], "ACGT")
            for x in options:
                share[t, _COL[x]] += 1 / len(options)
        elif g != "C":
            share[t, _COL[g] if g in _COL else _COL["A"]] = 1.0
        else:
            c = (1 - conv_site[t]) if t not in cpg_f else cpg_f[t] + (1 - cpg_f[t]) * (1 - conv_site[t])
            share[t, _COL["C"]], share[t, _COL["T"]] = c, 1 - c
    return share


def _read(share: np.ndarray, ctx: np.ndarray, dctx: np.ndarray, model: DirectModel,
          rng: np.random.Generator) -> AbifRecord:
    """One direct read of the template shares (read order, GATC columns): chromatogram, calls, PHRED."""
    n = len(share)
    j = np.arange(n)
    rel = j / max(n - 1, 1)
    spacing = float(rng.uniform(*model.peak_spacing))
    steps = np.clip(spacing * (1 + 0.04 * rel) + rng.normal(0, 0.5, n), 0.6 * spacing, None)
    pos = rng.uniform(15, 25) + np.cumsum(steps)
    sig = spacing * 0.2 * (1 + 0.6 * np.exp(-j / 12) + 0.5 * rel**2)
    scale = rng.uniform(800, 1600)
    trend = scale * (1 - 0.35 * rel) * (1 - 0.6 * np.exp(-j / 6))
    dye = np.array([DYE[b] for b in _ORDER])
    height = trend[:, None] * ctx[:, None] * dye[None, :] * dctx * share
    height *= rng.lognormal(0, model.peak_sd, height.shape)
    n_points = int(np.ceil(pos[-1] + 30))
    w = int(np.ceil(4 * sig.max()))
    offsets = np.arange(-w, w + 1)
    idx = np.rint(pos).astype(int)[:, None] + offsets
    shape = np.exp(-0.5 * ((idx - pos[:, None]) / sig[:, None]) ** 2)
    ok = (idx >= 0) & (idx < n_points)
    signal = np.zeros((4, n_points))
    for ch in range(4):
        np.add.at(signal[ch], idx[ok], (height[:, ch:ch + 1] * shape)[ok])
    signal += np.abs(rng.normal(0, model.noise * scale, signal.shape))
    analysed = np.clip(np.rint(signal), 0, 32767).astype(np.int16)

    srt = np.sort(height, axis=1)
    ratio = srt[:, -2] / np.maximum(srt[:, -1], 1e-9)  # second peak / first peak
    letters = np.array(list(_ORDER))
    called = letters[height.argmax(axis=1)]
    called[ratio > 0.9] = "N"
    plateau = rng.uniform(35, 50)
    q = np.minimum(plateau, 4 + 10 * np.clip(j / 12, 0, 1) + (plateau - 14) * np.clip((j - 12) / 8, 0, 1))
    q = np.minimum(q, 8 + (plateau - 8) * np.clip((n - 1 - j) / 10, 0, 1))
    q = np.minimum(q + rng.normal(0, 3, n), 24 - 19 * ratio + rng.normal(0, 2, n))
    qual = np.clip(np.rint(q), 2, 60).astype(np.uint8)
    called[(qual < 10) & (rng.random(n) < 0.3)] = "N"
    snr = int(min(max(scale / max(model.noise * scale, 1), 1), 2000))
    return AbifRecord("", "".join(called), qual, np.rint(pos).astype(np.int64), analysed, None, _ORDER,
                      spacing=round(spacing, 2), signal_to_noise=(snr,) * 4)


def _table(header: list[str], rows: list[list], delimiter: str = "\t") -> str:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows([header, *rows])
    return buf.getvalue()


def simulate_direct(amplicon: Amplicon, out_dir: Union[str, Path],
                    fractions=(0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0), n_per_fraction: int = 4, seed: int = 1,
                    conversion: float = 0.98, model: DirectModel = DirectModel()) -> DirectResult:
    """Write ``n_per_fraction`` direct reads per methylation level into ``out_dir``, a sheet and the truth.

    One sample per level (``direct_025`` for 25 %, sheet column ``fraction`` in percent); files
    ``<sample>/<sample>_<k>.ab1``; ``truth_direct.tsv`` gives per read and CpG the true methylation
    fraction and the C share of the product at that C (non-conversion included).  Same seed, same files.
    """
    if not all(0 <= f <= 1 for f in fractions) or n_per_fraction < 1 or not 0 <= conversion <= 1:
        raise ValueError("fractions and conversion must be in [0, 1], n_per_fraction >= 1")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    n = amplicon.length
    # context effects belong to the sequence read, not to the run: drawn from the amplicon's sequence (and
    # model.context_seed), so every simulation of one amplicon (samples, standards) shares them
    ctx_rng = np.random.default_rng([zlib.crc32(amplicon.target.encode("ascii")), model.context_seed])
    ctx = {o: ctx_rng.lognormal(0, model.context_sd, n) for o in "+-"}
    dctx = {o: ctx_rng.lognormal(0, model.dye_context_sd, (n, 4)) for o in "+-"}
    traces, sheet, truth = [], [], []
    k = 0
    for level in fractions:
        sample = f"direct_{int(round(100 * level)):03d}"
        for r in range(n_per_fraction):
            orient = model.orientation if model.orientation != "both" else "+-"[k % 2]
            k += 1
            rid = f"{sample}_{r + 1:02d}"
            f = _cpg_truth(level, len(amplicon.cpgs), model.cpg_sd, rng)
            conv = float(np.clip(rng.normal(conversion, model.conversion_sd), 0, 1))
            share = _shares(amplicon, f, conv, model, rng)
            if orient == "-":
                share = share[::-1][:, _COMP_COL]
            rec = _read(share, ctx[orient], dctx[orient], model, rng)
            path = out / sample / f"{rid}.ab1"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_abif(path, replace(rec, sample=rid, comment=f"simulated direct read by bsmeth (seed {seed})"))
            traces.append(path)
            sheet.append([f"{sample}/{rid}.ab1", sample, int(round(100 * level))])
            t_share = share if orient == "+" else share[:, _COMP_COL][::-1]
            for cpg, fi in zip(amplicon.cpgs, f):
                truth.append([rid, sample, orient, f"{conv:.4f}", cpg.number, one_based(cpg.ref_pos), f"{fi:.4f}",
                              f"{t_share[cpg.target_pos, _COL['C']]:.4f}", "yes" if cpg.under_primer else "no"])
    sheet_path = write_text(out / "samples.csv", _table(["file", "sample", "fraction"], sheet, ","))
    truth_path = write_text(out / "truth_direct.tsv", _table(
        ["read", "sample", "orientation", "conversion", "cpg", "pos", "true_fraction", "c_share", "under_primer"],
        truth))
    readme = write_text(out / "README.md", "\n".join([
        "# SIMULATED direct sequencing of bisulfite PCR product: not real data",
        "",
        f"Generated by `bsmeth.simulate.direct`, seed {seed}: {len(traces)} reads of {amplicon.name} "
        f"({amplicon.length} bp, {len(amplicon.cpgs)} CpGs), {n_per_fraction} per methylation level "
        f"({', '.join(f'{100 * f:g} %' for f in fractions)}), mean conversion {100 * conversion:g} %.",
        "Dye brightness at equal template: C 0.6, G 0.8, A 1.0, T 1.0 (the C dye is weaker than T);",
        "position effects: shared log-normal sd 0.25, dye-specific sd 0.10 (see the module docstring).",
        "",
        "- `samples.csv`: sample sheet (`fraction`: the level, percent).",
        "- `truth_direct.tsv`: per read and CpG the true methylation fraction and the C share of the product",
        "  (non-conversion of unmethylated C included); CpGs under a primer carry the primer's base.",
        "",
    ]))
    return DirectResult(out, tuple(traces), sheet_path, truth_path, readme, len(traces))
