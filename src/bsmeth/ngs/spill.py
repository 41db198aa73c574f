"""Exact counts over many distinct keys in bounded memory: sorted runs spilled to disk, merged at the end.

Pipeline position: under ``aggregate``.  The epialleles of a run (``patterns.tsv``) and the UMI families of a
``--umi`` run are keyed records whose number grows with the data (in the worst case one per molecule).  A
``Store`` holds them as numpy structured arrays: a field ``key`` (uint64 words: the key's bytes big-endian, so
that the order of the words is the order of the bytes) and value fields, each reduced by ``sum`` or ``min`` when
records of one key meet.  Records are appended as they come; past ``bound`` records the store sorts and reduces
what it holds and, when that still fills more than half the bound, writes it as a sorted run to a temporary
file in ``folder`` (the run's staging folder) and starts afresh.  ``sorted_blocks`` merges the runs and what is
held (k-way, block by block: every key whose records are all loaded is reduced and handed on), so every key
comes out once, in key order, with its exact reduced values.  Sums and minima do not depend on the order in
which records arrive: the result does not depend on chunks, processes or the bound (tested byte for byte).

Memory: about ``bound`` records at any time (while merging, ``bound`` records spread over the runs' blocks; more
than ``FAN_IN`` runs are first merged into fewer).  Disk: the records once or twice.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

FAN_IN = 32  # runs merged at once; more are merged in groups first (each group's blocks share the bound)
MIN_BLOCK = 256  # records read from a run at a time, at least


def key_words(rows: np.ndarray) -> np.ndarray:
    """Rows of bytes (uint8 n x w) as uint64 words (n x ceil(w / 8)) whose order is the rows' byte order."""
    n, w = rows.shape
    k = max(1, -(-w // 8))
    pad = np.zeros((n, 8 * k), np.uint8)
    pad[:, :w] = rows
    return pad.view(">u8").astype(np.uint64)


def word_bytes(words: np.ndarray, width: int) -> np.ndarray:
    """The inverse of ``key_words``: uint8 n x ``width``."""
    return np.ascontiguousarray(words.astype(">u8")).view(np.uint8).reshape(len(words), -1)[:, :width]


def sort_reduce(recs: np.ndarray, reducers: dict[str, str]) -> np.ndarray:
    """Records sorted by key, records of one key reduced to one (``sum`` or ``min`` per value field)."""
    if len(recs) < 2:
        return recs.copy()
    k = recs["key"]
    order = np.lexsort(k.T[::-1])
    s = recs[order]
    sk = s["key"]
    first = np.empty(len(s), bool)
    first[0] = True
    np.any(sk[1:] != sk[:-1], axis=1, out=first[1:])
    if first.all():
        return s
    idx = np.flatnonzero(first)
    out = s[idx]
    for name, how in reducers.items():
        out[name] = (np.add if how == "sum" else np.minimum).reduceat(s[name], idx, axis=0)
    return out


def _count_at_most(keys: np.ndarray, bound: np.ndarray) -> int:
    """How many of the sorted ``keys`` (n x k words) are <= ``bound`` (k words), lexicographically."""
    neq = keys != bound[None, :]
    first = neq.argmax(axis=1)
    differs = neq.any(axis=1)
    le = ~differs | (keys[np.arange(len(keys)), first] < bound[first])
    return int(np.flatnonzero(le)[-1]) + 1 if le.any() else 0


class _Run:
    """A sorted run on disk, read block by block (read into fresh arrays, never mapped: mapped pages would
    count as the process's memory)."""

    def __init__(self, path: Path, dtype: np.dtype, n: int):
        self.path, self.dtype, self.n, self.pos = path, dtype, n, 0

    def read(self, count: int) -> np.ndarray:
        count = min(count, self.n - self.pos)
        out = np.fromfile(self.path, self.dtype, count=count, offset=self.pos * self.dtype.itemsize)
        self.pos += count
        return out

    @property
    def done(self) -> bool:
        return self.pos >= self.n


class Store:
    """Keyed records with reduced values, spilled to sorted runs past ``bound`` records (module docstring)."""

    def __init__(self, dtype: np.dtype, reducers: dict[str, str], bound: int | None = None,
                 folder: Path | None = None):
        self.dtype, self.reducers, self.bound, self.folder = np.dtype(dtype), dict(reducers), bound, folder
        self.parts: list[np.ndarray] = []
        self.pending = 0
        self.runs: list[_Run] = []
        self.spills = 0  # runs written (for the benchmark and tests)
        self.reduced = False  # parts is one sorted, reduced array

    def __getstate__(self) -> dict:  # a worker's store travels without runs
        return {**self.__dict__, "runs": []}

    def add(self, recs: np.ndarray) -> None:
        if not len(recs):
            return
        self.parts.append(recs)
        self.pending += len(recs)
        self.reduced = False
        if self.bound is not None and self.pending > self.bound:
            held = self._held()
            if len(held) > self.bound // 2 and self.folder is not None:
                self._spill(held)
                self.parts, self.pending = [], 0
            else:
                self.parts, self.pending, self.reduced = [held], len(held), True

    def _held(self) -> np.ndarray:
        """What the store holds in memory, sorted and reduced."""
        if not self.parts:
            return np.zeros(0, self.dtype)
        if self.reduced:
            return self.parts[0]
        return sort_reduce(np.concatenate(self.parts) if len(self.parts) > 1 else self.parts[0], self.reducers)

    def _spill(self, recs: np.ndarray) -> None:
        self.runs.append(self._write(iter([recs])))

    def _write(self, blocks) -> _Run:
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.folder, prefix="spill-", suffix=".run")
        n = 0
        with os.fdopen(fd, "wb") as fh:
            for b in blocks:
                b.tofile(fh)
                n += len(b)
        self.spills += 1
        return _Run(Path(name), self.dtype, n)

    def __len__(self) -> int:
        """Records held in memory (not the distinct keys: those are known after ``sorted_blocks``)."""
        return self.pending

    def sorted_blocks(self) -> Iterator[np.ndarray]:
        """Every key once, in key order, with its reduced values, as consecutive blocks of records.  The store's
        runs are removed as they are used up; the store is empty afterwards."""
        held = self._held()
        self.parts, self.pending, self.reduced = [], 0, False
        runs, self.runs = self.runs, []
        bound = self.bound or max(len(held), 1)
        try:
            while len(runs) > FAN_IN:  # merge groups of runs into one run each until FAN_IN remain
                group, runs = runs[:FAN_IN], runs[FAN_IN:]
                runs.append(self._write(self._merge(group, None, bound)))
                for r in group:
                    r.path.unlink(missing_ok=True)
            yield from self._merge(runs, held, bound)
        finally:
            for r in runs:
                r.path.unlink(missing_ok=True)

    def _merge(self, runs: list[_Run], held: np.ndarray | None, bound: int) -> Iterator[np.ndarray]:
        if not runs:
            if held is not None and len(held):
                yield held
            return
        block = max(MIN_BLOCK, bound // (len(runs) + 1))
        bufs = [r.read(block) for r in runs]
        sources = list(runs)
        if held is not None and len(held):
            bufs.append(held)
            sources.append(None)  # held records: all loaded
        while True:
            live = [i for i, b in enumerate(bufs) if len(b)]
            if not live:
                return
            more = [i for i in live if sources[i] is not None and not sources[i].done]
            limit = None
            if more:  # keys up to the smallest last key of a block with more behind it are all loaded
                lasts = [tuple(bufs[i]["key"][-1].tolist()) for i in more]
                limit = np.array(min(lasts), np.uint64)
            take = []
            for i in live:
                b = bufs[i]
                cut = len(b) if limit is None else _count_at_most(b["key"], limit)
                if cut:
                    take.append(b[:cut])
                    bufs[i] = b[cut:]
                if not len(bufs[i]) and sources[i] is not None and not sources[i].done:
                    bufs[i] = sources[i].read(block)
            if take:
                yield sort_reduce(np.concatenate(take), self.reducers)

    def close(self) -> None:
        for r in self.runs:
            r.path.unlink(missing_ok=True)
        self.runs, self.parts, self.pending = [], [], 0
