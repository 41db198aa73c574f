"""Plain result types shared by every stage: frozen dataclasses and enums.

Bottom of the import graph (next to ``errors`` and ``coords``).  Coordinates
are 0-based and half-open everywhere inside bsmeth; the frames (target,
reference, genome, read) and every conversion between them are in ``coords``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Optional

import numpy as np

from .coords import Frame, GenomeAnchor, Strand
from .memo import held, hold


class Call(str, enum.Enum):
    """Methylation call of one CpG in one read."""

    METHYLATED = "M"
    UNMETHYLATED = "U"
    NOT_DETERMINED = "-"


class Why(str, enum.Enum):
    """Why a CpG is not determined (the ``why`` column of cpg_calls.tsv)."""

    GAP = "gap"  # the read has a deletion at the C
    OTHER_BASE = "other_base"  # A or G where only C or T is expected
    AMBIGUOUS = "ambiguous"  # N or an IUPAC code from the base caller
    LOW_QUALITY = "low_quality"  # PHRED below --min-qual
    NOT_COVERED = "not_covered"  # outside the aligned part of the read
    UNDER_PRIMER = "under_primer"  # the primer sequence is copied into the product
    SNP = "snp"  # the read carries the SNP allele that destroys this CpG (a genotype)
    GCG = "gcg"  # --nome: a GCG site, where GpC methylase also protects the C
    MIXED = "mixed"  # the trace has strong C and T peaks: two templates
    MATE_CONFLICT = "mate_conflict"  # paired-end reads: the two mates of one molecule disagree (C vs T)
    UMI_CONFLICT = "umi_conflict"  # --umi: the read pairs of one UMI family are split evenly (as many M as U)


class Status(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"


class Reason(str, enum.Enum):
    """Why a read is excluded (the ``reason`` column of reads.tsv), in order of precedence."""

    UNREADABLE = "unreadable"
    TOO_LARGE = "too_large"  # over reads.MAX_INPUT_BYTES on disk or decompressed: not read
    LOW_QUALITY = "low_quality"
    NO_AMPLICON = "no_amplicon"
    AMBIGUOUS_AMPLICON = "ambiguous_amplicon"
    LOW_IDENTITY = "low_identity"
    TOO_MANY_MISMATCHES = "too_many_mismatches"
    MIXED_TRACE = "mixed_trace"
    NO_CPH = "no_cph"
    LOW_CONVERSION = "low_conversion"
    NO_UMI = "no_umi"  # --umi (amplicon FASTQ): the read name carries no UMI
    UMI_MISMATCH = "umi_mismatch"  # --umi: the two mates' names carry different UMIs
    DUPLICATE = "duplicate"
    EXCLUDED_BY_USER = "excluded_by_user"  # --curation: the user excluded the clone (after every QC reason)


@dataclass(frozen=True)
class SNP:
    """A known SNP that can destroy a CpG: ``pos`` (reference coordinate) reads ``alt`` instead of ``ref``."""

    pos: int
    ref: str
    alt: str
    name: str = ""


@dataclass(frozen=True)
class CpG:
    """One CpG of the amplicon."""

    number: int  # 1-based, in FASTA order (output column ``cpg``)
    ref_pos: int  # 0-based reference coordinate of the C of the top-strand CG
    target_pos: int  # 0-based target coordinate of the C read on the amplified strand
    under_primer: bool
    snp: Optional[SNP] = None
    genome_pos: Optional[int] = None  # 0-based genome position of the assayed C (None without an anchor)


# A tuple of CpGs as plain values (``cpgs_key``), the same in every process, and the tuples registered under it:
# results pickled in a worker come back pointing at this process's own tuple of their amplicon's CpGs.
_CPG_FIELDS = tuple(f.name for f in fields(CpG))
_TUPLE_OF_KEY: dict[tuple, tuple] = {}
_KEY_OF: dict[int, tuple[tuple, tuple]] = {}  # id of a registered tuple -> (the tuple, its key)
_REGISTERED = 64  # tuples kept registered at most


def _plain(value):
    return tuple(getattr(value, f.name) for f in fields(SNP)) if isinstance(value, SNP) else value


def cpgs_key(cpgs: Sequence[CpG]) -> tuple:
    """Every field of every CpG as plain values (a SNP as the tuple of its fields): what a CpG tuple pickles as."""
    hit = _KEY_OF.get(id(cpgs))
    if hit is not None and hit[0] is cpgs:
        return hit[1]
    return tuple(tuple(_plain(getattr(c, f)) for f in _CPG_FIELDS) for c in cpgs)


def register_cpgs(cpgs: tuple[CpG, ...]) -> None:
    """Make ``cpgs`` (an amplicon's CpGs) what an unpickled key equal to its own resolves to in this process."""
    key = cpgs_key(cpgs)
    # the oldest first (a long test session builds many amplicons), never one of the largest panel's (``hold``)
    if len(_KEY_OF) >= max(_REGISTERED, held()):
        old, old_key = _KEY_OF.pop(next(iter(_KEY_OF)))
        if _TUPLE_OF_KEY.get(old_key) is old:
            del _TUPLE_OF_KEY[old_key]
    _KEY_OF[id(cpgs)] = (cpgs, key)
    _TUPLE_OF_KEY[key] = cpgs


def register_panel(amplicons: "Panel") -> None:
    """``register_cpgs`` for every amplicon of a panel, all kept registered however large the panel: a result of
    an amplicon whose CpGs were dropped would come back with a copy (calls and tables then take their slow,
    CpG-by-CpG path)."""
    hold(len(amplicons))
    for amp in amplicons:
        register_cpgs(amp.cpgs)


def cpgs_of_key(key: tuple) -> tuple[CpG, ...]:
    """The registered tuple of CpGs with this key, else one made from it."""
    cpgs = _TUPLE_OF_KEY.get(key)
    if cpgs is not None:
        return cpgs
    made = []
    for values in key:
        d = dict(zip(_CPG_FIELDS, values))
        if d.get("snp") is not None:
            d["snp"] = SNP(*d["snp"])
        made.append(CpG(**d))
    return tuple(made)


@dataclass(frozen=True)
class Amplicon:
    """The region to call, derived from a reference record and (optionally) a primer pair."""

    name: str
    reference: str  # the whole record, upper case, as written
    strand: Strand
    start: int  # reference coordinates, half-open
    end: int
    target: str  # unconverted amplified strand, 5'->3' (length end - start)
    forward: Optional[str] = None
    reverse: Optional[str] = None
    forward_span: tuple[int, int] = (0, 0)  # target coordinates
    reverse_span: tuple[int, int] = (0, 0)
    cpgs: tuple[CpG, ...] = ()
    snps: tuple[SNP, ...] = ()
    warnings: tuple[str, ...] = ()
    source: str = ""  # where the reference came from (path or 'embedded default')
    anchor: Optional[GenomeAnchor] = None  # where the reference record lies on a genome
    # the reference was given already bisulfite-converted (the amplified strand has no C outside CpGs):
    # conversion cannot be checked against it, reads are not failed for it (``reference.looks_converted``)
    converted_reference: bool = False

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def frame(self) -> Frame:
        """The amplicon's coordinate frame: every position conversion goes through it (see ``coords``)."""
        return Frame(self.strand, self.start, self.end, self.anchor)

    def in_primer(self, t: int) -> bool:
        f0, f1 = self.forward_span
        r0, r1 = self.reverse_span
        return f0 <= t < f1 or r0 <= t < r1


@dataclass(frozen=True)
class Panel:
    """The amplicons of a run (one for ``--reference``/``--forward``/``--reverse``), names unique."""

    amplicons: tuple[Amplicon, ...]
    source: str = ""  # the panel file, or '' for the one-amplicon form

    def __post_init__(self) -> None:
        if not self.amplicons:
            raise ValueError("a panel needs at least one amplicon")
        names = [a.name for a in self.amplicons]
        if len(set(names)) != len(names):
            raise ValueError(f"amplicon names must be unique: {names}")

    def __iter__(self):
        return iter(self.amplicons)

    def __len__(self) -> int:
        return len(self.amplicons)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.amplicons)

    def get(self, name: str) -> Amplicon:
        for a in self.amplicons:
            if a.name == name:
                return a
        raise KeyError(name)


