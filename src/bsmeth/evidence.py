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

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Optional

import numpy as np

from .models import AlignedRead, Read

MIXED_RATIO = 0.35  # minor / major peak at or above this: two templates (a 30 % minor template gives 0.43)
MIXED_MIN_LEVEL = 0.15  # ...and the minor peak reaches this fraction of a full peak nearby
PEAK_HALF = 1 / 6  # half-width of the peak window, in base spacings (2 points at 12 points per base)
REF_HALF = 6  # bases each side over which the reference (full-peak) height is the median
_COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}


def two_peaks(c, t):
    """The first half of ``is_mixed``, which needs no full peak nearby: the smaller peak is at least
    ``MIXED_RATIO`` of the larger (scalars or arrays)."""
    hi = np.maximum(c, t)  # NaN (no signal) compares false, without a warning
    return (hi > _ZERO) & (np.minimum(c, t) >= _RATIO * hi)


def _real_peak(c, t, ref):
    """The second half of ``is_mixed``: the smaller peak reaches ``MIXED_MIN_LEVEL`` of a full peak nearby,
    where one is known (``ref`` > 0)."""
    return (ref <= _ZERO) | (np.minimum(c, t) >= _LEVEL * ref)


def is_mixed(c, t, ref):
    """Two templates at a position (scalars or arrays): the smaller peak is at least ``MIXED_RATIO`` of the
    larger and, where a full peak nearby is known (``ref`` > 0), at least ``MIXED_MIN_LEVEL`` of it."""
    return two_peaks(c, t) & _real_peak(c, t, ref)


# the constants as 0-d arrays: numpy combines an array with a 0-d array faster than with a Python number
_ZERO, _RATIO, _LEVEL = np.array(0.0), np.array(MIXED_RATIO), np.array(MIXED_MIN_LEVEL)
_FIRST, _FOUR = np.array(0), np.array(4)


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
        return bool(is_mixed(self.c, self.t, self.ref))

    @property
    def confidence(self) -> Optional[float]:
        """0 when C and T are equal, 1 when one channel carries all the signal."""
        f = self.c_frac
        return None if f is None else abs(2 * f - 1)


@dataclass(frozen=True, eq=False)
class Signals(Mapping):
    """Peak signals at target positions, as arrays (one entry per position measured); also a read-only
    mapping target position -> ``PeakSignal`` for code that wants one site at a time."""

    targets: np.ndarray  # int64, increasing
    heights: np.ndarray  # float64, 2 rows: the C and the T signal (``c``, ``t``) at each position
    given_ref: Optional[np.ndarray] = None  # the full-peak heights (``ref``), when known up front; else
    read: Optional[Read] = field(default=None, repr=False)  # they are looked up in this read's trace
    calls: Optional[np.ndarray] = field(default=None, repr=False)  # at these base calls (one per position)

    @property
    def c(self) -> np.ndarray:
        return self.heights[0]

    @property
    def t(self) -> np.ndarray:
        return self.heights[1]

    @cached_property
    def ref(self) -> np.ndarray:
        """Height of a full peak near each position (``reference_heights``), looked up on first use."""
        return self.given_ref if self.given_ref is not None else reference_heights(self.read, self.calls)

    @cached_property
    def mixed(self) -> np.ndarray:
        """Two templates at each position (``is_mixed``); worked out once, used by ``qc`` and ``calling``.

        A full peak nearby matters only where the two peaks alone could be mixed (``two_peaks``: a few
        positions of most reads), so unless ``ref`` is known already it is looked up only there.
        """
        c, t = self.heights
        if self.given_ref is not None or "ref" in self.__dict__:
            return is_mixed(c, t, self.ref)
        two = two_peaks(c, t)
        out = np.zeros(len(two), dtype=bool)
        if np.count_nonzero(two):
            out[two] = _real_peak(c[two], t[two], reference_heights(self.read, self.calls[two]))
        return out

    def __getitem__(self, target: int) -> PeakSignal:
        i = int(np.searchsorted(self.targets, target))
        if i >= len(self.targets) or self.targets[i] != target:
            raise KeyError(target)
        return PeakSignal(float(self.c[i]), float(self.t[i]), float(self.ref[i]))

    def __iter__(self):
        return iter(self.targets.tolist())

    def __len__(self) -> int:
        return len(self.targets)


NO_SIGNALS = Signals(np.zeros(0, dtype=np.int64), np.zeros((2, 0)), np.zeros(0))


