"""The ``call`` job from input paths to result files: one plain function per command.

Pipeline position: between ``cli`` (which only parses options) and the stages
(reference -> reads -> alignment -> calling -> qc -> output).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np

from . import __version__
from .alignment import align
from .calling import call_read, genotype
from .errors import OutputError
from .models import Amplicon, CallConfig, Read, ReadResult, Reason, Status, Unreadable
from .output import (alignments_text, atomic_write, calls_table, reads_table, samples_table, summary_table,
                     write_json)
from .evidence import signals_at
from .qc import c_positions, hq_bases, looks_like_nome, mark_duplicates, measure, region_limit, verdict
from .reads import read_file
from .samples import resolve_inputs

log = logging.getLogger("bsmeth")
OUTPUTS = ("reads.tsv", "cpg_calls.tsv", "summary.tsv", "samples.tsv", "alignments.txt", "run.json")


@dataclass(frozen=True)
class CallRun:
    """What ``run_call`` did, for the CLI to print."""

    out: Path
    amplicon: Amplicon
    results: tuple[ReadResult, ...]
    samples: tuple[str, ...]

    @property
    def n_pass(self) -> int:
        return sum(r.status is Status.PASS for r in self.results)

    def reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            if r.reason is not None:
                counts[r.reason.value] = counts.get(r.reason.value, 0) + 1
        return dict(sorted(counts.items()))


def process_read(read: Union[Read, Unreadable], sample: str, amp: Amplicon, config: CallConfig,
                 file: Optional[str] = None) -> ReadResult:
    """One read through alignment, calling and QC (duplicates are marked later, across reads).

    ``file``: the path written for the read (default: the one the read came from)."""
    if isinstance(read, Unreadable):
        return ReadResult(read.id, file or read.file, sample, Status.FAIL, Reason.UNREADABLE, read.message)
    n_qual = 0 if read.qual is None else len(read.qual)
    mean_q = int(read.qual.sum(dtype=np.int64)) / n_qual if n_qual else None
    base = dict(read_id=read.id, file=file or read.file, sample=sample, length=len(read.seq),
                mean_qual=round(mean_q, 2) if mean_q is not None else None)
    hq = hq_bases(read, config)
    if hq < config.min_hq_bases:
        reason, detail = verdict(None, None, hq, config)
        return ReadResult(status=Status.FAIL, reason=reason, detail=detail, **base)
    aln = align(amp, read.seq, read.qual)
    signals = signals_at(read, aln, c_positions(amp, aln)) if aln is not None and read.trace is not None else {}
    qc = measure(amp, aln, read, config, signals, hq) if aln is not None else None
    reason, detail = verdict(aln, qc, hq, config, read)
    if reason is Reason.NO_AMPLICON:
        return ReadResult(status=Status.FAIL, reason=reason, detail=detail, **base)
    calls = call_read(amp, aln, config, signals)
    result = ReadResult(status=Status.PASS if reason is None else Status.FAIL, reason=reason, detail=detail,
                        aligned=aln, qc=qc, calls=calls, genotype=genotype(amp, aln), **base)
    if reason is None and result.n_called == 0 and any(not c.under_primer for c in amp.cpgs):
        result = replace(result, status=Status.FAIL, reason=Reason.LOW_QUALITY,
                         detail="no CpG could be called (gaps, low quality or not covered)")
    return result


def process_file(path: Path, sample: str, amp: Amplicon, config: CallConfig) -> list[ReadResult]:
    """All reads of one file.  Reads (and their traces) are dropped here: only results travel on."""
    return [process_read(read, sample, amp, config, str(path)) for read in read_file(path)]


_WORKER: dict = {}


# fork starts workers at once, with everything already imported; Python calls it unsafe on macOS (system
# libraries may hold threads), so other systems spawn
FORK_IS_SAFE = sys.platform.startswith("linux")


def _init_worker(amp: Amplicon, config: CallConfig) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the pool stops workers with SIGTERM: die quietly
    _WORKER.update(amp=amp, config=config)


def _work(job: tuple[Path, str]) -> list[ReadResult]:
    return process_file(job[0], job[1], _WORKER["amp"], _WORKER["config"])


def _results(jobs: list[tuple[Path, str]], amp: Amplicon, config: CallConfig,
             meanwhile: Optional[Callable[[], object]] = None) -> Iterator[list[ReadResult]]:
    """Results file by file, in input order, on ``config.threads`` processes.  ``meanwhile()`` runs in
    this process while the workers start aligning (or first, with one process)."""
    if config.threads <= 1 or len(jobs) < 2:
        if meanwhile:
            meanwhile()
        for path, sample in jobs:
            yield process_file(path, sample, amp, config)
        return
    ctx = mp.get_context("fork" if FORK_IS_SAFE else "spawn")
    with ctx.Pool(config.threads, initializer=_init_worker, initargs=(amp, config)) as pool:
        try:
            results = pool.imap(_work, jobs, chunksize=max(1, min(16, len(jobs) // (4 * config.threads))))
            if meanwhile:
                meanwhile()
            yield from results
        except BaseException:
            pool.terminate()
            raise


def fit_to_amplicon(config: CallConfig, amp: Amplicon) -> CallConfig:
    """Length thresholds no read of a short region could meet are scaled to half the region."""
    return replace(config, min_hq_bases=region_limit(config.min_hq_bases, amp),
                   min_aligned=region_limit(config.min_aligned, amp))


def prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any((out / name).exists() for name in OUTPUTS) and not force:
        raise OutputError(f"--out {out}: already holds results; add --force to overwrite them or choose another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"--out {out}: cannot create the folder ({e.strerror})") from None


def run_call(
    inputs: Sequence[str],
    amplicon: Amplicon,
    out: Path,
    config: CallConfig,
    sheet_path: Optional[str] = None,
    command: Sequence[str] = (),
    force: bool = False,
    progress=None,
    meanwhile: Optional[Callable[[], object]] = None,
) -> CallRun:
    """Call every CpG of every read in ``inputs`` and write the result files into ``out``.

    ``meanwhile()``: work for this process while worker processes align (``run`` imports the plotting
    libraries then, instead of after the call, where it would wait for them alone).
    """
    out = Path(out)
    sheet, assigned = resolve_inputs(inputs, sheet_path)
    prepare_out(out, force)

    config = fit_to_amplicon(config, amplicon)
    conditions: dict[str, dict] = {}
    for f, sample, values in assigned:
        conditions.setdefault(sample, values)
    jobs = [(f.path, sample) for f, sample, _ in assigned]
    results: list[ReadResult] = []
    seen: dict[str, int] = {}
    for i, batch in enumerate(_results(jobs, amplicon, config, meanwhile)):
        for r in batch:
            # read ids are made unique (id#2...) so every table can be joined on the read column
            n = seen.get(r.read_id, 0) + 1
            seen[r.read_id] = n
            results.append(r if n == 1 else replace(r, read_id=f"{r.read_id}#{n}"))
        if progress:
            progress(i + 1, len(jobs))
    results = mark_duplicates(amplicon, results, config)
    samples = tuple(dict.fromkeys(s for _, s, _ in assigned))
    if sheet:  # the user's order (BT474_d3 before BT474_d10), not the files' sorted paths
        rank = {name: i for i, name in enumerate(dict.fromkeys(name for name, _ in sheet.rows.values()))}
        samples = tuple(sorted(samples, key=rank.__getitem__))
    columns = tuple(sheet.columns) if sheet else ()
    for r in results:
        if r.status is Status.FAIL:
            log.info("%s (%s): %s%s", r.read_id, r.file, r.reason.value, f": {r.detail}" if r.detail else "")
    nome_like = sum(r.reason is Reason.LOW_CONVERSION and looks_like_nome(r.qc, config) for r in results)
    if nome_like >= 3 and nome_like >= sum(r.reason is Reason.LOW_CONVERSION for r in results) / 2:
        log.warning("%d reads fail conversion only at GpC sites: GpC-methylase (NOMe) treated? "
                    "rerun with --nome to count conversion over HCH only", nome_like)
    run = CallRun(out, amplicon, tuple(results), samples)
    write_outputs(run, conditions, columns, config, command, sheet_path)
    return run


def amplicon_dict(amp: Amplicon) -> dict:
    return {
        "name": amp.name, "source": amp.source, "reference_length": len(amp.reference),
        "strand": amp.strand.value, "start": amp.start + 1, "end": amp.end, "length": amp.length,
        "forward": amp.forward, "reverse": amp.reverse, "warnings": list(amp.warnings),
        "cpgs": [{"cpg": c.number, "pos": c.ref_pos + 1, "under_primer": c.under_primer,
                  "snp": c.snp.name if c.snp else None} for c in amp.cpgs],
        "snps": [{"name": s.name, "pos": s.pos + 1, "ref": s.ref, "alt": s.alt} for s in amp.snps],
    }


def write_outputs(run: CallRun, conditions: dict, columns: tuple, config: CallConfig, command, sheet_path) -> None:
    out, amp, results = run.out, run.amplicon, run.results
    texts = {
        "reads.tsv": reads_table(results, conditions, columns),
        "cpg_calls.tsv": calls_table(results),
        "summary.tsv": summary_table(amp, results, run.samples),
        "samples.tsv": samples_table(results, run.samples, conditions, columns),
        "alignments.txt": alignments_text(amp, results),
    }
    meta = {
        "version": __version__,
        "command": list(command) or sys.argv,
        "parameters": config.as_dict(),
        "sample_sheet": sheet_path,
        "reference": {"name": amp.name, "source": amp.source, "length": len(amp.reference)},
        "amplicon": amplicon_dict(amp),
        "sample_columns": list(columns),
        "samples": list(run.samples),
        "counts": {"reads": len(results), "pass": run.n_pass, "fail": len(results) - run.n_pass,
                   "by_reason": run.reasons()},
        "outputs": list(OUTPUTS),
    }
    # run.json last: its presence marks a complete set of outputs
    (out / "run.json").unlink(missing_ok=True)
    for name, text in texts.items():
        atomic_write(out / name, text)
    write_json(out / "run.json", meta)


# run_downstream's two halves, balanced by measurement (benchmarks/bench_run.py): the worker makes the
# statistics and the dose-response figure and saves the lollipop PDF (font embedding makes it the slowest
# save); this process saves the other lollipop formats and makes the report's trace section.
WORKER_FORMATS = ("pdf",)
_SIDE: dict = {}


def _worker_half(data, plot_config, compare_config, fig, lollipop_formats: tuple[str, ...]
                 ) -> tuple[Path, list[Path], list[Path]]:
    """stats.tsv, the dose-response figure, and the lollipop grid ``fig`` in ``lollipop_formats``."""
    from .plots import plot_dose_response, plot_lollipop
    from .stats import write_stats

    stats = Path(write_stats(data, compare_config))
    dose = plot_dose_response(data, plot_config)
    lollipop = plot_lollipop(data, replace(plot_config, formats=lollipop_formats), fig) if lollipop_formats else []
    return stats, dose, lollipop


def _init_side_worker(data, fig) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    # the pool stops its worker with SIGTERM: exit through the atomic writer's cleanup, without a traceback
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    _SIDE.update(data=data, fig=fig)  # forked: the loaded tables and the figure are inherited, not pickled


def _side_job(plot_config, compare_config, lollipop_formats):
    return _worker_half(_SIDE["data"], plot_config, compare_config, _SIDE["fig"], lollipop_formats)


def import_downstream_libraries() -> None:
    """pandas and matplotlib (seconds of imports), for ``run_call(meanwhile=...)``."""
    import importlib

    for name in ("pandas", "matplotlib.figure", "matplotlib.backends.backend_agg", "scipy.special"):
        importlib.import_module(name)


def run_downstream(call_dir: Path, plot_config, compare_config, processes: int = 1) -> list[Path]:
    """After ``call``: figures, statistics and the HTML report, all into the call folder.

    With ``processes`` > 1 the work is split in two halves run at once by this process and a forked worker
    (see WORKER_FORMATS).  The fork comes after the lollipop grid is built, so the worker shares the figure
    and the pandas and matplotlib this process has already imported.  The report is put together last.
    """
    from .plots import check_config, format_names, lollipop_figure, plot_lollipop
    from .report import save_report, trace_section
    from .tables import load_call_dir

    check_config(plot_config)
    data = load_call_dir(call_dir)  # once: both halves and the report use these tables
    fig = lollipop_figure(data, plot_config)
    formats = format_names(plot_config.formats)
    if processes > 1 and FORK_IS_SAFE:  # elsewhere one process: the worker needs the figure by fork
        theirs = tuple(f for f in formats if f in WORKER_FORMATS)
        mine = tuple(f for f in formats if f not in theirs)
        from concurrent.futures import ProcessPoolExecutor

        # an executor, not a Pool: if the worker dies (killed, out of memory) result() raises instead of
        # waiting forever
        with ProcessPoolExecutor(1, mp_context=mp.get_context("fork"), initializer=_init_side_worker,
                                 initargs=(data, fig)) as pool:
            try:
                pending = pool.submit(_side_job, plot_config, compare_config, theirs)
                lollipop = plot_lollipop(data, replace(plot_config, formats=mine), fig) if mine else []
                traces = trace_section(data)
                stats, dose, lollipop_theirs = pending.result()
            except BaseException:
                for child in mp.active_children():  # the worker only: the call's pool is gone
                    child.terminate()
                raise
        lollipop += lollipop_theirs
    else:
        lollipop = plot_lollipop(data, plot_config, fig)
        traces = trace_section(data)
        stats, dose, _ = _worker_half(data, plot_config, compare_config, fig, ())
    lollipop.sort(key=lambda p: formats.index(p.suffix[1:]))
    figures = lollipop + dose
    # the report embeds the PNGs just drawn rather than drawing the same figures again
    pngs = {p.stem: p.read_bytes() for p in figures if p.suffix == ".png"}
    report = save_report(data, plot_config=plot_config, compare_config=compare_config, pngs=pngs, traces=traces)
    return [*figures, stats, report]
