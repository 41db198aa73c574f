"""Size and headless render time of report.html at scale (figures printed; never a timed test).

    python benchmarks/bench_report.py                 # the seed-study design at 2,000 reads (250 clones a sample)
    python benchmarks/bench_report.py --clones 11     # the example's size (96 reads)
    python benchmarks/bench_report.py --smoke         # 2 clones a sample (CI: checks the script runs)
    python benchmarks/bench_report.py --results DIR   # an existing `bsmeth run` folder instead of simulating

Simulates the traces (``bsmeth simulate``'s seed-study design with ``--clones`` clones a sample), runs
``bsmeth run`` on them, then opens report.html in headless Chromium (Debian's, over the DevTools pipe of
tests/headless.py) ``--repeats`` times in a fresh browser each time, and prints the page's size by part, the time
from navigation to the first paint after the load event (wall), and the CPU seconds Chromium's processes spent
on it (less inflated than wall time when the machine is shared).  The aims (issue 14): under 3 MB and under 2 s
at 2,000 reads.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from headless import Browser, chromium_path  # noqa: E402


def simulate_reads(folder: Path, clones: int, seed: int = 1) -> int:
    from bsmeth.reference import load_amplicon
    from bsmeth.simulate import seed_study_design, simulate

    design = seed_study_design()
    design = replace(design, conditions=tuple(replace(c, n_clones=clones) for c in design.conditions))
    return simulate(design, load_amplicon(), folder, seed=seed).n_reads


def bsmeth_exe() -> str:
    exe = Path(sys.executable).with_name("bsmeth")
    return str(exe) if exe.is_file() else "bsmeth"


def parts(html: str) -> list[tuple[str, int]]:
    """Bytes of the page by part."""
    size = {"figures (embedded PNG)": sum(len(m) for m in re.findall(r'src="data:image/png;base64,[^"]*"', html)),
            "chromatograms (packed)": sum(len(m) for m in re.findall(r'class="bsm-traces"[^>]*>[^<]*', html)),
            "calls and alignments (packed)": sum(len(m) for m in re.findall(
                r'id="bsm-(?:calls|alignments)"[^>]*>[^<]*', html)),
            "read index (JSON)": sum(len(m) for m in re.findall(r'id="bsm-index">[^<]*', html)),
            "read table": sum(len(m) for m in re.findall(r'<table id="reads".*?</table>', html, re.S)),
            "script and style": sum(len(m) for m in re.findall(r"<(?:script|style)>.*?</(?:script|style)>", html,
                                                              re.S))}
    size["everything else"] = len(html.encode()) - sum(size.values())
    return list(size.items())


def render(report: Path, repeats: int) -> list[tuple[float, float]]:
    """(wall seconds, Chromium CPU seconds) from navigation to the first paint after the load event."""
    out = []
    blank = report.with_name("bench_blank.html")
    blank.write_text("<p>blank</p>")
    try:
        for _ in range(repeats):
            with Browser() as b:
                page = b.open(blank)
                cpu = b.cpu_seconds()
                t = time.perf_counter()
                page.goto(report.resolve().as_uri())
                wall = time.perf_counter() - t
                out.append((wall, b.cpu_seconds() - cpu))
                errors = page.errors()
                if errors:
                    raise SystemExit(f"errors in the page: {errors}")
    finally:
        blank.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clones", type=int, default=250, help="clones per sample (8 samples; 250 -> 2,008 reads)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--results", type=Path, help="an existing `bsmeth run` folder (no simulation, no run)")
    ap.add_argument("--smoke", action="store_true", help="2 clones a sample, 2 renders (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.clones, args.repeats = 2, 2
    with tempfile.TemporaryDirectory() as tmp:
        if args.results:
            results = args.results
        else:
            reads, results = Path(tmp) / "reads", Path(tmp) / "results"
            n = simulate_reads(reads, args.clones)
            t = time.perf_counter()
            subprocess.run([bsmeth_exe(), "-q", "run", str(reads), "--samples", str(reads / "samples.csv"), "--out",
                            str(results), "--formats", "png"], check=True)
            print(f"bsmeth run on {n} simulated traces ({args.clones} clones x 8 samples): "
                  f"{time.perf_counter() - t:.1f} s")
        report = results / "report.html"
        html = report.read_text(encoding="utf-8")
        n_reads = len(re.findall(r'<a href="#read" class="rd">', html))
        print(f"report.html of {n_reads} reads: {len(html.encode()) / 1e6:.2f} MB (aim: under 3 MB)")
        for name, size in parts(html):
            print(f"  {name:<32}{size / 1e3:>9.0f} kB")
        if chromium_path() is None:
            print("render: not measured (chromium is not installed: apt-get install chromium)")
            return
        times = render(report, args.repeats)
        walls, cpus = [w for w, _ in times], [c for _, c in times]
        print(f"headless Chromium, navigation to first paint after load, {len(times)} fresh browsers: "
              f"wall median {statistics.median(walls):.2f} s (min {min(walls):.2f}), "
              f"CPU median {statistics.median(cpus):.2f} s (min {min(cpus):.2f}) (aim: under 2 s)")


if __name__ == "__main__":
    main()
