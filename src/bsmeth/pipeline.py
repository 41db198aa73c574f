"""The ``call`` job from input paths to result files: one plain function per command.

Pipeline position: between ``cli`` (which only parses options) and the stages
(reference -> reads -> alignment -> calling -> qc -> output).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Generator, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from . import __version__
from .alignment import align_steps
from .assign import assign
from .calling import call_read, genotype
from .coords import one_based
from .evidence import signals_at
from .files import shown
from .memo import by_identity
from .models import Amplicon, CallConfig, Panel, Read, ReadResult, Reason, Status, Unreadable, register_panel
from .outdir import CALL, CALL_TABLES, new_result_set, raise_if_interrupted
from .output import alignments_text, atomic_write, calls_table, reads_table, samples_table, summary_table, write_json
from .qc import (
    apply_links,
    c_positions,
    duplicate_links,
    hq_bases,
    looks_like_nome,
    measure,
    region_limit,
    sample_groups,
    verdict,
)
from .reads import TRACE_EXT, read_file
from .samples import resolve_inputs
from .workers import FORK_IS_SAFE, SIDE, ordered_map, pool_worker, side_process

log = logging.getLogger("bsmeth")
OUTPUTS = CALL_TABLES


@dataclass(frozen=True)
class CallRun:
    """What ``run_call`` did, for the CLI to print."""

    out: Path
    panel: Panel
    results: tuple[ReadResult, ...]
    samples: tuple[str, ...]
    warnings: tuple[str, ...] = ()  # run-level hints, also printed and written into run.json
    added: tuple[str, ...] = ()  # names of the files ``downstream`` added (``run``: figures, stats, report)
    conditions: dict = field(default_factory=dict, compare=False)  # sample -> sheet values
    columns: tuple[str, ...] = ()  # sheet columns, in order
    curation: Optional[dict] = None  # --curation as recorded in run.json (curation.Curation.as_dict)

    @property
    def amplicon(self) -> Amplicon:
        """The first (in the one-amplicon form, the only) amplicon."""
        return self.panel.amplicons[0]

    @property
    def n_pass(self) -> int:
        return sum(r.status is Status.PASS for r in self.results)

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            if r.reason is not None:
                counts[r.reason.value] = counts.get(r.reason.value, 0) + 1
        return dict(sorted(counts.items()))


def read_record(read: Read) -> dict:
    """What a result keeps of the read itself: what reads.bam needs (the trace is dropped)."""
    return dict(sequence=read.seq, qualities=read.qual, fmt=read.fmt)


def process_read(read: Union[Read, Unreadable], sample: str, amp: Amplicon, config: CallConfig,
                 file: Optional[str] = None, amplicon: Optional[str] = None) -> ReadResult:
    """One read through alignment, calling and QC (duplicates are marked later, across reads).

    ``file``: the path written for the read (default: the one the read came from); ``amplicon``: the amplicon
    name written for it (default ``amp.name``)."""
    return run_steps([read_steps(read, sample, amp, config, file, amplicon)])[0]


def read_steps(read: Union[Read, Unreadable], sample: str, amp: Amplicon, config: CallConfig,
               file: Optional[str] = None, amplicon: Optional[str] = None,
               hq: Optional[int] = None) -> Generator[None, None, ReadResult]:
    """``process_read`` in steps: a generator that pauses between the stages (alignment | trace evidence | QC |
    calls) and returns the result, so that ``run_steps`` can take a batch of reads through each stage in turn.
    ``hq``: the read's ``hq_bases`` when the caller counted them already."""
    name = amp.name if amplicon is None else amplicon
    if isinstance(read, Unreadable):
        return ReadResult(read.id, file or read.file, sample, Status.FAIL, read.reason, read.message, amplicon=name)
    if read.notes:  # anomalies of the file (qualities ignored, no usable chromatogram): never silent
        result = yield from read_steps(replace(read, notes=()), sample, amp, config, file, amplicon, hq)
        return replace(result, detail="; ".join(x for x in (result.detail, *read.notes) if x))
    n_qual = 0 if read.qual is None else len(read.qual)
    mean_q = int(read.qual.sum(dtype=np.int64)) / n_qual if n_qual else None
    base = dict(read_id=read.id, file=file or read.file, sample=sample, length=len(read.seq),
                mean_qual=round(mean_q, 2) if mean_q is not None else None, amplicon=name, **read_record(read))
    hq = hq_bases(read, config) if hq is None else hq
    if hq < config.min_hq_bases:
        reason, detail = verdict(None, None, hq, config)
        return ReadResult(status=Status.FAIL, reason=reason, detail=detail, **base)
    aln = yield from align_steps(amp, read.seq, read.qual)
    yield
    signals = signals_at(read, aln, c_positions(amp, aln)) if aln is not None and read.trace is not None else {}
    yield
    qc = measure(amp, aln, read, config, signals, hq) if aln is not None else None
    reason, detail = verdict(aln, qc, hq, config, read)
    if reason is Reason.NO_AMPLICON:
        return ReadResult(status=Status.FAIL, reason=reason, detail=detail, **base)
    yield
    calls = call_read(amp, aln, config, signals)
    result = ReadResult(status=Status.PASS if reason is None else Status.FAIL, reason=reason, detail=detail,
                        aligned=aln, qc=qc, calls=calls, genotype=genotype(amp, aln), **base)
    if reason is None and result.n_called == 0 and any(not c.under_primer for c in amp.cpgs):
        result = replace(result, status=Status.FAIL, reason=Reason.LOW_QUALITY,
                         detail="no CpG could be called (gaps, low quality or not covered)")
    return result


