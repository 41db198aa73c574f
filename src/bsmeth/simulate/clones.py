"""Simulated Sanger traces of cloned bisulfite PCR products, with the truth.

Pipeline position: outside the analysis path, a test-data generator.  The
``simulate`` command of ``cli`` calls ``simulate()``; no analysis stage imports
this module.  It writes what a sequencing core would return for a bisulfite
cloning experiment in pCR4-TOPO read with the M13 reverse primer (one .ab1 per
clone, a sample sheet) plus what only a simulator knows: per read the fault
and the reason ``bsmeth call`` should exclude it for, per CpG the true state.

A read is vector (M13R side) + insert + vector (M13F side) + read-through.
The insert is one PCR molecule: the amplified strand, bisulfite converted
(non-CpG C -> T with the conversion efficiency, CpG C kept when methylated),
carrying the primer sequences at its ends, in either orientation.  Base-call
errors follow the PHRED of each position; the chromatogram has one Gaussian
peak per template base plus a peak for each miscalled base.  Everything is
drawn from one numpy Generator seeded by ``seed``: same seed, same bytes.

Fault ``mixed_clone`` (two colonies picked together): the trace is the sum of
two molecules of the sample, the minor one 30-50 % of the signal; the base
caller calls the larger peak with a lowered PHRED (``_mix``).  Direct reads of
uncloned product are simulated by ``direct``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Optional, Union

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from ..abif import AbifRecord, write_abif
from ..atomic import write_bytes as atomic_write
from ..calling import snp_target
from ..coords import one_based
from ..models import Amplicon, CallConfig, Reason
from ..reference import IUPAC_SETS, revcomp

# pCR4-TOPO on the strand read from M13 reverse, from just after the M13R primer
# site to the TOPO site (...CCCTT) where the insert starts.  Source:
# /work/shared/data/vectors-and-primers/pCR4-TOPO_cloning_site.fasta record 1
# (churchlab/ulutil, ulutil/sanger.py @7f9a427, standard_vectors['pCR4-TOPO-left']).
M13R_FLANK = "CATGATTACGCCAAGCTCAGAATTAACCCTCACTAAAGGGACTAGTCCTGCAGGTTTAAACGAATTCGCCCTT"
# Same strand after the insert: record 2 of the same file (AAGGG... to ...ACAATTCA),
# extended by CTGGCCGTCGTTTTAC... (reverse complement of M13F(-20) and the pUC lacZ-alpha
# continuation), which SOURCE.md marks "likely, not confirmed for pCR4".
M13F_FLANK = (
    "AAGGGCGAATTCGCGGCCGCTAAATTCAATTCGCCCTATAGTGAGTCGTATTACAATTCA"
    "CTGGCCGTCGTTTTACAACGTCGTGACTGGGAAAACCCTGGCG"
)
# Beyond the known flank the vector sequence is not available here: SYNTHETIC filler,
# a fixed pseudo-random sequence (seed 4242) that only gives reads their realistic length.
READTHROUGH = "".join(np.random.default_rng(4242).choice(list("ACGT"), 800))

FAULT_KINDS = ("poor_conversion", "empty_vector", "failed_read", "duplicate")
# faults only the chromatogram shows; kept apart so that FAULT_KINDS (the seed study's faults) stays as it was
TRACE_FAULT_KINDS = ("mixed_clone",)
ALL_FAULT_KINDS = FAULT_KINDS + TRACE_FAULT_KINDS
EXPECTED_REASON = {"": "", "poor_conversion": "low_conversion", "empty_vector": "no_amplicon",
                   "failed_read": "low_quality", "duplicate": "duplicate", "mixed_clone": "mixed_trace"}
DUPLICATE_MIN_MARKS = 3  # methylated CpGs + unconverted CpH a duplicate's source must carry
# A mixed clone (two colonies picked together) is the sum of two molecules of one sample; the second
# molecule's share of the template is drawn from MIXED_FRACTION.  The pair must differ at
# MIXED_MIN_DIFF or more C outside primers (CpG or not) where one has C and the other T: two molecules
# that agree everywhere make a trace no method can tell from a clean clone (and that does no harm).  Up to
# MIXED_TRIES partners are drawn; docs/trace_evidence.md.
MIXED_FRACTION = (0.3, 0.7)
MIXED_MIN_DIFF = 3
MIXED_TRIES = 50
_MIN_CONVERSION = CallConfig().min_conversion  # below it ``bsmeth call`` excludes a read, fault or not
_BASE_ORDER = "GATC"
_RESERVED = {"read", "file", "sample", "orientation", "fault", "expected_reason", "duplicate_of",
             "conversion", "snp_allele", "insert_start", "insert_end", "length", "molecule"}
Range = tuple[float, float]
# How a clone's CpG states are drawn from the per-CpG probabilities p_j (the truth of the heterogeneity metrics):
# ``independent``: each CpG on its own (random patterns; the seed study's model); ``concordant``: one uniform u
# per clone, CpG j methylated when u < p_j, so every CpG keeps its probability but the states are as correlated
# as they can be; with equal p_j a clone is fully methylated (probability p) or fully unmethylated.
PATTERNS = ("independent", "concordant")
# keys of a condition written to design.json only when set (so the seed study's design.json stays as it was)
_OPTIONAL = {"methylation_alt": None, "pattern": "independent"}
MAX_COUNT = 10_000  # clones per condition, faulty reads per kind: a design beyond is a typo, not a plate


def _number(v, where: str, low: float, high: float, integer: bool = False) -> float:
    """``v`` if it is a finite number in [low, high] (an integer if ``integer``), else ``ValueError`` saying so."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and low <= v <= high
    if ok and integer and v != int(v):
        ok = False
    if not ok:
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"{where}: {v!r} is not {kind} in [{low:g}, {high:g}]")
    return int(v) if integer else v


