"""QUMA's alignment engine against a whole ``bsmeth call`` on the same reads (figures printed; never a timed test).

    apt-get install emboss                  # Debian/Ubuntu package of EMBOSS 6.6.0: provides ``needle``
    python benchmarks/bench_quma.py         # the 96 simulated traces (= example_reads), 3 runs of each side
    python benchmarks/bench_quma.py --repeats 5
    python benchmarks/bench_quma.py --smoke # 8 traces, one run (what CI runs; the figures mean nothing)

Without ``needle`` on PATH the QUMA half is skipped with a note and only ``bsmeth call`` is timed.

The reads are the seed study simulated with seed 1 (``bsmeth simulate --seed 1``, the same 96 .ab1 files as
``example_reads/``), written to a temporary folder; the reference is the embedded IGFBP3 amplicon (top strand,
primers included), which is what a QUMA user pastes as the genomic sequence.

QUMA side: the engine of QUMA 1.1.16 (GitHub ``holrock/QUMA``, commit 41632f73fbb78430e0c379f2f0b021f7145e3337,
GPLv3; its files were read at commit 961fa15042e4e4b9a8fe8ef294d8831c15b7e104 of the same repository), as
``cgi-bin/makeBisulfiteData.cgi`` drives ``BFUtils::execNeedle`` with the default conversion direction (C=>T,
the genomic sequence as given).  Per read it writes the read and its reverse complement as
FASTA files (60 bases a line) and runs, for each of the two,

    needle <read.fa> <genome.fa> -stdout -auto -gapopen 10.0 -gapextend 0.5 -aformat markx3 -datafile EDNA_CPG

(``BFSetting.pm``: ``NDLOPT``) reading the alignment from needle's standard output.  ``EDNA_CPG`` is QUMA's
scoring matrix (``cgi-bin/EDNA_CPG``): EMBOSS's EDNAFULL with a read T against a genomic C scored as a match
(+5); it is written to a temporary folder at run time from ``EDNA_CPG`` below.  Of the two alignments the one
with fewer mismatches wins, then higher identity, then fewer unconverted non-CpG C, then higher conversion
(mismatch: a column other than equal bases or genomic C read as T, inside the genomic sequence's span).  The
base calls are exported from the .ab1 files to FASTA before the clock starts (QUMA reads .ab1 in Perl; that
export is not counted, which favours QUMA); writing the per-read files, running needle and reading its output
are counted.  The orientations needle picks are checked against bsmeth's (``reads.tsv``), so both sides did
the same job.

bsmeth side: the installed ``bsmeth call`` command in a fresh process (interpreter start-up and imports
included, bytecode cached as after ``pip install`` after one warm-up run; reading the .ab1 files, orienting,
aligning, trace evidence, calls, QC, duplicates, tables), with ``--threads 1`` and with the default (one process
per CPU, one for fewer than 128 traces).  Wall time is what a user waits; CPU time (this
process's children: needle, or bsmeth and its workers) is the fairer figure on a shared machine.  Runs of the
two sides alternate, and the medians are printed.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

# benchmarks/ is this script's folder, first on sys.path
from bench_call import bsmeth_exe, installed_env, warm_up

from bsmeth.models import Read
from bsmeth.reads import read_file
from bsmeth.reference import load_amplicon, revcomp
from bsmeth.simulate import seed_study_design, simulate

# QUMA's cgi-bin/EDNA_CPG (holrock/QUMA; read at commit 961fa15042e4e4b9a8fe8ef294d8831c15b7e104, the only
# version of the file that could be read, as for BFSetting.pm, BFUtils.pm and makeBisulfiteData.cgi above):
# rows are the first sequence (the read), columns the second (the genome).  It differs from EMBOSS 6.6.0's
# EDNAFULL only at row T, column C (+5 instead of -4).
EDNA_CPG = """\
    A   T   G   C   S   W   R   Y   K   M   B   V   H   D   N   U
