"""Speed and memory of ``bsmeth call`` on simulated traces (figures printed; never a timed test).

    python benchmarks/bench_call.py                # 96 traces (the seed-study design)
    python benchmarks/bench_call.py --scale 2000   # also 500 and 2000 traces, peak RSS, 1 vs 2 threads
    python benchmarks/bench_call.py --smoke        # 16 traces (CI: checks the script runs)
    python benchmarks/bench_call.py --scale 2000 --profile   # and where a 2,000-trace call spends its time

Per-read time is measured in-process over the per-read path as the call runs it (``pipeline.process_files``:
chunks of ``STEP_READS`` traces side by side through the stages), as CPU time (the fair figure on a shared
machine), best of several passes: first the stages issue 9 names (read .ab1, orient, align, trace evidence,
call, QC: ``write_bam`` off), then the call's default path, which also makes each read's reads.bam records'
parts (``readsbam.with_parts``, added since by issue 12); then each stage timed alone on the same reads.
Whole-process time runs the installed ``bsmeth`` command in a fresh process (imports included, Python's bytecode
cached as after ``pip install``: ``installed_env``, one warm-up run first), as a user would. Peak RSS is the
child process's maximum resident set size.
``--profile`` runs one 2,000-trace call in this process (one worker) and prints the time of its serial
stages (resolving inputs, the per-read path, duplicate grouping, writing the tables), then pyinstrument's
tree when pyinstrument is installed (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import atexit
import copy
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bsmeth.models import CallConfig
from bsmeth.pipeline import STEP_READS, process_file, process_files
from bsmeth.reference import load_amplicon
from bsmeth.simulate import seed_study_design, simulate


def make_traces(folder: Path, n_clones: int, seed: int = 1) -> int:
    design = seed_study_design()
    design = replace(design, conditions=tuple(replace(c, n_clones=n_clones) for c in design.conditions))
    return simulate(design, load_amplicon(), folder, seed=seed).n_reads


def per_read_ms(folder: Path, repeats: int = 5, bam: bool = True) -> tuple[float, float]:
    """Best wall and CPU milliseconds per read (CPU time is the fair figure on a shared machine), the files in
    the chunks of ``STEP_READS`` the call gives its workers; ``bam``: with the reads.bam records' parts."""
    amp, cfg = load_amplicon(), CallConfig(write_bam=bam)
    jobs = [(f, "s") for f in sorted(folder.glob("*/*.ab1"))]
    files = [f for f, _ in jobs]
    process_file(files[0], "warm", amp, cfg)  # first call builds the aligner's tables
    wall = cpu = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for i in range(0, len(jobs), STEP_READS):
            process_files(jobs[i:i + STEP_READS], amp, cfg)
        wall = min(wall, (time.perf_counter() - t) / len(files))
        cpu = min(cpu, (time.process_time() - c) / len(files))
    return wall * 1000, cpu * 1000