# bounds of the read model's numbers: (low, high, whole numbers only)
_READ_BOUNDS = {
    "read_length": (1, 100_000, True), "start_offset": (0, 10_000, True), "low_start": (0, 10_000, False),
    "plateau": (0, 93, False), "tail": (0, 100_000, False), "n_share": (0, 1, False), "indel_share": (0, 1, False),
    "peak_spacing": (2, 100, False), "plus_orientation": (0, 1, False), "poor_conversion": (0, 1, False),
    "failed_length": (1, 100_000, True), "raw_step": (1, 1_000, True),
}


@dataclass(frozen=True)
class Condition:
    """One sample: ``n_clones`` clean clones drawn with per-CpG methylation probabilities."""

    sample: str
    columns: dict = field(default_factory=dict)  # extra sample-sheet columns, e.g. cell_line, dose
    n_clones: int = 11
    methylation: Union[float, tuple[float, ...]] = 0.5  # one per amplicon CpG, or broadcast
    snp_alt_fraction: float = 0.5  # clones carrying the SNP allele that destroys a CpG
    conversion: float = 0.995
    # allele-linked methylation: probabilities for clones carrying the alternative allele of the amplicon's
    # first SNP (None: the same as ``methylation``); e.g. methylation 0.9 and methylation_alt 0.1
    methylation_alt: Optional[Union[float, tuple[float, ...]]] = None
    # how a clone's CpG states are drawn, see PATTERNS
    pattern: str = "independent"

    def __post_init__(self) -> None:
        if (not isinstance(self.sample, str) or not self.sample
                or not all(c.isalnum() or c in "._-" for c in self.sample)):
            raise ValueError(f"sample name {self.sample!r}: use letters, digits, '.', '_' or '-' (it names a folder)")
        where = f"condition {self.sample}"
        _number(self.n_clones, f"{where}: n_clones", 0, MAX_COUNT, integer=True)
        if not isinstance(self.columns, dict) or not all(
                isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in self.columns.items()):
            raise ValueError(f"{where}: columns must map column names to single values, e.g. {{\"dose\": 10}}")
        if not isinstance(self.methylation, (int, float)):
            if not isinstance(self.methylation, (list, tuple)):
                raise ValueError(f"{where}: methylation must be a probability or a list of them, one per CpG")
            object.__setattr__(self, "methylation", tuple(_number(p, f"{where}: methylation", 0, 1)
                                                          for p in self.methylation))
        for name in ("methylation", "snp_alt_fraction", "conversion"):
            if isinstance(getattr(self, name), (int, float)):
                _number(getattr(self, name), f"{where}: {name}", 0, 1)
        if self.methylation_alt is not None and not isinstance(self.methylation_alt, (int, float)):
            if not isinstance(self.methylation_alt, (list, tuple)):
                raise ValueError(f"{where}: methylation_alt must be a probability or a list of them, one per CpG")
            object.__setattr__(self, "methylation_alt", tuple(_number(p, f"{where}: methylation_alt", 0, 1)
                                                              for p in self.methylation_alt))
        probs = np.atleast_1d(np.asarray(self.methylation, dtype=float))
        if self.methylation_alt is not None:
            probs = np.concatenate([probs, np.atleast_1d(np.asarray(self.methylation_alt, dtype=float))])
        if self.n_clones < 0 or not ((probs >= 0) & (probs <= 1)).all():
            raise ValueError(f"condition {self.sample}: n_clones must be >= 0 and probabilities in [0, 1]")
        if self.pattern not in PATTERNS:
            raise ValueError(f"condition {self.sample}: pattern {self.pattern!r}; "
                             f"expected one of {', '.join(PATTERNS)}")
        if not (0 <= self.snp_alt_fraction <= 1 and 0 <= self.conversion <= 1):
            raise ValueError(f"condition {self.sample}: snp_alt_fraction and conversion must be in [0, 1]")
        bad = _RESERVED & set(self.columns)
        if bad:
            raise ValueError(f"condition {self.sample}: column name(s) {sorted(bad)} are reserved")
        object.__setattr__(self, "columns", dict(self.columns))

    def probabilities(self, n_cpgs: int, alt: bool = False) -> np.ndarray:
        """Per-CpG methylation probabilities; ``alt``: of clones carrying the first SNP's alternative allele."""
        value = self.methylation_alt if alt and self.methylation_alt is not None else self.methylation
        if not isinstance(value, tuple):
            return np.full(n_cpgs, float(value))
        if len(value) != n_cpgs:
            raise ValueError(f"condition {self.sample}: {len(value)} methylation probabilities "
                             f"for an amplicon with {n_cpgs} CpGs")
        return np.asarray(value)


