"""bsmeth quantify (direct sequencing of uncloned product) on simulated direct reads (bsmeth.simulate.direct)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from bsmeth.alignment import align
from bsmeth.cli import cli
from bsmeth.errors import InputError, OutputError
from bsmeth.evidence import signals_at
from bsmeth.models import Read, Unreadable
from bsmeth.quantify import (
    QUANTIFY_COLUMNS,
    QuantifyConfig,
    ReadEstimate,
    SiteEstimate,
    quantify_reads,
    run_quantify,
    sample_summary,
)
from bsmeth.reads import read_file
from bsmeth.reference import load_amplicon
from bsmeth.simulate.direct import DYE, DirectModel, simulate_direct

AMP = load_amplicon()


def _tsv(path, delimiter="\t"):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    out = tmp_path_factory.mktemp("direct")
    res = simulate_direct(AMP, out, fractions=(0, 0.25, 0.5, 1.0), n_per_fraction=4, seed=2)
    truth = {(r["read"], int(r["cpg"])): r for r in _tsv(res.truth)}
    return out, res, truth


# ---------------------------------------------------------------------------------------------- simulator


def test_simulated_direct_reads(direct):
    out, res, truth = direct
    assert res.n_reads == 16 and len(truth) == 16 * len(AMP.cpgs)
    sheet = _tsv(res.sample_sheet, ",")
    assert [r["sample"] for r in sheet[::4]] == ["direct_000", "direct_025", "direct_050", "direct_100"]
    assert {r["fraction"] for r in sheet} == {"0", "25", "50", "100"}
    assert "SIMULATED" in res.readme.read_text()
    for row in truth.values():
        f, conv, share = float(row["true_fraction"]), float(row["conversion"]), float(row["c_share"])
        if row["under_primer"] == "no" and row["cpg"] != "6":
            assert share == pytest.approx(f + (1 - f) * (1 - conv), abs=0.05)  # per-site conversion varies a little
        if row["read"].startswith(("direct_000", "direct_100")):
            assert f == float(row["read"][7:10]) / 100
    # per-CpG truth varies around the level
    f25 = [float(r["true_fraction"]) for (rid, _), r in truth.items() if rid.startswith("direct_025")]
    assert 0.2 < np.mean(f25) < 0.3 and np.std(f25) > 0.01


def test_direct_trace_shows_the_dye_difference(direct):
    """At a 50 % CpG the C peak is the weaker one ('+': C dye 0.6 of T; '-': G 0.8 of A)."""
    out, res, _ = direct
    for path in res.traces[8:12]:
        read = read_file(path)[0]
        aln = align(AMP, read.seq, read.qual)
        sig = signals_at(read, aln, [c.target_pos for c in AMP.cpgs if not c.under_primer])
        frac = np.median([s.c_frac for s in sig.values()])
        expected = DYE["C"] / (DYE["C"] + DYE["T"]) if aln.orientation == "+" else DYE["G"] / (DYE["G"] + DYE["A"])
        assert frac == pytest.approx(expected, abs=0.08)


def test_same_seed_same_files(tmp_path):
    a = simulate_direct(AMP, tmp_path / "a", fractions=(0.5,), n_per_fraction=2, seed=9)
    b = simulate_direct(AMP, tmp_path / "b", fractions=(0.5,), n_per_fraction=2, seed=9)
    assert [p.read_bytes() for p in a.traces] == [p.read_bytes() for p in b.traces]
    assert a.truth.read_bytes() == b.truth.read_bytes()
    with pytest.raises(ValueError):
        simulate_direct(AMP, tmp_path / "c", fractions=(1.5,))
    with pytest.raises(ValueError):
        DirectModel(orientation="x")


# ---------------------------------------------------------------------------------------------- estimates


def _errors(estimates, truth) -> dict:
    err: dict = {}
    for e in estimates:
        for s in e.sites:
            if s.fraction is not None:
                err.setdefault(e.sample, []).append(s.fraction - float(truth[(e.read_id, s.cpg)]["true_fraction"]))
    return {k: np.array(v) for k, v in err.items()}


def test_batch_estimates_are_close_to_the_truth(direct):
    out, res, truth = direct
    items = [(read_file(p)[0], p.parent.name) for p in res.traces]
    estimates, calibration = quantify_reads(AMP, items, QuantifyConfig())
    assert set(calibration) == {"+", "-"}  # reads of 0-100 %: the dye ratio of every CpG is calibrated
    assert calibration["+"].n_reads == 8
    k = 1 / calibration["+"].beta_pool
    assert k == pytest.approx(DYE["C"] / DYE["T"], rel=0.15)
    err = _errors(estimates, truth)
    for sample, e in err.items():
        assert np.abs(e).mean() < 0.05, sample
    assert all(e.figures["dye_ratio_source"] == "batch of 8 reads" for e in estimates)
    # every read has a row per CpG; the primer CpGs and nothing else have no estimate
    for e in estimates:
        assert len(e.sites) == len(AMP.cpgs)
        assert {s.note for s in e.sites if s.fraction is None} == {"under_primer"}
        for s in e.sites:
            if s.fraction is not None:
                assert 0 <= s.low <= s.fraction <= s.high <= 1 and s.background is not None


def test_single_read_calibrates_itself(direct):
    out, res, truth = direct
    path = res.traces[9]  # a 50 % read
    estimates, calibration = quantify_reads(AMP, [(read_file(path)[0], "one")], QuantifyConfig())
    assert calibration == {}
    (e,) = estimates
    assert e.figures["dye_ratio_source"] == "read"
    f = np.array([s.fraction for s in e.sites if s.fraction is not None])
    assert 0.35 < f.mean() < 0.65  # the systematic error of one read's own dye ratio (docs: up to ~10 points)
    unmethylated = quantify_reads(AMP, [(read_file(res.traces[0])[0], "zero")], QuantifyConfig())[0][0]
    assert unmethylated.figures["dye_ratio_source"] == "prior"
    assert all("dye_ratio_prior" in s.note for s in unmethylated.sites if s.fraction is not None)
    assert max(s.fraction for s in unmethylated.sites if s.fraction is not None) < 0.1


def test_standards_calibrate_one_level_samples(direct, tmp_path):
    out, res, truth = direct
    mid = [(read_file(p)[0], p.parent.name) for p in res.traces if p.parent.name == "direct_050"]
    std = [read_file(p)[0] for p in res.traces if p.parent.name in ("direct_000", "direct_100")]
    alone, cal_alone = quantify_reads(AMP, mid, QuantifyConfig())
    assert cal_alone == {} or all(c.n_reads == 2 for c in cal_alone.values())
    calibrated, cal = quantify_reads(AMP, mid, QuantifyConfig(), standards=std)
    assert set(cal) == {"+", "-"} and all(c.n_reads == 6 for c in cal.values())
    assert [e.read_id for e in calibrated] == [item.id for item, _ in mid]
    assert np.abs(_errors(calibrated, truth)["direct_050"]).mean() < 0.06


def test_reads_that_cannot_be_quantified_keep_their_rows(data):
    fasta = Read("f", "f.fa", AMP.target, None, "fasta")
    bad = Unreadable("u", "u.ab1", "u.ab1: not an ABIF trace")
    other = read_file(data / "traces" / "3100.ab1")[0]  # a real trace of something else (16S rDNA)
    estimates, _ = quantify_reads(AMP, [(fasta, "s"), (bad, "s"), (other, "s")], QuantifyConfig())
    assert [e.note for e in estimates] == ["no_trace", "unreadable: u.ab1: not an ABIF trace", "no_amplicon"]
    for e in estimates:
        assert len(e.sites) == len(AMP.cpgs) and all(s.fraction is None for s in e.sites)
        assert {s.note for s in e.sites} == {"under_primer", e.note.split(":")[0]}


def test_sample_summary_is_a_plain_mean():
    sites = lambda f, lo, hi: (SiteEstimate(2, 61, f, lo, hi),)  # noqa: E731
    est = [ReadEstimate("a", "a", "s", sites(0.10, 0.08, 0.12)), ReadEstimate("b", "b", "s", sites(0.30, 0.2, 0.4))]
    (p, lo, hi), = sample_summary(est, ["s"])["s"].values()
    assert p == pytest.approx(20.0) and lo < 20 < hi


# ---------------------------------------------------------------------------------------------- run / CLI


def test_run_quantify_writes_table_plot_and_json(direct, tmp_path):
    out, res, truth = direct
    table = run_quantify([str(out)], AMP, tmp_path / "q", QuantifyConfig(formats=("png", "svg")),
                         sheet_path=str(res.sample_sheet), command=["bsmeth", "quantify"])
    assert table == tmp_path / "q" / "quantify.tsv"
    rows = _tsv(table)
    assert list(rows[0]) == ["read", "sample", "fraction", *QUANTIFY_COLUMNS[2:]]
    assert len(rows) == 16 * len(AMP.cpgs)
    for r in rows:
        t = truth[(r["read"], int(r["cpg"]))]
        assert r["pos"] == t["pos"] and r["fraction"] == r["sample"][-3:].lstrip("0") or r["fraction"] == "0"
        if r["percent"]:
            assert abs(float(r["percent"]) - 100 * float(t["true_fraction"])) < 15
            assert float(r["low"]) <= float(r["percent"]) <= float(r["high"])
    assert (tmp_path / "q" / "quantify.png").stat().st_size > 10_000
    assert (tmp_path / "q" / "quantify.svg").is_file() and not (tmp_path / "q" / "quantify.pdf").exists()
    meta = json.loads((tmp_path / "q" / "quantify.json").read_text())
    assert meta["command"] == ["bsmeth", "quantify"] and meta["sample_columns"] == ["fraction"]
    assert set(meta["calibration"]) == {"+", "-"} and len(meta["reads"]) == 16
    # no temporary files left (the set's manifest is not one: outdir.SET_MANIFEST)
    assert not [p for p in (tmp_path / "q").iterdir() if p.name.startswith(".") and p.name != ".bsmeth-manifest"]
    with pytest.raises(OutputError, match="--force"):
        run_quantify([str(out)], AMP, tmp_path / "q", QuantifyConfig(formats=("png",)), str(res.sample_sheet))
    with pytest.raises(InputError, match="format"):
        run_quantify([str(out)], AMP, tmp_path / "q2", QuantifyConfig(formats=("jpg",)))


def test_cli_quantify(direct, tmp_path):
    out, res, _ = direct
    std0, std100 = out / "direct_000", out / "direct_100"
    r = CliRunner().invoke(cli, ["quantify", str(out / "direct_025"), str(out / "direct_050"), "--out",
                                 str(tmp_path / "o"), "--standard0", str(std0), "--standard100", str(std100),
                                 "--formats", "png"])
    assert r.exit_code == 0, r.output
    rows = _tsv(tmp_path / "o" / "quantify.tsv")
    assert {r["sample"] for r in rows} == {"direct_025", "direct_050"}  # standards are not output
    meta = json.loads((tmp_path / "o" / "quantify.json").read_text())
    assert meta["standards"] == {"0": [str(std0)], "100": [str(std100)]}
    r = CliRunner().invoke(cli, ["quantify", str(out / "direct_025"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 4 and "--force" in r.output
    r = CliRunner().invoke(cli, ["quantify", "--out", str(tmp_path / "x")])
    assert r.exit_code == 3 and "no input reads" in r.output
