"""``bsmeth call``/``run`` on amplicon FASTQ: inputs to result tables, streaming.

Pipeline position: the NGS counterpart of ``pipeline.run_call`` (``cli`` routes FASTQ inputs here).  The main
process reads the FASTQ files in chunks (``fastq.chunks``) and hands them to worker processes (fork), at most
``IN_FLIGHT`` per worker at a time, so memory does not grow with the number of reads; results come back in input
order and are merged (``aggregate.Tally``).  Per-read tables (``--per-read``) are written by the main process as
they arrive.  Progress on stderr (``progress(pairs, seconds)``).  The epialleles and, with ``--umi``, the UMI
families are held in stores that spill sorted runs to a folder beside the staged result set (``spill``), removed
with it.  With ``--umi`` the convention of each FASTQ file is detected first (``umi.detect``) and the workers
read each pair's UMI from its names (``umi``).

Pairing (docs/ngs.md): a sample sheet's ``file2`` column names R2; otherwise R2 is found by name next to R1
(``x_R1_001.fastq.gz`` / ``x_R2_001.fastq.gz``, ``x_R1.fq`` / ``x_R2.fq``, ``x_1.fq.gz`` / ``x_2.fq.gz``); a file
without a mate is single-end.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..models import CallConfig, Panel
from ..outdir import raise_if_interrupted
from .aggregate import SPILL_BYTES, Tally
from .engine import mates, pairs
from .fastq import chunks, header_ids, parse_chunk
from .index import Index, build_index

log = logging.getLogger("bsmeth")
IN_FLIGHT = 2  # chunks queued per worker: enough to keep it busy, few enough to keep memory flat
_MATE = re.compile(r"^(?P<pre>.*?)(?P<sep>[._-])(?P<r>R?)(?P<n>[12])(?P<post>(?:_001)?\.(?:fastq|fq)(?:\.gz)?)$",
                   re.IGNORECASE)
_ILLUMINA_TAIL = re.compile(r"_S\d+(_L\d{3})?$")


@dataclass(frozen=True)
class Job:
    sample: int  # index into the run's samples
    r1: Path
    r2: Path | None
    umi1: str | None = None  # --umi: the UMI convention of each file (umi.detect)
    umi2: str | None = None


@dataclass(frozen=True)
class NgsConfig:
    """Options of the NGS engine that the clone workflow does not have."""

    per_read: bool = False  # write reads.tsv and cpg_calls.tsv (one row per pair; large)
    chunk_bytes: int = 1 << 21
    umi: bool = False  # deduplicate by the UMI in the read names (docs/ngs.md "UMIs")
    umi_pattern: str | None = None  # a regular expression for the UMI in the name's first word (else detected)
    spill_bytes: int = SPILL_BYTES  # patterns (and UMI families) held in memory before sorted runs go to disk


def mate_of(path: Path) -> tuple[Path, str, int] | None:
    """(the other mate's path, sample name, this mate's number) by the Illumina naming rules, or None."""
    m = _MATE.match(path.name)
    if not m:
        return None
    other = f"{m['pre']}{m['sep']}{m['r']}{3 - int(m['n'])}{m['post']}"
    return path.with_name(other), _ILLUMINA_TAIL.sub("", m["pre"]), int(m["n"])


def _sample_name(path: Path) -> str:
    name = re.sub(r"\.(fastq|fq)(\.gz)?$", "", path.name, flags=re.IGNORECASE)
    return _ILLUMINA_TAIL.sub("", name)


def resolve_pairs(inputs: Sequence[str], sheet_path: str | None):
    """(sheet or None, [(R1, R2 or None, sample, condition values)]) in input order."""
    from ..reads import InputFile, collect
    from ..samples import assign, read_sheet

    sheet = read_sheet(sheet_path) if sheet_path else None
    if inputs:
        files = collect(list(inputs))
    elif sheet is not None:
        files = [InputFile(p, str(p), p.stem) for p in sheet.order]
    else:
        raise InputError("no input reads: give FASTQ files or folders, or a --samples sheet")
    listed = set(sheet.rows) if sheet else set()
    r2_of: dict = {}
    if sheet:
        r2_of = {k: v for k, v in sheet.mates.items()}
    # files are matched by identity (device and inode), as the sample sheet keys its rows (files.file_key)
    seconds = {_key(Path(v)) for v in r2_of.values()}
    by_path = {_key(f.path): f for f in files}
    out_files, pair_of, names = [], {}, {}
    for f in files:
        key = _key(f.path)
        if key in seconds:
            continue
        if key in r2_of:
            pair_of[key] = Path(r2_of[key])
            out_files.append(f)
            continue
        m = mate_of(f.path)
        if m is not None:
            other, name, number = m
            okey = _key(other)
            if number == 2 and (okey in by_path or okey in listed):
                continue  # the R2 of an R1 that is an input too
            if number == 1 and other.is_file():
                pair_of[key] = other
                names[key] = name
        out_files.append(f)
    if sheet is None:  # every FASTQ file (pair) is a sample, named by its sample part: x_R1_001.fastq.gz -> x
        out_files = [replace(f, default_sample=names.get(_key(f.path), _sample_name(f.path))) for f in out_files]
    assigned = assign(out_files, sheet)
    return sheet, [(f.path, pair_of.get(_key(f.path)), sample, values) for f, sample, values in assigned]


def _key(path: Path) -> object:
    """A file's identity (device and inode; its absolute path when it cannot be looked at), as sheets key rows."""
    from ..files import file_key

    try:
        return file_key(path, os.stat(path))
    except (OSError, ValueError):
        return os.path.abspath(path)


