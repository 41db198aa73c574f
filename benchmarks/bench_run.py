"""Speed of ``bsmeth run`` on ``example_reads/`` (figures printed; never a timed test).

    python benchmarks/bench_run.py              # 3 runs each with -j 1 and -j 2, then a stage breakdown
    python benchmarks/bench_run.py --repeats 5

Whole-process time runs the installed ``bsmeth`` command in a fresh process (imports included), as a
user would, on the README's main command.  The stage breakdown runs the stages one after the other in
this process, with the library imports timed separately, so the figures add up to the one-process run.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_call import bsmeth_exe  # benchmarks/ is this script's folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]


def whole_run(out: Path, threads: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this command and its worker processes) of one ``bsmeth run``."""
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([bsmeth_exe(), "run", "example_reads", "--samples", "example_reads/samples.csv", "--out",
                                   str(out), "-j", str(threads), "-q"], cwd=ROOT, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


class Stopwatch:
    def __init__(self):
        self.rows: list[tuple[str, float]] = []

    def __call__(self, label, fn, *args, **kwargs):
        t = time.perf_counter()
        result = fn(*args, **kwargs)
        self.rows.append((label, time.perf_counter() - t))
        return result


def breakdown(out: Path) -> list[tuple[str, float]]:
    """Each stage of ``run`` in turn, in this process (fresh interpreter state is not needed: the imports
    are timed first, explicitly)."""
    import importlib

    sw = Stopwatch()
    sw("import pipeline (numpy, Biopython)", importlib.import_module, "bsmeth.pipeline")
    from bsmeth.models import CallConfig
    from bsmeth.pipeline import run_call
    from bsmeth.reference import load_amplicon

    shutil.rmtree(out, ignore_errors=True)
    os.chdir(ROOT)  # the report finds the traces by the paths in reads.tsv
    sw("call (1 process)", run_call, ["example_reads"], load_amplicon(), out, CallConfig(),
       "example_reads/samples.csv")
    sw("import pandas", importlib.import_module, "pandas")
    sw("import matplotlib (Figure, Agg)", importlib.import_module, "matplotlib.figure")
    sw("import scipy.special", importlib.import_module, "scipy.special")
    from bsmeth import plots, report, stats
    from bsmeth.tables import load_call_dir

    data = sw("load call folder", load_call_dir, out)
    fig = sw("lollipop: build", plots.lollipop_figure, data)
    for fmt in plots.FORMATS:  # the first save of a format also imports its backend
        sw(f"lollipop: save {fmt}", plots.save_figure, fig, out / "lollipop", (fmt,), tight=False)
    sw("compare (stats.tsv)", stats.run_compare, out)
    sw("dose-response: build and save 3 formats", plots.plot_dose_response, data)
    traces = sw("report: trace section", report.trace_section, data)
    pngs = {p: (out / f"{p}.png").read_bytes() for p in ("lollipop", "dose_response")}
    sw("report: the rest", report.write_report, out, pngs=pngs, traces=traces)
    return sw.rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"bsmeth run example_reads (96 traces), {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        for threads in (1, 2):
            runs = [whole_run(Path(tmp) / "out", threads) for _ in range(args.repeats)]
            walls = [w for w, _ in runs]
            print(f"  -j {threads}: wall {', '.join(f'{w:.2f}' for w in walls)} s (median "
                  f"{statistics.median(walls):.2f}), CPU {statistics.median([c for _, c in runs]):.2f} s")
        print("stage breakdown, one process, seconds:")
        rows = breakdown(Path(tmp) / "stages")
        for label, secs in rows:
            print(f"  {label:45s} {secs:6.2f}")
        print(f"  {'total':45s} {sum(s for _, s in rows):6.2f}")


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    main()
