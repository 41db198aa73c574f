"""Mergeable statistics of the NGS engine: what a chunk of pairs adds to the run.

Pipeline position: after ``engine`` (in the workers: one ``Tally`` per chunk), merged in the main process in
input order (``Tally.merge``: sums, pattern counts and UMI family votes, so the result does not depend on how
the reads were cut into chunks or spread over processes).  Memory is flat in the number of reads: counts are
arrays per (sample, amplicon); the epialleles (patterns) and, with ``--umi``, the UMI families are keyed
records in ``spill.Store``s, which keep a bounded number in memory and spill sorted runs to disk beyond it.
``finish`` (main process, once every chunk is merged) turns the families into molecules: their consensus calls
are counted as a pass pair's are, and the family's other pairs move from ``pass`` to ``duplicate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .engine import (
    CALL_LETTERS,
    R_AMBIG,
    R_DUP,
    R_LOWCONV,
    R_LOWID,
    R_LOWQ,
    R_NOAMP,
    R_NOCPH,
    REASON_CODES,
    WHY_CODES,
    Pairs,
    U,
)
from .spill import Store, key_words, sort_reduce

N_CODES = 2 + len(WHY_CODES)
N_STRANDS = 4
FUNNEL = ("pairs", "assigned", "identity_ok", "conversion_ok", "used")
# records a store holds in memory before it spills (sorting and the final merge need a few times as much): 8 MiB
# keeps a run's peak flat (benchmarks/bench_ngs.py, -j 2, all processes: 199 MiB at 10^6 pairs, 213 at 3 x 10^6,
# 220 at 6 x 10^6; with 24 MiB the main process alone reached 309 MiB at 3 x 10^6) and was no slower
SPILL_BYTES = 8 << 20


def pattern_dtype(width: int) -> np.dtype:
    """An epiallele record: key (amplicon and sample in the first word, then the pattern's letters), count."""
    return np.dtype([("key", np.uint64, (1 + max(1, -(-width // 8)),)), ("n", np.int64)])


def pattern_records(amplicon: int, sample: int, letters: np.ndarray, width: int) -> np.ndarray:
    """Pattern records (reduced: one per distinct pattern) of rows of call letters of one (sample, amplicon)."""
    full = np.zeros((len(letters), width), np.uint8)
    full[:, :letters.shape[1]] = letters
    recs = np.zeros(len(letters), pattern_dtype(width))
    recs["key"][:, 0] = (np.uint64(amplicon) << np.uint64(40)) | np.uint64(sample)
    recs["key"][:, 1:] = key_words(full)
    recs["n"] = 1
    return sort_reduce(recs, {"n": "sum"})


def split_pattern_key(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(amplicon, sample) of pattern keys."""
    head = key[:, 0]
    return (head >> np.uint64(40)).astype(np.int64), (head & np.uint64((1 << 40) - 1)).astype(np.int64)


@dataclass
class Tally:
    """Counts of a set of pairs, by sample index and amplicon index.  ``bound``/``folder``: the stores' memory
    bound in records (None: no bound, as in the workers) and where they spill."""

    n_cpgs: tuple[int, ...]
    bound_bytes: int | None = None
    folder: Path | None = None
    codes: dict = field(default_factory=dict)  # (sample, amp) -> int64 [strand, cpg, call code] over pass pairs
    reasons: dict = field(default_factory=dict)  # (sample, amp or -1, reason code) -> pairs (0 = pass)
    funnel: dict = field(default_factory=dict)  # sample -> int64 [FUNNEL]
    family_sizes: dict = field(default_factory=dict)  # (sample, amp) -> {pairs in the family: families}
    umi: bool = False
    patterns: Store = field(init=False)
    families: Store | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.width = max(self.n_cpgs) if self.n_cpgs else 0
        self.patterns = self._store(pattern_dtype(self.width), {"n": "sum"})
        if self.umi:
            from .umi import FAMILY_REDUCERS, family_dtype

            self.families = self._store(family_dtype(self.width), FAMILY_REDUCERS)

    def _store(self, dtype: np.dtype, reducers: dict) -> Store:
        bound = None if self.bound_bytes is None else max(2, self.bound_bytes // np.dtype(dtype).itemsize)
        return Store(dtype, reducers, bound, self.folder)

    def add(self, sample: int, p: Pairs, umis: np.ndarray | None = None) -> None:
        """The pairs of a chunk; with ``umis`` (``--umi``: UMI bytes per pair) pass pairs go to their families
        (counted by ``finish``) instead of the counts and patterns."""
        n = len(p.reason)
        f = self.funnel.setdefault(sample, np.zeros(len(FUNNEL), np.int64))
        r = p.reason
        f[0] += n
        f[1] += int(((r != R_NOAMP) & (r != R_AMBIG)).sum())
        f[2] += int(((r != R_NOAMP) & (r != R_AMBIG) & (r != R_LOWID)).sum())
        f[3] += int(((r == 0) | (r > R_LOWCONV)).sum())
        f[4] += int((r == 0).sum())
        key = p.amplicon.astype(np.int64) * 16 + r
        keys, counts = np.unique(key, return_counts=True)
        for k, c in zip(keys.tolist(), counts.tolist()):
            amp, code = divmod(k, 16)
            self.reasons[(sample, amp, code)] = self.reasons.get((sample, amp, code), 0) + c
        if umis is not None:
            from .umi import family_records

            rows = np.flatnonzero(r == 0)
            self.families.add(sort_reduce(family_records(sample, p.amplicon[rows], p.strand[rows], umis[rows],
                                                         p.calls[rows], self.width), self.families.reducers))
            return
        for ai in range(len(self.n_cpgs)):
            rows = np.flatnonzero((p.amplicon == ai) & (r == 0))
            if len(rows):
                self._count(sample, ai, p.strand[rows], p.calls[rows])

    def _count(self, sample: int, ai: int, strand: np.ndarray, calls: np.ndarray) -> None:
        """Molecules of one (sample, amplicon) into the per-strand counts and the patterns."""
        nk = self.n_cpgs[ai]
        c = calls[:, :nk].astype(np.int64)
        flat = (strand.astype(np.int64)[:, None] * nk + np.arange(nk)[None, :]) * N_CODES + c
        hist = np.bincount(flat.ravel(), minlength=N_STRANDS * nk * N_CODES).reshape(N_STRANDS, nk, N_CODES)
        got = self.codes.get((sample, ai))
        self.codes[(sample, ai)] = hist if got is None else got + hist
        self.patterns.add(pattern_records(ai, sample, CALL_LETTERS[calls[:, :nk]], self.width))

    def merge(self, other: Tally) -> None:
        for k, v in other.codes.items():
            got = self.codes.get(k)
            self.codes[k] = v if got is None else got + v
        for part in other.patterns.parts:
            self.patterns.add(part)
        if other.families is not None:
            for part in other.families.parts:
                self.families.add(part)
        for k, v in other.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v
        for k, v in other.funnel.items():
            got = self.funnel.get(k)
            self.funnel[k] = v.copy() if got is None else got + v

    def finish(self) -> None:
        """``--umi``: every family (read from its store, in key order) becomes one molecule: its consensus calls
        are counted, a family without one CpG called fails ``low_quality``, its other pairs ``duplicate``."""
        if self.families is None:
            return
        from .umi import consensus, split_key

        for block in self.families.sorted_blocks():
            sample, amp, strand = split_key(block["key"])
            calls = consensus(block["diff"], block["low"])
            group = sample * (1 << 16) + amp
            starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
            for a, b in zip(starts.tolist(), [*starts[1:].tolist(), len(block)]):
                si, ai = int(sample[a]), int(amp[a])
                nk = self.n_cpgs[ai]
                called = (calls[a:b, :nk] <= U).any(axis=1)
                sizes = block["n"][a:b]
                self._count(si, ai, strand[a:b][called], calls[a:b][called])
                dup, nocall = int(sizes.sum()) - (b - a), int((~called).sum())
                self.reasons[(si, ai, 0)] -= dup + nocall
                for code, k in ((R_DUP, dup), (R_LOWQ, nocall)):
                    if k:
                        self.reasons[(si, ai, code)] = self.reasons.get((si, ai, code), 0) + k
                self.funnel[si][4] -= dup + nocall
                hist = self.family_sizes.setdefault((si, ai), {})
                u, c = np.unique(sizes, return_counts=True)
                for size, k in zip(u.tolist(), c.tolist()):
                    hist[size] = hist.get(size, 0) + k

    def close(self) -> None:
        self.patterns.close()
        if self.families is not None:
            self.families.close()

    def reason_name(self, code: int) -> str:
        return "" if code == 0 else REASON_CODES[code - 1].value


def _unused() -> tuple:  # the reason codes the funnel reads, named for readers of this module
    return (R_NOCPH,)