@dataclass(frozen=True, eq=False)
class Trace:
    """Raw chromatogram of an ABIF trace: channels by base letter and base-call peak positions."""

    channels: dict  # base letter -> np.ndarray of signal
    peaks: np.ndarray  # trace index of each base call (PLOC)
    base_order: str  # FWO_ as stored
    # the channels as one array, rows A, C, G, T, in the channels' own number type (no conversion): what the
    # trace evidence gathers its windows from, one gather for all of them; made from ``channels`` unless given
    matrix: Optional[np.ndarray] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.matrix is None:
            object.__setattr__(self, "matrix", np.stack([self.channels[b] for b in "ACGT"]))


@dataclass(frozen=True, eq=False)
class Read:
    """One read: an ab1 file (id = file stem) or one FASTA/FASTQ record (id = record id)."""

    id: str
    file: str
    seq: str  # upper case base calls as read
    qual: Optional[np.ndarray] = None  # PHRED per base (uint8) or None for plain sequence
    fmt: str = "fasta"
    trace: Optional[Trace] = None
    notes: tuple[str, ...] = ()  # anomalies of the file (e.g. qualities ignored), shown in the read's detail


@dataclass(frozen=True)
class Unreadable:
    """A file or record that could not be read at all (becomes a ``fail``/``unreadable`` row)."""

    id: str
    file: str
    message: str
    reason: Reason = Reason.UNREADABLE  # or TOO_LARGE


