"""Do two versions of bsmeth give the same answers?  ``bsmeth call`` of both on the real and simulated sets,
every output compared byte for byte (prints what differs; exit 1 if anything does).

    git worktree add /tmp/bsmeth-old c17c4ab          # the code to compare against
    python benchmarks/compare_outputs.py /tmp/bsmeth-old/src
    python benchmarks/compare_outputs.py /tmp/bsmeth-old/src --sim 200 --only biq,gm9   # a quicker look
    python benchmarks/compare_outputs.py /tmp/bsmeth-old/src --smoke                    # CI: 16 traces

OLD_SRC (and ``--new``, default this tree's ``src``) is a folder holding the ``bsmeth`` package; each side runs
as ``python -c 'from bsmeth.cli import main; main()' call ...`` with ``PYTHONPATH`` set to it, in a fresh process.

The sets: ``example_reads/`` (96 simulated traces, sample sheet), the BiQ Analyzer demo, QUMA's Gm9 sample
(whole reference, vector on both sides), NOMePlot's Oct4 traces (``--nome``), the two pCR4-TOPO reads of
``tests/data/pcr4topo`` (no genomic reference is published: the A07 read's insert between the vector's
cloning sites serves as the reference, so that both reads run through vector trimming and both orientations),
the 454 EPM2AIP1 reads (``--nome``), the real ABIF and SCF traces of ``tests/data/traces`` (of other sequences:
they exercise the trace readers and fail ``no_amplicon``), sangerseqR's real heterozygous trace (ABIF and SCF)
against its own base calls as the reference (trace evidence on a real chromatogram), a two-amplicon panel
(``tests/data/panel``: example traces, 454 reads and off-target reads), a bottom-strand simulated set (whole
IGFBP3 record, ``--strand bottom``) and a simulated set of ``--sim`` traces (default 2,000), made once by the
new code's simulator.

Compared: reads.tsv, cpg_calls.tsv, summary.tsv, samples.tsv, alignments.txt, amplicons.fa(.fai) byte for
byte; run.json, with the output folder's path replaced by a placeholder (it is written into it); reads.bam
and reads.mod.bam decoded by ``samtools view -h`` (pysam's copy when samtools is not installed), the output
folder's path replaced likewise (it is in the @PG command line), and their ``.bai`` through
``samtools idxstats``; when the records agree, the uncompressed BAM bytes are compared too (reported
separately: a different encoding of the same records, e.g. an integer tag's type).  The wall time of each call
is printed too (one run each: not a benchmark).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
TABLES = ("reads.tsv", "cpg_calls.tsv", "summary.tsv", "samples.tsv", "alignments.txt", "amplicons.fa",
          "amplicons.fa.fai")
BAMS = ("reads.bam", "reads.mod.bam")
RUN = "from bsmeth.cli import main; main()"


def sets(inputs: Path) -> dict[str, list[str]]:
    """Name -> arguments of ``bsmeth call`` (without --out)."""
    gm9, oct4, panel = DATA / "quma_gm9", DATA / "nomeplot" / "Oct4", DATA / "panel"
    return {
        "example_reads": [str(ROOT / "example_reads"), "--samples", str(ROOT / "example_reads" / "samples.csv")],
        "biq": [str(DATA / "biq_demo" / "multiFASTA.fasta"), "--reference",
                str(DATA / "biq_demo" / "Master_Sequence.txt")],
        "gm9": [str(gm9 / "Gm9_J1_multi_fasta.txt"), str(gm9 / "Gm9_16aabb_multi_fasta.txt"), "--reference",
                str(gm9 / "sample_genome_fasta.txt")],
        "oct4_nome": [str(oct4), "--reference", str(oct4 / "Oct4-Reference-Genomic.txt"), "--nome"],
        "pcr4": [str(DATA / "pcr4topo"), "--reference", str(inputs / "pcr4_insert.fa")],
        "mapit454_nome": [str(DATA / "mapit454" / "reads.fasta"), "--reference",
                          str(DATA / "mapit454" / "reference.fa"), "--nome"],
        "panel": [str(ROOT / "example_reads" / "BT474_d0"), str(panel / "EPM2AIP1_reads_on_target_full.fasta"),
                  str(panel / "offtarget_reads_same_run.fasta"), "--panel", str(panel / "panel.tsv")],
        "bottom_strand": [str(inputs / "bottom"), "--samples", str(inputs / "bottom" / "samples.csv"), "--reference",
                          str(ROOT / "src" / "bsmeth" / "data" / "IGFBP3_promoter_hg19.fa"), "--strand", "bottom"],
        "real_traces": [str(DATA / "traces")],  # real ABIF and SCF files of other sequences: the readers, no_amplicon
        "heterozygous_trace": [str(DATA / "traces" / "heterozygous.ab1"), str(DATA / "traces" / "heterozygous.scf"),
                               "--reference", str(inputs / "heterozygous_calls.fa")],
        "simulated": [str(inputs / "sim"), "--samples", str(inputs / "sim" / "samples.csv")],
    }


def pcr4_reference(path: Path) -> None:
    """The A07 read's insert, between pCR4-TOPO's cloning sites, as a reference record."""
    text = (DATA / "pcr4topo" / "456484801_1_1_M13F_A07.seq.fasta").read_text()
    seq = "".join(ln.strip() for ln in text.splitlines() if not ln.startswith(">")).upper()
    left, right = "GAATTCGCCCTT", "AAGGGCGAATTC"
    insert = seq[seq.index(left) + len(left):seq.index(right)]
    path.write_text(">pCR4_A07_insert\n" + insert + "\n")


def trace_reference(path: Path) -> None:
    """sangerseqR's real heterozygous trace's own base calls as a reference record: the trace evidence and
    calls on a real chromatogram with two peaks at many positions (its C are unconverted: low_conversion)."""
    data = (DATA / "traces" / "heterozygous.ab1").read_bytes()
    import struct

    n, offset = struct.unpack_from(">4xI2x", data, 18)[0], struct.unpack_from(">I", data, 26)[0]
    for i in range(n):
        name, number, _, _, count, size, off, _ = struct.unpack_from(">4sIHHIIII", data, offset + 28 * i)
        if name == b"PBAS" and number == 2:
            calls = data[off:off + size] if size > 4 else data[offset + 28 * i + 20:offset + 28 * i + 20 + size]
            seq = "".join(b if b in "ACGT" else "N" for b in calls.decode("ascii").upper())  # IUPAC calls as N
            path.write_text(">heterozygous_calls\n" + seq + "\n")
            return
    raise SystemExit("heterozygous.ab1: no PBAS2 tag")


def simulate(src: Path, out: Path, n_clones: int, seed: int, bottom: bool = False) -> None:
    """The seed-study design with ``n_clones`` clones a condition, by the simulator of ``src``."""
    code = f"""