@dataclass(frozen=True)
class ReadModel:
    """Read-length and error-profile parameters (ranges are drawn uniformly per read)."""

    read_length: Range = (450, 650)
    start_offset: Range = (0, 16)  # first read base inside the M13R-side flank
    low_start: Range = (15, 25)  # bases of low quality at the start (dye blobs, unresolved peaks)
    plateau: Range = (35, 50)  # mid-read PHRED
    tail: Range = (100, 180)  # bases over which quality decays at the end
    n_share: float = 0.3  # of errors where Q < 15: called N
    indel_share: float = 0.2  # of errors where Q < 15: 1-base insertion or deletion
    peak_spacing: Range = (10.0, 12.0)  # trace points per base
    plus_orientation: float = 0.5
    poor_conversion: Range = (0.75, 0.88)
    failed_length: Range = (60, 200)
    raw_step: int = 8  # DATA1-4 keep every raw_step-th scan: keeps files ~30-60 KB; nothing reads raw data

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            low, high, integer = _READ_BOUNDS[f.name]
            if isinstance(f.default, tuple):
                if not isinstance(v, (list, tuple)) or len(v) != 2:
                    raise ValueError(f"reads.{f.name}: give a range [low, high], not {v!r}")
                v = tuple(_number(x, f"reads.{f.name}", low, high, integer) for x in v)
                object.__setattr__(self, f.name, v)
                if v[0] > v[1]:
                    raise ValueError(f"reads.{f.name}: give a range [low, high], not {list(v)!r}")
            else:
                _number(v, f"reads.{f.name}", low, high, integer)
        if self.raw_step < 1 or self.read_length[0] < 1 or self.failed_length[0] < 1:
            raise ValueError("reads: raw_step, read_length and failed_length must be positive")


@dataclass(frozen=True)
class Design:
    """A simulated experiment: conditions, extra faulty reads (spread over conditions), read model."""

    conditions: tuple[Condition, ...]
    faults: dict = field(default_factory=dict)  # kind -> count, kinds in FAULT_KINDS
    reads: ReadModel = ReadModel()

    def __post_init__(self) -> None:
        object.__setattr__(self, "conditions", tuple(self.conditions))
        if not isinstance(self.faults, dict):
            raise ValueError(f"faults: give counts by kind, e.g. {{\"duplicate\": 2}}, not {self.faults!r}")
        object.__setattr__(self, "faults", {k: _number(v, f"faults.{k}", 0, MAX_COUNT, integer=True)
                                            for k, v in self.faults.items()})
        if not self.conditions:
            raise ValueError("a design needs at least one condition")
        names = [c.sample for c in self.conditions]
        if len(set(names)) != len(names):
            raise ValueError("sample names must be unique")
        bad = set(self.faults) - set(ALL_FAULT_KINDS)
        if bad or any(v < 0 for v in self.faults.values()):
            raise ValueError(f"faults: kinds must be among {', '.join(ALL_FAULT_KINDS)} with counts >= 0")

    def to_dict(self) -> dict:
        conds = []
        for c in self.conditions:
            d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(c).items()}
            conds.append({k: v for k, v in d.items() if k not in _OPTIONAL or v != _OPTIONAL[k]})
        reads = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.reads).items()}
        return {"conditions": conds, "faults": dict(self.faults), "reads": reads}

    @classmethod
    def from_dict(cls, data: dict) -> "Design":
        """Inverse of ``to_dict`` (a parsed design.json); only ``conditions[].sample`` is required."""

        def only(d: dict, allowed: set, where: str) -> dict:
            if not isinstance(d, dict):
                raise ValueError(f"{where}: expected a JSON object {{...}}, not {type(d).__name__} {d!r:.40}")
            if set(d) - allowed:
                raise ValueError(f"{where}: unknown key(s) {sorted(set(d) - allowed)}; expected {sorted(allowed)}")
            return d

        only(data, {"conditions", "faults", "reads"}, "design")
        ckeys = {f.name for f in fields(Condition)}
        if not isinstance(data.get("conditions", []), list):
            raise ValueError("design: conditions must be a list of objects, one per sample")
        conds = tuple(Condition(**only(c, ckeys, "design condition")) for c in data.get("conditions", []))
        reads = only(data.get("reads", {}), {f.name for f in fields(ReadModel)}, "design reads")
        return cls(conds, dict(data.get("faults", {})), ReadModel(**reads))

    def check(self, amp: Amplicon) -> None:
        """``ValueError`` when the design does not fit ``amp`` (a methylation list of another length)."""
        for c in self.conditions:
            c.probabilities(len(amp.cpgs))

    def fault_plan(self) -> list[tuple[str, int]]:
        """(kind, condition index) of every faulty read: round-robin over conditions, kinds in ALL_FAULT_KINDS order."""
        kinds = [k for k in ALL_FAULT_KINDS for _ in range(self.faults.get(k, 0))]
        return [(k, i % len(self.conditions)) for i, k in enumerate(kinds)]


@dataclass(frozen=True)
class SimulationResult:
    out_dir: Path
    traces: tuple[Path, ...]
    sample_sheet: Path
    truth_reads: Path
    truth_cpgs: Path
    design: Path
    readme: Path
    n_reads: int
    faults: dict  # kind -> reads actually simulated
    skipped: tuple[str, ...]  # faults that could not be simulated, with why
    truth_mixed: Optional[Path] = None  # only when the design has mixed clones

    @property
    def paths(self) -> tuple[Path, ...]:
        extra = (self.truth_mixed,) if self.truth_mixed is not None else ()
        return (*self.traces, self.sample_sheet, self.truth_reads, self.truth_cpgs, self.design, self.readme, *extra)


def _mean_matched(mean: float, effect: np.ndarray) -> np.ndarray:
    """Probabilities logistic(b + effect), b chosen so that they average ``mean``."""
    return expit(brentq(lambda b: expit(b + effect).mean() - mean, -30, 30) + effect)


