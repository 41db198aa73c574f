"""Every script in benchmarks/ runs at its smallest size and prints its figures (a smoke run: no timing asserted).

Each script runs as a user runs it (``python benchmarks/X.py --smoke``, a fresh process of this interpreter,
so the installed ``bsmeth`` beside it) in a temporary working folder, without writing bytecode into the
source tree.  A test fails when its script exits non-zero or a figure line it prints is missing or malformed.
The scripts of the selected tests start when the first of them runs, the longest first, two at a time (or
one per CPU, up to four), so the file costs about half the sum of the scripts.  ``bench_quma`` times QUMA's
engine only where EMBOSS ``needle`` is installed (CI installs it); without it the script must say so and
still time ``bsmeth call``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from headless import chromium_path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
NUM = r"\d+(\.\d+)?"
HAS_NEEDLE = shutil.which("needle") is not None
CHROMIUM = chromium_path() is not None

# script -> (arguments, {OUT} is a file path in the test's folder; regular expressions, each one must match a line)
# (the longest first: they start in this order)
SMOKE: dict[str, tuple[list[str], list[str]]] = {
    "ngs_accuracy": (["--smoke"], [
        r"^\d+ pairs \(200 per sample, 8 samples, 3 amplicons\) called in",
        rf"^CpG calls on passing pairs: \d+, right {NUM} % \(\d+ wrong\)$",
        r"^  primer_dimer: \d+ of \d+ got the expected reason",
        rf"^per-sample per-CpG percent vs the simulated molecules: \d+ CpGs, max difference {NUM} points",
    ]),
    "bench_ngs": (["--smoke"], [
        r"^bsmeth call on simulated paired-end amplicon FASTQ\.gz \(3 amplicons, 2 x 150 bp\), -j 2",
        rf"^ +2,000 pairs: wall {NUM} s \([\d,]+ pairs/s\), CPU {NUM} s \({NUM} us/pair; [\d,]+ pairs per "
        rf"CPU-second\), peak RSS \d+ MiB \(largest process\), \d+ MiB \(all processes\)$",
    ]),
    "bench_run": (["--smoke"], [
        r"^bsmeth run reads \(4 traces, formats png\)",
        rf"^  -j 1 this tree: wall {NUM} s \(median {NUM}\), CPU {NUM} s \(median {NUM}\)$",
        rf"^  call \(1 process\) +{NUM}$",
        rf"^  lollipop: write png +{NUM}$",
        rf"^  report: the rest +{NUM}$",
        rf"^  total +{NUM}$",
    ]),
    "bench_report": (["--smoke"], [
        rf"^bsmeth run on \d+ simulated traces \(2 clones x 8 samples\): {NUM} s$",
        rf"^report\.html of \d+ reads: {NUM} MB \(aim: under 3 MB\)$",
        rf"^  chromatograms \(packed\) +{NUM} kB$",
        rf"^  read table +{NUM} kB$",
        (rf"^headless Chromium, navigation to first paint after load, 2 fresh browsers: wall median {NUM} s "
         rf"\(min {NUM}\), CPU median {NUM} s \(min {NUM}\) \(aim: under 2 s\)$" if CHROMIUM else
         r"^render: not measured \(chromium is not installed"),
    ]),
    "bench_call": (["--smoke"], [
        r"^16 traces \(seed-study design, 1 clones",
        rf"^  per-read path .*: {NUM} ms/read CPU \({NUM} ms wall\)$",
        rf"^  the same and the reads\.bam record parts .*: {NUM} ms/read CPU \({NUM} ms wall\)$",
        rf"^    reads\.bam record parts \(with_parts\): {NUM} ms/read CPU$",
        rf"^  whole process, --threads 1: {NUM} s wall, peak RSS \d+ MiB$",
        rf"^  whole process, --threads 2: {NUM} s wall, peak RSS \d+ MiB$",
    ]),
    "bench_quma": (["--smoke"], [
        r"^8 simulated traces \(8 with base calls\); reference: \S+, \d+ bp, \d+ CpGs$",
        rf"^bsmeth call --threads 1 \(whole process\): wall {NUM} s, CPU {NUM} s$",
        rf"^bsmeth call, default threads \(\d+ processes\): wall {NUM} s, CPU {NUM} s$",
        *([rf"^QUMA engine \(needle x 2 per read, 16 runs\): wall {NUM} s, CPU {NUM} s$",
           rf"^ratio QUMA engine / bsmeth call --threads 1: {NUM}x wall, {NUM}x CPU$",
           rf"^ratio QUMA engine / bsmeth call, default threads: {NUM}x wall, {NUM}x CPU$",
           # both engines read every clean simulated read the same way round: they did the same job
           r"^orientation: needle \(QUMA's rule\) and bsmeth agree on 8 of the 8 reads bsmeth aligned$"]
          if HAS_NEEDLE else
          [r"^note: EMBOSS needle is not installed, so QUMA's engine is skipped; install it with: apt-get install",
           r"^ratio: not measured \(no needle\)$"]),
    ]),
    "bench_mixed": (["--smoke"], [
        r"^1\. simulated \(1 seeds x 4 designs\)$",
        rf"^   mixed clones detected: \d+/16 = {NUM} % \(target >= 95 %\)$",
        rf"^   false alarms on clean clones: \d+/\d+ = {NUM} % \(target < 2 %\)$",
        r"^2\. real traces \(\d+ distinct traces with qualities, \d+ C/T/G/A calls",
        rf"^   pseudo-reads flagged mixed_trace: {NUM} % of \d+",
        rf"^   detected {NUM} %, false alarms simulated {NUM} %, real pseudo-reads {NUM} %$",
    ]),
    "bench_quantify": (["--smoke", "--plot", "{OUT}/calibration.png"], [
        r"^1 reads per level x 1 context draws per model",
        rf"^default  batch( +{NUM} +[+-]{NUM} +\d+%){{7}}$",
        rf"^harsh    single( +{NUM} +[+-]{NUM} +\d+%){{7}}$",
        rf"^worst MAE of a level, batch mode: {NUM} points \(target <= 10\)$",
        r"^calibration plot: .*calibration\.png$",
    ]),
    "duplicates": (["--sizes", "12", "--designs", "1"], [
        r"^12 clones per sample: 1 designs, \d+ reads, 2 planted duplicates",
        rf"^  planted duplicates found: \d/2 \({NUM} %\)$",
        rf"^  oracle \(the most powerful rule .*\): at most \d/2 \({NUM} %\), at {NUM} expected false per 1,000 "
        rf"\(flags a pattern of chance P <= 10\^-?{NUM}\)$",
        rf"^  false duplicates: \d+ \({NUM} per 1,000 distinct clones\)$",
    ]),
    "bench_aligners": (["--smoke"], [
        r"^set +reads +biopython +parasail-bs",
        r"^BiQ demo \(233 bp\) +\d+ ",
        r"^cells: CPU per alignment",
    ]),
    "chance_identity": (["1"], [  # its argument is the random reads per (amplicon, alphabet, length)
        r"^\d+ random reads with an alignment of 30\+ bases",
        r"^aligned bases +n +identity median",
    ]),
    "bench_compare": (["--smoke"], [
        r"^bsmeth compare, CPU seconds of compare_results in a fresh process; old: ",
        # old and new CPU seconds, the speed-up and whether both wrote the same tables (old: - without git history)
        rf"^20 samples x 2 clones +by=sample +({NUM} +{NUM} +{NUM}x +(yes|NO)|- +{NUM} +- +- .*)$",
        rf"^20 samples x 2 clones +default +({NUM} +{NUM} +{NUM}x +(yes|NO)|- +{NUM} +- +- .*)$",
    ]),
    "asm": (["--smoke"], [
        r"^designs of 12 clones per sample",
        rf"^   asm_perm_clones p < 0\.01 in \d+/4 = {NUM} % of designs",
        rf"^   pattern_mmd_perm +\d+/4 = {NUM} %$",
        rf"^   pdr +random {NUM}, epialleles {NUM}; pdr_perm p < 0\.05 in \d+/4 = {NUM} %$",
    ]),
    "bench_inputs": (["--smoke"], [
        r"^resolve_inputs \(folder of n read files",
        rf"^ +200 +{NUM} s \( *{NUM} us/file\)$",
        rf"^this checkout: 200 files / 50 files = {NUM}x the time for 4x the files; per file {NUM} ms$",
    ]),
    "fuzz_readers": (["--smoke"], [
        r"^done: 30 inputs in 1 rounds over 0\.\d min; 0 distinct failure\(s\)$",
    ]),    # this tree against itself: every output of the smoke sets must be identical
    "compare_outputs": ([str(BENCH.parent / "src"), "--smoke"], [
        r"^biq: 10 reads, same; call wall old",
        r"^simulated: 16 reads, same; call wall old",
        r"^every output identical$",
    ]),
}


def test_every_benchmark_has_a_smoke_run():
    assert sorted(p.stem for p in BENCH.glob("*.py")) == sorted(SMOKE)


def _run(name: str, folder: Path) -> subprocess.CompletedProcess:
    args = [a.replace("{OUT}", str(folder)) for a in SMOKE[name][0]]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def smoke_runs(request, tmp_path_factory):
    """The smoke runs of the selected tests, started on first use in SMOKE's order, a few processes at a time."""
    here = Path(__file__).resolve()
    selected = {item.callspec.params["name"] for item in request.session.items
                if Path(item.path).resolve() == here and hasattr(item, "callspec")}
    names = [n for n in SMOKE if n in selected]
    pool = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 1)))
    runs: dict[str, Future] = {n: pool.submit(_run, n, tmp_path_factory.mktemp(n)) for n in names}
    yield runs
    pool.shutdown(wait=True)


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_smoke_run(name, smoke_runs):
    done = smoke_runs[name].result()
    assert done.returncode == 0, f"{name} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    lines = done.stdout.splitlines()
    missing = [p for p in SMOKE[name][1] if not any(re.search(p, line) for line in lines)]
    assert not missing, f"{name} did not print lines matching {missing}:\n{done.stdout}"


def test_duplicates_oracle_spends_the_budget_on_the_rarest_patterns_first():
    """benchmarks/duplicates.py's oracle: patterns flagged from the rarest up while the expected chance twins,
    (n - 1) x P / 2 per flagged clone, stay under the budget per 1,000 distinct clones."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("duplicates_benchmark", BENCH / "duplicates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    clones = [(11, lp) for lp in (-2.0, -6.0, -0.5, -4.0, -3.0, -5.0)]  # (n - 1) x P / 2 = 5 x 10^lp each
    sources = [-5.0, -2.0, -1.0]
    found, false, cut = module.oracle_bound(clones, sources, n_distinct=1000)
    # 5e-6 + 5e-5 + 5e-4 + 5e-3 + 5e-2 < 1 per 1,000; adding 10^-0.5 would spend 1.58 more
    assert (found, cut) == (2, -2.0) and false == pytest.approx(0.055555)
    found, false, cut = module.oracle_bound(clones, sources, n_distinct=1000, per_1000=0.01)
    assert (found, cut) == (1, -3.0) and false == pytest.approx(0.005555)
    assert module.oracle_bound(clones, sources, n_distinct=1000, per_1000=1e-7)[0] == 0
