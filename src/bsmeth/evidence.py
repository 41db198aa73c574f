"""Trace evidence: what the chromatogram says at each CpG, beyond the base caller's letter.

Pipeline position: after ``alignment``, used by ``calling`` (per CpG), ``qc``
(mixed-trace reads) and ``quantify`` (direct sequencing) for reads that came
with a trace.  For a C of the amplified strand the C and T signals are read at
the base's peak (PLOC); on a read that shows the reverse complement of the
amplified strand the same information is in the G and A channels.

Peak height of a channel at a base: the channel's maximum within
``PEAK_HALF`` of the base spacing around the peak, minus the channel's local
minimum (its baseline, over 1.5 spacings each side).  When that maximum sits at
the edge of the window and the channel keeps rising beyond it, the signal is
the flank of a neighbouring peak, not a peak here, and the value at the peak
position is taken instead.  A wider window (the first version used a quarter
spacing, no flank rule) tripled the rate of "two strong peaks" at clean
positions of real traces (2.1 % -> 0.6 % of good-quality C/T and A/G calls over
the 15 real ABIF/SCF traces in /work/shared/data/trace-files), nearly all of it
next to a base of the other letter of the pair; see docs/trace_evidence.md.

A position is *mixed* (two templates) when the smaller of the two peaks is at
least ``MIXED_RATIO`` of the larger *and* at least ``MIXED_MIN_LEVEL`` of a full
peak nearby (``ref``: the median value of the called bases' channels at their
peaks within 6 bases).  The second condition keeps noise from counting: where the read shows
neither C nor T (the A allele of a SNP, another base, a deletion) both channels
hold only background, whose ratio is anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .models import AlignedRead, Read

MIXED_RATIO = 0.35  # minor / major peak at or above this: two templates (a 30 % minor template gives 0.43)
MIXED_MIN_LEVEL = 0.15  # ...and the minor peak reaches this fraction of a full peak nearby
PEAK_HALF = 1 / 6  # half-width of the peak window, in base spacings (2 points at 12 points per base)
REF_HALF = 6  # bases each side over which the reference (full-peak) height is the median
_COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}


@dataclass(frozen=True)
class PeakSignal:
    """Background-corrected signal of the two bases a bisulfite C position can show."""

    c: float  # the unconverted (C) channel
    t: float  # the converted (T) channel
    ref: float = 0.0  # height of a full peak nearby (0: unknown, no absolute check)

    @property
    def total(self) -> float:
        return self.c + self.t

    @property
    def c_frac(self) -> Optional[float]:
        return self.c / self.total if self.total > 0 else None

    @property
    def mixed(self) -> bool:
        hi, lo = max(self.c, self.t), min(self.c, self.t)
        return hi > 0 and lo / hi >= MIXED_RATIO and (self.ref <= 0 or lo >= MIXED_MIN_LEVEL * self.ref)

    @property
    def confidence(self) -> Optional[float]:
        """0 when C and T are equal, 1 when one channel carries all the signal."""
        f = self.c_frac
        return None if f is None else abs(2 * f - 1)


def geometry(peaks: np.ndarray) -> tuple[int, int]:
    """(half-width of the peak window, half-width of the baseline window) in trace points."""
    spacing = float(np.median(np.diff(peaks))) if len(peaks) > 1 else 12.0
    return max(1, int(round(spacing * PEAK_HALF))), max(4, int(round(spacing * 1.5)))


def peak_heights(channel: np.ndarray, xs: np.ndarray, half: int, window: int) -> np.ndarray:
    """Height of ``channel`` at trace positions ``xs``: local peak (flanks of neighbours excluded) minus baseline.

    Windows beyond the ends of the trace repeat the end value.  Only the few windows needed are gathered
    (index arithmetic, no copy of the channel): this runs for every C of every read.
    """
    ch = np.asarray(channel)
    last = len(ch) - 1
    xs = np.asarray(xs, dtype=np.int64)[:, None]
    wide = ch[np.clip(xs + np.arange(-half - 1, half + 2), 0, last)].astype(np.float64)  # one point more each side
    inner = wide[:, 1:-1]
    at = inner.argmax(axis=1)
    rows = np.arange(len(wide))
    peak = inner[rows, at]
    flank = ((at == 0) & (wide[:, 0] > peak)) | ((at == 2 * half) & (wide[:, -1] > peak))
    peak = np.where(flank, inner[:, half], peak)
    base = ch[np.clip(xs + np.arange(-window, window + 1), 0, last)].min(axis=1)
    return np.maximum(peak - base, 0.0)


def usable(read: Read) -> bool:
    """Does the read carry a trace whose peaks match its base calls?"""
    tr = read.trace
    return tr is not None and len(tr.peaks) == len(read.seq) and all(b in tr.channels for b in "ACGT")


def called_values(read: Read) -> np.ndarray:
    """Per base call: its own channel's value at its peak (NaN for N and IUPAC calls).

    The analysed channels of an instrument file are baseline-subtracted already, so this is the peak's
    height to the precision the absolute check of ``PeakSignal.mixed`` needs, at no cost.
    """
    tr = read.trace
    n = len(tr.channels["A"])
    xs = np.clip(tr.peaks.astype(np.int64), 0, max(n - 1, 0))
    seq = np.frombuffer(read.seq.encode("ascii"), dtype="S1")
    out = np.full(len(seq), np.nan)
    for b in "ACGT":
        sel = seq == b.encode()
        if sel.any():
            out[sel] = np.asarray(tr.channels[b])[xs[sel]]
    return out


def reference_heights(read: Read, idx: Optional[np.ndarray] = None) -> np.ndarray:
    """Median of the called peaks within ``REF_HALF`` bases of each base call (or of the calls ``idx``):
    the height of a full peak there; 0 where no base nearby is called A, C, G or T."""
    h = np.append(called_values(read), np.nan)  # index -1 (outside the read) reads NaN
    n = len(h) - 1
    at = np.arange(n) if idx is None else np.asarray(idx, dtype=np.int64)
    j = at[:, None] + np.arange(-REF_HALF, REF_HALF + 1)
    win = h[np.where((j >= 0) & (j < n), j, -1)]
    ok = ~np.isnan(win)
    # nanmedian without the all-NaN warning
    srt = np.sort(np.where(ok, win, np.inf), axis=1)
    k = ok.sum(axis=1)
    rows = np.arange(len(win))
    lo = srt[rows, np.maximum((k - 1) // 2, 0)]
    hi = srt[rows, np.maximum(k // 2, 0)]
    return np.where(k > 0, (lo + hi) / 2, 0.0)


def signals_at(read: Read, aln: AlignedRead, targets) -> dict[int, PeakSignal]:
    """Peak signals (amplified-strand C and T) at the given target positions that map to a base call.

    On a read showing the reverse complement of the amplified strand, the C/T
    information is in the G/A channels.
    """
    if not usable(read):
        return {}
    tr = read.trace
    targets = np.asarray(list(targets), dtype=np.int64)
    if targets.size == 0:
        return {}
    idx = aln.read_pos[targets]
    n = len(tr.channels["A"])
    ok = idx >= 0
    xs = np.full(targets.shape, -1, dtype=np.int64)
    xs[ok] = tr.peaks[idx[ok]]
    ok &= (xs >= 0) & (xs < n)
    if not ok.any():
        return {}
    half, window = geometry(tr.peaks)
    c_base, t_base = ("C", "T") if aln.orientation == "+" else ("G", "A")
    c = peak_heights(tr.channels[c_base], xs[ok], half, window)
    t = peak_heights(tr.channels[t_base], xs[ok], half, window)
    ref = reference_heights(read, idx[ok])
    return {int(tp): PeakSignal(float(ci), float(ti), float(ri)) for tp, ci, ti, ri in zip(targets[ok], c, t, ref)}


def channel_of(letter: str, orientation: str) -> str:
    """The trace channel that shows amplified-strand ``letter`` on a read of this orientation."""
    return letter if orientation == "+" else _COMP[letter]
