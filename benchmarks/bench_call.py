"""Speed and memory of ``bsmeth call`` on simulated traces (figures printed; never a timed test).

    python benchmarks/bench_call.py                # 96 traces (the seed-study design)
    python benchmarks/bench_call.py --scale 2000   # also 500 and 2000 traces, peak RSS, 1 vs 2 threads
    python benchmarks/bench_call.py --smoke        # 16 traces (CI: checks the script runs)

Per-read time is measured in-process over the per-read path (read file,
align, call, QC); whole-process time runs the installed ``bsmeth`` command in
a fresh process (imports included), as a user would.  Peak RSS is the child
process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bsmeth.models import CallConfig
from bsmeth.pipeline import process_file
from bsmeth.reference import load_amplicon
from bsmeth.simulate import seed_study_design, simulate


def make_traces(folder: Path, n_clones: int, seed: int = 1) -> int:
    design = seed_study_design()
    design = replace(design, conditions=tuple(replace(c, n_clones=n_clones) for c in design.conditions))
    return simulate(design, load_amplicon(), folder, seed=seed).n_reads


def per_read_ms(folder: Path, repeats: int = 3) -> tuple[float, float]:
    """Best wall and CPU milliseconds per read (CPU time is the fair figure on a shared machine)."""
    amp, cfg = load_amplicon(), CallConfig()
    files = sorted(folder.glob("*/*.ab1"))
    process_file(files[0], "warm", amp, cfg)  # first call builds the aligner
    wall = cpu = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for f in files:
            process_file(f, "s", amp, cfg)
        wall = min(wall, (time.perf_counter() - t) / len(files))
        cpu = min(cpu, (time.process_time() - c) / len(files))
    return wall * 1000, cpu * 1000


def bsmeth_exe() -> str:
    """The console script of this interpreter's environment, else the one on PATH."""
    exe = Path(sys.executable).with_name("bsmeth")
    return str(exe) if exe.is_file() else (shutil.which("bsmeth") or str(exe))


def whole_process(folder: Path, out: Path, threads: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one ``bsmeth call`` run in a child process."""
    cmd = [bsmeth_exe(), "-q", "call", str(folder), "--samples", str(folder / "samples.csv"), "--out", str(out),
           "--force", "--threads", str(threads)]
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # measure this child alone: its rusage is its own peak
        os.execv(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bsmeth call failed: {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=0, help="also run 500 and this many traces (e.g. 2000)")
    ap.add_argument("--smoke", action="store_true", help="1 clone a sample instead of 11 (CI)")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clones = 1 if args.smoke else 11
        n = make_traces(tmp / "r96", clones)
        print(f"{n} traces (seed-study design, {clones} clones x 8 conditions + 8 faults)")
        wall_ms, cpu_ms = per_read_ms(tmp / "r96")
        print(f"  per-read path (read ab1 + align + call + QC, best of 3): {wall_ms:.2f} ms/read wall, "
              f"{cpu_ms:.2f} ms/read CPU")
        for threads in (1, 2):
            wall, rss = whole_process(tmp / "r96", tmp / "o96", threads)
            print(f"  whole process, --threads {threads}: {wall:.2f} s wall, peak RSS {rss:.0f} MiB")
        if args.scale:
            peaks = {}
            for size in (500, args.scale):
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
                shutil.rmtree(folder)
            (n1, a), (n2, b) = sorted(peaks.items())
            slope = (b[1][1] - a[1][1]) * 1024 / (n2 - n1)
            print(f"peak RSS grows {slope:.1f} KiB per read from {n1} to {n2} traces: the per-read results kept "
                  "for the tables (alignment, calls, QC), not the traces (read, used and dropped file by file)")


if __name__ == "__main__":
    main()
