"""``run``'s later stages on a call folder: figures (each with its data TSV), statistics, the HTML report and the
exports (``run_downstream``).

Pipeline position: after ``pipeline.run_call`` has written the call tables; used by ``cli.run``.

With two or more processes (where fork is safe) the work runs in two halves at once.  A *figure process*
(``FigureProcess``) builds the figures and writes them in every format, draws the report's chromatogram
snippets and, once stats.tsv is written, puts the report together; this process meanwhile writes the
statistics (stats.tsv, heterogeneity.tsv) and then the exports (after stats.tsv: results.xlsx holds it).
``cli.run`` forks the figure process before the call (``figure_process``), so that it imports its libraries
(pandas, scipy.special, Pillow and bsmeth's figure and report modules: about half a second) while the reads are
aligned, not after; this process imports what the statistics need once the call is written.  The halves, measured
in ``bsmeth run`` of example_reads (CPU seconds): figures built 0.08-0.15 and written in every format 0.33-0.57,
snippets 0.09-0.16, report 0.12-0.24; statistics 0.30-0.35 (after 0.4 s of imports), exports 0.22
(docs/performance.md).
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from .workers import FORK_IS_SAFE, died, error_report, quiet_child, start_child, stop_processes

Progress = Optional[Callable[[int, int], None]]

# What the downstream stages import (about half a second): ``run`` imports them while the call aligns, in the
# figure process or, with one process, as ``run_call(meanwhile=...)`` steps.  (fontTools.subset is not among
# them: PDFs embed the shipped ASCII font subsets, figures.pdfwrite.)
DOWNSTREAM_IMPORTS = ("pandas", "scipy.special", "PIL.Image", "PIL.ImageDraw", "PIL.ImageFont")
FIGURE_MODULES = ("bsmeth.tables", "bsmeth.figures.plots", "bsmeth.report", "bsmeth.stats")


def import_downstream_libraries() -> list[Callable[[], object]]:
    """Steps importing what ``run_downstream`` needs, for ``run_call(meanwhile=...)``: one library a step."""
    return [lambda name=name: importlib.import_module(name) for name in DOWNSTREAM_IMPORTS]


def run_downstream(call_dir: Path, plot_config, compare_config, processes: int = 1, progress: Progress = None,
                   exports: tuple[str, ...] = (), warn: Optional[Callable[[str], None]] = None,
                   figures: Optional[FigureProcess] = None) -> list[Path]:
    """After ``call``: figures, statistics and the HTML report, all into the call folder, then the ``exports``
    (``exports.run_export``'s formats; its warnings to ``warn``).  Returns the files written, figures first.

    With ``processes`` > 1 (where fork is safe) the figure process ``figures`` (forked here if not given) draws
    the figures and the report while this process writes the statistics and the exports (module docstring).
    ``progress(done, total)`` after each file.  No plotting library is imported: the figures are drawn by
    bsmeth's own writers (``figures``: ``scene``, ``raster``, ``pdfwrite``).
    """
    from .figures.plots import check_config
    from .tables import load_call_dir

    check_config(plot_config)
    call_dir = Path(call_dir)
    if not (processes > 1 and FORK_IS_SAFE):
        data = load_call_dir(call_dir)  # once: figures, statistics and the report use these tables
        counter = _Counter(progress)
        written: list[Path] = []

        def stats_first() -> None:
            written.append(_write_stats(data, compare_config))
            counter.step(n=2)

        drawn = draw(data, plot_config, compare_config, counter, stats_first)
        export = _run_export(call_dir, exports)
        return _listing(call_dir, drawn, written[0], export, warn)
    with (_given(figures) if figures is not None else figure_process(processes)) as side:
        assert side is not None
        side.start(call_dir, plot_config, compare_config)
        data = load_call_dir(call_dir)
        side.relay(progress)
        stats = _write_stats(data, compare_config)
        side.stats_written()
        side.relay(progress)
        export = _run_export(call_dir, exports)
        drawn = side.result(progress)
    return _listing(call_dir, drawn, stats, export, warn)


@dataclass(frozen=True)
class Drawn:
    """What the figure half wrote: the figure files (lollipop first, then by format) and report.html."""

    figures: tuple[Path, ...]
    report: Path


class _Counter:
    """``progress(done, total)`` over the downstream files; the total is known once the figures are built."""

    def __init__(self, progress: Progress) -> None:
        self.progress, self.done, self.total = progress, 0, 0

    def set_total(self, total: int) -> None:
        self.total = total

    def step(self, _name: str = "", n: int = 1) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)


def draw(data, plot_config, compare_config, counter, stats_written: Callable[[], None]) -> Drawn:
    """The figure half: every figure in every format with its TSV, the report's trace snippets, then (after
    ``stats_written()`` returns: the report reads stats.tsv) report.html.  ``counter``: ``set_total(n)`` once
    the figures are built, ``step(name, n)`` after each file."""
    from .figures.plots import (
        dose_response_figure,
        figure_files,
        figure_name,
        figure_png_bytes,
        format_names,
        lollipop_figure,
        output_prefix,
        write_figure,
    )
    from .report import DPI as REPORT_DPI
    from .report import save_report, trace_section

    call_dir = Path(data.directory)
    # (file stem, figure) of every amplicon: lollipop.* and dose_response.*, or lollipop_<amplicon>.* in a panel
    figs = [(figure_name(sub, f.name), f) for _, sub in data.by_amplicon()
            for f in (lollipop_figure(sub, plot_config), dose_response_figure(sub, plot_config)) if f]
    formats = format_names(plot_config.formats)
    prefix, dpi = output_prefix(call_dir, plot_config), plot_config.dpi
    # every figure file, each figure's TSV, stats.tsv + heterogeneity.tsv, report.html
    counter.set_total(sum(len(figure_files("x", fmt, len(f.pages))) for _, f in figs for fmt in formats)
                      + len(figs) + 3)
    figures = []
    for stem, fig in figs:
        figures += write_figure(fig, f"{prefix}{stem}", formats, dpi, counter.step)
        counter.step()  # its TSV
    traces = {name: trace_section(sub) for name, sub in data.by_amplicon()}
    stats_written()
    order = {fmt: i for i, fmt in enumerate(formats)}
    figures.sort(key=lambda p: (not p.name.startswith("lollipop"), order.get(p.suffix[1:], 99), p.name))
    # the report embeds the PNGs just written (first page) rather than drawing the same figures again
    pngs = {}
    for stem, fig in figs:
        png = Path(figure_files(f"{prefix}{stem}", "png", len(fig.pages))[0])
        pngs[stem] = png.read_bytes() if "png" in formats else figure_png_bytes(fig, REPORT_DPI)
    report = save_report(data, plot_config=plot_config, compare_config=compare_config, pngs=pngs, traces=traces)
    counter.step()
    return Drawn(tuple(Path(p) for p in figures), Path(report))


def _write_stats(data, compare_config) -> Path:
    """stats.tsv and heterogeneity.tsv of the loaded tables; the path of stats.tsv."""
    from .stats import write_stats

    return Path(write_stats(data, compare_config))


def _run_export(call_dir: Path, formats: tuple[str, ...]):
    """``bsmeth export``'s tables of the call folder (after stats.tsv: results.xlsx holds it); None if none."""
    if not formats:
        return None
    from .exports import run_export

    return run_export(call_dir, tuple(formats))