from dataclasses import replace
from bsmeth.reference import load_amplicon
from bsmeth.coords import Strand
from bsmeth.simulate import seed_study_design, simulate
amp = load_amplicon()
if {bottom}:
    amp = load_amplicon({str(ROOT / "src" / "bsmeth" / "data" / "IGFBP3_promoter_hg19.fa")!r}, strand=Strand.BOTTOM)
d = seed_study_design(n_cpgs=len(amp.cpgs))
d = replace(d, conditions=tuple(replace(c, n_clones={n_clones}) for c in d.conditions))
print(simulate(d, amp, {str(out)!r}, seed={seed}).n_reads)
"""
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(src)}, check=True,
                   stdout=subprocess.DEVNULL)


def call(src: Path, args: list[str], out: Path, threads: int) -> float:
    cmd = [sys.executable, "-c", RUN, "-q", "call", *args, "--out", str(out), "--force", "--threads", str(threads)]
    t = time.perf_counter()
    res = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"failed ({res.returncode}): PYTHONPATH={src} {' '.join(cmd)}\n{res.stderr}")
    return time.perf_counter() - t


def bam_text(path: Path) -> str:
    if shutil.which("samtools"):
        run = lambda *a: subprocess.run(["samtools", *a], capture_output=True, text=True, check=True).stdout  # noqa: E731
    else:
        import pysam

        run = lambda *a: pysam.samtools.view(*a[1:]) if a[0] == "view" else pysam.idxstats(*a[1:])  # noqa: E731
    return run("view", "-h", "--no-PG", str(path)) + "\n# idxstats\n" + run("idxstats", str(path))


def first_difference(a: str, b: str) -> str:
    la, lb = a.splitlines(), b.splitlines()
    for i, (x, y) in enumerate(zip(la, lb)):
        if x != y:
            return f"line {i + 1}:\n      old: {x[:300]}\n      new: {y[:300]}"
    return f"{len(la)} lines against {len(lb)}"


def compare(old: Path, new: Path) -> list[str]:
    """What differs between two call folders (empty: nothing)."""
    problems = []
    names = sorted({p.name for p in old.iterdir()} | {p.name for p in new.iterdir()} - {".bsmeth.lock"})
    expected = set(TABLES) | set(BAMS) | {b + ".bai" for b in BAMS} | {"run.json"}
    for missing in sorted(expected - set(names)):
        problems.append(f"{missing}: written by neither")
    for name in names:
        a, b = old / name, new / name
        if not a.exists() or not b.exists():
            problems.append(f"{name}: only in {'new' if b.exists() else 'old'}")
            continue
        if name in BAMS:
            ta, tb = bam_text(a).replace(str(old), "<OUT>"), bam_text(b).replace(str(new), "<OUT>")
            if ta == tb and (gzip.decompress(a.read_bytes()).replace(str(old).encode(), b"<OUT>")
                             != gzip.decompress(b.read_bytes()).replace(str(new).encode(), b"<OUT>")):
                problems.append(f"{name}: same records in samtools view, different bytes (uncompressed)")
        elif name.endswith(".bai"):
            continue  # compared through idxstats with its BAM
        elif name == "run.json":
            ta, tb = a.read_text().replace(str(old), "<OUT>"), b.read_text().replace(str(new), "<OUT>")
        else:
            ta, tb = a.read_bytes(), b.read_bytes()
            if ta == tb:
                continue
            ta, tb = ta.decode("utf-8", "replace"), tb.decode("utf-8", "replace")
        if ta != tb:
            problems.append(f"{name}: differs at {first_difference(ta, tb)}")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path, help="folder holding the old bsmeth package (its src/)")
    ap.add_argument("--new", type=Path, default=ROOT / "src", help="folder holding the new one (default: this tree)")
    ap.add_argument("--sim", type=int, default=2000, help="traces in the large simulated set (default 2000)")
    ap.add_argument("--threads", type=int, default=2, help="--threads of every call (default 2)")
    ap.add_argument("--only", default="", help="comma-separated set names (default: all)")
    ap.add_argument("--work", type=Path, help="keep inputs and outputs here (default: a temporary folder)")
    ap.add_argument("--smoke", action="store_true", help="16 simulated traces, 3 small sets (CI)")
    args = ap.parse_args()
    old_src, new_src = args.old.resolve(), args.new.resolve()
    for src in (old_src, new_src):
        if not (src / "bsmeth" / "__init__.py").is_file():
            raise SystemExit(f"{src}: no bsmeth package there (give the src/ folder of a checkout)")
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.work or Path(tmp)).resolve()
        inputs = work / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        n_sim = 16 if args.smoke else args.sim
        wanted = set(filter(None, args.only.split(","))) or (
            {"biq", "pcr4", "simulated"} if args.smoke else set(sets(inputs)))
        pcr4_reference(inputs / "pcr4_insert.fa")
        trace_reference(inputs / "heterozygous_calls.fa")
        if "simulated" in wanted and not (inputs / "sim" / "samples.csv").is_file():
            simulate(new_src, inputs / "sim", max(1, (n_sim - 8) // 8), seed=2)
        if "bottom_strand" in wanted and not (inputs / "bottom" / "samples.csv").is_file():
            simulate(new_src, inputs / "bottom", 3, seed=3, bottom=True)
        print(f"old: {old_src}\nnew: {new_src}")
        differ = 0
        for name, call_args in sets(inputs).items():
            if name not in wanted:
                continue
            walls = [call(src, call_args, work / side / name, args.threads)
                     for side, src in (("old", old_src), ("new", new_src))]
            problems = compare(work / "old" / name, work / "new" / name)
            n = sum(1 for _ in open(work / "new" / name / "reads.tsv")) - 1
            verdict = "same" if not problems else f"DIFFERENT ({len(problems)} files)"
            print(f"{name}: {n} reads, {verdict}; call wall old {walls[0]:.2f} s, new {walls[1]:.2f} s")
            for p in problems:
                print(f"    {p}")
            differ += bool(problems)
        print("every output identical" if not differ else f"{differ} set(s) differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
