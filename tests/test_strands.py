"""Top- and bottom-strand amplicons, on plus- and minus-strand genome anchors, end to end.

One region, two ways to write it: the IGFBP3 record as shipped (gene sense = hg19 minus strand; the seed
primers amplify its top strand) and its reverse complement written on the plus strand (the same primers then
amplify the *bottom* strand).  The molecules are the same, so every call, count and genome position must be
the same; only FASTA positions differ.  Reads are simulated from either form.
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path

import pytest

from bsmeth.coords import GenomeAnchor, Strand, revcomp
from bsmeth.downstream import run_downstream
from bsmeth.figures.plots import PlotConfig
from bsmeth.models import CallConfig
from bsmeth.pipeline import run_call
from bsmeth.reference import (
    DEFAULT_ANCHOR,
    DEFAULT_FORWARD,
    DEFAULT_REVERSE,
    DEFAULT_SNPS,
    build_amplicon,
    load_amplicon,
)
from bsmeth.simulate import seed_study_design, simulate
from bsmeth.stats import CompareConfig

PLUS_ANCHOR = GenomeAnchor("hg19", "chr7", DEFAULT_ANCHOR.start, DEFAULT_ANCHOR.end, "+")


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def forms():
    top = load_amplicon()
    n = len(top.reference)
    snps = tuple(replace(s, pos=n - 1 - s.pos, ref=revcomp(s.ref), alt=revcomp(s.alt)) for s in DEFAULT_SNPS)
    bottom = build_amplicon("IGFBP3_plus", revcomp(top.reference), DEFAULT_FORWARD, DEFAULT_REVERSE, snps=snps,
                            anchor=PLUS_ANCHOR)
    return {"top": top, "bottom": bottom}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    amps = forms()
    assert (amps["top"].strand, amps["bottom"].strand) == (Strand.TOP, Strand.BOTTOM)
    d = seed_study_design()
    d = replace(d, conditions=tuple(replace(c, n_clones=4) for c in (d.conditions[0], d.conditions[7])),
                faults={"poor_conversion": 1, "duplicate": 1})
    out = {}
    for sim_form in ("top", "bottom"):
        reads = tmp_path_factory.mktemp(f"reads_{sim_form}")
        res = simulate(d, amps[sim_form], reads, seed=5)
        for form, amp in amps.items():
            o = tmp_path_factory.mktemp(f"out_{sim_form}_{form}") / "res"
            run_call([str(reads)], amp, o, CallConfig(threads=1), sheet_path=str(res.sample_sheet))
            files = run_downstream(o, PlotConfig(formats=("png",)), CompareConfig(), processes=1)
            out[(sim_form, form)] = (o, files)
    return amps, out


@pytest.mark.parametrize("sim_form", ["top", "bottom"])
def test_both_forms_give_the_same_calls_at_the_same_genome_positions(runs, sim_form):
    amps, out = runs
    by_form = {}
    for form in ("top", "bottom"):
        o, _ = out[(sim_form, form)]
        calls = rows(o / "cpg_calls.tsv")
        assert {c["strand"] for c in calls} == {"-"} and {c["chrom"] for c in calls} == {"chr7"}
        by_form[form] = {(c["read"], c["genome_pos"]): (c["call"], c["why"], c["base"], c["read_pos"])
                         for c in calls}
    assert by_form["top"] == by_form["bottom"]
    assert sum(v[0] in "MU" for v in by_form["top"].values()) > 100


@pytest.mark.parametrize("sim_form", ["top", "bottom"])
def test_both_forms_give_the_same_reads_and_summary(runs, sim_form):
    amps, out = runs
    tables = {}
    for form in ("top", "bottom"):
        o, _ = out[(sim_form, form)]
        # genotypes are written in the FASTA's letters (checked below); the amplicon name differs
        reads = [{k: v for k, v in r.items() if k not in ("amplicon", "file", "genotype")}
                 for r in rows(o / "reads.tsv")]
        summary = {(r["sample"], r["genome_pos"]): (r["methylated"], r["unmethylated"], r["not_determined"], r["note"])
                   for r in rows(o / "summary.tsv")}
        tables[form] = (reads, summary)
    assert tables["top"] == tables["bottom"]


@pytest.mark.parametrize("sim_form", ["top", "bottom"])
@pytest.mark.parametrize("form", ["top", "bottom"])
def test_figures_statistics_and_report_with_trace_snippet(runs, sim_form, form):
    amps, out = runs
    o, files = out[(sim_form, form)]
    names = {p.name for p in files}
    assert {"lollipop.png", "dose_response.png", "stats.tsv", "report.html"} <= names
    assert rows(o / "stats.tsv")
    html = (o / "report.html").read_text()
    assert re.search(r"Chromatograms: [1-9]\d* of the \d+ aligned reads are embedded", html), \
        "the report shows the chromatograms on either strand"
    # the FASTA positions are those of the form; the genome positions are the same
    # (CpGs are numbered in FASTA order, so the numbers run the other way in the reverse-complemented form)
    amp = amps[form]
    summary = rows(o / "summary.tsv")
    row = next(r for r in summary if r["genome_pos"] == "45961103")  # cg04796162 (+ strand C 45,961,102)
    cpg = amp.cpgs[int(row["cpg"]) - 1]
    assert int(row["pos"]) == cpg.ref_pos + 1 and cpg.genome_pos + 1 == 45961103
    assert int(row["cpg"]) == (2 if form == "top" else len(amp.cpgs) - 1)


def test_snp_is_found_in_both_forms(runs):
    """The SNP is given in each FASTA's letters (A/C on the gene-sense record, T/G on its reverse complement):
    the same clones carry it, and it blanks the same genome position."""
    amps, out = runs
    genotype, snp_at = {}, {}
    for form in ("top", "bottom"):
        o, _ = out[("top", form)]
        genotype[form] = {r["read"]: r["genotype"] for r in rows(o / "reads.tsv") if r["genotype"]}
        snp_at[form] = {(r["read"], r["genome_pos"]) for r in rows(o / "cpg_calls.tsv") if r["why"] == "snp"}
    swap = {"A": "T", "C": "G"}
    assert genotype["bottom"] == {k: v[:-1] + swap[v[-1]] for k, v in genotype["top"].items()}
    assert {v for v in genotype["top"].values()} == {"rs2854744:A", "rs2854744:C"}
    assert snp_at["top"] == snp_at["bottom"] and {g for _, g in snp_at["top"]} == {"45961075"}