NO_QUAL = 99  # the PHRED given to bases of sequence that came without qualities (FASTA, plain text)


def _pack(obj, names: tuple[str, ...], arrays: frozenset) -> tuple:
    """A result's field values in order for pickling, its 1-d numpy arrays (fields ``arrays``) as (bytes, dtype):
    a bytes object pickles and unpickles in a fraction of an array's time (results cross from the worker
    processes to the main one, which unpickles all of them while the workers go on)."""
    d = obj.__dict__
    out = []
    for k in names:
        v = d[k]
        if k in arrays and isinstance(v, np.ndarray) and v.ndim == 1:
            v = (v.tobytes(), v.dtype.str)
        out.append(v)
    return tuple(out)


def _unpack(cls, values: tuple):
    """``_pack`` undone: the object rebuilt without ``__init__``; arrays come back as read-only views of their
    bytes (results are not changed in place)."""
    obj = object.__new__(cls)
    d = dict(zip(cls._FIELDS, values))
    for k in cls._ARRAYS:
        v = d[k]
        if isinstance(v, tuple):
            d[k] = np.frombuffer(v[0], dtype=v[1])
    obj.__dict__.update(d)
    return obj


@dataclass(frozen=True, eq=False)
class AlignedRead:
    """A read projected onto the target strand.

    ``bases[t]`` is the read base aligned to target position ``t`` ('-' for a
    deletion in the read, ' ' when outside the aligned part); ``quals[t]`` its
    PHRED (0 where none; ``NO_QUAL`` for sequence without qualities).
    """

    orientation: str  # '+' read as given matches the target strand, '-' its reverse complement
    score: float
    target_start: int
    target_end: int
    read_start: int  # in the oriented read
    read_end: int
    bases: np.ndarray  # dtype 'U1', length = amplicon length
    quals: np.ndarray  # uint8
    read_pos: np.ndarray  # int32: index in the read *as given* (before orientation) of bases[t]; -1 if none
    insertions: int  # read bases inserted relative to the target, inside the aligned part
    lines: tuple[str, str, str]  # target / marks / read, for alignments.txt

    def __reduce__(self):
        return _unpack, (AlignedRead, _pack(self, AlignedRead._FIELDS, AlignedRead._ARRAYS))


