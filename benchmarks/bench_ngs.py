"""Speed and memory of the NGS engine end to end: FASTQ.gz in, every table out (figures printed; never a timed
test).

    python benchmarks/bench_ngs.py                      # 1,000,000 simulated read pairs, -j 2
    python benchmarks/bench_ngs.py --scale              # 100,000, 1,000,000 and 3,000,000 pairs: RSS vs reads
    python benchmarks/bench_ngs.py --data /tmp/ngsbench # keep (and reuse) the simulated FASTQ there
    python benchmarks/bench_ngs.py --smoke              # 2,000 pairs (CI: checks the script runs)

The data: ``bsmeth simulate --ngs`` on the 3-amplicon panel of tests/data/ngs (150-bp reads, non-directional,
with its artefacts), one sample per 1,000,000 pairs.  The run: the installed ``bsmeth call`` in a fresh process
(imports included), as a user runs it.  Wall time, CPU time of the process and its workers (the fair figure on
a shared machine: wall time there depends on the other load), and memory: the peak resident set of the largest
single process, and the peak of the sum over the process tree (sampled every 50 ms from /proc).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PANEL = ROOT / "tests" / "data" / "ngs" / "panel.tsv"
PER_SAMPLE = 250_000  # pairs per simulated sample (the simulator holds one sample in memory)


def simulate(folder: Path, pairs: int) -> Path:
    """Simulated FASTQ.gz of ``pairs`` read pairs (cached in ``folder``); returns the sample sheet.  Made in a
    process of its own, so that this process stays small (a child forked from it would start with its memory)."""
    sheet = folder / "samples.csv"
    if sheet.is_file() and (folder / "PAIRS").is_file() and (folder / "PAIRS").read_text() == str(pairs):
        return sheet
    subprocess.run([sys.executable, __file__, "--simulate-only", str(folder), str(pairs)], check=True)
    return sheet


def _simulate_here(folder: Path, pairs: int) -> None:
    from bsmeth.ngs.simulate import default_design, simulate_ngs
    from bsmeth.panel import load_panel

    panel = load_panel(PANEL)
    d = default_design(panel, pairs=min(pairs, PER_SAMPLE), replicates=1)
    n_samples = max(1, -(-pairs // PER_SAMPLE))
    conds = tuple(replace(d.conditions[i % len(d.conditions)], sample=f"{d.conditions[i % len(d.conditions)].sample}"
                                                                          f"_{i // len(d.conditions)}")
                  for i in range(n_samples))
    d = replace(d, conditions=conds, pairs=min(pairs, PER_SAMPLE))
    t = time.monotonic()
    sim = simulate_ngs(d, panel, folder, seed=7, truth=False)
    (folder / "PAIRS").write_text(str(pairs))
    print(f"  (simulated {sim.n_pairs:,} pairs in {time.monotonic() - t:.0f} s)", flush=True)


def _tree_rss(pid: int) -> int:
    """Resident set (KiB) of a process and all its descendants, from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for t in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (t / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def run_call(sheet: Path, out: Path, threads: int) -> dict:
    exe = Path(sys.executable).with_name("bsmeth")
    cmd = [str(exe) if exe.is_file() else "bsmeth", "-q", "call", "--samples", str(sheet), "--panel", str(PANEL),
           "--out", str(out), "--force", "-j", str(threads)]
    t = time.monotonic()
    proc = subprocess.Popen(cmd)
    peak_sum = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak_sum = max(peak_sum, _tree_rss(proc.pid))
        time.sleep(0.05)
    wall = time.monotonic() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"bsmeth call failed (exit {proc.returncode})")
    # the rusage of bsmeth's process: its own CPU and that of the workers it waited for; ru_maxrss is the
    # largest of those processes
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_one": usage.ru_maxrss / 1024,
            "peak_sum": peak_sum / 1024}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--simulate-only"]:
        _simulate_here(Path(argv[1]), int(argv[2]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--scale", action="store_true", help="also 100,000 and 3,000,000 pairs")
    ap.add_argument("--threads", "-j", type=int, default=2)
    ap.add_argument("--data", help="folder for the simulated FASTQ (kept and reused)")
    ap.add_argument("--smoke", action="store_true", help="2,000 pairs: checks that the script runs")
    a = ap.parse_args(argv)
    sizes = [2_000] if a.smoke else ([100_000, 1_000_000, 3_000_000] if a.scale else [a.pairs])
    tmp = tempfile.TemporaryDirectory()
    base = Path(a.data) if a.data else Path(tmp.name)
    print(f"bsmeth call on simulated paired-end amplicon FASTQ.gz (3 amplicons, 2 x 150 bp), -j {a.threads}; "
          f"CPU = the process and its workers", flush=True)
    for n in sizes:
        folder = base / f"pairs_{n}"
        folder.mkdir(parents=True, exist_ok=True)
        sheet = simulate(folder, n)
        r = run_call(sheet, base / f"out_{n}", a.threads)
        print(f"  {n:>9,} pairs: wall {r['wall']:.2f} s ({n / r['wall']:,.0f} pairs/s), CPU {r['cpu']:.2f} s "
              f"({1e6 * r['cpu'] / n:.1f} us/pair; {n / r['cpu']:,.0f} pairs per CPU-second), peak RSS "
              f"{r['peak_one']:.0f} MiB (largest process), {r['peak_sum']:.0f} MiB (all processes)", flush=True)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
