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
_COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}


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


class TraceView:
    """The chromatogram of one read, indexed by base call, in amplified-strand letters."""

    def __init__(self, read: Read, orientation: str):
        tr = read.trace
        self.ok = tr is not None and len(tr.peaks) == len(read.seq) and all(b in tr.channels for b in "ACGT")
        if not self.ok:
            return
        self.orientation = orientation
        self.peaks = tr.peaks
        self.channels = tr.channels
        n = len(next(iter(tr.channels.values())))
        spacing = np.median(np.diff(tr.peaks)) if len(tr.peaks) > 1 else 12
        self.half = max(2, int(round(spacing / 2)))
        self.window = max(4, int(round(spacing * 1.5)))
        self.n = n

    def _height(self, base: str, x: int) -> float:
        ch = self.channels[base]
        lo, hi = max(0, x - self.half // 2), min(self.n, x + self.half // 2 + 1)
        bl, bh = max(0, x - self.window), min(self.n, x + self.window + 1)
        peak = float(ch[lo:hi].max()) if hi > lo else 0.0
        base_line = float(ch[bl:bh].min()) if bh > bl else 0.0
        return max(peak - base_line, 0.0)

    def signal(self, read_index: int) -> Optional[PeakSignal]:
        """C and T signal (amplified-strand letters) at one base call of the read as given."""
        if not self.ok or read_index < 0 or read_index >= len(self.peaks):
            return None
        x = int(self.peaks[read_index])
        if not 0 <= x < self.n:
            return None
        c_base, t_base = ("C", "T") if self.orientation == "+" else (_COMP["C"], _COMP["T"])
        return PeakSignal(self._height(c_base, x), self._height(t_base, x))


def signals_at(read: Read, aln: AlignedRead, targets) -> dict[int, PeakSignal]:
    """Peak signals at the given target positions (those that map to a base call of the read)."""
    view = TraceView(read, aln.orientation)
    out: dict[int, PeakSignal] = {}
    if not view.ok:
        return out
    for t in targets:
        s = view.signal(int(aln.read_pos[t]))
        if s is not None:
            out[t] = s
    return out