@dataclass(frozen=True)
class CpGCall:
    cpg: CpG
    call: Call
    why: Optional[Why] = None
    base: str = ""
    qual: Optional[int] = None
    c_signal: Optional[float] = None  # trace evidence (reads with a chromatogram only)
    t_signal: Optional[float] = None
    contradicted: bool = False  # the base call disagrees with the larger of the C/T peaks

    @property
    def c_frac(self) -> Optional[float]:
        if self.c_signal is None or self.t_signal is None or self.c_signal + self.t_signal <= 0:
            return None
        return self.c_signal / (self.c_signal + self.t_signal)

    @property
    def confidence(self) -> Optional[float]:
        """0 when the C and T peaks are equal, 1 when one channel carries all the signal."""
        f = self.c_frac
        return None if f is None else abs(2 * f - 1)


WHY_CODES = {None: " ", **{w: chr(ord("a") + i) for i, w in enumerate(Why)}}  # how CpGCalls stores a Why
_WHY_OF = {code: w for w, code in WHY_CODES.items()}
_CALL_OF = {c.value: c for c in Call}
_new = object.__new__


@dataclass(frozen=True, eq=False)
class CpGCalls(Sequence):
    """The calls of one read, one per CpG of the amplicon in order, stored as strings and arrays.

    A read's calls are made in one vectorised pass and travel from worker processes by pickling; 27
    ``CpGCall`` objects cost more to build and to pickle than the whole alignment, so they are made only
    when asked for (indexing, iterating), once.  Behaves as a read-only sequence of ``CpGCall``.
    """

    cpgs: tuple[CpG, ...]
    codes: str  # 'M', 'U' or '-' per CpG
    whys: str  # one letter per CpG: ' ' for none, else the Why (see WHY_CODES)
    bases: str  # the base shown, ' ' for none
    quals: bytes  # PHRED, 255 for none
    c_signal: Optional[np.ndarray] = None  # float64 per CpG, NaN where no trace evidence; None without a trace
    t_signal: Optional[np.ndarray] = None
    contradicted: bytes = b""  # 1 where the base call disagrees with the larger peak
    _objects: Optional[tuple] = field(default=None, repr=False, compare=False)

    def __reduce__(self):
        # the CpGs travel as their plain values (``cpgs_key``), not as 27 objects: half the cost of pickling a read
        return _calls_of, (cpgs_key(self.cpgs), _pack(self, CpGCalls._FIELDS[1:-1], CpGCalls._ARRAYS))

    @property
    def n_called(self) -> int:
        return len(self.codes) - self.codes.count("-")

    @property
    def n_methylated(self) -> int:
        return self.codes.count("M")

    def _build(self) -> tuple[CpGCall, ...]:
        out = []
        n = len(self.cpgs)
        cs = self.c_signal.tolist() if self.c_signal is not None else [None] * n
        ts = self.t_signal.tolist() if self.t_signal is not None else [None] * n
        contra = list(self.contradicted) if self.contradicted else [0] * n
        for cpg, code, why, base, q, c, t, x in zip(self.cpgs, self.codes, self.whys, self.bases, self.quals, cs, ts,
                                                     contra):
            o = _new(CpGCall)
            has = c is not None and c == c  # NaN: no trace evidence at this CpG
            o.__dict__.update(cpg=cpg, call=_CALL_OF[code], why=_WHY_OF[why], base=base.strip(),
                              qual=None if q == 255 else q, c_signal=round(c, 1) if has else None,
                              t_signal=round(t, 1) if has else None, contradicted=bool(x))
            out.append(o)
        return tuple(out)

    @property
    def objects(self) -> tuple[CpGCall, ...]:
        if self._objects is None:
            object.__setattr__(self, "_objects", self._build())
        return self._objects

    def __getitem__(self, k):
        return self.objects[k]

    def __iter__(self):
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.codes)

    def __eq__(self, other) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, (tuple, list, CpGCalls)) else NotImplemented

    __hash__ = None


def _calls_of(key: tuple, values: tuple) -> CpGCalls:
    return _unpack(CpGCalls, (cpgs_of_key(key), *values, None))


