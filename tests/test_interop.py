"""reads.bam / reads.mod.bam, the exported tables (bedMethyl, Bismark, methylKit), results.xlsx, the IGV session
and BAM as input, on a top- and a bottom-strand amplicon, each anchored on hg19 and on its own contig.

The forms (as tests/test_strands.py): IGFBP3 as shipped (top strand, FASTA on hg19 minus), its reverse complement
written on the plus strand (the same primers amplify its *bottom* strand), and both without a genome anchor (their
own contig: the assayed strand is then the contig's plus strand for the top form and its minus strand for the
bottom form, so both record orientations, flag 0 and flag 16, are covered).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pysam
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from readfixtures import amplicon_forms

from bsmeth.bam import fai_text
from bsmeth.cli import cli
from bsmeth.coords import complement, revcomp
from bsmeth.models import CallConfig
from bsmeth.pipeline import run_call
from bsmeth.simulate import seed_study_design, simulate

SAMTOOLS = shutil.which("samtools")
needs_samtools = pytest.mark.skipif(SAMTOOLS is None, reason="samtools (Debian package) not installed")
# 450K probes of the IGFBP3 amplicon: the 1-based hg19 position of their plus-strand C (Illumina manifest)
PROBES = {"cg04796162": 45961102, "cg21268650": 45961089, "cg23193639": 45961078}


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    amps = amplicon_forms()
    d = seed_study_design()
    d = replace(d, conditions=tuple(replace(c, n_clones=4) for c in (d.conditions[0], d.conditions[7])),
                faults={"poor_conversion": 1, "duplicate": 1, "failed_read": 1, "empty_vector": 1})
    reads = tmp_path_factory.mktemp("reads")
    sim = simulate(d, amps["top"], reads, seed=5)
    out = {}
    for form, amp in amps.items():
        o = tmp_path_factory.mktemp(form) / "res"
        run = run_call([str(reads)], amp, o, CallConfig(threads=1), sheet_path=str(sim.sample_sheet))
        r = CliRunner().invoke(cli, ["-q", "export", str(o)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        out[form] = (amp, o, run)
    return out


FORMS = ["top", "bottom", "top_own", "bottom_own"]


def assayed_site(amp, row: dict) -> tuple[str, int]:
    """(contig, 0-based position) of a CpG's assayed C, from summary.tsv / cpg_calls.tsv's own columns: the genome
    columns when the amplicon is anchored, else the FASTA position (its own contig is the FASTA as written)."""
    if row["genome_pos"]:
        return row["chrom"], int(row["genome_pos"]) - 1
    pos0 = int(row["pos"]) - 1  # the C of the CG on the FASTA
    return None, pos0 if amp.strand.value == "top" else pos0 + 1


def header_contig(bam_path: Path) -> str:
    with pysam.AlignmentFile(str(bam_path)) as fh:
        return fh.references[0]


# ------------------------------------------------------------------------------------------ the BAM files

@needs_samtools
@pytest.mark.parametrize("form", FORMS)
def test_samtools_reads_both_bams(runs, form):
    amp, o, run = runs[form]
    with_seq = sum(bool(r.sequence) for r in run.results)
    for name in ("reads.bam", "reads.mod.bam"):
        subprocess.run([SAMTOOLS, "quickcheck", "-v", str(o / name)], check=True)
        view = subprocess.run([SAMTOOLS, "view", "-h", str(o / name)], check=True, capture_output=True, text=True)
        body = [x for x in view.stdout.splitlines() if not x.startswith("@")]
        assert len(body) == with_seq  # every read with bases, failed and unmapped ones too
        assert any(x.startswith("@PG") and "\tID:bsmeth" in x for x in view.stdout.splitlines())
        assert "PL:CAPILLARY" in view.stdout
        # the index works: a region query finds the reads of the amplicon
        contig = header_contig(o / name)
        region = subprocess.run([SAMTOOLS, "view", "-c", str(o / name), contig], check=True, capture_output=True,
                                text=True)
        assert int(region.stdout) == sum(r.aligned is not None for r in run.results)
    flags = {int(x.split("\t")[1]) & 0x10 for x in body if not int(x.split("\t")[1]) & 0x4}
    assert flags == ({0} if form == "top_own" else {0x10})  # the amplified strand is hg19 minus but on own contigs


def _calls_by_read(o: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in rows(o / "cpg_calls.tsv"):
        out.setdefault(c["read"], []).append(c)
    return out


@pytest.mark.parametrize("form", FORMS)
def test_mm_ml_decoded_by_pysam_give_exactly_the_calls(runs, form):
    amp, o, _ = runs[form]
    calls = _calls_by_read(o)
    n_reads = n_calls = 0
    with pysam.AlignmentFile(str(o / "reads.mod.bam")) as fh:
        for a in fh.fetch(until_eof=True):
            if a.is_unmapped:
                assert not a.has_tag("MM")
                continue
            assert a.get_tag("MN") == a.query_length
            assert a.get_tag("MM").startswith("C+m?")
            to_ref = dict(a.get_aligned_pairs(matches_only=True))
            got = {}
            for (base, _strand, code), calls_ in (a.modified_bases or {}).items():
                assert (base, code) == ("C", "m")
                for q, p in calls_:
                    assert p in (0, 255)
                    got[to_ref[q]] = "M" if p == 255 else "U"
            want = {assayed_site(amp, c)[1]: c["call"] for c in calls[a.query_name] if c["call"] in "MU"}
            assert got == want, a.query_name
            # the observed bases: YB differs from SEQ only where a T was restored to C at a CpG called U
            yb = a.get_tag("YB")
            diffs = {q for q, (x, y) in enumerate(zip(yb, a.query_sequence)) if x != y}
            assert {to_ref[q] for q in diffs} <= {g for g, v in want.items() if v == "U"}
            n_reads += 1
            n_calls += len(want)
    assert n_reads >= 8 and n_calls > 150


@pytest.mark.parametrize("form", FORMS)
def test_xm_strings_give_the_calls_and_their_pileup_the_summary(runs, form):
    amp, o, _ = runs[form]
    calls = _calls_by_read(o)
    pile: dict[tuple[str, int], list[int]] = {}
    with pysam.AlignmentFile(str(o / "reads.bam")) as fh:
        rg_sample = {rg["ID"]: rg["SM"] for rg in fh.header.to_dict()["RG"]}
        for a in fh.fetch(until_eof=True):
            if a.is_unmapped:
                continue
            xm = a.get_tag("XM")
            assert len(xm) == a.query_length and a.get_tag("XR") == "CT"
            assert a.get_tag("XG") == ("GA" if a.is_reverse else "CT")
            to_query = {r: q for q, r in a.get_aligned_pairs(matches_only=True)}
            for c in calls[a.query_name]:
                q = to_query.get(assayed_site(amp, c)[1])
                letter = "." if q is None else xm[q]
                assert {"Z": "M", "z": "U"}.get(letter, "-") == c["call"], (a.query_name, c["cpg"])
                if not a.flag & 0x600 and letter in "Zz":  # what MethylDackel and IGV count: pass reads
                    k = (rg_sample[a.get_tag("RG")], int(c["cpg"]))
                    pile.setdefault(k, [0, 0])[letter == "z"] += 1
    summary = {(r["sample"], int(r["cpg"])): [int(r["methylated"]), int(r["unmethylated"])]
               for r in rows(o / "summary.tsv")}
    assert pile == {k: v for k, v in summary.items() if sum(v)}


@needs_samtools
@pytest.mark.parametrize("form", ["top_own", "bottom_own"])
def test_nm_md_and_cigar_agree_with_samtools_calmd(runs, form):
    """On its own contig amplicons.fa is the genome: samtools recomputes NM and MD from SEQ, CIGAR and POS."""
    amp, o, _ = runs[form]
    assert "amplicon=IGFBP3" in (o / "amplicons.fa").read_text()
    for name in ("reads.bam", "reads.mod.bam"):
        ours = subprocess.run([SAMTOOLS, "view", str(o / name)], check=True, capture_output=True, text=True).stdout
        theirs = subprocess.run([SAMTOOLS, "calmd", str(o / name), str(o / "amplicons.fa")], check=True,
                                capture_output=True, text=True).stdout

        def tags(text):
            return [sorted(f for f in x.split("\t")[11:] if f[:3] in ("NM:", "MD:")) for x in text.splitlines()
                    if x and not x.startswith("@") and not int(x.split("\t")[1]) & 4]

        assert tags(ours) == tags(theirs) and len(tags(ours)) >= 8


# ------------------------------------------------------------------------------------------ tables

@pytest.mark.parametrize("form", ["top", "bottom"])
def test_bedmethyl_lands_on_hg19_cpgs_of_the_450k_probes(runs, form):
    amp, o, _ = runs[form]
    ref = amp.reference
    anchor = amp.anchor

    def plus_letter(g1: int) -> str:  # 1-based hg19 plus-strand letter, from the reference record and its anchor
        b = ref[anchor.ref_of(g1 - 1)]
        return b if anchor.strand == "+" else complement(b)

    summary = {int(r["genome_pos"]): r for r in rows(o / "summary.tsv") if r["sample"] == "BT474_d0"}
    beds = {}
    for line in (o / "bedmethyl" / "BT474_d0.bedmethyl").read_text().splitlines():
        f = line.split("\t")
        assert len(f) == 18 and f[3] == "m" and f[8] == "255,0,0"
        beds[int(f[1])] = f
    for probe, c_plus in PROBES.items():
        assert plus_letter(c_plus) + plus_letter(c_plus + 1) == "CG", probe
        f = beds[c_plus]  # 0-based start of the minus-strand C (1-based c_plus + 1)
        assert (f[0], int(f[2]), f[5]) == ("chr7", c_plus + 1, "-")
        s = summary[c_plus + 1]
        m, u = int(s["methylated"]), int(s["unmethylated"])
        assert (int(f[11]), int(f[12]), int(f[9]), int(f[4])) == (m, u, m + u, m + u)
        assert float(f[10]) == pytest.approx(float(s["percent"]))


@pytest.mark.parametrize("form", FORMS)
def test_every_table_counts_what_summary_counts(runs, form):
    amp, o, _ = runs[form]
    summary = rows(o / "summary.tsv")
    samples = list(dict.fromkeys(r["sample"] for r in summary))
    for sample in [*samples, None]:
        stem = sample or "all_samples"
        want = {}
        for r in summary:
            if sample is None or r["sample"] == sample:
                key = assayed_site(amp, r)[1]
                m, u = want.get(key, (0, 0))
                want[key] = (m + int(r["methylated"]), u + int(r["unmethylated"]))
        want = {k: v for k, v in want.items() if sum(v)}
        bed = {int(x.split("\t")[1]): (int(x.split("\t")[11]), int(x.split("\t")[12]))
               for x in (o / "bedmethyl" / f"{stem}.bedmethyl").read_text().splitlines()}
        cov = {int(x.split("\t")[1]) - 1: (int(x.split("\t")[4]), int(x.split("\t")[5]))
               for x in (o / "bismark" / f"{stem}.bismark.cov").read_text().splitlines()}
        mk = {int(r["base"]) - 1: (round(int(r["coverage"]) * float(r["freqC"]) / 100),
                                   round(int(r["coverage"]) * float(r["freqT"]) / 100))
              for r in rows(o / "methylkit" / f"{stem}.txt")}
        report = {}
        for x in (o / "bismark" / f"{stem}.CpG_report.txt").read_text().splitlines():
            f = x.split("\t")
            assert f[5] == "CG" and f[6][:2] == "CG" and len(f[6]) == 3
            if int(f[3]) + int(f[4]):
                report[int(f[1]) - 1] = (int(f[3]), int(f[4]))
        assert bed == cov == mk == report == want, stem
    strand = "R" if form != "top_own" else "F"
    assert {r["strand"] for r in rows(o / "methylkit" / "all_samples.txt")} == {strand}
    index = rows(o / "exports.tsv")
    assert {r["format"] for r in index} >= {"bedmethyl", "bismark_cov", "bismark_cpg_report", "methylkit", "xlsx",
                                            "igv_session"}
    assert all((o / r["file"]).is_file() for r in index)


@pytest.mark.parametrize("form", ["top", "bottom_own"])
def test_results_xlsx_holds_the_numbers_of_the_tsvs(runs, form):
    openpyxl = pytest.importorskip("openpyxl")
    amp, o, _ = runs[form]
    wb = openpyxl.load_workbook(o / "results.xlsx", read_only=True)
    assert wb.sheetnames[:5] == ["about", "samples", "summary", "qc", "BT474_d0"]

    def sheet(name):
        values = list(wb[name].iter_rows(values_only=True))
        return [str(x) for x in values[0]], [list(r) for r in values[1:]]

    for name, tsv in (("samples", "samples.tsv"), ("summary", "summary.tsv"), ("qc", "reads.tsv")):
        header, cells = sheet(name)
        want = rows(o / tsv)
        assert header == list(want[0].keys()) and len(cells) == len(want)
        for row, w in zip(cells, want):
            for col, v in zip(header, row):
                t = w[col]
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    assert v == pytest.approx(float(t)), (name, col)
                else:
                    assert (v or "") == t, (name, col)
    summary = rows(o / "summary.tsv")
    for sample in ("BT474_d0", "rBT474_d10"):
        header, cells = sheet(sample)
        reads = [r for r in rows(o / "reads.tsv") if r["sample"] == sample and r["status"] == "pass"]
        assert [r[0] for r in cells] == [r["read"] for r in reads]
        for j, col in enumerate(header[1:-3], start=1):
            s = next(r for r in summary if r["sample"] == sample and r["cpg"] == col)
            assert sum(r[j] == 1 for r in cells) == int(s["methylated"])
            assert sum(r[j] == 0 for r in cells) == int(s["unmethylated"])
            assert all(r[j] in (0, 1, "-") for r in cells)


@pytest.mark.parametrize("form", ["top", "top_own"])
def test_igv_session_opens_the_files_at_the_amplicon(runs, form):
    amp, o, _ = runs[form]
    root = ET.parse(o / "igv_session.xml").getroot()
    genome = root.get("genome")
    assert genome == ("hg19" if form == "top" else "amplicons.fa")
    assert (o / genome).is_file() or genome == "hg19"
    paths = [r.get("path") for r in root.iter("Resource")]
    assert paths == ["reads.bam", "reads.mod.bam", "bedmethyl/all_samples.bedmethyl"]
    assert all((o / p).is_file() for p in paths) and (o / "reads.bam.bai").is_file()
    contig, span = root.get("locus").split(":")
    lo, hi = (int(x) for x in span.split("-"))
    if form == "top":
        assert contig == "chr7" and lo <= 45961078 and hi >= 45961103
    else:
        assert contig == "IGFBP3_top" and lo <= amp.start + 1 and hi >= amp.end
    assert [t.find("RenderOptions").get("colorOption") for t in root.iter("Track")] == [
        "BISULFITE", "BASE_MODIFICATION_2COLOR"]


# ------------------------------------------------------------------------------------------ BAM as input

def _same_calls(a: Path, b: Path, keys=("call", "why", "base", "read_pos")) -> None:
    ca = {(r["read"], r["cpg"]): tuple(r[k] for k in keys) for r in rows(a / "cpg_calls.tsv")}
    cb = {(r["read"], r["cpg"]): tuple(r[k] for k in keys) for r in rows(b / "cpg_calls.tsv")}
    assert ca == cb and len(ca) > 150


@pytest.mark.parametrize("form", ["top", "bottom_own"])
@pytest.mark.parametrize("bam", ["reads.bam", "reads.mod.bam"])
def test_call_on_its_own_bam_reproduces_the_calls(runs, form, bam, tmp_path):
    """'Reproduces': the same M/U/- call (and why, base, position in the read) for every read and CpG, and the
    same status and reason for every read; the sample is the BAM file's (split by read group to keep samples)."""
    amp, o, _ = runs[form]
    again = tmp_path / "again"
    run_call([str(o / bam)], amp, again, CallConfig(threads=1, write_bam=False))
    _same_calls(o, again)
    before = {r["read"]: (r["status"], r["reason"], r["orientation"]) for r in rows(o / "reads.tsv")}
    after = {r["read"]: (r["status"], r["reason"], r["orientation"]) for r in rows(again / "reads.tsv")}
    unreadable = {k for k, v in before.items() if v[1] == "unreadable"}
    assert {k: v for k, v in before.items() if k not in unreadable} == after


