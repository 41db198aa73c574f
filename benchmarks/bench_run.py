"""Speed of ``bsmeth run`` on ``example_reads/`` (figures printed; never a timed test).

    python benchmarks/bench_run.py                          # 3 runs each with -j 1 and -j 2, then stages
    python benchmarks/bench_run.py --repeats 5
    git worktree add /tmp/bsmeth-old aa21066
    python benchmarks/bench_run.py --baseline /tmp/bsmeth-old   # old and new code, runs interleaved
    python benchmarks/bench_run.py --smoke                  # 4 simulated traces, PNG only, -j 1 (CI: it runs)
    python benchmarks/bench_run.py --traces 2000 --repeats 2 --no-stages --baseline /tmp/bsmeth-old
                                                            # a large plate: the seed study simulated, ~2,000 traces

Whole-process time runs ``bsmeth run`` in a fresh process (imports included, Python's bytecode cached as
after ``pip install``, one untimed run of each tree first), as a user would, on the README's main command.
With ``--baseline`` the same command runs on the source tree given (its ``src/`` put
first on PYTHONPATH, with this environment's libraries) and on this tree, one after the other in each
repeat, so both see the same state of a machine whose speed drifts.  Wall time and CPU time (the command and
its worker processes) are printed; on a busy machine CPU time is the steadier figure.

The stage breakdown runs the stages one after the other in a fresh interpreter of its own (this script with
``--stages``), with the library imports timed separately, so the figures add up to the one-process run.
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


def plate_reads(folder: Path, n: int) -> Path:
    """The seed study simulated with about ``n`` traces (8 samples of (n - 8) / 8 clones, and its 8 faults), as
    ``bench_call.py --scale`` makes them."""
    from bench_call import make_traces  # benchmarks/ is this script's folder, first on sys.path

    make_traces(folder, max(1, (n - 8) // 8), seed=2)
    return folder


def whole_run(reads: Path, out: Path, threads: int, formats: tuple[str, ...], src: Path = ROOT / "src"
              ) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this command and its worker processes) of one ``bsmeth run`` of the code
    in ``src``."""
    shutil.rmtree(out, ignore_errors=True)
    # bytecode cached as after pip install; imported here: --stages must start without bsmeth loaded
    from bench_call import installed_env  # benchmarks/ is this script's folder, first on sys.path

    env = dict(installed_env(), PYTHONPATH=str(src))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from bsmeth.cli import main; main()", "run", str(reads),
                    "--samples", str(reads / "samples.csv"), "--out", str(out), "-j", str(threads),
                    "--formats", ",".join(formats), "-q"], cwd=ROOT, check=True, env=env)
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
    sw("import pipeline (numpy, aligner)", importlib.import_module, "bsmeth.pipeline")
    from bsmeth.models import CallConfig
    from bsmeth.pipeline import run_call
    from bsmeth.reference import load_amplicon

    shutil.rmtree(out, ignore_errors=True)
    os.chdir(ROOT)
    sw("call (1 process)", run_call, [str(reads)], load_amplicon(), out, CallConfig(), str(reads / "samples.csv"))
    sw("import pandas", importlib.import_module, "pandas")
    sw("import scipy.special", importlib.import_module, "scipy.special")
    sw("import Pillow", importlib.import_module, "PIL.ImageFont")
    from bsmeth import report, stats
    from bsmeth.figures import plots
    from bsmeth.tables import load_call_dir

    data = sw("load call folder", load_call_dir, out)
    fig = sw("lollipop: build", plots.lollipop_figure, data)
    for fmt in formats:
        sw(f"lollipop: write {fmt}", plots.write_figure, fig, out / "lollipop", (fmt,))
    dose = sw("dose-response: build", plots.dose_response_figure, data)
    sw(f"dose-response: write {', '.join(formats)}", plots.write_figure, dose, out / "dose_response", formats)
    sw("compare (stats.tsv)", stats.run_compare, out)
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
    ap.add_argument("--baseline", type=Path, default=None,
                    help="source tree of the code to compare with (e.g. a git worktree of an older commit)")
    ap.add_argument("--formats", default="svg,png,pdf", help="figure formats (default: run's, svg,png,pdf)")
    ap.add_argument("--no-stages", action="store_true", help="whole runs only")
    ap.add_argument("--smoke", action="store_true", help="4 simulated traces, PNG only, one run with -j 1 (CI)")
    ap.add_argument("--traces", type=int, default=0,
                    help="instead of example_reads/, the seed study simulated with about this many traces")
    ap.add_argument("--stages", nargs=2, type=Path, metavar=("READS", "OUT"),
                    help="only the stage breakdown, in this (fresh) interpreter: used by the main run")
    args = ap.parse_args()
    formats = ("png",) if args.smoke else tuple(f.strip() for f in args.formats.split(","))
    if "png" not in formats:
        raise SystemExit("--formats must include png: the report embeds the PNG figures")
    if args.stages:
        print_breakdown(*args.stages, formats)
        return
    trees = [("this tree", ROOT / "src")]
    if args.baseline is not None and not args.smoke:
        trees.insert(0, (f"baseline {args.baseline}", args.baseline.resolve() / "src"))
    with tempfile.TemporaryDirectory() as tmp:
        reads = (smoke_reads(Path(tmp) / "reads") if args.smoke else
                 plate_reads(Path(tmp) / "reads", args.traces) if args.traces else EXAMPLE)
        n = sum(1 for _ in reads.glob("*/*.ab1"))
        print(f"bsmeth run {reads.name} ({n} traces, formats {','.join(formats)}), {os.cpu_count()} CPUs, "
              f"Python {sys.version.split()[0]}")
        for _name, src in trees:  # untimed: fills the bytecode cache of each tree
            whole_run(reads, Path(tmp) / "out", 1, formats, src)
        for threads in (1,) if args.smoke else (1, 2):
            runs: dict = {name: [] for name, _ in trees}
            for _ in range(1 if args.smoke else args.repeats):
                for name, src in trees:  # interleaved: old and new see the same machine
                    runs[name].append(whole_run(reads, Path(tmp) / "out", threads, formats, src))
            medians = {}
            for name, rs in runs.items():
                walls, cpus = [w for w, _ in rs], [c for _, c in rs]
                medians[name] = (statistics.median(walls), statistics.median(cpus))
                print(f"  -j {threads} {name}: wall {', '.join(f'{w:.2f}' for w in walls)} s (median "
                      f"{medians[name][0]:.2f}), CPU {', '.join(f'{c:.2f}' for c in cpus)} s (median "
                      f"{medians[name][1]:.2f})")
            if len(trees) == 2:
                (old_w, old_c), (new_w, new_c) = medians[trees[0][0]], medians[trees[1][0]]
                print(f"  -j {threads} new / old: wall {new_w / old_w:.2f}, CPU {new_c / old_c:.2f}")
        if not args.no_stages:
            # a fresh interpreter: this one has imported the simulator for --smoke; one BLAS thread, as the
            # `bsmeth` command sets it (cli.main)
            env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
            env.setdefault("OPENBLAS_NUM_THREADS", "1")
            subprocess.run([sys.executable, __file__, "--stages", str(reads), str(Path(tmp) / "stages"),
                            "--formats", ",".join(formats)], check=True, env=env)


if __name__ == "__main__":
    sys.stdout = io.TextIOWrapper(sys.stdout.buffer, line_buffering=True)
    main()