def stage_ms(folder: Path, repeats: int = 5) -> dict[str, float]:
    """CPU milliseconds per read of each stage of the per-read path, each timed alone (best of ``repeats``); the
    last, the reads.bam records' parts (``readsbam.with_parts``, made in ``process_files`` too), on the results
    of the aligned reads."""
    from bsmeth.alignment import align, clean_read, orient
    from bsmeth.calling import call_read, genotype
    from bsmeth.evidence import signals_at
    from bsmeth.models import Panel
    from bsmeth.qc import c_positions, measure, verdict
    from bsmeth.reads import read_file
    from bsmeth.readsbam import with_parts

    amp, cfg = load_amplicon(), CallConfig()
    files = sorted(folder.glob("*/*.ab1"))
    panel = Panel((amp,))
    results = [r for f in files for r in process_file(f, "s", amp, replace(cfg, write_bam=False))]
    reads = [read_file(f)[0] for f in files]
    alns = [align(amp, r.seq, r.qual) for r in reads]
    ok = [(r, a) for r, a in zip(reads, alns) if a is not None]
    sigs = [signals_at(r, a, c_positions(amp, a)) for r, a in ok]
    # the evidence as signals_at leaves it: QC works out the mixed-peak flags (a cached property) and the calls
    # reuse them, as in process_read; so QC is timed on fresh copies, the calls on evidence QC has seen
    pristine = [copy.copy(s) for s in sigs]
    qcs = [measure(amp, a, r, cfg, s) for (r, a), s in zip(ok, sigs)]
    stages = {
        "read .ab1": (None, lambda _: [read_file(f) for f in files]),
        "orient (k-mer vote)": (None, lambda _: [orient(amp, clean_read(r.seq)) for r in reads]),
        "align (vote, window, parasail, gaps, projection)": (None, lambda _: [align(amp, r.seq, r.qual)
                                                                            for r in reads]),
        "trace evidence": (None, lambda _: [signals_at(r, a, c_positions(amp, a)) for r, a in ok]),
        "QC figures and verdict": (lambda: [copy.copy(s) for s in pristine],
                                   lambda fresh: [verdict(a, measure(amp, a, r, cfg, s), 500, cfg, r)
                                                  for (r, a), s in zip(ok, fresh)]),
        "calls and genotype": (None, lambda _: [(call_read(amp, a, cfg, s), genotype(amp, a))
                                                for (r, a), s in zip(ok, sigs)]),
        "reads.bam record parts (with_parts)": (None, lambda _: [with_parts(r, panel, cfg.min_qual) for r in results]),
    }
    assert len(qcs) == len(ok)
    out = {}
    for name, (setup, fn) in stages.items():
        best = float("inf")
        for _ in range(repeats):
            given = setup() if setup else None  # untimed
            c = time.process_time()
            fn(given)
            best = min(best, time.process_time() - c)
        out[name] = 1000 * best / len(files)
    return out


def profile_call(folder: Path, out: Path) -> None:
    """One call over ``folder`` in this process, one worker: the serial stages timed, then pyinstrument's tree."""
    from bsmeth import pipeline, samples

    amp = load_amplicon()
    timed: dict[str, float] = {}

    def timing(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timed[name] = timed.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    originals = (pipeline.resolve_inputs, pipeline.process_files, pipeline.mark_panel_duplicates,
                 pipeline.write_outputs)
    pipeline.resolve_inputs = timing("resolve inputs (samples.resolve_inputs)", samples.resolve_inputs)
    pipeline.process_files = timing("per-read path (process_files, all files)", pipeline.process_files)
    pipeline.mark_panel_duplicates = timing("duplicate grouping (pipeline.mark_panel_duplicates)",
                                            pipeline.mark_panel_duplicates)
    pipeline.write_outputs = timing("tables and run.json (pipeline.write_outputs)", pipeline.write_outputs)
    try:
        profiler = None
        try:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.001)
            profiler.start()
        except ImportError:
            pass
        t = time.perf_counter()
        run = pipeline.run_call([str(folder)], amp, out, replace(CallConfig(), threads=1),
                                sheet_path=str(folder / "samples.csv"), force=True)
        total = time.perf_counter() - t
        if profiler is not None:
            profiler.stop()
    finally:
        (pipeline.resolve_inputs, pipeline.process_files, pipeline.mark_panel_duplicates,
         pipeline.write_outputs) = originals
    print(f"  one call in this process, one worker, {len(run.results)} reads: {total:.2f} s wall")
    for name, secs in timed.items():
        print(f"    {name}: {secs:.2f} s")
    if profiler is not None:
        print(profiler.output_text(unicode=False, color=False, show_all=False))


def bsmeth_exe() -> str:
    """The console script of this interpreter's environment, else the one on PATH."""
    exe = Path(sys.executable).with_name("bsmeth")
    return str(exe) if exe.is_file() else (shutil.which("bsmeth") or str(exe))


_PYCACHE = tempfile.mkdtemp(prefix="bsmeth-bench-pycache-")
atexit.register(shutil.rmtree, _PYCACHE, True)