@needs_samtools
def test_bam_split_by_read_group_keeps_the_samples(runs, tmp_path):
    amp, o, _ = runs["top"]
    split = tmp_path / "split"
    split.mkdir()
    subprocess.run([SAMTOOLS, "split", "-f", f"{split}/%!.%.", str(o / "reads.bam")], check=True)
    again = tmp_path / "again"
    r = CliRunner().invoke(cli, ["-q", "call", str(split / "*.bam"), "--out", str(again)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    _same_calls(o, again, keys=("sample", "call", "why", "base", "read_pos"))


def bismark_bam(src: Path, dst: Path) -> Path:
    """reads.bam rewritten in Bismark's conventions for single-end reads (docs: 'Bismark BAM/SAM output'): the
    read in its sequenced orientation (OT/CTOB flag 0, OB/CTOT flag 16), XR CT for reads of the converted strand
    and GA for its complement, XG by genome strand, only NM/MD/XM/XR/XG tags, no unmapped reads, @PG Bismark.
    Bismark itself is not packaged for Debian; this follows its documented output."""
    with pysam.AlignmentFile(str(src)) as fh:
        h = fh.header.to_dict()
        header = {"HD": {"VN": "1.0", "SO": "coordinate"}, "SQ": h["SQ"],
                  "PG": [{"ID": "Bismark", "VN": "v0.24.2", "CL": "bismark --genome ref reads.fq"}]}
        with pysam.AlignmentFile(str(dst), "wb", header=header) as out:
            for a in fh.fetch(until_eof=True):
                if a.is_unmapped:
                    continue
                b = pysam.AlignedSegment(out.header)
                b.query_name, b.reference_id, b.reference_start = a.query_name, a.reference_id, a.reference_start
                b.mapping_quality, b.cigartuples = 42, a.cigartuples
                b.query_sequence, b.query_qualities = a.query_sequence, a.query_qualities
                sequenced_as_complement = a.get_tag("YO") == "-"  # CTOT / CTOB
                b.flag = (0x10 if a.is_reverse != sequenced_as_complement else 0)
                for t in ("NM", "MD", "XM"):
                    b.set_tag(t, a.get_tag(t))
                b.set_tag("XR", "GA" if sequenced_as_complement else "CT")
                b.set_tag("XG", a.get_tag("XG"))
                out.write(b)
    return dst


def test_a_bismark_bam_is_read_and_called_as_its_xm_tags_say(runs, tmp_path):
    amp, o, run = runs["top"]
    bam = bismark_bam(o / "reads.bam", tmp_path / "sample_bismark_bt2.bam")
    strands = {(a.flag & 0x10, a.get_tag("XR"), a.get_tag("XG")) for a in pysam.AlignmentFile(str(bam))}
    assert strands == {(0x10, "CT", "GA"), (0, "GA", "GA")}  # OB and CTOB reads: both sequencing directions
    again = tmp_path / "again"
    r = CliRunner().invoke(cli, ["-q", "call", str(bam), "--out", str(again)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    got = {(c["read"], c["cpg"]): c for c in rows(again / "cpg_calls.tsv")}
    # bsmeth's calls from the re-read bases agree with the Bismark XM string at every CpG, read by read
    n = 0
    with pysam.AlignmentFile(str(bam)) as fh:
        for a in fh.fetch(until_eof=True):
            xm = a.get_tag("XM")
            to_query = {g: q for q, g in a.get_aligned_pairs(matches_only=True)}
            for cpg in amp.cpgs:
                q = to_query.get(cpg.genome_pos)
                c = got[(a.query_name, str(cpg.number))]
                assert {"Z": "M", "z": "U"}.get(xm[q] if q is not None else ".", "-") == c["call"]
                n += c["call"] in "MU"
    assert n > 150
    _same_calls(o, again)  # and so with the original run, read positions included (reads as sequenced)


def test_reads_with_indels_and_unusual_names(tmp_path):
    """Insertions and deletions in the CIGAR and MD (checked by samtools calmd when present), and a read id that
    is no valid QNAME, round trip through reads.bam."""
    amp = amplicon_forms()["bottom_own"]
    from bsmeth.reference import convert

    conv = convert(amp.target)
    body = conv[:60] + conv[63:120] + "GTA" + conv[120:]  # a 3-base deletion and a 3-base insertion
    read_dir = tmp_path / "reads"
    read_dir.mkdir()
    (read_dir / "clone α 1.fa").write_text(body + "\n", encoding="utf-8")  # no header: the id is the file stem
    (read_dir / "c2.fa").write_text(">c2\n" + revcomp(body) + "\n", encoding="ascii")
    o = tmp_path / "res"
    run = run_call([str(read_dir)], amp, o, CallConfig(threads=1))
    assert [r.status.value for r in run.results] == ["pass", "pass"]
    with pysam.AlignmentFile(str(o / "reads.bam")) as fh:
        recs = list(fh.fetch(until_eof=True))
    assert {a.query_name for a in recs} == {"clone___1", "c2"}
    for a in recs:
        assert a.cigarstring.count("I") == 1 and a.cigarstring.count("D") == 1, a.cigarstring
        assert "^" in a.get_tag("MD")
    named = next(a for a in recs if a.query_name == "clone___1")
    assert named.get_tag("YN") == "clone%20%CE%B1%201" and named.get_tag("RG") == "reads"
    if SAMTOOLS:
        calmd = subprocess.run([SAMTOOLS, "calmd", str(o / "reads.bam"), str(o / "amplicons.fa")], check=True,
                               capture_output=True, text=True).stdout
        for line in (x for x in calmd.splitlines() if not x.startswith("@")):
            f = line.split("\t")
            a = next(r for r in recs if r.query_name == f[0])
            assert f"NM:i:{a.get_tag('NM')}" in f and f"MD:Z:{a.get_tag('MD')}" in f
    again = tmp_path / "again"
    run_call([str(o / "reads.bam")], amp, again, CallConfig(threads=1, write_bam=False))
    _same_calls_small(o, again)


def _same_calls_small(a: Path, b: Path) -> None:
    ca = {(r["read"], r["cpg"]): (r["call"], r["read_pos"]) for r in rows(a / "cpg_calls.tsv")}
    cb = {(r["read"], r["cpg"]): (r["call"], r["read_pos"]) for r in rows(b / "cpg_calls.tsv")}
    assert ca == cb and {k[0] for k in ca} == {"clone α 1", "c2"}


def test_no_bam_and_export_none(tmp_path, runs):
    amp, o, _ = runs["top"]
    reads = next(Path(r.file) for r in runs["top"][2].results if r.file.endswith(".ab1"))
    out = tmp_path / "res"
    r = CliRunner().invoke(cli, ["-q", "run", str(reads), "--out", str(out), "--no-bam", "--export", "none",
                                 "--formats", "png"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert not any((out / n).exists() for n in ("reads.bam", "amplicons.fa", "results.xlsx", "bedmethyl"))
    # --no-bam over an earlier run: no BAM of the earlier results stays behind
    again = tmp_path / "again"
    for extra in ([], ["--no-bam", "--force"]):
        r = CliRunner().invoke(cli, ["-q", "call", str(reads), "--out", str(again), *extra], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert (again / "reads.bam").exists() == (not extra) == (again / "reads.mod.bam.bai").exists()


# --------------------------------------------------------------------------- the .fai of amplicons.fa


@settings(max_examples=60, deadline=None)
@given(records=st.lists(st.tuples(st.text("ACGTN", min_size=1, max_size=200), st.integers(1, 80)),
                        min_size=1, max_size=4),
       crlf=st.booleans(), final_newline=st.booleans())
def test_fai_text_equals_samtools_faidx(tmp_path_factory, records, crlf, final_newline):
    """Our .fai (no pysam at run time) byte for byte as samtools faidx (pysam's copy) writes it."""
    eol = "\r\n" if crlf else "\n"
    parts = []
    for i, (seq, width) in enumerate(records):
        lines = [seq[k:k + width] for k in range(0, len(seq), width)]
        parts.append(f">rec{i} some description{eol}" + eol.join(lines))
    text = eol.join(parts) + (eol if final_newline else "")
    folder = tmp_path_factory.mktemp("fai")
    fa = folder / "x.fa"
    fa.write_bytes(text.encode())
    pysam.faidx(str(fa))
    assert fai_text(fa.read_bytes()) == (folder / "x.fa.fai").read_text()


def test_fai_text_refuses_ragged_lines():
    with pytest.raises(ValueError, match="lines of different lengths"):
        fai_text(b">a\nACGT\nAC\nACGT\n")
    with pytest.raises(ValueError, match="lines of different lengths"):
        fai_text(b">a\nACGT\nACGTA\n")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ACGTNacgtn=RYKMSWBDHVx*", max_size=41))
def test_pack_seq_is_two_4_bit_codes_a_byte(seq):
    """BAM's sequence encoding (SAM v1.6, 4.2.3): '=ACMGRSVTWYHKDBN' as 0-15, high nibble first, any other
    letter N, an odd length padded with a 0 nibble; for text and bytes alike."""
    from bsmeth.bam import pack_seq

    codes = "=ACMGRSVTWYHKDBN"
    packed = pack_seq(seq)
    nibbles = [n for b in packed for n in (b >> 4, b & 15)]
    assert len(packed) == (len(seq) + 1) // 2 and pack_seq(seq.encode("ascii")) == packed
    assert "".join(codes[n] for n in nibbles[:len(seq)]) == "".join(c if c in codes else "N" for c in seq.upper())
    assert len(seq) % 2 == 0 or nibbles[-1] == 0