@dataclass(frozen=True)
class ReadQC:
    """Alignment and conversion figures of one aligned read."""

    aligned_bases: int  # target positions covered by the alignment, excluding primers
    identity: float  # fraction, bisulfite-aware
    mismatches: int
    converted: int  # non-CpG C read as T
    unconverted: int  # non-CpG C read as C
    hq_bases: int
    hch_converted: int = 0  # the same counts over HCH only (C not preceded by G): NOMe-safe
    hch_unconverted: int = 0
    mixed_cpgs: int = 0  # trace evidence: CpGs / non-CpG Cs with two strong peaks, and how many were looked at
    traced_cpgs: int = 0
    mixed_cph: int = 0
    traced_cph: int = 0

    @property
    def conversion(self) -> Optional[float]:
        n = self.converted + self.unconverted
        return self.converted / n if n else None

    @property
    def hch_conversion(self) -> Optional[float]:
        n = self.hch_converted + self.hch_unconverted
        return self.hch_converted / n if n else None


@dataclass(frozen=True)
class ReadResult:
    """Everything known about one input read: the row of reads.tsv and its CpG calls."""

    read_id: str
    file: str
    sample: str
    status: Status
    reason: Optional[Reason] = None
    detail: str = ""
    length: Optional[int] = None  # unknown for unreadable files
    aligned: Optional[AlignedRead] = None
    qc: Optional[ReadQC] = None
    calls: Sequence[CpGCall] = ()  # a CpGCalls from the pipeline; any sequence of CpGCall works
    duplicate_of: str = ""
    genotype: str = ""
    mean_qual: Optional[float] = None
    amplicon: str = ""  # the panel amplicon the read was assigned to; '' when none could be
    # the read as given (for reads.bam): its bases, PHRED qualities (None without) and input format
    sequence: str = ""
    qualities: Optional[np.ndarray] = None
    fmt: str = ""
    # readsbam.ReadParts: the read's reads.bam/reads.mod.bam records but for what QC may still change, made
    # where the read was processed (None: made when the BAMs are written)
    bam_parts: Optional[object] = field(default=None, compare=False, repr=False)

    def __reduce__(self):
        return _unpack, (ReadResult, _pack(self, ReadResult._FIELDS, ReadResult._ARRAYS))

    def but(self, **changes) -> "ReadResult":
        """``dataclasses.replace`` without running ``__init__`` again on 19 fields (it has no checks to rerun):
        for the per-read steps that change one field of thousands of results."""
        unknown = changes.keys() - self.__dataclass_fields__.keys()
        if unknown:
            raise TypeError(f"ReadResult has no field {', '.join(sorted(unknown))}")
        out = object.__new__(ReadResult)
        out.__dict__.update(self.__dict__, **changes)
        return out

    @property
    def n_called(self) -> int:
        if isinstance(self.calls, CpGCalls):
            return self.calls.n_called
        return sum(c.call is not Call.NOT_DETERMINED for c in self.calls)

    @property
    def methylation(self) -> Optional[float]:
        if isinstance(self.calls, CpGCalls):
            m = self.calls.n_methylated
        else:
            m = sum(c.call is Call.METHYLATED for c in self.calls)
        n = self.n_called
        return m / n if n else None


# what _pack / _unpack need: the fields in order and which of them hold arrays
for _cls, _arrays in ((AlignedRead, ("bases", "quals", "read_pos")), (CpGCalls, ("c_signal", "t_signal")),
                      (ReadResult, ("qualities",))):
    _cls._FIELDS = tuple(f.name for f in fields(_cls))
    _cls._ARRAYS = frozenset(_arrays)