A   5  -4  -4  -4  -4   1   1  -4  -4   1  -4  -1  -1  -1  -2  -4
T  -4   5  -4   5  -4   1  -4   1   1  -4  -1  -4  -1  -1  -2   5
G  -4  -4   5  -4   1  -4   1  -4   1  -4  -1  -1  -4  -1  -2  -4
C  -4  -4  -4   5   1  -4  -4   1  -4   1  -1  -1  -1  -4  -2  -4
S  -4  -4   1   1  -1  -4  -2  -2  -2  -2  -1  -1  -3  -3  -1  -4
W   1   1  -4  -4  -4  -1  -2  -2  -2  -2  -3  -3  -1  -1  -1   1
R   1  -4   1  -4  -2  -2  -1  -4  -2  -2  -3  -1  -3  -1  -1  -4
Y  -4   1  -4   1  -2  -2  -4  -1  -2  -2  -1  -3  -1  -3  -1   1
K  -4   1   1  -4  -2  -2  -2  -2  -1  -4  -1  -3  -3  -1  -1   1
M   1  -4  -4   1  -2  -2  -2  -2  -4  -1  -3  -1  -1  -3  -1  -4
B  -4  -1  -1  -1  -1  -3  -3  -1  -1  -3  -1  -2  -2  -2  -1  -1
V  -1  -4  -1  -1  -1  -3  -1  -3  -3  -1  -2  -1  -2  -2  -1  -4
H  -1  -1  -4  -1  -3  -1  -3  -1  -3  -1  -2  -2  -1  -2  -1  -1
D  -1  -1  -1  -4  -3  -1  -1  -3  -1  -3  -2  -2  -2  -1  -1  -1
N  -2  -2  -2  -2  -1  -1  -1  -1  -1  -1  -1  -1  -1  -1  -1  -2
U  -4   5  -4  -4  -4   1  -4   1   1  -4  -1  -4  -1  -1  -2   5
"""
NEEDLE_OPTIONS = ["-stdout", "-auto", "-gapopen", "10.0", "-gapextend", "0.5", "-aformat", "markx3"]
INSTALL = "apt-get install emboss   (Debian/Ubuntu; EMBOSS 6.6.0)"


def children_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def make_reads(folder: Path, smoke: bool) -> tuple[list[Read], int]:
    """The simulated traces (seed 1) and their base calls; returns the readable reads and the number of files."""
    design = seed_study_design()
    if smoke:  # one clean clone per sample
        design = replace(design, conditions=tuple(replace(c, n_clones=1) for c in design.conditions), faults={})
    simulate(design, load_amplicon(), folder, seed=1)
    files = sorted(folder.glob("*/*.ab1"))
    reads = [r for f in files for r in read_file(f) if isinstance(r, Read) and r.seq]
    return reads, len(files)


def write_fasta(path: Path, name: str, seq: str) -> None:
    path.write_text(f">{name}\n" + "".join(seq[i:i + 60] + "\n" for i in range(0, len(seq), 60)))


@dataclass(frozen=True)
class NeedleHit:
    mismatches: int
    identity: float
    unconverted: int  # non-CpG genomic C read as C
    conversion: float  # % of non-CpG genomic C read as T
    cpg_calls: str  # one of 1 (C), 0 (T), other letter or '-' per genomic CpG covered


def score(markx3: str, genome: str) -> NeedleHit:
    """The figures QUMA keeps from one needle alignment (read vs genome)."""
    rows: dict[str, list[str]] = {"que": [], "genome": []}
    current = None
    for line in markx3.splitlines():
        if line.startswith(">"):  # the records are named queF/queR and genomeF, as QUMA names them
            current = next((k for k in rows if line[1:].startswith(k)), None)
        elif not line.strip() or line.startswith("#"):
            current = None
        elif current in rows:
            rows[current].append(line.strip())
    q, g = ("".join(rows[k]).upper().replace(" ", "-") for k in ("que", "genome"))
    if not q or len(q) != len(g):
        raise SystemExit(f"needle gave an alignment this script cannot read:\n{markx3[:2000]}")
    first = next(i for i, b in enumerate(g) if b != "-")  # the columns within the genome's span
    last = max(i for i, b in enumerate(g) if b != "-")
    cpgs = {i for i in range(len(genome) - 1) if genome[i:i + 2] == "CG"}
    match = unconv = conv = 0
    calls = []
    pos = -1
    for i in range(first, last + 1):
        gb, qb = g[i], q[i]
        if gb != "-":
            pos += 1
        if qb == gb or (gb == "C" and qb == "T"):
            match += 1
        if gb != "C":
            continue
        if pos in cpgs:
            calls.append({"C": "1", "T": "0"}.get(qb, qb))
        elif qb == "C":
            unconv += 1
        elif qb == "T":
            conv += 1
    n = last - first + 1
    return NeedleHit(n - match, round(100 * match / n, 1), unconv,
                     round(100 * conv / (conv + unconv), 1) if conv + unconv else 0.0, "".join(calls))


def better(fwd: NeedleHit, rev: NeedleHit) -> str:
    """'+' or '-': QUMA's choice between the read and its reverse complement."""
    for a, b in ((rev.mismatches, fwd.mismatches), (fwd.identity, rev.identity),
                 (rev.unconverted, fwd.unconverted), (fwd.conversion, rev.conversion)):
        if a != b:
            return "+" if a > b else "-"
    return "+"