def seed_study_design(seed: int = 20240115, n_cpgs: Optional[int] = None) -> Design:
    """The example experiment: BT474 (trastuzumab-sensitive) vs rBT474 (resistant) at doses 0, 1, 3, 10.

    BT474 stays low at every dose; rBT474 gains methylation with dose.  A per-CpG
    effect (logit scale, drawn once from ``seed``) makes some CpGs consistently
    higher than others in every condition.  ``n_cpgs`` defaults to the embedded amplicon's.
    """
    if n_cpgs is None:
        from ..reference import load_amplicon

        n_cpgs = len(load_amplicon().cpgs)
    effect = np.random.default_rng(seed).normal(0.0, 0.9, n_cpgs)
    levels = {"BT474": (0.06, 0.07, 0.06, 0.08), "rBT474": (0.30, 0.45, 0.60, 0.75)}
    conds = []
    for cell, means in levels.items():
        for dose, mean in zip((0, 1, 3, 10), means):
            probs = tuple(round(float(p), 4) for p in _mean_matched(mean, effect))
            conds.append(Condition(f"{cell}_d{dose}", {"cell_line": cell, "dose": dose}, 11, probs))
    return Design(tuple(conds), {k: 2 for k in FAULT_KINDS})


@dataclass(frozen=True, eq=False)
class _Molecule:
    seq: str  # the PCR product, amplified strand 5'->3'
    states: tuple[str, ...]  # per amplicon CpG: M / U / A (SNP allele, no CpG)
    conversion: Optional[float]  # realised: fraction of non-CpG C outside primers converted
    marks: int  # methylated CpGs + unconverted CpH outside primers: what makes a duplicate detectable
    snp_allele: str


def _make_molecule(amp: Amplicon, probs: np.ndarray, cond: Condition, conversion: float,
                   rng: np.random.Generator, probs_alt: Optional[np.ndarray] = None) -> _Molecule:
    """One PCR molecule.  ``probs_alt``: methylation probabilities when the molecule carries the alternative
    allele of the amplicon's first SNP (allele-linked methylation); None: ``probs`` whatever the allele."""
    t = np.array(list(amp.target), dtype="U1")
    alt_snps = set()
    alleles = []
    for snp in amp.snps:
        alt = bool(rng.random() < cond.snp_alt_fraction)
        alleles.append(f"{snp.name or one_based(snp.pos)}:{snp.alt if alt else snp.ref}")
        if alt:
            alt_snps.add(snp)
            ts, letter = snp_target(amp, snp)
            t[ts] = letter
    cpg_t = np.array([c.target_pos for c in amp.cpgs], dtype=int)
    if probs_alt is not None and amp.snps and amp.snps[0] in alt_snps:
        probs = probs_alt
    # independent: one draw per CpG (the seed study's model, its random stream unchanged); concordant: one per clone
    draws = rng.random(len(cpg_t)) if cond.pattern == "independent" else np.full(len(cpg_t), rng.random())
    states = np.where(draws < probs, "M", "U")
    states[[i for i, c in enumerate(amp.cpgs) if c.snp in alt_snps]] = "A"
    under = np.array([c.under_primer for c in amp.cpgs], dtype=bool)
    live = cpg_t[states != "A"]
    cpg_c = np.zeros(len(t), dtype=bool)
    cpg_c[live] = True
    cph = (t == "C") & ~cpg_c
    unconverted = cph & (rng.random(len(t)) >= conversion)
    out = t.copy()
    out[cph & ~unconverted] = "T"
    out[cpg_t[states == "U"]] = "T"
    in_primer = np.zeros(len(t), dtype=bool)
    for (a, b), primer in ((amp.forward_span, amp.forward), (amp.reverse_span, revcomp(amp.reverse or ""))):
        if b > a and primer:
            in_primer[a:b] = True
            # the product carries the primer; a degenerate letter copies whichever base fits
            out[a:b] = [g if g in IUPAC_SETS.get(p, p) else IUPAC_SETS.get(p, p)[0] for p, g in zip(primer, out[a:b])]
    n_unconv, n_cph = int((unconverted & ~in_primer).sum()), int((cph & ~in_primer).sum())
    marks = int((states[~under] == "M").sum()) + n_unconv
    realised = 1 - n_unconv / n_cph if n_cph else None
    return _Molecule("".join(out), tuple(states.tolist()), realised, marks, ";".join(alleles))


def _expected_reason(fault: str, m: Optional[_Molecule]) -> str:
    """The reason ``bsmeth call`` (default thresholds) should give: the first that applies, in its order.

    A clean clone can fail conversion by chance (a few unconverted C are possible at 99.5 %).
    """
    reasons = {EXPECTED_REASON[fault]}
    if m is not None and m.conversion is not None and m.conversion < _MIN_CONVERSION:
        reasons.add("low_conversion")
    return next((r.value for r in Reason if r.value in reasons), "")