def process_panel_read(read: Union[Read, Unreadable], sample: str, panel: Panel,
                       configs: Sequence[CallConfig], file: Optional[str] = None) -> ReadResult:
    """One read: assigned to an amplicon of the panel (``assign``), then through ``process_read``.  In a run
    of one amplicon every read is counted for it; in a panel a read that no amplicon could be assigned (or
    that did not align to its amplicon after all) has an empty ``amplicon``."""
    return run_steps([panel_read_steps(read, sample, panel, configs, file)])[0]


def panel_read_steps(read: Union[Read, Unreadable], sample: str, panel: Panel, configs: Sequence[CallConfig],
                     file: Optional[str] = None) -> Generator[None, None, ReadResult]:
    """``process_panel_read`` in steps (see ``read_steps``): the assignment, then the read's steps."""
    if isinstance(read, Unreadable) or len(panel) == 1:
        return (yield from read_steps(read, sample, panel.amplicons[0], configs[0], file))
    config = configs[0]
    hq = hq_bases(read, config)
    if hq < config.min_hq_bases:  # fails low_quality before any alignment: no amplicon is named
        return (yield from read_steps(read, sample, panel.amplicons[0], configs[0], file, amplicon="", hq=hq))
    a = assign(panel, read.seq, read.qual)
    if a.index is None:
        mean_q = float(np.mean(read.qual)) if read.qual is not None and len(read.qual) else None
        return ReadResult(read.id, file or read.file, sample, Status.FAIL, a.reason, a.detail, length=len(read.seq),
                          mean_qual=round(mean_q, 2) if mean_q is not None else None, **read_record(read))
    yield
    amp = panel.amplicons[a.index]
    r = yield from read_steps(read, sample, amp, configs[a.index], file, hq=hq)
    return r if r.aligned is not None else replace(r, amplicon="")


def run_steps(steps: Sequence[Generator[None, None, ReadResult]]) -> list[ReadResult]:
    """The results of generators of steps (``read_steps``) run side by side: every one's first step, then every
    one's second...  A batch of reads goes through one stage after the other, so each stage's code and tables
    stay in the processor's caches: 16 traces side by side cost 0.69 ms a read where one after the other cost
    0.79 (CPU, the 96 seed-study traces)."""
    out: list = [None] * len(steps)
    live = list(enumerate(steps))
    while live:
        going = []
        for i, step in live:
            try:
                next(step)
            except StopIteration as done:
                out[i] = done.value
            else:
                going.append((i, step))
        live = going
    return out