def run_quma(needle: str, reads: list[Read], genome: str, work: Path) -> tuple[float, float, dict[str, str]]:
    """Wall and CPU seconds of QUMA's engine over ``reads``, and the orientation it picks per read id."""
    matrix = work / "EDNA_CPG"
    matrix.write_text(EDNA_CPG)
    gfile, qf, qr = work / "genomeF", work / "queF", work / "queR"
    t, c, c0 = time.perf_counter(), time.process_time(), children_cpu()
    write_fasta(gfile, "genomeF", genome)
    picks = {}
    for r in reads:
        write_fasta(qf, "queF", r.seq)
        write_fasta(qr, "queR", revcomp(r.seq))
        hits = []
        for q in (qf, qr):
            out = subprocess.run([needle, str(q), str(gfile), *NEEDLE_OPTIONS, "-datafile", str(matrix)],
                                 capture_output=True, text=True, check=True).stdout
            hits.append(score(out, genome))
        picks[r.id] = better(*hits)
    return time.perf_counter() - t, time.process_time() - c + children_cpu() - c0, picks


def run_bsmeth(folder: Path, out: Path, threads: int) -> tuple[float, float]:
    """Wall and CPU seconds (the command and its workers) of one ``bsmeth call`` in a fresh process."""
    cmd = [bsmeth_exe(), "-q", "call", str(folder), "--samples", str(folder / "samples.csv"), "--out", str(out),
           "--force", "--threads", str(threads)]
    env = installed_env()
    t, c0 = time.perf_counter(), children_cpu()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - t, children_cpu() - c0


def needle_version(needle: str) -> str:
    p = subprocess.run([needle, "-version"], capture_output=True, text=True, check=False)
    return (p.stdout + p.stderr).strip().replace("EMBOSS:", "EMBOSS ") or "version unknown"


def median(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s" + (f" ({', '.join(f'{x:.2f}' for x in xs)})" if len(xs) > 1 else "")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs of each side (alternating); medians printed")
    ap.add_argument("--smoke", action="store_true", help="8 traces, one run: checks the script works (CI)")
    args = ap.parse_args(argv)
    repeats = 1 if args.smoke else args.repeats
    needle = shutil.which("needle")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
          + (f"needle: {needle} ({needle_version(needle)})" if needle else "needle: not found"))
    if not needle:
        print(f"note: EMBOSS needle is not installed, so QUMA's engine is skipped; install it with: {INSTALL}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reads, n_files = make_reads(tmp / "reads", args.smoke)
        amp = load_amplicon()
        print(f"{n_files} simulated traces ({len(reads)} with base calls); reference: {amp.name}, "
              f"{len(amp.target)} bp, {len(amp.cpgs)} CpGs")
        warm_up(tmp / "reads", tmp / "warm")  # bsmeth's bytecode cached, as after pip install
        quma, single, multi = [], [], []
        picks: dict[str, str] = {}
        for _ in range(repeats):
            if needle:
                wall, cpu, picks = run_quma(needle, reads, amp.target, tmp)
                quma.append((wall, cpu))
            single.append(run_bsmeth(tmp / "reads", tmp / "out1", 1))
            multi.append(run_bsmeth(tmp / "reads", tmp / "out0", 0))

        rows = [("bsmeth call --threads 1 (whole process)", single),
                (f"bsmeth call, default threads ({min(os.cpu_count() or 1, 8)} processes)", multi)]
        if quma:
            rows.insert(0, (f"QUMA engine (needle x 2 per read, {2 * len(reads)} runs)", quma))
        for label, runs in rows:
            print(f"{label}: wall {median([w for w, _ in runs])}, CPU {median([c for _, c in runs])}")
        if quma:
            qw, qc = (statistics.median(x) for x in zip(*quma))
            for label, runs in rows[1:]:
                bw, bc = (statistics.median(x) for x in zip(*runs))
                print(f"ratio QUMA engine / {label.split(' (')[0]}: {qw / bw:.1f}x wall, {qc / bc:.1f}x CPU")
            with open(tmp / "out1" / "reads.tsv", newline="") as f:
                ours = {r["read"]: r["orientation"] for r in csv.DictReader(f, delimiter="\t") if r["orientation"]}
            same = sum(picks.get(k) == v for k, v in ours.items())
            print(f"orientation: needle (QUMA's rule) and bsmeth agree on {same} of the {len(ours)} reads bsmeth "
                  "aligned")
        else:
            print("ratio: not measured (no needle)")


if __name__ == "__main__":
    main()