def _u(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def _qualities(n: int, rm: ReadModel, rng: np.random.Generator, failed: bool) -> np.ndarray:
    if failed:
        return rng.integers(2, 10, n).astype(np.uint8)
    i = np.arange(n)
    plateau, ramp, tail = _u(rng, rm.plateau), _u(rng, rm.low_start), _u(rng, rm.tail)
    q = np.full(n, plateau)
    # the first ``ramp`` bases stay below ~15, then quality climbs to the plateau within ~8 bases
    q = np.minimum(q, 4 + 10 * np.clip(i / ramp, 0, 1) + (plateau - 14) * np.clip((i - ramp) / 8, 0, 1))
    end_q = rng.uniform(4, 10)
    q = np.minimum(q, end_q + (plateau - end_q) * np.clip((n - 1 - i) / tail, 0, 1) ** 1.5)
    q += rng.normal(0, 3, n)
    q[rng.random(n) < 0.01] -= 15  # occasional isolated bad peak (compression, dye blob)
    return np.clip(np.rint(q), 2, 60).astype(np.uint8)


def _peaks(pos, amp, sig, ch, n_points: int) -> np.ndarray:
    """Sum of Gaussian peaks into a (4, n_points) float array."""
    w = int(np.ceil(4 * sig.max()))
    offsets = np.arange(-w, w + 1)
    idx = np.rint(pos).astype(int)[:, None] + offsets
    vals = amp[:, None] * np.exp(-0.5 * ((idx - pos[:, None]) / sig[:, None]) ** 2)
    ok = (idx >= 0) & (idx < n_points)
    out = np.zeros(4 * n_points)
    np.add.at(out, (np.broadcast_to(ch[:, None], idx.shape) * n_points + idx)[ok], vals[ok])
    return out.reshape(4, n_points)


def _sequence(template: str, insert: tuple[int, int], rm: ReadModel, rng: np.random.Generator,
              failed: bool, minor: Optional[tuple[str, float]] = None) -> tuple[AbifRecord, tuple[int, int]]:
    """Sequence ``template``: qualities, base-call errors drawn from them, the chromatogram.

    Returns the trace (sample name still empty) and the 1-based inclusive read positions of
    ``insert`` (template coordinates, half-open), (0, 0) when the read does not reach it.
    ``minor`` = (second template of the same length, its share of the signal, < 0.5): a mixed
    clone, see ``_mix``.
    """
    n = len(template)
    tb = np.array(list(template), dtype="U1")
    code = np.select([tb == b for b in _BASE_ORDER], range(4), -1)
    code = np.where(code < 0, rng.integers(0, 4, n), code)  # IUPAC letters in the template: any channel
    q = _qualities(n, rm, rng, failed)
    p_err = 10.0 ** (-q.astype(float) / 10.0)
    err = rng.random(n) < p_err
    u = rng.random(n)
    low = err & (q < 15)
    is_n = low & (u < rm.n_share)
    if failed:
        is_n |= rng.random(n) < 0.25
    is_del = low & ~is_n & (u >= rm.n_share) & (u < rm.n_share + rm.indel_share / 2)
    is_ins = low & ~is_n & (u >= rm.n_share + rm.indel_share / 2) & (u < rm.n_share + rm.indel_share)
    is_sub = err & ~(is_n | is_del | is_ins)
    other = (code + rng.integers(1, 4, n)) % 4  # always a different channel than the true one
    letters = np.array(list(_BASE_ORDER))
    called = tb.copy()
    called[is_sub] = letters[other[is_sub]]
    called[is_n] = "N"
    mix = None
    if minor is not None:
        mix = _mix(tb, code, minor, q, rng)
        diff = mix[0]
        is_del[diff] = is_ins[diff] = is_sub[diff] = is_n[diff] = False
        called[diff] = mix[4]

    spacing = _u(rng, rm.peak_spacing)
    rel = np.arange(n) / max(n - 1, 1)
    steps = np.clip(spacing * (1 + 0.04 * rel) + rng.normal(0, 0.6, n), 0.5 * spacing, None)
    pos = rng.uniform(12, 25) + np.cumsum(steps)
    sig = spacing * 0.2 * (1 + 0.8 * np.exp(-np.arange(n) / 15) + 0.9 * rel**2)
    scale = rng.uniform(60, 150) if failed else rng.uniform(700, 1800)
    amp = scale * (1 - 0.55 * rel) * (1 - 0.7 * np.exp(-np.arange(n) / 8)) * rng.lognormal(0, 0.3, n)
    # secondary peaks: a miscalled base has a comparable peak of the called letter; elsewhere a
    # shoulder grows as quality drops, so the trace looks as good as its PHRED says
    sec_amp = np.where(is_sub | is_n, rng.uniform(0.7, 1.1, n), np.clip(2 * p_err, 0, 0.8) * rng.uniform(0.3, 1, n))
    ins_idx = np.nonzero(is_ins)[0]
    ins_base = rng.integers(0, 4, len(ins_idx))
    ins_pos = pos[ins_idx] + steps[np.minimum(ins_idx + 1, n - 1)] / 2
    n_points = int(np.ceil(pos[-1] + 25))
    main = amp
    extra: list[tuple] = []
    if mix is not None:  # where the molecules differ the signal splits between the two letters
        diff, code_b, share_a, share_b, _ = mix
        main = amp.copy()
        main[diff] = amp[diff] * share_a
        extra = [(pos[diff], amp[diff] * share_b, sig[diff], code_b[diff])]
    signal = _peaks(
        np.concatenate([pos, pos, ins_pos, *(e[0] for e in extra)]),
        np.concatenate([main, amp * sec_amp, amp[ins_idx] * rng.uniform(0.5, 0.9, len(ins_idx)),
                        *(e[1] for e in extra)]),
        np.concatenate([sig, sig, sig[ins_idx], *(e[2] for e in extra)]),
        np.concatenate([code, other, ins_base, *(e[3] for e in extra)]),
        n_points,
    )
    noise_sd = scale * (0.25 if failed else 0.012)
    signal += np.abs(rng.normal(0, noise_sd, signal.shape))
    analysed = np.clip(np.rint(signal), 0, 32767).astype(np.int16)
    # raw data: before dye-crosstalk correction and baseline subtraction
    mix = np.eye(4) * 0.8 + 0.05 + np.diag(np.full(3, 0.15), 1)
    drift = 300 + 200 * np.exp(-np.arange(n_points) / 1500.0)
    raw = (mix @ signal + drift)[:, :: rm.raw_step]
    raw = np.clip(np.rint(raw + rng.normal(0, 8, raw.shape)), 0, 32767).astype(np.int16)

    keep = np.nonzero(~is_del)[0]
    keys = np.concatenate([keep.astype(float), ins_idx + 0.5])
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    seq = "".join(np.concatenate([called[keep], letters[ins_base]])[order])
    qual = np.concatenate([q[keep], q[ins_idx]])[order]
    ploc = np.rint(np.concatenate([pos[keep], ins_pos])[order]).astype(np.int64)
    a, b = insert
    span = (0, 0)
    if b > a and a < n:
        first = one_based(int(np.searchsorted(keys, a)))
        last = int(np.searchsorted(keys, min(b, n) - 1, side="right"))
        span = (first, last) if last >= first else (0, 0)
    snr = int(min(max(amp.mean() / max(noise_sd, 1), 1), 2000))
    return AbifRecord("", seq, qual, ploc, analysed, raw, _BASE_ORDER, spacing=round(spacing, 2),
                      signal_to_noise=(snr,) * 4), span


def _mix(tb: np.ndarray, code: np.ndarray, minor: tuple[str, float], q: np.ndarray, rng: np.random.Generator):
    """Where a second template differs: its channel, each template's share of the peak, the base call.

    Each molecule's peak is its share of the template times a little independent noise (10 %: the two
    peaks share the sequence context, so most of the height variation is common).  The base caller
    calls the larger peak (N when the two are within 10 %) and lowers PHRED with the ratio of the two
    peaks (KB-like: about 15 at a 0.43 ratio, 5 at 1); ``q`` is lowered in place.
    """
    seq_b, frac = minor
    tb_b = np.array(list(seq_b[: len(tb)].ljust(len(tb), "N")), dtype="U1")
    code_b = np.select([tb_b == b for b in _BASE_ORDER], range(4), -1)
    diff = (code_b >= 0) & (code >= 0) & (code_b != code)
    k = int(diff.sum())
    share_a = (1 - frac) * rng.lognormal(0, 0.1, k)
    share_b = frac * rng.lognormal(0, 0.1, k)
    ratio = np.minimum(share_a, share_b) / np.maximum(share_a, share_b)
    called = np.where(share_a >= share_b, tb[diff], tb_b[diff])
    called[ratio > 0.9] = "N"
    q[diff] = np.minimum(q[diff], np.clip(np.rint(24 - 19 * ratio + rng.normal(0, 2, k)), 3, 20)).astype(np.uint8)
    return diff, code_b, share_a, share_b, called


@dataclass(frozen=True, eq=False)
class _Planned:
    """One read to write: its molecule (None for an empty vector), fault and orientation."""

    condition: int
    fault: str
    molecule: Optional[_Molecule]
    orientation: str
    source: int = -1  # for a duplicate: index of the source read
    partner: Optional[_Molecule] = None  # for a mixed clone: the minor molecule...
    fraction: float = 0.0  # ...and its share of the signal (< 0.5)


def _plan(design: Design, amp: Amplicon, rng: np.random.Generator) -> tuple[list[_Planned], list[str]]:
    rm = design.reads
    planned: list[_Planned] = []
    skipped: list[str] = []

    def orient() -> str:
        return "+" if rng.random() < rm.plus_orientation else "-"

    for ci, cond in enumerate(design.conditions):
        probs, alt = _condition_probabilities(cond, amp)
        for _ in range(cond.n_clones):
            planned.append(_Planned(ci, "", _make_molecule(amp, probs, cond, cond.conversion, rng, alt), orient()))
    for kind, ci in design.fault_plan():
        cond = design.conditions[ci]
        probs, alt = _condition_probabilities(cond, amp)
        if kind == "empty_vector":
            planned.append(_Planned(ci, kind, None, ""))
        elif kind in ("poor_conversion", "failed_read"):
            conv = _u(rng, rm.poor_conversion) if kind == "poor_conversion" else cond.conversion
            planned.append(_Planned(ci, kind, _make_molecule(amp, probs, cond, conv, rng, alt), orient()))
        elif kind == "duplicate":
            taken = {p.source for p in planned if p.fault == "duplicate"}
            sources = [i for i, p in enumerate(planned) if p.condition == ci and not p.fault and i not in taken
                       and p.molecule.marks >= DUPLICATE_MIN_MARKS and _expected_reason("", p.molecule) == ""]
            if not sources:
                skipped.append(f"duplicate in {cond.sample}: no clone with >= {DUPLICATE_MIN_MARKS} marks "
                               "(methylated CpGs + unconverted CpH) to duplicate detectably")
                continue
            src = sources[int(rng.integers(len(sources)))]
            planned.append(_Planned(ci, kind, planned[src].molecule, orient(), src))
        elif kind == "mixed_clone":
            mixed = _plan_mixed(amp, probs, cond, rng, alt)
            if mixed is None:
                skipped.append(f"mixed_clone in {cond.sample}: no two molecules differing at >= {MIXED_MIN_DIFF} C "
                               f"in {MIXED_TRIES} draws (a mixture of identical molecules is invisible)")
                continue
            a, b, frac = mixed
            planned.append(_Planned(ci, kind, a, orient(), partner=b, fraction=frac))
    return planned, skipped


def _condition_probabilities(cond: Condition, amp: Amplicon) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(probabilities, probabilities of the alternative allele or None) of one condition."""
    n_cpgs = len(amp.cpgs)
    if cond.methylation_alt is None:
        return cond.probabilities(n_cpgs), None
    if not amp.snps:
        raise ValueError(f"condition {cond.sample}: methylation_alt needs a SNP in the amplicon (--snp)")
    return cond.probabilities(n_cpgs), cond.probabilities(n_cpgs, alt=True)


def clean_molecules(design: Design, amp: Amplicon, seed: int = 1) -> list[tuple[int, _Molecule]]:
    """(condition index, molecule) of every clean clone of ``design``, as ``simulate`` draws them first with
    the same ``seed`` (faulty reads and sequencing are not simulated): the truth a call-level simulation
    starts from (``calls``)."""
    rng = np.random.default_rng(seed)
    out = []
    for ci, cond in enumerate(design.conditions):
        probs, alt = _condition_probabilities(cond, amp)
        for _ in range(cond.n_clones):
            out.append((ci, _make_molecule(amp, probs, cond, cond.conversion, rng, alt)))
            rng.random()  # the orientation draw of ``_plan``: keeps the molecules identical to simulate's
    return out


def mixed_differences(amp: Amplicon, a: str, b: str) -> tuple[list[int], int]:
    """CpG numbers (assessable ones) and the number of non-CpG C where one molecule has C and the other T.

    A SNP allele on a CpG (A against C/T) is a genotype difference, not one the C/T peaks can show.
    """
    cpg_t = {c.target_pos: c for c in amp.cpgs}
    cpgs, cph = [], 0
    for t, g in enumerate(amp.target):
        if g != "C" or amp.in_primer(t) or a[t] == b[t] or {a[t], b[t]} != {"C", "T"}:
            continue
        if t in cpg_t:
            cpgs.append(cpg_t[t].number)
        else:
            cph += 1
    return cpgs, cph


def _plan_mixed(amp: Amplicon, probs: np.ndarray, cond: Condition, rng: np.random.Generator,
                probs_alt: Optional[np.ndarray] = None):
    """(major molecule, minor molecule, minor share) of a mixed clone, or None when no pair differs enough."""
    a = _make_molecule(amp, probs, cond, cond.conversion, rng, probs_alt)
    frac = _u(rng, MIXED_FRACTION)
    for _ in range(MIXED_TRIES):
        b = _make_molecule(amp, probs, cond, cond.conversion, rng, probs_alt)
        cpgs, cph = mixed_differences(amp, a.seq, b.seq)
        if len(cpgs) + cph >= MIXED_MIN_DIFF:
            return (a, b, frac) if frac <= 0.5 else (b, a, 1 - frac)
    return None


def _table(header: list[str], rows: list[list], delimiter: str = "\t") -> str:
    """Truth tables through the one table writer (``tsv``); the sample sheet (``,``) as a plain CSV."""
    if delimiter == "\t":
        from ..tsv import line, table_text

        return table_text(header, [line(str(v) for v in r) for r in rows])
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows([header, *rows])
    return buf.getvalue()


def simulate(design: Design, amplicon: Amplicon, out_dir: Union[str, Path], seed: int = 1,
             command: str = "", id_prefix: str = "") -> SimulationResult:
    """Simulate ``design`` for ``amplicon`` into ``out_dir`` (created if needed).  Same seed, same files.

    ``id_prefix`` starts every read id (and trace file name): reads of several amplicons stay distinct.
    """
    out = Path(out_dir)
    rm = design.reads
    rng = np.random.default_rng(seed)
    planned, skipped = _plan(design, amplicon, rng)

    # ids: clones and faults of a condition shuffled together (so names give nothing away),
    # a duplicate always after its source, as the second read of one molecule would be
    ids: dict[int, str] = {}
    order: list[int] = []
    for ci, cond in enumerate(design.conditions):
        mine = [i for i, p in enumerate(planned) if p.condition == ci]
        mine = [mine[k] for k in rng.permutation(len(mine))]
        for i in [j for j in mine if planned[j].fault == "duplicate"]:
            a, b = sorted((mine.index(planned[i].source), mine.index(i)))
            mine[a], mine[b] = planned[i].source, i
        width = max(2, len(str(len(mine))))
        for k, i in enumerate(mine):
            ids[i] = f"{id_prefix}{cond.sample}_{k + 1:0{width}d}"
        order += mine

    columns: list[str] = []
    for cond in design.conditions:
        columns += [c for c in cond.columns if c not in columns]
    traces, sheet, truth_reads, truth_cpgs, truth_mixed = [], [], [], [], []
    for plate_i, i in enumerate(order):
        p = planned[i]
        cond = design.conditions[p.condition]
        rid = ids[i]
        insert = "" if p.molecule is None else (p.molecule.seq if p.orientation == "+" else revcomp(p.molecule.seq))
        start = int(rng.integers(int(rm.start_offset[0]), int(rm.start_offset[1]) + 1))
        length_range = rm.failed_length if p.fault == "failed_read" else rm.read_length
        length = int(rng.integers(int(length_range[0]), int(length_range[1]) + 1))
        left = M13R_FLANK[start:]
        template = (left + insert + M13F_FLANK + READTHROUGH)[:length]
        minor = None
        if p.partner is not None:
            other = p.partner.seq if p.orientation == "+" else revcomp(p.partner.seq)
            minor = ((left + other + M13F_FLANK + READTHROUGH)[:length], p.fraction)
            cpgs, cph = mixed_differences(amplicon, p.molecule.seq, p.partner.seq)
            truth_mixed.append([rid, cond.sample, f"{p.fraction:.3f}", " ".join(map(str, cpgs)), cph,
                                p.molecule.seq, p.partner.seq])
        read, span = _sequence(template, (len(left), len(left) + len(insert)), rm, rng, p.fault == "failed_read",
                               minor)
        rel = f"{cond.sample}/{rid}.ab1"
        path = out / cond.sample / f"{rid}.ab1"
        path.parent.mkdir(parents=True, exist_ok=True)
        well = plate_i % 96  # plate position, column-major as a 96-well plate is loaded
        write_abif(path, replace(read, sample=rid, tube=f"{'ABCDEFGH'[well % 8]}{well // 8 + 1:02d}",
                                 lane=plate_i % 48 + 1, comment=f"simulated by bsmeth (seed {seed}); not a real trace"))
        traces.append(path)
        colvals = [cond.columns.get(c, "") for c in columns]
        sheet.append([rel, cond.sample, *colvals])
        m = p.molecule
        conv = "" if m is None or m.conversion is None else f"{m.conversion:.4f}"
        truth_reads.append([
            rid, rel, cond.sample, *colvals, p.orientation, p.fault, _expected_reason(p.fault, m),
            ids[p.source] if p.fault == "duplicate" else "", conv, "" if m is None else m.snp_allele,
            span[0] or "", span[1] or "", len(read.seq), "" if m is None else m.seq,
        ])
        if m is not None:
            for cpg, state in zip(amplicon.cpgs, m.states):
                truth_cpgs.append([rid, cond.sample, cpg.number, one_based(cpg.ref_pos), state,
                                   "yes" if cpg.under_primer else "no"])

    def text(name: str, content: str) -> Path:
        return atomic_write(out / name, content.encode("utf-8"))

    sheet_path = text("samples.csv", _table(["file", "sample", *columns], sheet, ","))
    reads_path = text("truth_reads.tsv", _table(
        ["read", "file", "sample", *columns, "orientation", "fault", "expected_reason", "duplicate_of",
         "conversion", "snp_allele", "insert_start", "insert_end", "length", "molecule"], truth_reads))
    cpgs_path = text("truth_cpgs.tsv", _table(["read", "sample", "cpg", "pos", "truth", "under_primer"], truth_cpgs))
    design_path = text("design.json", json.dumps(design.to_dict(), indent=1) + "\n")
    kinds = FAULT_KINDS + tuple(k for k in TRACE_FAULT_KINDS if k in design.faults)
    counts = {k: sum(p.fault == k for p in planned) for k in kinds}
    mixed_path = None
    if "mixed_clone" in design.faults:
        mixed_path = text("truth_mixed.tsv", _table(
            ["read", "sample", "minor_fraction", "differing_cpgs", "differing_cph", "major_molecule",
             "minor_molecule"], truth_mixed))
    readme = text("README.md", _readme(design, amplicon, seed, command, len(planned), counts, skipped))
    return SimulationResult(out, tuple(traces), sheet_path, reads_path, cpgs_path, design_path, readme,
                            len(planned), counts, tuple(skipped), mixed_path)


def _readme(design: Design, amp: Amplicon, seed: int, command: str, n: int, counts: dict, skipped: list) -> str:
    from .. import __version__

    lines = [
        "# SIMULATED data: not real sequencing",
        "",
        f"Generated by bsmeth {__version__} (`bsmeth.simulate`), seed {seed}, design in `design.json`."
        + (f" Command: `{command}`." if command else ""),
        "Every .ab1 file here is synthetic: clones of a bisulfite PCR product in pCR4-TOPO read with M13 reverse.",
        "The vector read-through beyond the known pCR4-TOPO flanks is a fixed pseudo-random (synthetic) sequence.",
        "",
        f"Amplicon: {amp.name} ({amp.length} bp, {len(amp.cpgs)} CpGs, {amp.strand.value} strand), from {amp.source}.",
        f"Reads: {n} in {len(design.conditions)} samples; faults: "
        + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".",
        *(f"Skipped: {s}." for s in skipped),
        "",
        "- `samples.csv`: the sample sheet for `bsmeth call`.",
        "- `truth_reads.tsv`: per read the orientation, fault, the `reason` bsmeth should give (`expected_reason`),",
        "  duplicate source, realised conversion (non-CpG C outside primers), SNP allele, insert position in",
        "  the read (1-based), read length and the error-free PCR molecule (amplified strand).",
        "- `truth_cpgs.tsv`: per read and CpG the true state (`M`, `U`, `A` = SNP allele, no CpG);",
        "  CpGs under a primer are never observable (the product carries the primer).",
        "",
    ]
    linked = [c.sample for c in design.conditions if c.methylation_alt is not None]
    concordant = [c.sample for c in design.conditions if c.pattern == "concordant"]
    if linked or concordant:
        snp = amp.snps[0].name if amp.snps else "the first SNP"
        lines[-1:-1] = [
            *([f"- Allele-linked methylation in {', '.join(linked)}: clones carrying the alternative allele of {snp}",
               "  are drawn with `methylation_alt` (design.json), the others with `methylation`; `snp_allele` in",
               "  truth_reads.tsv is each clone's allele."] if linked else []),
            *([f"- Concordant patterns in {', '.join(concordant)}: one uniform draw per clone decides every CpG (CpG j",
               "  methylated when it is below p_j), so with equal probabilities clones are fully methylated or fully",
               "  unmethylated; elsewhere each CpG is drawn on its own (random patterns)."] if concordant else []),
        ]
    if "mixed_clone" in design.faults:
        lines[-1:-1] = [
            "- `truth_mixed.tsv`: per mixed clone (two molecules of the sample in one trace) the minor molecule's "
            "share",
            "  of the signal, the CpG numbers and the count of non-CpG C where the two differ, and both molecules;",
            "  `truth_cpgs.tsv` and `molecule` give the major molecule (the base calls follow the larger peak).",
        ]
    return "\n".join(lines)