def installed_env() -> dict[str, str]:
    """The environment of a whole-process run: Python's bytecode cached (``pip install`` compiles it; a
    ``PYTHONDONTWRITEBYTECODE`` set in this shell would make every run compile bsmeth's sources again), in a
    temporary folder (``PYTHONPYCACHEPREFIX``) so that nothing is written into the source tree.  Callers make
    one warm-up run (``warm_up``) before timing."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    return env


def warm_up(folder: Path, out: Path) -> None:
    """One untimed ``bsmeth call`` so that the bytecode cache of ``installed_env`` is filled."""
    import subprocess

    subprocess.run([bsmeth_exe(), "-q", "call", str(folder), "--out", str(out), "--force", "--threads", "1"],
                   check=True, env=installed_env())


def whole_process(folder: Path, out: Path, threads: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one ``bsmeth call`` run in a child process."""
    cmd = [bsmeth_exe(), "-q", "call", str(folder), "--samples", str(folder / "samples.csv"), "--out", str(out),
           "--force", "--threads", str(threads)]
    env = installed_env()
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # measure this child alone: its rusage is its own peak
        os.execve(cmd[0], cmd, env)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bsmeth call failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=0, help="also run 500 and this many traces (e.g. 2000)")
    ap.add_argument("--smoke", action="store_true", help="1 clone a sample instead of 11 (CI)")
    ap.add_argument("--profile", action="store_true", help="where one call of --scale traces spends its time")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clones = 1 if args.smoke else 11
        n = make_traces(tmp / "r96", clones)
        print(f"{n} traces (seed-study design, {clones} clones x 8 conditions + 8 faults)")
        wall_ms, cpu_ms = per_read_ms(tmp / "r96", bam=False)
        print(f"  per-read path (read .ab1, orient, align, trace evidence, call, QC; best of 5): "
              f"{cpu_ms:.2f} ms/read CPU ({wall_ms:.2f} ms wall)")
        wall_ms, cpu_ms = per_read_ms(tmp / "r96")
        print(f"  the same and the reads.bam record parts (the call's default; best of 5): "
              f"{cpu_ms:.2f} ms/read CPU ({wall_ms:.2f} ms wall)")
        for name, ms in stage_ms(tmp / "r96").items():
            print(f"    {name}: {ms:.3f} ms/read CPU")
        warm_up(tmp / "r96", tmp / "warm")
        for threads in (1, 2):
            wall, rss = whole_process(tmp / "r96", tmp / "o96", threads)
            print(f"  whole process, --threads {threads}: {wall:.2f} s wall, peak RSS {rss:.0f} MiB")
        if args.scale:
            peaks = {}
            for size in ((args.scale,) if args.profile else (500, args.scale)):
                clones = max(1, (size - 8) // 8)
                folder = tmp / f"r{size}"
                n = make_traces(folder, clones, seed=2)
                print(f"{n} traces")
                for threads in (1, 2):
                    wall, rss = whole_process(folder, tmp / f"o{size}_{threads}", threads)
                    print(f"  --threads {threads}: {wall:.2f} s wall, {1000 * wall / n:.2f} ms/read overall, "
                          f"peak RSS {rss:.0f} MiB")
                    walls = peaks.setdefault(n, {})
                    walls[threads] = (wall, rss)
                print(f"  2-process speed-up: {walls[1][0] / walls[2][0]:.2f}x")
                if args.profile:
                    profile_call(folder, tmp / "oprof")
                shutil.rmtree(folder)
            if len(peaks) < 2:
                return
            (n1, a), (n2, b) = sorted(peaks.items())
            slope = (b[1][1] - a[1][1]) * 1024 / (n2 - n1)
            print(f"peak RSS grows {slope:.1f} KiB per read from {n1} to {n2} traces: the per-read results kept "
                  "for the tables (alignment, calls, QC), not the traces (read, used and dropped chunk by chunk)")


if __name__ == "__main__":
    main()
