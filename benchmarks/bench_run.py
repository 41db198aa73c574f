"""Speed of ``bsmeth run`` on ``example_reads/`` (figures printed; never a timed test).

    python benchmarks/bench_run.py              # 3 runs each with -j 1 and -j 2, then a stage breakdown
    python benchmarks/bench_run.py --repeats 5
    python benchmarks/bench_run.py --smoke      # 4 simulated traces, PNG only, one run with -j 1 (CI: checks it runs)

Whole-process time runs the installed ``bsmeth`` command in a fresh process (imports included), as a
user would, on the README's main command.  The stage breakdown runs the stages one after the other in
a fresh interpreter of its own (this script with ``--stages``), with the library imports timed
separately, so the figures add up to the one-process run.
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

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_reads"


def smoke_reads(folder: Path) -> Path:
    """A tiny simulated experiment (two samples of the seed study, two clones each) for --smoke."""
    from dataclasses import replace

    from bsmeth.reference import load_amplicon
    from bsmeth.simulate import seed_study_design, simulate

    design = seed_study_design()
    design = replace(design, conditions=tuple(replace(c, n_clones=2) for c in design.conditions[:2]), faults={})
    simulate(design, load_amplicon(), folder, seed=1)
    return folder


def whole_run(reads: Path, out: Path, threads: int, formats: tuple[str, ...]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this command and its worker processes) of one ``bsmeth run``."""
    # imported here, not at the top: the --stages interpreter must start with nothing imported
    from bench_call import bsmeth_exe

    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([bsmeth_exe(), "run", str(reads), "--samples", str(reads / "samples.csv"), "--out", str(out),
                    "-j", str(threads), "--formats", ",".join(formats), "-q"], cwd=ROOT, check=True)
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


def breakdown(reads: Path, out: Path, formats: tuple[str, ...]) -> list[tuple[str, float]]:
    """Each stage of ``run`` in turn, in this process, which must be a fresh interpreter (``--stages``):
    the imports are timed first, explicitly."""
    import importlib

    if "bsmeth" in sys.modules:
        raise SystemExit("the stage breakdown needs a fresh interpreter: run it with --stages")
    sw = Stopwatch()
    sw("import pipeline (numpy, Biopython)", importlib.import_module, "bsmeth.pipeline")
    from bsmeth.models import CallConfig
    from bsmeth.pipeline import run_call
    from bsmeth.reference import load_amplicon

    shutil.rmtree(out, ignore_errors=True)
    os.chdir(ROOT)  # as the whole runs: the report finds the traces by the paths in reads.tsv
    sw("call (1 process)", run_call, [str(reads)], load_amplicon(), out, CallConfig(), str(reads / "samples.csv"))
    sw("import pandas", importlib.import_module, "pandas")
    sw("import matplotlib (Figure, Agg)", importlib.import_module, "matplotlib.figure")
    sw("import scipy.special", importlib.import_module, "scipy.special")
    from bsmeth import plots, report, stats
    from bsmeth.tables import load_call_dir

    data = sw("load call folder", load_call_dir, out)
    fig = sw("lollipop: build", plots.lollipop_figure, data)
    for fmt in formats:  # the first save of a format also imports its backend
        sw(f"lollipop: save {fmt}", plots.save_figure, fig, out / "lollipop", (fmt,), tight=False)
    sw("compare (stats.tsv)", stats.run_compare, out)
    sw(f"dose-response: build and save {len(formats)} format(s)", plots.plot_dose_response, data,
       plots.PlotConfig(formats=formats))
    traces = {data.amplicons[0]: sw("report: trace section", report.trace_section, data)}
    pngs = {p: (out / f"{p}.png").read_bytes() for p in ("lollipop", "dose_response")}
    sw("report: the rest", report.save_report, data, pngs=pngs, traces=traces)
    return sw.rows


def print_breakdown(reads: Path, out: Path, formats: tuple[str, ...]) -> None:
    print("stage breakdown, one process, seconds:")
    rows = breakdown(reads, out, formats)
    for label, secs in rows:
        print(f"  {label:45s} {secs:6.2f}")
    print(f"  {'total':45s} {sum(s for _, s in rows):6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--formats", default="svg,png,pdf", help="figure formats (default: run's, svg,png,pdf)")
    ap.add_argument("--smoke", action="store_true", help="4 simulated traces, PNG only, one run with -j 1 (CI)")
    ap.add_argument("--stages", nargs=2, type=Path, metavar=("READS", "OUT"),
                    help="only the stage breakdown, in this (fresh) interpreter: used by the main run")
    args = ap.parse_args()
    formats = ("png",) if args.smoke else tuple(f.strip() for f in args.formats.split(","))
    if "png" not in formats:
        raise SystemExit("--formats must include png: the report embeds the PNG figures")
    if args.stages:
        print_breakdown(*args.stages, formats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        reads = smoke_reads(Path(tmp) / "reads") if args.smoke else EXAMPLE
        n = sum(1 for _ in reads.glob("*/*.ab1"))
        print(f"bsmeth run {reads.name} ({n} traces, formats {','.join(formats)}), {os.cpu_count()} CPUs, "
              f"Python {sys.version.split()[0]}")
        for threads in (1,) if args.smoke else (1, 2):
            runs = [whole_run(reads, Path(tmp) / "out", threads, formats)
                    for _ in range(1 if args.smoke else args.repeats)]
            walls = [w for w, _ in runs]
            print(f"  -j {threads}: wall {', '.join(f'{w:.2f}' for w in walls)} s (median "
                  f"{statistics.median(walls):.2f}), CPU {statistics.median([c for _, c in runs]):.2f} s")
        # a fresh interpreter: this one has imported bsmeth (bench_call) and, for --smoke, the simulator
        subprocess.run([sys.executable, __file__, "--stages", str(reads), str(Path(tmp) / "stages"),
                        "--formats", ",".join(formats)], check=True)


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    main()
