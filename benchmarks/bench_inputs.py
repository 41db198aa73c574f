"""Speed of input resolution: expanding folders and matching a sample sheet (figures printed; never a timed test).

    python benchmarks/bench_inputs.py                          # this checkout, 500 / 2,000 / 8,000 files
    python benchmarks/bench_inputs.py --against OLD/src        # and another source tree, side by side
    python benchmarks/bench_inputs.py --smoke                  # 50 / 100 / 200 files (CI: it runs)

What is timed is ``samples.resolve_inputs`` on one folder of read files in 8 sample sub-folders plus a
sample sheet listing every file (relative paths), i.e. ``reads.collect`` (walk, sort, identity of each file)
and ``samples.read_sheet`` + ``assign``.  CPU time (``time.process_time``), best of 3, in a fresh process per
source tree; the files are made once in a temporary folder.  For scale: aligning one read costs ~5 ms CPU
(``benchmarks/bench_call.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (500, 2000, 8000)
READ = ">clone\nTTTGGGATTGTTTTTTTAGTAGGTGAAGTTTTGTTATGGATTTTTTTTGTTGGGGTTTTG\n"


def make_inputs(root: Path, n: int) -> tuple[Path, Path]:
    reads = root / f"reads{n}"
    rows = ["file,sample,cell_line,dose"]
    for i in range(n):
        sample = f"s{i % 8}"
        folder = reads / sample
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"clone_{i:05d}.fasta").write_text(READ)
        rows.append(f"{reads.name}/{sample}/clone_{i:05d}.fasta,{sample},HeLa,{i % 8}")
    sheet = root / f"samples{n}.csv"
    sheet.write_text("\n".join(rows) + "\n")
    return reads, sheet


def measure(root: Path, sizes=SIZES) -> dict[int, float]:
    """CPU seconds of resolve_inputs per size (in this process: the bsmeth on sys.path)."""
    from bsmeth.samples import resolve_inputs

    got = {}
    for n in sizes:
        reads, sheet = root / f"reads{n}", root / f"samples{n}.csv"
        best = float("inf")
        for _ in range(3):
            t = time.process_time()
            _, assigned = resolve_inputs([str(reads)], str(sheet))
            best = min(best, time.process_time() - t)
        assert len(assigned) == n
        got[n] = best
    return got


def in_child(root: Path, src: str | None, sizes=SIZES) -> dict[int, float]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    p = subprocess.run([sys.executable, __file__, "--measure", str(root), "--sizes", ",".join(map(str, sizes))],
                       capture_output=True, text=True, env=env, check=True)
    return {int(k): v for k, v in json.loads(p.stdout).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", metavar="SRC", help="another source tree (its src folder) measured the same way")
    ap.add_argument("--smoke", action="store_true", help="50 / 100 / 200 files (CI: checks it runs)")
    ap.add_argument("--measure", metavar="ROOT", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = (50, 100, 200) if args.smoke else tuple(int(x) for x in args.sizes.split(","))
    if args.measure:
        print(json.dumps(measure(Path(args.measure), sizes)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in sizes:
            make_inputs(root, n)
        trees = [("this checkout", None)] + ([(args.against, args.against)] if args.against else [])
        results = {label: in_child(root, src, sizes) for label, src in trees}
    print("resolve_inputs (folder of n read files in 8 sub-folders + a sheet of n rows), CPU seconds, best of 3")
    print(f"{'files':>7} " + " ".join(f"{label[-28:]:>30}" for label in results))
    lo, mid, hi = sizes[0], sizes[len(sizes) // 2], sizes[-1]
    for n in sizes:
        cells = [f"{r[n]:8.3f} s ({1e6 * r[n] / n:6.1f} us/file)" for r in results.values()]
        print(f"{n:>7} " + " ".join(f"{c:>30}" for c in cells))
    for label, r in results.items():
        print(f"{label}: {hi:,} files / {lo:,} files = {r[hi] / r[lo]:.1f}x the time for {hi // lo}x the files; "
              f"per file {1e3 * r[mid] / mid:.3f} ms")


if __name__ == "__main__":
    main()