def _listing(call_dir: Path, drawn: Drawn, stats: Path, export, warn) -> list[Path]:
    """Every file written, in the order ``run`` lists them; the exports' warnings to ``warn``."""
    from .clonal import HETEROGENEITY_FILE

    heterogeneity = [p for p in (call_dir / HETEROGENEITY_FILE,) if p.is_file()]
    exported_files = []
    if export is not None:
        for w in export.warnings:
            if warn:
                warn(w)
        exported_files = [p for p in export.files if p.parent == call_dir]
    return [*drawn.figures, stats, *heterogeneity, drawn.report, *exported_files]


# =============================================================================================
# the figure process


class FigureProcess:
    """A process forked at once that imports the figure and report libraries, then waits: told a call folder
    (``start``) it draws the figures and the trace snippets, and the report once told that stats.tsv is written
    (``stats_written``).  Messages go both ways over one pipe; its progress reaches this process's bar when this
    process looks (``relay``, ``result``).  An error there is raised here (``result``); if it dies (killed, out
    of memory) ``result`` raises ChildProcessError instead of waiting forever."""

    def __init__(self) -> None:
        ctx = mp.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_figure_main, args=(child, os.getpid()), name="bsmeth-figures", daemon=True)
        start_child(self._proc)
        child.close()
        self._counter: Optional[_Counter] = None
        self._drawn: Optional[Drawn] = None

    def start(self, call_dir: Path, plot_config, compare_config) -> None:
        self._send(("draw", Path(call_dir), plot_config, compare_config))

    def stats_written(self) -> None:
        self._send(("stats",))

    def _send(self, message: tuple) -> None:
        try:
            self._conn.send(message)
        except OSError:  # it died (or failed and closed its end): ``result`` says why
            pass

    def relay(self, progress: Progress) -> None:
        """Pass on the progress reported so far, without waiting."""
        while self._drawn is None and self._conn.poll():
            self._take(progress)

    def result(self, progress: Progress) -> Drawn:
        """Wait for the figures and the report (passing on progress meanwhile)."""
        while self._drawn is None:
            self._take(progress)
        return self._drawn

    def _take(self, progress: Progress) -> None:
        try:
            message = self._conn.recv()
        except (EOFError, OSError):
            died(self._proc, "the figure process")
        kind = message[0]
        if kind == "total":
            self._counter = _Counter(progress)
            self._counter.set_total(message[1])
        elif kind == "step":
            if self._counter is not None:
                self._counter.step(n=message[1])
        elif kind == "done":
            self._drawn = message[1]
        else:  # "error"
            error, text = message[1], message[2]
            if hasattr(error, "add_note"):
                error.add_note(f"(in the figure process)\n{text}")
            raise error

    def close(self) -> None:
        """Stop the process if it is still at work (or waiting: nothing asked of it), and reap it.  Its pipe is
        closed first: waiting for a message, it then ends (EOFError) even if the SIGTERM that follows is lost (a
        process forked where SIGTERM is ignored ignores one sent before it installs its handler); one at work that
        missed it is killed (``stop_processes``)."""
        self._conn.close()
        if self._drawn is None:
            stop_processes([self._proc])
        else:
            self._proc.join()


