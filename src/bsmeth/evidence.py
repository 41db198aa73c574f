"""Trace evidence: what the chromatogram says at each CpG, beyond the base caller's letter.

Pipeline position: after ``alignment``, used by ``calling`` (per CpG) and
``qc`` (mixed-trace reads) for reads that came with a trace.  For a CpG the C
and T signals are read at the base's peak (PLOC); on a read that shows the
reverse complement of the amplified strand the same information is in the G
and A channels.  Signals are background-corrected with the channel's local
minimum.  ``c_frac = C / (C + T)``; two strong peaks (the smaller at least
``MIXED_RATIO`` of the larger) mean two templates: a mixed clone or an
uncloned product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .models import AlignedRead, Read

MIXED_RATIO = 0.35  # minor / major peak above this: two templates


@dataclass(frozen=True)
class PeakSignal:
    """Background-corrected signal of the two bases a bisulfite C position can show."""

    c: float  # the unconverted (C) channel
    t: float  # the converted (T) channel

    @property
    def total(self) -> float:
        return self.c + self.t

    @property
    def c_frac(self) -> Optional[float]:
        return self.c / self.total if self.total > 0 else None

    @property
    def mixed(self) -> bool:
        hi, lo = max(self.c, self.t), min(self.c, self.t)
        return hi > 0 and lo / hi >= MIXED_RATIO

    @property
    def confidence(self) -> Optional[float]:
        """0 when C and T are equal, 1 when one channel carries all the signal."""
        f = self.c_frac
        return None if f is None else abs(2 * f - 1)


def _peak_heights(channel: np.ndarray, xs: np.ndarray, half: int, window: int) -> np.ndarray:
    """Signal at each peak position: the local maximum minus the channel's local minimum (its baseline)."""
    from numpy.lib.stride_tricks import sliding_window_view

    ch = np.asarray(channel, dtype=np.float64)
    pad_hi = np.pad(ch, half, mode="edge")
    pad_lo = np.pad(ch, window, mode="edge")
    peak = sliding_window_view(pad_hi, 2 * half + 1)[xs].max(axis=1)
    base = sliding_window_view(pad_lo, 2 * window + 1)[xs].min(axis=1)
    return np.maximum(peak - base, 0.0)


def signals_at(read: Read, aln: AlignedRead, targets) -> dict[int, PeakSignal]:
    """Peak signals (amplified-strand C and T) at the given target positions that map to a base call.

    On a read showing the reverse complement of the amplified strand, the C/T
    information is in the G/A channels.
    """
    tr = read.trace
    if tr is None or len(tr.peaks) != len(read.seq) or any(b not in tr.channels for b in "ACGT"):
        return {}
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
    spacing = float(np.median(np.diff(tr.peaks))) if len(tr.peaks) > 1 else 12.0
    half, window = max(1, int(round(spacing / 4))), max(4, int(round(spacing * 1.5)))
    c_base, t_base = ("C", "T") if aln.orientation == "+" else ("G", "A")
    c = _peak_heights(tr.channels[c_base], xs[ok], half, window)
    t = _peak_heights(tr.channels[t_base], xs[ok], half, window)
    return {int(tp): PeakSignal(float(ci), float(ti)) for tp, ci, ti in zip(targets[ok], c, t)}