# ---------------------------------------------------------------------------------------------
# workers

_STATE: dict = {}


def _init(index: Index, config: CallConfig, min_aligned: np.ndarray, per_read, names, parent: int) -> None:
    from ..workers import pool_worker

    pool_worker(parent)  # (a killed run leaves no worker behind, waiting for chunks forever)
    _STATE.update(index=index, config=config, min_aligned=min_aligned, per_read=per_read, names=names)


def _chunk_results(source, threads: int, state: dict, init_args: tuple):
    """(Tally, per-read lines, pairs) of each chunk of ``source``, in input order: in this process, or on
    ``threads`` worker processes with at most ``IN_FLIGHT`` chunks each in flight."""
    if threads <= 1:
        for job in source:
            yield process_chunk(job, state)
        return
    from ..workers import ordered_map

    yield from ordered_map(process_chunk, source, threads, _init, (*init_args, os.getpid()), in_flight=IN_FLIGHT)


def process_chunk(job: tuple, state: dict | None = None):
    """One chunk of one sample's pairs: (Tally, per-read lines or None, pairs)."""
    st = state or _STATE
    sample, c1, c2, file1, first_read, conv1, conv2 = job
    index, config = st["index"], st["config"]
    per_read = st["per_read"]
    what1 = f"{file1}, the chunk from read {first_read + 1}"
    rec1 = parse_chunk(c1, names=per_read is not None, what=what1)
    rec2 = parse_chunk(c2, names=False, what=what1.replace("R1", "R2")) if c2 is not None else None
    if rec2 is not None and len(rec2) != len(rec1):
        raise InputError(f"{file1}: R1 and R2 chunks hold {len(rec1)} and {len(rec2)} reads")
    width = max(index.n_cpgs) if index.n_cpgs else 0
    m1 = mates(rec1, index, config, width)
    m2 = mates(rec2, index, config, width) if rec2 is not None else None
    p = pairs(m1, m2, index, config, st["min_aligned"])
    umis = None
    if conv1 is not None:
        from .engine import R_NOUMI, R_UMIMIS
        from .umi import pair_umis, parse

        u1, ok1 = parse(rec1, conv1)
        u2, ok2 = parse(rec2, conv2) if rec2 is not None else (None, None)
        umis, none, differ = pair_umis(u1, ok1, u2, ok2)
        ok = p.reason == 0
        p.reason[ok & none] = R_NOUMI
        p.reason[ok & differ] = R_UMIMIS
    tally = Tally(index.n_cpgs, umi=umis is not None)
    tally.add(sample, p, umis)
    lines = None
    if per_read is not None:
        from .output import per_read_lines

        texts = None
        if umis is not None:
            from .umi import umi_text

            texts = umi_text(umis)
        lines = per_read_lines(p, rec1, rec2, sample, index, per_read, st["names"], file1, texts)
    return tally, lines, len(rec1)


@dataclass
class NgsRun:
    """What ``run_ngs`` did, for the CLI to print."""

    out: Path
    panel: Panel
    samples: tuple[str, ...]
    tally: Tally
    seconds: float
    warnings: tuple[str, ...] = ()
    added: tuple[str, ...] = ()  # names of the files ``downstream`` added (``run``: figures, stats, report)

    @property
    def n_pairs(self) -> int:
        return int(sum(int(f[0]) for f in self.tally.funnel.values()))

    @property
    def n_pass(self) -> int:
        return int(sum(int(f[4]) for f in self.tally.funnel.values()))

    def reasons(self) -> dict[str, int]:
        out: dict = {}
        for (_s, _a, code), n in self.tally.reasons.items():
            if code:
                name = self.tally.reason_name(code)
                out[name] = out.get(name, 0) + n
        return dict(sorted(out.items()))


def _job_chunks(jobs: list[Job], size: int):
    for job in jobs:
        n = 0
        last = None
        for c1, c2 in chunks(job.r1, job.r2, size):
            if c2 is not None:
                a, b = header_ids(c1), header_ids(c2)
                if a != b:
                    raise InputError(f"{job.r1} and {job.r2}: reads out of step (R1 {a[0]!r} ... {a[1]!r}, R2 "
                                     f"{b[0]!r} ... {b[1]!r}); give the two files of one run, in the same order")
            yield (job.sample, c1, c2, str(job.r1), n, job.umi1, job.umi2)
            n += c1.count(b"\n") // 4
            last = n
        del last


