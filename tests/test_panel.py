"""Panels: reading panel files, assigning reads to amplicons, and per-amplicon outputs end to end."""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from bsmeth import pipeline
from bsmeth.assign import assign
from bsmeth.cli import cli
from bsmeth.coords import GenomeAnchor, Strand, one_based
from bsmeth.downstream import run_downstream
from bsmeth.figures.plots import PlotConfig
from bsmeth.models import CallConfig, Panel, Reason, Status
from bsmeth.panel import PanelError, load_panel
from bsmeth.pipeline import fit_to_amplicon, process_panel_read, run_call
from bsmeth.reads import read_file
from bsmeth.reference import DEFAULT_FORWARD, DEFAULT_REVERSE, load_amplicon
from bsmeth.simulate import seed_study_design
from bsmeth.simulate.panel import simulate_panel
from bsmeth.stats import CompareConfig

DATA = Path(__file__).parent / "data"
PANEL = DATA / "panel"
# a bottom-strand amplicon of the EPM2AIP1 reference: primers made from its converted bottom strand, 250 bp
EPM_BOTTOM = ("TGGAGGAGGTGTTTGGTGTTTTTT", "TAACATCACATTCACAAATAACTA")


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def write_panel(path: Path, lines: list[list[str]], header=("amplicon", "reference", "forward", "reverse",
                                                             "assembly", "chrom", "start", "strand", "snps")) -> Path:
    path.write_text("\n".join("\t".join(r) for r in [list(header), *lines]) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- reading panel files

def test_example_panel_with_anchors():
    panel = load_panel(PANEL / "panel.tsv")
    assert panel.names == ("IGFBP3_promoter", "EPM2AIP1_promoter")
    igf, epm = panel.amplicons
    default = load_amplicon()
    assert (igf.start, igf.end, igf.strand, igf.target) == (default.start, default.end, default.strand, default.target)
    assert [c.genome_pos for c in igf.cpgs] == [c.genome_pos for c in default.cpgs]
    assert [s.name for s in igf.snps] == ["rs2854744"] and igf.cpgs[5].snp is not None
    assert epm.forward is None and epm.length == 629 and len(epm.cpgs) == 55
    assert epm.anchor == GenomeAnchor("hg19", "chr3", 37034226, 37034855, "+")
    # SOURCE.md: the 450K/27K probes of the region sit on CpGs; the FASTA's first CpG is index 5 or later
    assert all(epm.reference[c.ref_pos:c.ref_pos + 2] == "CG" for c in epm.cpgs)
    assert one_based(epm.cpgs[0].genome_pos) == 37034226 + one_based(epm.cpgs[0].ref_pos)


def test_methamplicons2_table(tmp_path):
    """MethAmplicons2's amplicon_info: converted primers, Primer2 the reverse primer, genomic Sequence."""
    default = load_amplicon()
    genomic = default.reference[default.start:default.end]
    p = tmp_path / "amplicons.tsv"
    p.write_text("Amplicon_Name\tPrimer1\tPrimer2\tSequence\tCDS\n"
                 f"IGFBP3\t{DEFAULT_FORWARD}\t{DEFAULT_REVERSE}\t{genomic}\t-256\n", encoding="utf-8")
    amp = load_panel(p).amplicons[0]
    assert amp.name == "IGFBP3" and amp.target == default.target and amp.strand is Strand.TOP
    assert [c.under_primer for c in amp.cpgs] == [c.under_primer for c in default.cpgs]


@pytest.mark.parametrize("lines,message", [
    ([["a", "nope.fa", "", ""]], "neither a file"),
    ([["a", "IGFBP3_promoter_hg19.fa", "", ""], ["a", "IGFBP3_promoter_hg19.fa", "", ""]], "listed twice"),
    ([["a", "IGFBP3_promoter_hg19.fa", "", "", "hg19", "chr7", "45.9M", "-"]], "whole numbers"),
    ([["a", "IGFBP3_promoter_hg19.fa", "", "", "hg19", "", "45960821", "-"]], "needs chrom and start"),
    ([["a", "IGFBP3_promoter_hg19.fa", "", "", "hg19", "chr7", "45960821", "up"]], "strand 'up'"),
    ([["a", "IGFBP3_promoter_hg19.fa", DEFAULT_FORWARD, "ACGTACGTACGTACGTACGT"]], "does not amplify"),
    ([["a", "IGFBP3_promoter_hg19.fa", "", "", "", "", "", "", "rs1=10:G>T"]], "snp rs1"),
])
def test_bad_panels_name_file_line_and_fix(tmp_path, lines, message):
    shutil.copy(PANEL / "IGFBP3_promoter_hg19.fa", tmp_path)
    p = write_panel(tmp_path / "p.tsv", [r + [""] * (9 - len(r)) for r in lines])
    with pytest.raises(PanelError, match=message) as e:
        load_panel(p)
    assert str(p) in str(e.value) and "line" in str(e.value)


def test_anchor_end_must_fit_the_reference(tmp_path):
    shutil.copy(PANEL / "IGFBP3_promoter_hg19.fa", tmp_path)
    p = tmp_path / "p.csv"
    p.write_text("amplicon,reference,forward,reverse,chrom,start,end,strand\n"
                 "a,IGFBP3_promoter_hg19.fa,,,chr7,45960822,45961163,-\n")  # a 1-based start: one base short
    with pytest.raises(PanelError, match="spans 341 bp but the reference has 342 bp"):
        load_panel(p)


def test_missing_column(tmp_path):
    p = tmp_path / "p.csv"
    p.write_text("amplicon,reference,forward\nx,ACGT,\n")
    with pytest.raises(PanelError, match=r"missing column\(s\) reverse"):
        load_panel(p)


def test_panel_and_reference_options_exclude_each_other(tmp_path):
    r = CliRunner().invoke(cli, ["reference", "show", "--panel", str(PANEL / "panel.tsv"), "--forward", "ACGT"])
    assert r.exit_code == 2 and "leave out --forward" in r.output


# --------------------------------------------------------------------------- assignment

def _simulated_reads(tmp_path_factory, panel: Panel, n_clones: int = 3):
    d = seed_study_design()
    d = replace(d, conditions=tuple(replace(c, n_clones=n_clones, methylation=0.5) for c in d.conditions[::4]))
    out = tmp_path_factory.mktemp("sim")
    sim = simulate_panel(d, panel, out, seed=3)
    return out, sim


@pytest.fixture(scope="module")
def two_strand_panel(tmp_path_factory) -> Path:
    """IGFBP3 (top strand, anchor on hg19 minus) + a bottom-strand EPM2AIP1 amplicon (anchor on plus)."""
    d = tmp_path_factory.mktemp("panel")
    for f in ("IGFBP3_promoter_hg19.fa", "EPM2AIP1_promoter_methylscaper.fa"):
        shutil.copy(PANEL / f, d)
    return write_panel(d / "panel.tsv", [
        ["IGFBP3", "IGFBP3_promoter_hg19.fa", DEFAULT_FORWARD, DEFAULT_REVERSE, "hg19", "chr7", "45960821", "-",
         "rs2854744=89:C>A"],
        ["EPM2AIP1_bottom", "EPM2AIP1_promoter_methylscaper.fa", *EPM_BOTTOM, "hg19", "chr3", "37034226", "+", ""],
    ])


@pytest.fixture(scope="module")
def two_amplicon_run(tmp_path_factory, two_strand_panel):
    panel = load_panel(two_strand_panel)
    assert [a.strand for a in panel] == [Strand.TOP, Strand.BOTTOM]
    reads, sim = _simulated_reads(tmp_path_factory, panel)
    out = tmp_path_factory.mktemp("out") / "res"
    with pytest.MonkeyPatch.context() as mp:  # through the workers, however few the traces
        mp.setattr(pipeline, "FILES_PER_WORKER", 1)
        run = run_call([str(reads)], panel, out, CallConfig(threads=2), sheet_path=str(sim.sample_sheet))
    files = run_downstream(out, PlotConfig(formats=("png",)), CompareConfig(), processes=2)
    return panel, sim, out, run, files


def test_every_simulated_read_goes_to_its_amplicon(two_amplicon_run):
    panel, sim, out, run, _ = two_amplicon_run
    truth = {r["read"]: r for r in rows(sim.truth_reads)}
    got = {r["read"]: r for r in rows(out / "reads.tsv")}
    assert set(truth) == set(got)
    for rid, t in truth.items():
        if t["fault"] == "failed_read":  # fails low_quality before any amplicon can be told
            assert got[rid]["amplicon"] == "" and got[rid]["reason"] == "low_quality", rid
        elif t["molecule"]:  # a read of a PCR product
            assert got[rid]["amplicon"] == t["amplicon"], rid
        else:  # an empty vector
            assert got[rid]["amplicon"] == "" and got[rid]["reason"] == "no_amplicon", rid


def test_calls_of_both_amplicons_match_truth(two_amplicon_run):
    panel, sim, out, _, _ = two_amplicon_run
    truth = {(r["read"], r["cpg"]): r["truth"] for r in rows(sim.truth_cpgs)}
    status = {r["read"]: r["status"] for r in rows(out / "reads.tsv")}
    right = wrong = 0
    per_amp = {}
    for c in rows(out / "cpg_calls.tsv"):
        if status[c["read"]] != "pass" or c["call"] == "-":
            continue
        per_amp[c["amplicon"]] = per_amp.get(c["amplicon"], 0) + 1
        t = truth[(c["read"], c["cpg"])]
        right += c["call"] == t
        wrong += c["call"] != t
    assert set(per_amp) == {"IGFBP3", "EPM2AIP1_bottom"}
    assert right / (right + wrong) >= 0.999, (right, wrong)


def test_tables_are_per_amplicon_with_genome_columns(two_amplicon_run):
    panel, _, out, _, _ = two_amplicon_run
    summary = rows(out / "summary.tsv")
    for amp in panel:
        mine = [r for r in summary if r["amplicon"] == amp.name]
        n_samples = len({r["sample"] for r in summary})
        assert len(mine) == n_samples * len(amp.cpgs)
        expect_strand = "-" if amp.name == "IGFBP3" else "-"  # top on a minus anchor; bottom on a plus anchor
        assert {r["strand"] for r in mine} == {expect_strand}
        assert {r["chrom"] for r in mine} == {amp.anchor.chrom}
        by_cpg = {c.number: c for c in amp.cpgs}
        for r in mine:
            assert int(r["genome_pos"]) == one_based(by_cpg[int(r["cpg"])].genome_pos)
    samples = rows(out / "samples.tsv")
    assert {r["amplicon"] for r in samples} >= {"IGFBP3", "EPM2AIP1_bottom"}
    run_json = json.loads((out / "run.json").read_text())
    assert [a["name"] for a in run_json["amplicons"]] == ["IGFBP3", "EPM2AIP1_bottom"]
    assert "amplicon" not in run_json  # only a run of one amplicon has the single entry
    assert run_json["amplicons"][1]["genome"]["amplified_strand"] == "-"


def test_figures_statistics_and_report_are_per_amplicon(two_amplicon_run):
    panel, _, out, _, files = two_amplicon_run
    names = {p.name for p in files}
    for amp in panel:
        assert f"lollipop_{amp.name}.png" in names and f"dose_response_{amp.name}.png" in names
    stats = rows(out / "stats.tsv")
    assert {r["amplicon"] for r in stats} == set(panel.names)
    html = (out / "report.html").read_text()
    for amp in panel:
        assert f"Amplicon {amp.name}</h2>" in html
    # the chromatograms of each amplicon's reads: the bottom-strand one included
    assert len(re.findall(r"Chromatograms: [1-9]\d* of the \d+ aligned reads of \w+ are embedded", html)) == 2
    assert html.count('class="bsm-traces"') == 2


def test_real_reads_of_the_second_amplicon(tmp_path):
    """The 111 full-length real 454 reads of EPM2AIP1 go to it; the 3 reads of another product go nowhere."""
    panel = load_panel(PANEL / "panel.tsv")
    reads = [r for f in ("EPM2AIP1_reads_on_target_full.fasta", "offtarget_reads_same_run.fasta")
             for r in read_file(PANEL / f)]
    assert len(reads) == 114
    configs = [fit_to_amplicon(CallConfig(nome=True), a) for a in panel]
    got = [process_panel_read(r, "s", panel, configs) for r in reads]
    assert [r.amplicon for r in got[:111]] == ["EPM2AIP1_promoter"] * 111
    assert sum(r.status is Status.PASS for r in got[:111]) >= 100
    assert [(r.amplicon, r.reason) for r in got[111:]] == [("", Reason.NO_AMPLICON)] * 3


def test_identical_amplicons_are_ambiguous(tmp_path):
    amp = load_amplicon()
    panel = Panel((amp, replace(amp, name="copy")))
    sim_amp = load_amplicon()
    from bsmeth.simulate import simulate

    d = seed_study_design()
    d = replace(d, conditions=d.conditions[:1], faults={})
    res = simulate(replace(d, conditions=tuple(replace(c, n_clones=4) for c in d.conditions)), sim_amp, tmp_path)
    reasons = {assign(panel, r.seq).reason for p in res.traces for r in read_file(p)}
    assert reasons == {Reason.AMBIGUOUS_AMPLICON}


def test_nested_amplicons_go_to_the_product_they_cover_whole(tmp_path):
    """Two products sharing the forward primer (as MethAmplicons2's BRCA1_l/BRCA1_s): a read of the long one
    goes to the long one; a read of the short product, read through into vector, to the short one."""
    from bsmeth.reference import build_amplicon, convert, revcomp
    from bsmeth.simulate import simulate

    long = load_amplicon()
    ref = long.reference
    short = build_amplicon("short", ref, DEFAULT_FORWARD, revcomp(convert(ref[150:174])), anchor=long.anchor)
    panel = Panel((replace(long, name="long"), short))
    d = seed_study_design()
    d = replace(d, conditions=tuple(replace(c, n_clones=3) for c in d.conditions[:2]), faults={})
    for amp, want in ((long, 0), (short, 1)):
        res = simulate(replace(d, conditions=tuple(replace(c, methylation=0.5) for c in d.conditions)), amp,
                       tmp_path / amp.name)
        got = [assign(panel, r.seq).index for p in res.traces for r in read_file(p)]
        assert got == [want] * len(got), (amp.name, got)


def test_panel_of_one_equals_the_one_amplicon_form(tmp_path):
    reads = sorted((Path(__file__).parent.parent / "example_reads" / "rBT474_d10").glob("*.ab1"))[:6]
    p = write_panel(tmp_path / "one.tsv", [["IGFBP3_promoter", str(PANEL / "IGFBP3_promoter_hg19.fa"),
                                            DEFAULT_FORWARD, DEFAULT_REVERSE, "hg19", "chr7", "45960821", "-",
                                            "rs2854744=89:C>A"]])
    a = run_call([str(r) for r in reads], load_amplicon(), tmp_path / "a", CallConfig(threads=1))
    b = run_call([str(r) for r in reads], load_panel(p), tmp_path / "b", CallConfig(threads=1))
    assert a.n_pass == b.n_pass > 0
    for name in ("reads.tsv", "cpg_calls.tsv", "summary.tsv", "samples.tsv", "alignments.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_reads_no_amplicon_in_a_panel_run_are_counted_once(two_amplicon_run):
    _, _, out, run, _ = two_amplicon_run
    samples = rows(out / "samples.tsv")
    assert sum(int(r["reads"]) for r in samples) == len(run.results)
    unassigned = [r for r in run.results if r.amplicon == ""]
    assert unassigned and all(r.status is Status.FAIL for r in unassigned)