@dataclass(frozen=True)
class CallConfig:
    """Every threshold of ``bsmeth call`` (one object, passed down unchanged)."""

    min_qual: int = 20  # PHRED below this at a CpG -> not determined
    min_conversion: float = 0.95  # fraction of non-CpG C converted
    min_identity: float = 0.90
    max_unconverted: Optional[int] = None  # QUMA: 5
    max_mismatches: Optional[int] = None  # QUMA: 10
    min_hq_bases: int = 40  # fewer high-quality bases in the whole read -> low_quality
    min_aligned: int = 30  # fewer target bases aligned -> no_amplicon
    # a clone counts in clone-level statistics (per-clone fractions) only with this share of the amplicon's
    # assessable CpGs called: a partial read over 1 of 25 CpGs is a 0 % or 100 % "clone" (README: why 50 %)
    min_clone_coverage: float = 0.5
    # An alignment over L target bases whose identity is below max(0.65, base + scale / sqrt(L)) is what
    # unrelated sequence reaches by chance: no_amplicon.  Fitted to the highest identity that random
    # sequence (uniform, T-rich and A-rich, 40-400 nt) reached against three real amplicons
    # (python benchmarks/chance_identity.py: 0.83 over ~50 bases, 0.74 over ~90, 0.65 over 200-300); every
    # real read that is the amplicon sits well above it (the lowest, BiQ's seq_J: 76.9 % over 224 bases,
    # against 67.7 %), the 70-80 nt primer dimers of the 454 set below it (66-72 % over 31-65 bases).
    chance_identity_base: float = 0.54
    chance_identity_scale: float = 2.05
    # the fit holds for amplicons of 100 bp and more (it was made on 226-630 bp); on shorter regions (QUMA's
    # 20-bp toy example) chance alignments have far fewer places to land, and the flat 65 % applies
    chance_identity_min_region: int = 100
    # A short insert (primer dimer, truncated product): the amplicon part covers less than this share of
    # the amplicon while the read carries short_insert_flank high-quality bases of other sequence on both
    # sides.  Chosen on the real sets: the one short insert (QUMA's Gm9 16aabb seq_14) covers 23 %, every
    # other read with sequence on both sides covers the whole amplicon but for noisy ends (76 % or more);
    # 20 bases are more than a noisy read end that happens not to align, and less than any vector flank.
    short_insert_fraction: float = 0.5
    short_insert_flank: int = 20
    keep_duplicates: bool = False
    duplicate_min_evidence: float = 3.5  # -log10 chance that an independent clone matches (see qc)
    duplicate_max_diff: int = 1  # disagreeing sites tolerated between two reads of one molecule
    # False when the reference is already converted: no C outside CpGs to check conversion on (set per
    # amplicon by ``pipeline.fit_to_amplicon``; reads then keep an empty conversion and are not failed for it)
    check_conversion: bool = True
    nome: bool = False  # GpC-methylase treated: conversion over HCH only, GCG CpGs ambiguous
    keep_mixed: bool = False  # keep reads whose trace looks mixed (flagged in detail)
    # a read is mixed_trace with at least mixed_min_sites mixed CpGs making up at least mixed_fraction of the
    # CpGs looked at, or at least mixed_any_min_sites mixed C of any kind (CpG or not) making up at least
    # mixed_any_fraction of all C looked at (docs/trace_evidence.md: measured)
    mixed_min_sites: int = 2
    mixed_fraction: float = 0.05
    mixed_any_min_sites: int = 3
    mixed_any_fraction: float = 0.03
    mixed_min_local_qual: int = 30  # sites count only where the median PHRED of the 11 bases around reaches this
    threads: int = 1
    write_bam: bool = True  # reads.bam, reads.mod.bam and amplicons.fa (readsbam; --no-bam)

    # shares held as fractions here and given in percent by the options: written out in percent (``_pct``)
    PERCENT_FIELDS = ("min_conversion", "min_identity", "min_clone_coverage", "mixed_fraction", "mixed_any_fraction")

    def as_dict(self) -> dict:
        """The parameters as run.json records them: in the units of the options (shares in percent, ``_pct``)."""
        from dataclasses import asdict

        out = {}
        for k, v in asdict(self).items():
            if k in self.PERCENT_FIELDS:
                out[f"{k}_pct"] = round(100 * v, 6)
            else:
                out[k] = v
        return out