STEP_READS = 16  # reads taken through the stages side by side (``run_steps``)


def process_file(path: Path, sample: str, panel: Union[Panel, Amplicon],
                 config: Union[CallConfig, Sequence[CallConfig]]) -> list[ReadResult]:
    """All reads of one file (``process_files``)."""
    return process_files([(path, sample)], panel, config)[0]


def process_files(jobs: Sequence[tuple[Path, str]], panel: Union[Panel, Amplicon],
                  config: Union[CallConfig, Sequence[CallConfig]]) -> list[list[ReadResult]]:
    """All reads of the files ``jobs`` (path, sample), ``STEP_READS`` at a time side by side through the stages
    (``run_steps``); per file its results.  Reads (and their traces) are dropped here: only results travel on,
    each with its reads.bam records made (``readsbam.ReadParts``) unless ``write_bam`` is off."""
    panel = as_panel(panel)
    configs = [config] * len(panel) if isinstance(config, CallConfig) else list(config)
    out: list[list[ReadResult]] = []
    batch: list[tuple[int, Generator]] = []  # (file, its read's steps)

    def run_batch() -> None:
        for (k, _), result in zip(batch, run_steps([steps for _, steps in batch])):
            out[k].append(result)
        batch.clear()

    for k, (path, sample) in enumerate(jobs):
        out.append([])
        name = shown(path)  # as given, in writable text (a file name need not be UTF-8)
        for read in read_file(path):
            batch.append((k, panel_read_steps(read, sample, panel, configs, name)))
            if len(batch) >= STEP_READS:
                run_batch()
    run_batch()
    if configs[0].write_bam:
        from .readsbam import with_parts

        out = [[with_parts(r, panel, configs[0].min_qual) for r in results] for results in out]
    return out


def as_panel(x: Union[Panel, Amplicon]) -> Panel:
    """The one-amplicon form as a panel of one: the same panel each time for the same amplicon, so that the
    tables kept per panel (``readsbam.panel_parts``) are made once, not for every chunk of files."""
    return x if isinstance(x, Panel) else by_identity(_PANELS, x, lambda: Panel((x,)))


_PANELS: dict = {}


_WORKER: dict = {}


def _init_worker(panel: Panel, configs: list[CallConfig], parent: int) -> None:
    pool_worker(parent)
    register_panel(panel)  # (spawned: the panel is a copy here) its CpGs pickle by their registered key
    _WORKER.update(panel=panel, configs=configs)


def _work(jobs: list[tuple[Path, str]]) -> list[list[ReadResult]]:
    return process_files(jobs, _WORKER["panel"], _WORKER["configs"])


# Worker processes only pay off past this many trace files each: starting a pool and sending results back costs
# about as much as a process reads and calls ~100 traces (whole `bsmeth call`: 96 traces 0.53 s on one process,
# 0.59 s on two; 168 traces 0.73 s and 0.66 s), so smaller runs of traces stay in one process.  Files of
# sequences (FASTA, FASTQ, BAM) may hold any number of reads: two or more always go to the workers.
FILES_PER_WORKER = 64