@contextmanager
def figure_process(processes: int) -> Iterator[Optional[FigureProcess]]:
    """A ``FigureProcess`` forked now if ``processes`` > 1 and fork is safe (else None), stopped on leaving."""
    if not (processes > 1 and FORK_IS_SAFE):
        yield None
        return
    side = FigureProcess()
    try:
        yield side
    finally:
        side.close()


@contextmanager
def _given(side: FigureProcess) -> Iterator[FigureProcess]:
    """A figure process forked by the caller: stopped here if this fails (before the result folder is cleaned
    up), else left to the caller's ``figure_process``."""
    try:
        yield side
    except BaseException:
        side.close()
        raise


class _PipeCounter:
    """The figure process's ``_Counter``: the total and each step sent to the parent."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def set_total(self, total: int) -> None:
        self.conn.send(("total", total))

    def step(self, _name: str = "", n: int = 1) -> None:
        self.conn.send(("step", n))


def _figure_main(conn, parent: int) -> None:
    """The figure process: imports, then one ``draw`` when asked (module docstring)."""
    quiet_child(parent)
    try:
        for name in (*DOWNSTREAM_IMPORTS, *FIGURE_MODULES):
            importlib.import_module(name)
        message = conn.recv()
        from .tables import load_call_dir

        _, call_dir, plot_config, compare_config = message
        data = load_call_dir(call_dir)
        counter = _PipeCounter(conn)

        def stats_written() -> None:
            conn.recv()  # ("stats",)
            counter.step(n=2)  # stats.tsv and heterogeneity.tsv

        conn.send(("done", draw(data, plot_config, compare_config, counter, stats_written)))
    except (SystemExit, EOFError):  # stopped (SIGTERM), or the parent went away
        sys.exit(1)
    except BaseException as e:  # noqa: BLE001 - every failure goes to the parent, which raises it
        conn.send(("error", *error_report(e)))
    finally:
        conn.close()
