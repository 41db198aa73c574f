"""Mergeable statistics of the NGS engine: what a chunk of pairs adds to the run.

Pipeline position: after ``engine`` (in the workers: one ``Tally`` per chunk), merged in the main process in
input order (``Tally.merge``: sums and pattern counts, so the result does not depend on how the reads were cut
into chunks or spread over processes).  Memory is flat in the number of reads: counts are arrays per (sample,
amplicon), and the epialleles (patterns) are kept as unique rows with counts, compacted as they grow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine import (
    CALL_LETTERS,
    R_AMBIG,
    R_LOWCONV,
    R_LOWID,
    R_NOAMP,
    R_NOCPH,
    REASON_CODES,
    WHY_CODES,
    Pairs,
)

N_CODES = 2 + len(WHY_CODES)
N_STRANDS = 4
FUNNEL = ("pairs", "assigned", "identity_ok", "conversion_ok", "used")
COMPACT_ROWS = 50_000  # pattern rows held uncompacted per (sample, amplicon) before they are merged


@dataclass
class Patterns:
    """Epialleles of one (sample, amplicon): unique rows of call letters (M/U/-) with their counts."""

    width: int
    parts: list = field(default_factory=list)  # [(rows uint8 n x width, counts int64)]
    pending: int = 0

    def add(self, rows: np.ndarray, counts: np.ndarray) -> None:
        self.parts.append((rows, counts))
        self.pending += len(rows)
        if self.pending > COMPACT_ROWS and len(self.parts) > 1:
            self.compact()

    def compact(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.parts:
            return np.zeros((0, self.width), np.uint8), np.zeros(0, np.int64)
        if len(self.parts) > 1:
            rows = np.concatenate([p[0] for p in self.parts])
            counts = np.concatenate([p[1] for p in self.parts])
            u, inv = unique_rows(rows)
            self.parts = [(u, np.bincount(inv, weights=counts, minlength=len(u)).astype(np.int64))]
        self.pending = len(self.parts[0][0])
        return self.parts[0]


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique rows, index of each row's unique row), rows of uint8 compared as bytes."""
    rows = np.ascontiguousarray(rows)
    if rows.shape[1] == 0:
        return rows[:1], np.zeros(len(rows), np.intp)
    v = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()
    u, inv = np.unique(v, return_inverse=True)
    return u.view(np.uint8).reshape(len(u), rows.shape[1]), inv.ravel()


@dataclass
class Tally:
    """Counts of a set of pairs, by sample index and amplicon index."""

    n_cpgs: tuple[int, ...]
    codes: dict = field(default_factory=dict)  # (sample, amp) -> int64 [strand, cpg, call code] over pass pairs
    patterns: dict = field(default_factory=dict)  # (sample, amp) -> Patterns
    reasons: dict = field(default_factory=dict)  # (sample, amp or -1, reason code) -> pairs (0 = pass)
    funnel: dict = field(default_factory=dict)  # sample -> int64 [FUNNEL]

    def add(self, sample: int, p: Pairs) -> None:
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
        for ai, nk in enumerate(self.n_cpgs):
            rows = np.flatnonzero((p.amplicon == ai) & (r == 0))
            if not len(rows):
                continue
            calls = p.calls[rows, :nk].astype(np.int64)
            strand = p.strand[rows].astype(np.int64)
            flat = (strand[:, None] * nk + np.arange(nk)[None, :]) * N_CODES + calls
            hist = np.bincount(flat.ravel(), minlength=N_STRANDS * nk * N_CODES).reshape(N_STRANDS, nk, N_CODES)
            got = self.codes.get((sample, ai))
            self.codes[(sample, ai)] = hist if got is None else got + hist
            letters = CALL_LETTERS[p.calls[rows, :nk]]
            u, inv = unique_rows(letters)
            pat = self.patterns.setdefault((sample, ai), Patterns(nk))
            pat.add(u, np.bincount(inv, minlength=len(u)).astype(np.int64))

    def merge(self, other: Tally) -> None:
        for k, v in other.codes.items():
            got = self.codes.get(k)
            self.codes[k] = v if got is None else got + v
        for k, v in other.patterns.items():
            mine = self.patterns.setdefault(k, Patterns(v.width))
            for rows, counts in v.parts:
                mine.add(rows, counts)
        for k, v in other.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v
        for k, v in other.funnel.items():
            got = self.funnel.get(k)
            self.funnel[k] = v.copy() if got is None else got + v

    def reason_name(self, code: int) -> str:
        return "" if code == 0 else REASON_CODES[code - 1].value


def _unused() -> tuple:  # the reason codes the funnel reads, named for readers of this module
    return (R_NOCPH,)