def geometry(peaks: np.ndarray) -> tuple[int, int]:
    """(half-width of the peak window, half-width of the baseline window) in trace points."""
    spacing = 12.0
    if len(peaks) > 1:  # the median base spacing
        d = peaks[1:] - peaks[:-1]
        k = len(d)
        part = np.sort(d)  # faster than np.partition on a few hundred small integers
        spacing = (float(part.item((k - 1) // 2)) + float(part.item(k // 2))) / 2
    return max(1, int(round(spacing * PEAK_HALF))), max(4, int(round(spacing * 1.5)))


def peak_heights(channel: np.ndarray, xs: np.ndarray, half: int, window: int) -> np.ndarray:
    """Height of ``channel`` at trace positions ``xs``: local peak (flanks of neighbours excluded) minus baseline.

    Windows beyond the ends of the trace repeat the end value.  Only the few windows needed are gathered
    (index arithmetic, no copy of the channel): this runs for every C of every read.
    """
    return _heights(np.asarray(channel)[None, :], np.zeros(1, dtype=np.intp), xs, half, window)[0]


@lru_cache(maxsize=64)
def _offsets(reach: int) -> np.ndarray:
    """The points within ``reach`` of a position, as index offsets."""
    return np.arange(-reach, reach + 1)


def _heights(channels: np.ndarray, rows: np.ndarray, xs: np.ndarray, half: int, window: int,
             extremes: Optional[tuple[int, int]] = None) -> np.ndarray:
    """``peak_heights`` of the channels ``channels[rows]`` (a 2-D array, any number type) at the same positions.

    Every window of every row in one gather (from a strided view of the channels when all lie inside the
    trace, else point by point, clipped to it) and one copy into a table of one line per window point and one
    column per (row, position), in the channels' number type but the machine's byte order (an .ab1 file's
    channels are big-endian: every comparison on them would swap bytes again).  Each step is then one
    operation across all columns; the peak window and the point beyond each of its ends lie inside the
    baseline window (``geometry`` makes it so), which is all that is gathered.

    The flank rule without ``argmax``: the window's maximum is first at its first point exactly when that point
    equals the maximum, and first at its last point exactly when that point exceeds the maximum of the others.
    The maxima, minima and comparisons are exact in the channels' own number type; only the two heights per
    position are subtracted, in float64 (exact for instrument channels, which are integers).  The peak is
    never below the baseline (the baseline window holds the position itself): no clipping at 0 is needed.
    ``extremes``: (min, max) of ``xs`` when the caller has them.
    """
    n = channels.shape[1]
    xs = np.asarray(xs)
    reach = max(window, half + 1)
    w = 2 * reach + 1
    rows = np.asarray(rows, dtype=np.intp)
    if len(xs) and extremes is None:
        extremes = int(xs.min()), int(xs.max())
    native = channels.dtype.newbyteorder("=")
    if len(xs) and (extremes[0] < reach or extremes[1] >= n - reach):  # windows past an end repeat the end value
        g = channels.take(rows[:, None] * n + np.clip(_offsets(reach)[:, None, None] + xs, 0, n - 1))
    else:  # every window inside the trace (nearly always): gathered from a strided view of the channels
        m = np.ascontiguousarray(channels)
        step = m.strides[1]
        windows = np.ndarray((w, m.shape[0], n - w + 1), dtype=m.dtype, buffer=m,
                             strides=(step, m.strides[0], step))  # windows[k, r, j] is m[r, j + k], no copy
        g = windows[:, rows[:, None], xs - reach]
    # line k: point k - reach of every window, each line contiguous (the gather leaves the windows contiguous
    # instead, and a reduction across lines of that layout costs four times as much)
    g = g.astype(native, order="C", copy=False).reshape(w, -1)
    lo = reach - half  # the peak window is lines lo..last; lines lo - 1 and last + 1 flank it
    last = reach + half
    if half:
        top = np.maximum.reduce(g[lo:last], axis=0)  # the maximum of the window but its last point
        end = g[last]
        peak = np.maximum(top, end)
        flank = (g[lo] == peak) & (g[lo - 1] > peak)  # the maximum first at the first point, and rising beyond it
        flank |= (end > top) & (g[last + 1] > end)  # ... at the last point
        np.copyto(peak, g[reach], where=flank)  # the value at the position instead
    else:  # a window of one point: the value at the position, flank or not
        peak = g[reach]
    out = np.subtract(peak, np.minimum.reduce(g[reach - window:reach + window + 1], axis=0), dtype=np.float64)
    return out.reshape(len(rows), len(xs))


_ROW = np.full(256, 4, dtype=np.intp)  # the row of Trace.matrix holding a base call's own channel (4: none)
for _i, _b in enumerate("ACGT"):
    _ROW[ord(_b)] = _i
_ROW3 = np.minimum(_ROW, 3)  # the same, any channel for N and IUPAC calls (their value is not used)
_ACGT = frozenset("ACGT")


def usable(read: Read) -> bool:
    """Does the read carry a trace whose peaks match its base calls?"""
    tr = read.trace
    return tr is not None and len(tr.peaks) == len(read.seq) and tr.channels.keys() >= _ACGT


def _called(read: Read, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Base calls ``lo:hi``: the row of each one's own channel (4 for N and IUPAC calls) and that channel's
    value at its peak, in the channel's number type (an arbitrary channel's value where the row is 4)."""
    tr = read.trace
    m = tr.matrix
    npts = m.shape[1]
    calls = np.frombuffer(read.seq.encode("ascii"), dtype=np.uint8)[lo:hi]
    xs = np.minimum(np.maximum(tr.peaks[lo:hi], _FIRST), npts - 1)
    return _ROW[calls], m[_ROW3[calls], xs]


def called_values(read: Read) -> np.ndarray:
    """Per base call: its own channel's value at its peak (NaN for N and IUPAC calls).

    The analysed channels of an instrument file are baseline-subtracted already, so this is the peak's
    height to the precision the absolute check of ``PeakSignal.mixed`` needs, at no cost.
    """
    rows, vals = _called(read, 0, len(read.seq))
    out = vals.astype(np.float64)
    out[rows == 4] = np.nan
    return out


def reference_heights(read: Read, idx: Optional[np.ndarray] = None) -> np.ndarray:
    """Median of the called peaks within ``REF_HALF`` bases of each base call (or of the calls ``idx``):
    the height of a full peak there; 0 where no base nearby is called A, C, G or T."""
    n = len(read.seq)
    at = np.arange(n) if idx is None else np.asarray(idx, dtype=np.intp)
    width = 2 * REF_HALF + 1
    if len(at):
        ends = at.tolist() if len(at) < 16 else (at.min(), at.max())  # a few: found faster by Python
        first, last = int(min(ends)) - REF_HALF, int(max(ends)) + REF_HALF + 1
        if first >= 0 and last <= n:  # every window inside the read: only the calls they cover are looked up
            rows, vals = _called(read, first, last)
            # all called A, C, G or T (and no NaN in a float channel): the middle of 13 values
            if not np.count_nonzero(rows == _FOUR) and not (vals.dtype.kind == "f" and np.isnan(vals).any()):
                win = vals.take(at[:, None] + (_AROUND - first))
                return np.sort(win, axis=1)[:, REF_HALF].astype(np.float64)
    # windows past the read's ends or holding N: NaN-padded, NaN sorts last (a nanmedian without its warning)
    vals = called_values(read)
    padded = np.empty(n + 2 * REF_HALF)
    padded[:REF_HALF] = padded[REF_HALF + n:] = np.nan
    padded[REF_HALF:REF_HALF + n] = vals
    srt = np.sort(padded[at[:, None] + _WINDOW], axis=1)
    k = width - np.isnan(srt).sum(axis=1)
    flat, base = srt.ravel(), np.arange(0, len(at) * width, width)
    lo = flat[base + np.maximum((k - 1) // 2, 0)]
    hi = flat[base + np.maximum(k // 2, 0)]
    return np.where(k > 0, (lo + hi) / 2, 0.0)


_AROUND = np.arange(-REF_HALF, REF_HALF + 1)
_WINDOW = np.arange(2 * REF_HALF + 1)


def signals_at(read: Read, aln: AlignedRead, targets) -> Signals:
    """Peak signals (amplified-strand C and T) at the given target positions that map to a base call.

    On a read showing the reverse complement of the amplified strand, the C/T information is in the G/A
    channels.  Positions without a base call (gap, not covered) or whose peak lies outside the trace are
    left out; so is everything when the read has no usable trace.
    """
    if not usable(read):
        return NO_SIGNALS
    tr = read.trace
    targets = np.asarray(targets, dtype=np.int64)
    if targets.size == 0:
        return NO_SIGNALS
    if targets.size > 1 and np.count_nonzero(targets[1:] <= targets[:-1]):
        targets = np.unique(targets)
    idx = aln.read_pos.take(targets)
    xs = tr.peaks.take(idx)  # idx -1 (no base call) reads the last peak: left out below
    npts = tr.matrix.shape[1]
    extremes = int(xs.min()), int(xs.max())
    if idx.min() < 0 or extremes[0] < 0 or extremes[1] >= npts:  # some position to leave out
        ok = (idx >= 0) & (xs >= 0) & (xs < npts)
        if not ok.any():
            return NO_SIGNALS
        targets, idx, xs = targets[ok], idx[ok], xs[ok]
        extremes = None
    half, window = geometry(tr.peaks)
    rows = _PLUS if aln.orientation == "+" else _MINUS  # the C and T channels (G and A on '-')
    return Signals(targets, _heights(tr.matrix, rows, xs, half, window, extremes), read=read, calls=idx)


_PLUS, _MINUS = np.array([1, 3]), np.array([2, 0])


def channel_of(letter: str, orientation: str) -> str:
    """The trace channel that shows amplified-strand ``letter`` on a read of this orientation."""
    return letter if orientation == "+" else _COMP[letter]