def run_ngs(inputs: Sequence[str], panel: Panel, out: Path, config: CallConfig, sheet_path: str | None = None,
            command: Sequence[str] = (), force: bool = False, ngs: NgsConfig = NgsConfig(),
            progress: Callable[[int, float], None] | None = None,
            downstream: Callable[[Path], Sequence[Path]] | None = None) -> NgsRun:
    """Call every CpG of every read pair of ``inputs`` and write the result tables into ``out``.

    As ``pipeline.run_call``: the result folder is held and a new result set staged (``outdir``), and
    ``downstream(folder)`` adds figures, statistics and report to it before it replaces the old one.
    """
    from ..outdir import CALL, new_result_set

    out = Path(out)
    sheet, files = resolve_pairs(inputs, sheet_path)
    with new_result_set(out, CALL, force) as staging:
        run = _run_ngs(files, sheet, panel, out, staging.path, config, sheet_path, command, ngs, progress)
        added = tuple(p.name for p in downstream(staging.path)) if downstream else ()
    return replace(run, added=added)


def _run_ngs(files, sheet, panel: Panel, out: Path, folder: Path, config: CallConfig, sheet_path, command,
             ngs: NgsConfig, progress) -> NgsRun:
    """Every read pair through the engine, the tables written into ``folder`` (the staged set)."""
    from ..pipeline import fit_to_amplicon
    from .output import PerReadWriter, write_tables
    samples = list(dict.fromkeys(s for _, _, s, _ in files))
    if sheet:
        rank = {name: i for i, name in enumerate(dict.fromkeys(name for name, _ in sheet.rows.values()))}
        samples.sort(key=rank.__getitem__)
    conditions: dict = {}
    for _, _, s, values in files:
        conditions.setdefault(s, values)
    columns = tuple(sheet.columns) if sheet else ()
    index = build_index(panel)
    min_aligned = np.array([fit_to_amplicon(config, a).min_aligned for a in panel])
    sample_of = {s: i for i, s in enumerate(samples)}
    umi_of: dict = {}
    if ngs.umi or ngs.umi_pattern:
        from .umi import detect

        for r1, r2, _s, _v in files:
            for f in (r1, r2):
                if f is not None and str(f) not in umi_of:
                    umi_of[str(f)] = detect(Path(f), ngs.umi_pattern)
    jobs = [Job(sample_of[s], r1, r2, umi_of.get(str(r1)), umi_of.get(str(r2)) if r2 else None)
            for r1, r2, s, _ in files]
    writer = PerReadWriter(folder, panel, columns, bool(umi_of)) if ngs.per_read else None
    per_read = (columns, {s: [conditions[s].get(c, "") for c in columns] for s in samples}) if writer else None
    state = {"index": index, "config": config, "min_aligned": min_aligned, "per_read": per_read,
                 "names": {"samples": samples, "files": {}}}
    # the stores spill beside the staged set (outdir removes that folder whatever happens)
    tally = Tally(index.n_cpgs, ngs.spill_bytes, folder.parent / "spill", umi=bool(umi_of))
    t0 = time.monotonic()
    done = 0
    threads = max(1, config.threads)
    try:
        results = _chunk_results(_job_chunks(jobs, ngs.chunk_bytes), threads, state,
                                 (index, config, min_aligned, per_read, state["names"]))
        with closing(results):  # an error here stops the workers at once
            for t, lines, n in results:
                raise_if_interrupted()
                tally.merge(t)
                if writer and lines:
                    writer.write(lines)
                done += n
                if progress:
                    progress(done, time.monotonic() - t0)
        tally.finish()
        seconds = time.monotonic() - t0
        run = NgsRun(out, panel, tuple(samples), tally, seconds)
        warnings = run_warnings(run)
        for w in warnings:
            log.warning("warning: %s", w)
        run = replace(run, warnings=tuple(warnings))
        extra = {"umi": {"pattern": ngs.umi_pattern, "conventions": umi_of}} if umi_of else None
        write_tables(run, conditions, columns, config, list(command) or sys.argv, sheet_path, writer,
                     files=[(str(r1), str(r2) if r2 else "", s) for r1, r2, s, _ in files], folder=folder,
                     extra=extra)
    except BaseException:
        if writer:
            writer.abort()
        raise
    finally:
        tally.close()
    return run


def run_warnings(run: NgsRun) -> list[str]:
    """Run-level hints: most pairs without an amplicon suggests a wrong panel."""
    out = []
    n = run.n_pairs
    noamp = run.reasons().get("no_amplicon", 0)
    if n >= 3 and noamp >= 0.5 * n:
        out.append(f"{noamp} of {n} read pairs fail no_amplicon: check --panel (or --reference and the primers); "
                   "are these reads of these amplicons?")
    return out


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1