def _results(jobs: list[tuple[Path, str]], panel: Panel, configs: list[CallConfig],
             meanwhile: Sequence[Callable[[], object]] = ()) -> Iterator[list[ReadResult]]:
    """Results file by file, in input order, on ``configs[0].threads`` processes (for trace files and nothing to
    do ``meanwhile``, fewer when there are fewer than ``FILES_PER_WORKER`` files per process).

    ``meanwhile``: steps of work for this process while the workers align (``run`` imports the libraries
    of its later stages).  One step runs after each batch of results arrives, so the caller's progress bar
    keeps advancing between steps instead of waiting for all of them; with one process they run first.
    """
    steps = list(meanwhile)
    threads = configs[0].threads
    # one read a file: the work is known.  With steps to run meanwhile (``run`` imports its later libraries
    # while the workers align) the pool pays for itself however few the traces.
    traces = all(Path(path).suffix.lower() in TRACE_EXT for path, _ in jobs)
    if not steps and traces:
        threads = min(threads, len(jobs) // FILES_PER_WORKER)
    # chunks of trace files go through the stages side by side (``process_files``); files of sequences may hold
    # any number of reads, one a chunk.  With workers, chunks small enough that results (and the progress bar)
    # arrive steadily.
    size = STEP_READS if traces else 1
    if threads <= 1 or len(jobs) < 2:
        for step in steps:
            step()
        for i in range(0, len(jobs), size):
            raise_if_interrupted()
            yield from process_files(jobs[i:i + size], panel, configs)
        return
    register_panel(panel)  # results come back pointing at this process's own CpGs of their amplicon (``cpgs_key``)
    size = max(1, min(size, len(jobs) // (8 * threads)))
    chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    for results in ordered_map(_work, chunks, threads, _init_worker, (panel, configs, os.getpid())):
        for batch in results:
            raise_if_interrupted()
            yield batch
            if steps:
                steps.pop(0)()
    for step in steps:
        step()


def fit_to_amplicon(config: CallConfig, amp: Amplicon) -> CallConfig:
    """Length thresholds no read of a short region could meet are scaled to half the region; conversion is
    not checked against a reference given already converted (it has no C outside CpGs)."""
    return replace(config, min_hq_bases=region_limit(config.min_hq_bases, amp),
                   min_aligned=region_limit(config.min_aligned, amp),
                   check_conversion=config.check_conversion and not amp.converted_reference)


def unique_ids(results: Sequence[ReadResult]) -> list[ReadResult]:
    """Read ids made unique, so every table can be joined on the read column.

    The first read of an id keeps it; a later one becomes ``id#k`` with the smallest k >= 2 that is no
    read's own id and not given yet (a real read named ``x#2`` keeps its name).
    """
    taken = {r.read_id for r in results}
    seen: set[str] = set()
    out = []
    for r in results:
        rid = r.read_id
        if rid in seen:
            k = 2
            while f"{rid}#{k}" in taken:
                k += 1
            rid = f"{rid}#{k}"
            taken.add(rid)
            r = replace(r, read_id=rid)
        seen.add(rid)
        out.append(r)
    return out


# From this many reads on, with more than one process, duplicates are looked for in forked processes, a sample
# at a time (2,000 traces in 8 samples: 0.19 s in one process)
PARALLEL_DUPLICATE_READS = 500


def mark_panel_duplicates(panel: Panel, results: list[ReadResult], configs: Sequence[CallConfig]) -> list[ReadResult]:
    """Clonal duplicates, looked for among the reads of each sample of each amplicon (a molecule is of one
    amplicon; ``qc.duplicate_links``), on ``threads`` processes for large runs."""
    out = list(results)
    jobs = []  # (amplicon index, indices into out of one sample's passing reads of that amplicon)
    for a, amp in enumerate(panel):
        idx = [i for i, r in enumerate(out) if r.amplicon == amp.name]
        jobs += [(a, [idx[k] for k in group]) for group in sample_groups([out[i] for i in idx]) if len(group) > 1]
    threads = min(configs[0].threads, len(jobs))
    if threads > 1 and FORK_IS_SAFE and len(out) >= PARALLEL_DUPLICATE_READS:
        # forked: the processes inherit the results; only the jobs and the links travel
        found: Iterable = ordered_map(_links_job, jobs, threads, _init_links, ((panel, configs, out), os.getpid()))
    else:
        found = (_links(panel, configs, out, job) for job in jobs)
    for (a, idx), links in zip(jobs, found):
        apply_links(out, idx, links, configs[a])
    return out


def _links(panel: Panel, configs: Sequence[CallConfig], results: list[ReadResult],
           job: tuple[int, list[int]]) -> list[tuple[int, int]]:
    a, idx = job
    return duplicate_links(panel.amplicons[a], [results[i] for i in idx], configs[a])


def _init_links(data: tuple, parent: int) -> None:
    pool_worker(parent)
    _WORKER.update(links=data)


def _links_job(job: tuple[int, list[int]]) -> list[tuple[int, int]]:
    return _links(*_WORKER["links"], job)


def run_call(
    inputs: Sequence[str],
    amplicon: Union[Panel, Amplicon],
    out: Path,
    config: CallConfig,
    sheet_path: Optional[str] = None,
    command: Sequence[str] = (),
    force: bool = False,
    progress=None,
    meanwhile: Optional[Callable[[], object]] = None,
    downstream: Optional[Callable[[Path], Sequence[Path]]] = None,
    curation: Optional[str | os.PathLike] = None,
) -> CallRun:
    """Call every CpG of every read in ``inputs`` and write the result files into ``out``.

    ``meanwhile``: a callable, or steps of work, for this process while worker processes align (``run``
    imports the libraries of its later stages then, instead of after the call, where it would wait for them
    alone).
    ``downstream(folder)``: adds files to the new result set before it replaces the old one (``run``:
    figures, statistics, report); returns their paths.  The result folder is held, staged and swapped
    by ``outdir``: a second run into it exits 4, and the previous results stay until the new set is whole.
    ``curation``: a curation.tsv (``curation``), applied after QC.
    """
    from .curation import load_curation

    out = Path(out)
    panel = as_panel(amplicon)
    cur = load_curation(curation) if curation is not None else None  # a bad file fails before any work
    sheet, assigned = resolve_inputs(inputs, sheet_path)
    with new_result_set(out, CALL, force) as staging:
        run = _call(assigned, sheet, panel, out, config, progress, meanwhile, cur)
        write_outputs(run, run.conditions, run.columns, config, command, sheet_path, staging.path)
        added = tuple(p.name for p in downstream(staging.path)) if downstream else ()
    return replace(run, added=added)


def _call(assigned, sheet, panel: Panel, out: Path, config: CallConfig, progress, meanwhile, cur=None) -> CallRun:
    """Every read through the stages, duplicates marked, the curation applied, samples ordered; nothing
    written."""
    from .curation import apply_curation

    configs = [fit_to_amplicon(config, amp) for amp in panel]
    conditions: dict[str, dict] = {}
    for _f, sample, values in assigned:
        conditions.setdefault(sample, values)
    jobs = [(f.path, sample) for f, sample, _ in assigned]
    results: list[ReadResult] = []
    steps = () if meanwhile is None else ((meanwhile,) if callable(meanwhile) else tuple(meanwhile))
    for i, batch in enumerate(_results(jobs, panel, configs, steps)):
        results.extend(batch)
        if progress:
            progress(i + 1, len(jobs))
    # after the call, not sample by sample while the workers align: this process's work then slows them more
    # than it saves (2,000 traces, 2 workers: the call 1.87-1.98 s with it, 1.55-1.59 s without)
    results = mark_panel_duplicates(panel, unique_ids(results), configs)
    applied: list[str] = []
    if cur is not None:
        results, applied = apply_curation(results, cur)
    samples = tuple(dict.fromkeys(s for _, s, _ in assigned))
    if sheet:  # the user's order (BT474_d3 before BT474_d10), not the files' sorted paths
        rank = {name: i for i, name in enumerate(dict.fromkeys(name for name, _ in sheet.rows.values()))}
        samples = tuple(sorted(samples, key=rank.__getitem__))
    columns = tuple(sheet.columns) if sheet else ()
    for r in results:
        if r.status is Status.FAIL:
            log.info("%s (%s): %s%s", r.read_id, r.file, r.reason.value, f": {r.detail}" if r.detail else "")
    warnings = run_warnings(results, samples, assigned, config)
    for w in warnings:
        log.warning("warning: %s", w)
    return CallRun(out, panel, tuple(results), samples, tuple(warnings), conditions=conditions, columns=columns,
                   curation=cur.as_dict(applied) if cur is not None else None)


NO_MATCH_SHARE = 0.5  # this share of the reads failing no_amplicon (at least 3) suggests the wrong amplicon


def run_warnings(results: Sequence[ReadResult], samples: Sequence[str], assigned, config: CallConfig) -> list[str]:
    """Hints about the run as a whole: things that look like a wrong setting rather than bad reads."""
    out = []
    n = len(results)
    no_match = sum(r.reason is Reason.NO_AMPLICON for r in results)
    if no_match >= 3 and no_match >= NO_MATCH_SHARE * n:
        out.append(f"{no_match} of {n} reads fail no_amplicon (no alignment to the amplicon): check --reference and "
                   "the primers (or --panel); are these reads of this region?")
    per_sample: dict[str, int] = {}
    for r in results:
        per_sample[r.sample] = per_sample.get(r.sample, 0) + 1
    files = {f.path for f, _, _ in assigned}
    if len(samples) > 1 and all(v == 1 for v in per_sample.values()) and len(files) == len(samples):
        out.append(f"every sample holds a single read ({len(samples)} samples of one read each): without a sample "
                   "sheet each input file is a sample; give --samples sheet.csv, or one folder per sample "
                   "(statistics need several clones per group, and duplicates can only be found within a sample)")
    nome_like = sum(r.reason is Reason.LOW_CONVERSION and looks_like_nome(r.qc, config) for r in results)
    if nome_like >= 3 and nome_like >= sum(r.reason is Reason.LOW_CONVERSION for r in results) / 2:
        out.append(f"{nome_like} reads fail conversion only at GpC sites: GpC-methylase (NOMe) treated? "
                   "rerun with --nome to count conversion over HCH only")
    return out


def results_relative(results: Sequence[ReadResult], out: Path) -> list[ReadResult]:
    """Input paths as written into reads.tsv: relative to the result folder, so that a folder moved or copied
    together with its reads still finds them (run.json keeps the folder's absolute path for the other case)."""
    base = os.path.abspath(out)
    cache: dict[str, str] = {"": ""}
    folders: dict[str, Optional[str]] = {}  # one relpath per folder (thousands of traces share a few)

    def rel(f: str) -> str:
        hit = cache.get(f)
        if hit is None:
            folder, name = os.path.split(os.path.abspath(f))
            if folder not in folders:
                try:
                    folders[folder] = os.path.relpath(folder, base)
                except ValueError:  # another drive (Windows)
                    folders[folder] = None
            up = folders[folder]
            hit = cache[f] = os.path.join(folder, name) if up is None else name if up == "." else os.path.join(up, name)
        return hit

    return [r.but(file=rel(r.file)) for r in results]


def anchor_dict(amp: Amplicon) -> Optional[dict]:
    """The genome anchor as written in run.json: 1-based, inclusive start (as genome browsers show it)."""
    a = amp.anchor
    if a is None:
        return None
    span = amp.frame.genome_span()
    return {"assembly": a.assembly, "chrom": a.chrom, "start": one_based(a.start), "end": a.end,
            "strand": a.strand, "amplicon_start": one_based(span[0]), "amplicon_end": span[1],
            "amplified_strand": amp.frame.genome_strand}


def amplicon_dict(amp: Amplicon) -> dict:
    return {
        "name": amp.name, "source": amp.source, "reference_length": len(amp.reference),
        "strand": amp.strand.value, "start": one_based(amp.start), "end": amp.end, "length": amp.length,
        "forward": amp.forward, "reverse": amp.reverse, "warnings": list(amp.warnings),
        "converted_reference": amp.converted_reference, "genome": anchor_dict(amp),
        "cpgs": [{"cpg": c.number, "pos": one_based(c.ref_pos), "genome_pos": one_based(c.genome_pos),
                  "under_primer": c.under_primer, "snp": c.snp.name if c.snp else None} for c in amp.cpgs],
        "snps": [{"name": s.name, "pos": one_based(s.pos), "ref": s.ref, "alt": s.alt} for s in amp.snps],
    }


# From this many reads on (with more than one process), cpg_calls.tsv (a row per read and CpG: the longest table
# to make, 0.25 s of the 0.55 s the tables and BAM files take at 2,000 traces) is made and written by a forked
# process while this one writes the BAM files and the other tables.  Below, a fork costs more than it saves.
PARALLEL_TABLE_READS = 500


def _calls_table_job(target: Path) -> None:
    panel, results = SIDE["data"]
    atomic_write(target / "cpg_calls.tsv", calls_table(panel, results))


def write_outputs(run: CallRun, conditions: dict, columns: tuple, config: CallConfig, command, sheet_path,
                  folder: Optional[Path] = None) -> None:
    """The call tables, the BAMs and run.json (last: it marks the set complete) into ``folder`` (default
    ``run.out``; ``run_call`` writes into the staged result set, which becomes ``run.out``).  Large runs with
    more than one process write cpg_calls.tsv in a forked process meanwhile (``PARALLEL_TABLE_READS``)."""
    out = run.out
    results = results_relative(run.results, out)  # relative to where the results will be, not the staging
    target = Path(folder or out)
    if config.threads > 1 and FORK_IS_SAFE and len(results) >= PARALLEL_TABLE_READS:
        with side_process((run.panel, results)) as side:
            calls = side.submit(_calls_table_job, target)
            _write_outputs(run, results, conditions, columns, config, command, sheet_path, target, calls)
    else:
        _write_outputs(run, results, conditions, columns, config, command, sheet_path, target)


def _write_outputs(run: CallRun, results: list[ReadResult], conditions: dict, columns: tuple, config: CallConfig,
                   command, sheet_path, target: Path, calls_done=None) -> None:
    """``write_outputs`` with the paths made relative; ``calls_done``: the future of cpg_calls.tsv written
    elsewhere (else it is written here)."""
    out, panel = run.out, run.panel
    texts = {
        "reads.tsv": lambda: reads_table(results, conditions, columns),
        "cpg_calls.tsv": lambda: calls_table(panel, results),
        "summary.tsv": lambda: summary_table(panel, results, run.samples),
        "samples.tsv": lambda: samples_table(panel, results, run.samples, conditions, columns),
        "alignments.txt": lambda: alignments_text(panel, results),
    }
    if calls_done is not None:
        del texts["cpg_calls.tsv"]
    amplicons = [amplicon_dict(a) for a in panel]
    outputs = list(OUTPUTS)
    from .readsbam import output_names, write_read_bams

    if config.write_bam:  # from the in-memory results (read bases and alignments): only `call` can write them
        write_read_bams(target, panel, run.results, run.samples, config.min_qual, list(command) or sys.argv,
                        threads=max(1, config.threads))
        outputs += output_names()
    meta = {
        "version": __version__,
        "command": list(command) or sys.argv,
        "parameters": config.as_dict(),
        "sample_sheet": sheet_path,
        "panel": panel.source or None,
        "reference": {"name": panel.amplicons[0].name, "source": panel.amplicons[0].source,
                      "length": len(panel.amplicons[0].reference)},
        **({"amplicon": amplicons[0]} if len(panel) == 1 else {}),
        "amplicons": amplicons,
        "results_dir": os.path.abspath(out),  # where the input paths of reads.tsv are relative to, at run time
        "warnings": list(run.warnings),
        "curation": run.curation,
        "sample_columns": list(columns),
        "samples": list(run.samples),
        "counts": {"reads": len(results), "pass": run.n_pass, "fail": len(results) - run.n_pass,
                   "by_reason": run.reasons()},
        "outputs": outputs,
    }
    for name, make in texts.items():
        atomic_write(target / name, make())
    if calls_done is not None:
        calls_done.result()
    write_json(target / "run.json", meta)  # last: its presence marks a complete set of outputs


