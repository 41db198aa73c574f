"""Trace evidence (bsmeth.evidence) on synthetic chromatograms with known peaks, in both read orientations;
the mixed flag, the contradicted flag, and the read-level mixed_trace verdict (qc)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bsmeth.alignment import align
from bsmeth.calling import call_read
from bsmeth.evidence import (
    MIXED_MIN_LEVEL,
    MIXED_RATIO,
    REF_HALF,
    PeakSignal,
    _heights,
    called_values,
    is_mixed,
    peak_heights,
    reference_heights,
    signals_at,
)
from bsmeth.models import Call, CallConfig, Read, ReadQC, Reason, Trace, Why
from bsmeth.qc import c_positions, measure, verdict
from bsmeth.reference import load_amplicon, revcomp

AMP = load_amplicon()
CPG = {c.number: c for c in AMP.cpgs}
COMP = {"A": "T", "C": "G", "G": "C", "T": "A"}
SPACING, SIGMA, HEIGHT = 12, 2.5, 1000.0


def molecule(methylated=(), mixed=None) -> tuple[str, dict]:
    """The converted amplified strand (CpGs in ``methylated`` kept C) and, per target position, a second
    letter and its share of the signal (``mixed``: CpG number -> share of the C)."""
    t = list(AMP.target)
    cpg_t = {c.target_pos: c.number for c in AMP.cpgs}
    for i, b in enumerate(t):
        if b == "C":
            t[i] = "C" if cpg_t.get(i) in methylated else "T"
    second = {}
    for number, c_share in (mixed or {}).items():
        pos = CPG[number].target_pos
        major = "C" if c_share >= 0.5 else "T"
        t[pos] = major
        second[pos] = ("T" if major == "C" else "C", min(c_share, 1 - c_share))
    return "".join(t), second


def trace_read(seq: str, second: dict, orientation: str = "+", calls: str | None = None,
               extra: tuple = ()) -> Read:
    """A Read whose trace has one Gaussian peak per base (a share of it in a second channel where given).

    ``orientation`` '-': the read is the reverse complement of ``seq`` (its channels complemented).
    ``extra``: (read index, letter, height, offset in points) peaks added anywhere.
    """
    n = len(seq)
    read_seq = seq if orientation == "+" else revcomp(seq)
    # second letters in read coordinates
    sec = {}
    for t, (letter, share) in second.items():
        i, b = (t, letter) if orientation == "+" else (n - 1 - t, COMP[letter])
        sec[i] = (b, share)
    peaks = 20 + SPACING * np.arange(n)
    x = np.arange(int(peaks[-1]) + 30)
    ch = {b: np.zeros(len(x)) for b in "ACGT"}

    def add(b, pos, h, sigma=SIGMA):
        ch[b] += h * np.exp(-0.5 * ((x - pos) / sigma) ** 2)

    for i, b in enumerate(read_seq):
        minor = sec.get(i)
        add(b, peaks[i], HEIGHT * (1 - minor[1]) if minor else HEIGHT)
        if minor:
            add(minor[0], peaks[i], HEIGHT * minor[1])
    for i, b, h, off, *sigma in extra:
        add(b, peaks[i] + off, h, *sigma)
    channels = {b: np.rint(v + 5).astype(np.int16) for b, v in ch.items()}  # a flat baseline of 5
    called = calls if calls is not None else read_seq
    return Read("syn", "syn.ab1", called, np.full(n, 40, np.uint8), "ab1",
                Trace(channels, peaks.astype(np.int32), "GATC"))


def aligned(read: Read):
    aln = align(AMP, read.seq, read.qual)
    assert aln is not None
    return aln


@pytest.mark.parametrize("orientation", ["+", "-"])
def test_signals_at_known_peaks(orientation):
    seq, second = molecule(methylated={3, 9}, mixed={12: 0.6, 15: 0.3})
    read = trace_read(seq, second, orientation)
    aln = aligned(read)
    assert aln.orientation == orientation
    sig = signals_at(read, aln, c_positions(AMP, aln))
    at = lambda n: sig[CPG[n].target_pos]  # noqa: E731
    assert at(3).c == pytest.approx(HEIGHT, rel=0.01) and at(3).t == pytest.approx(0, abs=5)
    assert at(4).t == pytest.approx(HEIGHT, rel=0.01) and at(4).c == pytest.approx(0, abs=5)
    assert at(12).c_frac == pytest.approx(0.6, abs=0.01) and at(15).c_frac == pytest.approx(0.3, abs=0.01)
    assert at(12).mixed and at(15).mixed and not at(3).mixed and not at(4).mixed
    assert at(3).confidence == pytest.approx(1, abs=0.01) and at(12).confidence == pytest.approx(0.2, abs=0.02)
    # a full peak nearby: the reference height of the absolute check
    assert at(4).ref == pytest.approx(HEIGHT, rel=0.05)
    # non-CpG C are measured too: converted, so all T
    cph = [t for t in sig if AMP.target[t + 1] != "G"]
    assert len(cph) > 40 and all(sig[t].c_frac < 0.02 for t in cph)


def test_mixed_rule():
    assert PeakSignal(1000, 1000 * MIXED_RATIO).mixed
    assert not PeakSignal(1000, 1000 * MIXED_RATIO * 0.95).mixed
    # two small peaks at a position showing another base (an A allele, a G): background, not two templates
    assert not PeakSignal(30, 25, ref=1000).mixed
    assert PeakSignal(30, 25).mixed  # without a reference height (ref 0) only the ratio is checked
    assert PeakSignal(400, 300, ref=1000).mixed
    assert not PeakSignal(400, 1000 * MIXED_MIN_LEVEL * 0.9, ref=1000).mixed
    assert not PeakSignal(0, 0).mixed and PeakSignal(0, 0).c_frac is None


def test_flank_of_a_neighbour_is_not_a_peak():
    """A T right after the CpG's C, broad and close: its flank rises across the C's peak window."""
    ch = np.zeros(200)
    x = np.arange(200)
    t = 1000 * np.exp(-0.5 * ((x - 108) / 5.0) ** 2)  # the neighbour, 8 points on
    c = 1000 * np.exp(-0.5 * ((x - 100) / 2.5) ** 2)
    h_t = peak_heights(t + ch, np.array([100]), half=2, window=18)[0]
    h_c = peak_heights(c, np.array([100]), half=2, window=18)[0]
    assert h_t == pytest.approx(1000 * np.exp(-0.5 * (8 / 5) ** 2), rel=0.01)  # the value at the peak, 278
    assert not PeakSignal(h_c, h_t).mixed  # the window maximum (487) would have made it "mixed"
    # a genuine minor peak at the same place is still found
    h_t2 = peak_heights(t + 400 * np.exp(-0.5 * ((x - 100) / 2.5) ** 2), np.array([100]), half=2, window=18)[0]
    assert h_t2 > 600


def test_no_trace_or_mismatched_peaks_give_no_signals():
    seq, second = molecule()
    read = trace_read(seq, second)
    aln = aligned(read)
    plain = Read("p", "p.fa", read.seq, read.qual, "fasta", None)
    assert signals_at(plain, aln, c_positions(AMP, aln)) == {}
    cut = Read("c", "c.ab1", read.seq, read.qual, "ab1", Trace(read.trace.channels, read.trace.peaks[:-3], "GATC"))
    assert signals_at(cut, aln, c_positions(AMP, aln)) == {}


def contradicted_read(orientation: str):
    """(read, alignment, signals) of a clone methylated at CpG 5, mixed at CpG 12, whose base caller wrote T at
    CpG 5 although the trace has a clean C peak there."""
    seq, second = molecule(methylated={5}, mixed={12: 0.55})
    n = len(seq)
    read_seq = seq if orientation == "+" else revcomp(seq)
    t5 = CPG[5].target_pos
    i5 = t5 if orientation == "+" else n - 1 - t5
    calls = read_seq[:i5] + ("T" if orientation == "+" else "A") + read_seq[i5 + 1:]
    read = trace_read(seq, second, orientation, calls=calls)
    aln = aligned(read)
    return read, aln, signals_at(read, aln, c_positions(AMP, aln))


@pytest.mark.parametrize("orientation", ["+", "-"])
def test_calls_mixed_and_contradicted(orientation):
    read, aln, sig = contradicted_read(orientation)
    got = {c.cpg.number: c for c in call_read(AMP, aln, CallConfig(), sig)}
    assert got[5].call is Call.UNMETHYLATED and got[5].contradicted
    assert got[12].call is Call.NOT_DETERMINED and got[12].why is Why.MIXED
    assert got[3].call is Call.UNMETHYLATED and not got[3].contradicted
    assert got[3].c_signal is not None and got[3].c_frac < 0.05


@pytest.mark.parametrize("orientation", ["+", "-"])
def test_calls_from_any_mapping_of_peak_signals_equal_those_from_signals(orientation):
    """``call_read`` takes ``Signals`` or any mapping target -> ``PeakSignal``: the same calls, evidence and
    contradictions either way (a contradicted, a mixed and an uncovered CpG among them)."""
    read, aln, sig = contradicted_read(orientation)
    without_8 = {t: sig[t] for t in sig if t != CPG[8].target_pos}  # no signal at CpG 8
    for a, b in ((sig, {t: sig[t] for t in sig}), (signals_at(read, aln, list(without_8)), without_8)):
        x, y = call_read(AMP, aln, CallConfig(), a), call_read(AMP, aln, CallConfig(), b)
        assert (x.codes, x.whys, x.bases, x.quals, x.contradicted) == (y.codes, y.whys, y.bases, y.quals,
                                                                       y.contradicted)
        assert x.c_signal.tobytes() == y.c_signal.tobytes() and x.t_signal.tobytes() == y.t_signal.tobytes()
    got = {c.cpg.number: c for c in x}
    assert got[5].contradicted and got[12].why is Why.MIXED and got[8].c_signal is None and got[7].t_signal > 0


def _qc(mixed_cpgs, traced_cpgs, mixed_cph=0, traced_cph=54) -> ReadQC:
    return ReadQC(aligned_bases=180, identity=1.0, mismatches=0, converted=54, unconverted=0, hq_bases=500,
                  mixed_cpgs=mixed_cpgs, traced_cpgs=traced_cpgs, mixed_cph=mixed_cph, traced_cph=traced_cph)


@pytest.mark.parametrize("counts, mixed", [
    ((2, 25), True),  # two CpGs with two strong peaks: two templates
    ((1, 25), False),  # one is what a clean read may show now and then
    ((2, 60), False),  # a long amplicon: 3 are needed (5 %)
    ((3, 60), True),
    ((1, 25, 1, 54), False),  # two C of any kind: not enough
    ((1, 25, 2, 54), True),  # three C of any kind (>= 3 % of 79)
    ((0, 80, 3, 160), False),  # three of 240 is under 3 %
])
def test_read_level_mixed_rule(counts, mixed):
    seq, second = molecule()
    aln = aligned(trace_read(seq, second))
    reason, detail = verdict(aln, _qc(*counts), 500, CallConfig())
    assert (reason is Reason.MIXED_TRACE) == mixed
    reason, detail = verdict(aln, _qc(*counts), 500, CallConfig(keep_mixed=True))
    assert reason is None and (detail.startswith("kept with --keep-mixed") == mixed)


def test_mixed_trace_end_to_end():
    """Two molecules in one trace: measure() counts the mixed CpGs, verdict() excludes the read."""
    seq, second = molecule(mixed={n: 0.4 for n in (4, 9, 16)})
    read = trace_read(seq, second)
    aln = aligned(read)
    sig = signals_at(read, aln, c_positions(AMP, aln))
    qc = measure(AMP, aln, read, CallConfig(), sig)
    assert qc.mixed_cpgs == 3 and qc.traced_cpgs == 25 and qc.mixed_cph == 0
    assert verdict(aln, qc, 500, CallConfig())[0] is Reason.MIXED_TRACE
    clean = trace_read(*molecule(methylated={4, 9, 16}))
    aln = aligned(clean)
    qc = measure(AMP, aln, clean, CallConfig(), signals_at(clean, aln, c_positions(AMP, aln)))
    assert qc.mixed_cpgs == 0 and verdict(aln, qc, 500, CallConfig())[0] is None


# --------------------------------------------------------------------------- vectorised forms against the rules

def _height_by_hand(ch: list, x: int, half: int, window: int) -> float:
    """The documented peak height at one position, point by point (windows past an end repeat the end value)."""
    def at(k):
        return ch[min(max(k, 0), len(ch) - 1)]
    win = [at(x + k) for k in range(-half, half + 1)]
    peak = max(win)
    where = win.index(peak)
    if (where == 0 and at(x - half - 1) > peak) or (where == 2 * half and at(x + half + 1) > peak):
        peak = win[half]  # the flank of a neighbouring peak: the value at the position
    return max(float(peak) - float(min(at(x + k) for k in range(-window, window + 1))), 0.0)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([">i2", "<i2", "int32", "float64", "float32"]))
def test_peak_heights_equal_the_rule_position_by_position(data, dtype):
    n = data.draw(st.integers(3, 60))
    ch = np.array(data.draw(st.lists(st.integers(-40, 3000), min_size=n, max_size=n))).astype(dtype)
    half = data.draw(st.integers(0, 3))
    window = data.draw(st.integers(half + 1, 20))
    xs = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=12)))
    assert peak_heights(ch, xs, half, window).tolist() == [_height_by_hand(ch.tolist(), int(x), half, window)
                                                          for x in xs.tolist()]


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([">i2", "<i2", ">u2", "int32", "float64"]))
def test_heights_of_several_channels_equal_the_rule(data, dtype):
    """``_heights`` on several rows of a matrix at once (as ``signals_at`` asks it), windows all inside the
    trace (its strided gather) or some past an end (its clipped one): the rule, row by row."""
    n = data.draw(st.integers(30, 120))
    top = data.draw(st.sampled_from([4, 3000]))  # a few levels: ties, where the flank rule is easiest to get wrong
    mat = np.array(data.draw(st.lists(st.lists(st.integers(0, top), min_size=n, max_size=n), min_size=4,
                                      max_size=4))).astype(dtype)
    half = data.draw(st.integers(0, 3))
    window = data.draw(st.integers(half + 1, 12))
    reach = max(window, half + 1)
    inside = data.draw(st.booleans())
    lo, hi = (reach, n - reach - 1) if inside else (0, n - 1)
    xs = np.array(data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=20)), dtype=np.int32)
    rows = np.array(data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=4)))
    got = _heights(mat, rows, xs, half, window)
    assert got.shape == (len(rows), len(xs)) and got.dtype == np.float64
    for r, line in zip(rows.tolist(), got.tolist()):
        assert line == [_height_by_hand(mat[r].tolist(), int(x), half, window) for x in xs.tolist()]


@pytest.mark.parametrize("n_calls", [(), (3,), (40, 41, 90)])
def test_reference_heights_are_the_median_of_the_called_peaks_around(n_calls):
    seq, second = molecule(methylated={1, 5})
    calls = "".join("N" if i in n_calls else b for i, b in enumerate(seq))
    read = trace_read(seq, second, calls=calls)
    vals = called_values(read)
    n = len(seq)

    def by_hand(i):
        w = vals[max(0, i - REF_HALF):i + REF_HALF + 1]
        w = w[~np.isnan(w)]
        return float(np.median(w)) if len(w) else 0.0

    for idx in (np.arange(n), np.arange(20, 60), np.array([REF_HALF, 100, n - REF_HALF - 1]), np.array([0, n - 1])):
        assert reference_heights(read, idx).tolist() == [by_hand(i) for i in idx.tolist()]


@pytest.mark.parametrize("orientation", ["+", "-"])
def test_mixed_looked_up_only_where_two_peaks_equals_the_rule_everywhere(orientation):
    """``Signals.mixed`` looks the full-peak height up only where ``two_peaks`` holds: the same flags as
    ``is_mixed`` with every reference height, whichever of the two is asked first."""
    seq, second = molecule(methylated={2, 7}, mixed={3: 0.4, 9: 0.3, 12: 0.5, 20: 0.2})
    read = trace_read(seq, second, orientation)
    aln = aligned(read)
    lazy = signals_at(read, aln, c_positions(AMP, aln))
    full = signals_at(read, aln, c_positions(AMP, aln))
    ref = full.ref  # every reference height first
    expected = is_mixed(full.c, full.t, reference_heights(read, aln.read_pos[full.targets]))
    assert ref.tolist() == reference_heights(read, aln.read_pos[full.targets]).tolist()
    assert lazy.mixed.tolist() == full.mixed.tolist() == expected.tolist()
    assert 3 <= int(expected.sum()) < len(expected)
