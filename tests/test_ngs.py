"""The NGS engine (``bsmeth.ngs``): FASTQ chunks, locating reads on the four strands, calls, mates, QC, the
run's tables, the simulator, and the routing of FASTQ input by ``bsmeth call``/``run``."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bsmeth.cli import cli
from bsmeth.coords import revcomp
from bsmeth.errors import InputError
from bsmeth.models import CallConfig, Why
from bsmeth.ngs import engine as E
from bsmeth.ngs.fastq import looks_like_ngs, parse_chunk
from bsmeth.ngs.index import build_index
from bsmeth.ngs.run import NgsConfig, mate_of, resolve_pairs, run_ngs
from bsmeth.ngs.simulate import default_design, simulate_ngs
from bsmeth.panel import load_panel
from bsmeth.tsv import read_table

DATA = Path(__file__).parent / "data"
PANEL = DATA / "ngs" / "panel.tsv"


@pytest.fixture(scope="module")
def panel():
    return load_panel(PANEL)


@pytest.fixture(scope="module")
def index(panel):
    return build_index(panel)


def fastq(records) -> bytes:
    """FASTQ text of (id, sequence[, qualities as one PHRED]) records."""
    out = []
    for r in records:
        rid, seq = r[0], r[1]
        q = r[2] if len(r) > 2 else 37
        out.append(f"@{rid}\n{seq}\n+\n{chr(33 + q) * len(seq)}\n")
    return "".join(out).encode()


# --------------------------------------------------------------------------- FASTQ chunks


def test_parse_chunk_arrays_and_qualities():
    rec = parse_chunk(b"@a x\nACgT\n+\nIIII\n@b\nAC\n+\n#I\n", names=True)
    assert rec.names == ["a", "b"] and list(rec.length) == [4, 2]
    assert rec.seq[0].tobytes() == b"ACGT" and rec.seq[1].tobytes() == b"AC\x00\x00"
    assert rec.qual[1].tolist() == [2, 40, 0, 0]
    assert rec.quals(np.array([0, 1]), np.array([1])).ravel().tolist() == [40, 40]


def test_parse_chunk_windows_line_ends_and_no_final_newline():
    rec = parse_chunk(b"@a\r\nACGT\r\n+\r\nIIII\r\n@b\r\nTT\r\n+\r\nII")
    assert list(rec.length) == [4, 2] and rec.seq[1, :2].tobytes() == b"TT"


@pytest.mark.parametrize("bad", [b"@a\nACGT\n+\nIII\n", b"@a\nACGT\nIIII\n+\n", b"a\nACGT\n+\nIIII\n",
                                 b"@a\nACGT\n+\n"])
def test_parse_chunk_malformed_raises(bad):
    with pytest.raises(InputError):
        parse_chunk(bad, what="x.fastq")


# --------------------------------------------------------------------------- one amplicon, four strands


def molecule(amp, pattern: str, strand: str, unconverted: int = 0) -> str:
    """The read (5'->3', whole molecule) of strand OT/CTOT/OB/CTOB of ``amp`` with CpG states ``pattern``."""
    t = list(amp.target)
    cpg_c = {c.target_pos: ch for c, ch in zip(amp.cpgs, pattern)}
    if strand in ("OT", "CTOT"):
        s = t
        left = unconverted
        for i, b in enumerate(s):
            if b == "C":
                if i in cpg_c:
                    s[i] = "C" if cpg_c[i] == "M" else "T"
                elif left and not amp.in_primer(i):
                    left -= 1
                else:
                    s[i] = "T"
        mol = "".join(s)
        return mol if strand == "OT" else revcomp(mol)
    # the opposite strand: its CpG C is the complement of the target's G (t + 1)
    L = amp.length
    s = list(revcomp(amp.target))
    cpg_o = {L - 2 - c.target_pos: ch for c, ch in zip(amp.cpgs, pattern)}
    for i, b in enumerate(s):
        if b == "C":
            s[i] = ("C" if cpg_o[i] == "M" else "T") if i in cpg_o else "T"
    mol = "".join(s)
    return mol if strand == "OB" else revcomp(mol)


def run_pairs(index, r1s, r2s=None, config=None):
    config = config or CallConfig()
    rec1 = parse_chunk(fastq([(f"r{i}", s) for i, s in enumerate(r1s)]))
    m1 = E.mates(rec1, index, config, max(index.n_cpgs))
    m2 = None
    if r2s is not None:
        rec2 = parse_chunk(fastq([(f"r{i}", s) for i, s in enumerate(r2s)]))
        m2 = E.mates(rec2, index, config, max(index.n_cpgs))
    return E.pairs(m1, m2, index, config)


def letters(p, i, nk) -> str:
    return E.CALL_LETTERS[p.calls[i, :nk]].tobytes().decode()


@pytest.mark.parametrize("strand", ["OT", "CTOT", "OB", "CTOB"])
@pytest.mark.parametrize("which", [0, 1, 2])
def test_every_strand_and_amplicon_is_called_right(panel, index, strand, which):
    amp = panel.amplicons[which]
    rng = np.random.default_rng(which)
    pattern = "".join(rng.choice(["M", "U"], len(amp.cpgs)))
    mol = molecule(amp, pattern, strand)
    p = run_pairs(index, [mol[:150]], [revcomp(mol)[:150]])
    assert p.reason[0] == 0 and p.amplicon[0] == which
    assert ("OT", "CTOT", "OB", "CTOB")[p.strand[0]] == strand
    expect = "".join("-" if c.under_primer else ch for c, ch in zip(amp.cpgs, pattern))
    got = letters(p, 0, len(amp.cpgs))
    assert got == expect


def test_mates_disagreeing_at_a_cpg_give_mate_conflict(panel, index):
    amp = panel.amplicons[0]
    pattern = "U" * len(amp.cpgs)
    mol = molecule(amp, pattern, "OT")
    k = next(k for k, c in enumerate(amp.cpgs) if not c.under_primer and 80 <= c.target_pos <= 140)
    t = amp.cpgs[k].target_pos
    r1 = mol[:150]
    r2_mol = mol[:t] + "C" + mol[t + 1:]  # R2 reads C (methylated) where R1 reads T
    p = run_pairs(index, [r1], [revcomp(r2_mol)[:150]])
    assert p.reason[0] == 0
    assert p.calls[0, k] == E.CONFLICT and E.WHY_CODES[E.CONFLICT - 2] is Why.MATE_CONFLICT
    others = [j for j, c in enumerate(amp.cpgs) if j != k and not c.under_primer]
    assert all(p.calls[0, j] == E.U for j in others)


def test_a_cpg_seen_by_one_mate_takes_its_call(panel, index):
    amp = panel.amplicons[1]  # 240 bp: 2 x 100 bp mates leave a gap in the middle
    pattern = "M" * len(amp.cpgs)
    mol = molecule(amp, pattern, "OT")
    p = run_pairs(index, [mol[:100]], [revcomp(mol)[:100]])
    got = letters(p, 0, len(amp.cpgs))
    covered = [c.target_pos < 100 or c.target_pos >= amp.length - 100 for c in amp.cpgs]
    for ch, cov, c in zip(got, covered, amp.cpgs):
        assert ch == ("-" if c.under_primer or not cov else "M")


def test_indel_in_a_mate_still_gives_the_right_calls(panel, index):
    amp = panel.amplicons[0]
    pattern = "MU" * (len(amp.cpgs) // 2) + "M" * (len(amp.cpgs) % 2)
    mol = molecule(amp, pattern, "OT")
    r1 = mol[:60] + mol[62:152]  # a 2-base deletion
    r2 = revcomp(mol)[:70] + "A" + revcomp(mol)[70:149]  # a 1-base insertion
    p = run_pairs(index, [r1], [r2])
    assert p.reason[0] == 0
    expect = "".join("-" if c.under_primer else ch for c, ch in zip(amp.cpgs, pattern))
    got = letters(p, 0, len(amp.cpgs))
    assert all(g in (e, "-") for g, e in zip(got, expect)) and sum(g == e for g, e in zip(got, expect)) >= 20


def test_artefacts_get_their_reason(panel, index):
    amp = panel.amplicons[0]
    mol = molecule(amp, "U" * len(amp.cpgs), "OT")
    poor = molecule(amp, "U" * len(amp.cpgs), "OT", unconverted=12)
    dimer = amp.forward + revcomp(amp.reverse) + "AGATCGGAAGAGCACACGTCTGAACTCCAGTCAC" + "A" * 100
    rng = np.random.default_rng(3)
    other = "".join(rng.choice(list("AGT"), 200))
    r1 = [mol[:150], poor[:150], dimer[:150], other[:150]]
    r2 = [revcomp(mol)[:150], revcomp(poor)[:150], (revcomp(amp.forward + revcomp(amp.reverse)) + "A" * 150)[:150],
          revcomp(other)[:150]]
    p = run_pairs(index, r1, r2)
    reasons = ["pass" if c == 0 else E.REASON_CODES[c - 1].value for c in p.reason]
    assert reasons == ["pass", "low_conversion", "no_amplicon", "no_amplicon"]


def test_single_end_reads(panel, index):
    amp = panel.amplicons[2]
    mol = molecule(amp, "M" * len(amp.cpgs), "CTOT")
    p = run_pairs(index, [mol[:150]])
    assert p.reason[0] == 0 and p.strand[0] == 1


# --------------------------------------------------------------------------- runs, tables, routing


@pytest.fixture(scope="module")
def sim(tmp_path_factory, panel):
    out = tmp_path_factory.mktemp("ngs") / "sim"
    d = default_design(panel, pairs=600, replicates=2)
    d = replace(d, conditions=(d.conditions[3], d.conditions[7]))  # BT474 and rBT474 at dose 10
    return simulate_ngs(d, panel, out, seed=5)


def test_run_tables_and_truth(sim, panel, tmp_path):
    run = run_ngs([], panel, tmp_path / "res", CallConfig(threads=1), str(sim.sample_sheet),
                  ngs=NgsConfig(per_read=True))
    res = tmp_path / "res"
    assert run.n_pairs == sim.n_pairs == 2400
    meta = json.loads((res / "run.json").read_text())
    assert meta["engine"] == "ngs" and [a["name"] for a in meta["amplicons"]] == list(panel.names)
    h, rows = read_table(res / "patterns.tsv")
    assert h == ["amplicon", "sample", "pattern", "count", "fraction"]
    pass_pairs = sum(int(r[3]) for r in rows)
    assert pass_pairs == run.n_pass
    h, rows = read_table(res / "funnel.tsv")
    f = [dict(zip(h, r)) for r in rows]
    assert sum(int(r["pairs"]) for r in f) == 2400
    for r in f:
        assert int(r["pairs"]) >= int(r["assigned"]) >= int(r["identity_ok"]) >= int(r["conversion_ok"]) \
            >= int(r["used"])
        lost = sum(int(r[k]) for k in ("no_amplicon", "ambiguous_amplicon", "low_identity", "no_cph",
                                       "low_conversion", "low_quality", "duplicate"))
        assert int(r["used"]) + lost == int(r["pairs"])
    # every call of a passing pair against the simulated molecule
    truth = {}
    with gzip.open(sim.truth_pairs, "rt") as fh:
        th = fh.readline().rstrip("\n").split("\t")
        for line in fh:
            d = dict(zip(th, line.rstrip("\n").split("\t")))
            truth[d["read"]] = d
    h, rows = read_table(res / "reads.tsv")
    status = {r[0]: (r[h.index("status")], r[h.index("reason")]) for r in rows}
    for rid, t in truth.items():
        if t["kind"] in ("primer_dimer", "other_product", "poor_conversion"):
            assert status[rid][1] == t["expected_reason"], (rid, t["kind"], status[rid])
    h, rows = read_table(res / "cpg_calls.tsv")
    right = wrong = 0
    for r in rows:
        d = dict(zip(h, r))
        if d["status"] == "pass" and d["call"] in "MU" and truth[d["read"]]["pattern"]:
            if truth[d["read"]]["pattern"][int(d["cpg"]) - 1] == d["call"]:
                right += 1
            else:
                wrong += 1
    assert right > 30000 and wrong / (right + wrong) < 0.001


def test_chunking_and_processes_do_not_change_the_tables(sim, panel, tmp_path):
    a = run_ngs([], panel, tmp_path / "a", CallConfig(threads=1), str(sim.sample_sheet),
                ngs=NgsConfig(chunk_bytes=1 << 21))
    b = run_ngs([], panel, tmp_path / "b", CallConfig(threads=2), str(sim.sample_sheet),
                ngs=NgsConfig(chunk_bytes=20_000))
    assert a.n_pairs == b.n_pairs
    for name in ("summary.tsv", "samples.tsv", "patterns.tsv", "funnel.tsv", "cpg_strands.tsv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_bsmeth_run_routes_fastq_and_writes_figures_statistics_report(sim, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["run", "--samples", str(sim.sample_sheet), "--panel", str(PANEL), "--out", str(out),
                                 "--formats", "png", "-j", "1"])
    assert r.exit_code == 0, r.output
    for name in ("summary.tsv", "patterns.tsv", "funnel.tsv", "stats.tsv", "heterogeneity.tsv", "report.html",
                 "lollipop_IGFBP3_promoter.png", "lollipop_IGFBP3_promoter.tsv", "dose_response_IGFBP3_promoter.png"):
        assert (out / name).is_file(), name
    assert not (out / "reads.tsv").exists()  # per-read tables only on request
    h, rows = read_table(out / "stats.tsv")
    tests = {r[h.index("test")] for r in rows}
    assert {"welch_samples", "mannwhitney_molecules", "fisher_cpg", "trend_jt_molecules"} <= tests
    html = (out / "report.html").read_text()
    assert 'id="funnel"' in html and "Per-read alignments" not in html
    lh, lrows = read_table(out / "lollipop_IGFBP3_promoter.tsv")
    assert "share" in lh and lrows


def test_looks_like_ngs_keeps_clone_fastq_on_the_clone_path(tmp_path):
    short = tmp_path / "s.fastq"
    short.write_bytes(fastq([("a", "ACGT" * 30)]))
    long = tmp_path / "l.fastq"
    long.write_bytes(fastq([("a", "ACGT" * 150)]))
    fasta = tmp_path / "f.fasta"
    fasta.write_text(">a\nACGT\n")
    assert looks_like_ngs([short]) and not looks_like_ngs([long]) and not looks_like_ngs([short, fasta])


def test_pairing_by_name_and_by_sheet(tmp_path):
    for name in ("A_S1_L001_R1_001.fastq.gz", "A_S1_L001_R2_001.fastq.gz", "B_1.fq", "B_2.fq", "C.fastq"):
        (tmp_path / name).write_bytes(b"@a\nACGT\n+\nIIII\n")
    assert mate_of(tmp_path / "A_S1_L001_R1_001.fastq.gz")[1:] == ("A", 1)
    _, files = resolve_pairs([str(tmp_path)], None)
    got = {s: (Path(r1).name, r2.name if r2 else None) for r1, r2, s, _ in files}
    assert got == {"A": ("A_S1_L001_R1_001.fastq.gz", "A_S1_L001_R2_001.fastq.gz"), "B": ("B_1.fq", "B_2.fq"),
                   "C": ("C.fastq", None)}
    sheet = tmp_path / "s.csv"
    sheet.write_text("file,file2,sample,dose\nC.fastq,B_2.fq,x,1\n")
    _, files = resolve_pairs([], str(sheet))
    assert [(Path(a).name, b.name, s, v) for a, b, s, v in files] == [("C.fastq", "B_2.fq", "x", {"dose": "1"})]


def test_simulator_is_deterministic(panel, tmp_path):
    d = default_design(panel, pairs=30, replicates=1)
    d = replace(d, conditions=d.conditions[:1])
    a = simulate_ngs(d, panel, tmp_path / "a", seed=2)
    simulate_ngs(d, panel, tmp_path / "b", seed=2)
    for f in sorted((tmp_path / "a").rglob("*")):
        if f.is_file() and f.name != "README.txt":
            assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes(), f
    assert a.n_pairs == 30


# --------------------------------------------------------------------------- conversion evidence beside indels


def _zone(ref: str, read: str, x: list[int], bottom: bool = False) -> str:
    """``_indel_zones`` of one read as a string over the view (``#`` excluded), on the top or, complemented,
    the bottom frame."""
    from types import SimpleNamespace

    from bsmeth.ngs.index import C_, G_

    if bottom:  # the same case on a G/A frame: complement the letters
        ref, read = ref.translate(str.maketrans("ACGT", "TGCA")), read.translate(str.maketrans("ACGT", "TGCA"))
    conv = ("G", "A") if bottom else ("C", "T")
    v = SimpleNamespace(c_letter=G_ if bottom else C_, three=ref.replace(*conv).encode())
    zone = E._indel_zones(np.array([x]), np.frombuffer(read.encode(), np.uint8)[None, :], v)[0]
    return "".join("#" if z else "." for z in zone)


@pytest.mark.parametrize("bottom", [False, True])
def test_an_insertion_in_a_converted_run_hides_the_whole_run(bottom):
    # reference AAG CCCTCCC AAG; the read has 3 extra C in the converted T run: TTTTTTT CCC -> it could sit
    # anywhere among those 10 bases, so the 7 reference C are no conversion evidence (margin 3 either side)
    ref = "AAGCCCTCCCAAGAAGAAG"
    read = "AAG" + "TTTTTTT" + "CCC" + "AAGAAGAAG"
    # the aligner put the insertion first in the run: view 3..9 take read columns 6..12 (the CCC on CCC)
    x = [0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]
    # the insertion can slide from view 3 to 10: 3..9 change their read base; with the margin, 0..12
    assert _zone(ref, read, x, bottom) == "#" * 13 + "." * 6


@pytest.mark.parametrize("bottom", [False, True])
def test_a_deletion_slides_over_equal_reference_letters(bottom):
    # reference AAG TTTT GAAGAAGAAG; the read lacks one T: the gap can be at any of the 4
    ref = "AAGTTTTGAAGAAGAAGAAG"
    read = "AAGTTTGAAGAAGAAGAAG"
    x = [0, 1, 2, -2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
    # the gap can be at view 3..6; with the margin, 0..9
    assert _zone(ref, read, x, bottom) == "#" * 10 + "." * 10


def test_no_indel_no_zone():
    assert _zone("AAGCCCTCCCAAG", "AAGTTTTTTTAAG", list(range(13))) == "." * 13


def _stuck_chunk(job, state=None):
    """A chunk that never ends (the workers of ``test_ngs_workers_die_with_a_killed_parent``)."""
    import os
    import time

    os.write(job, f"{os.getpid()}\n".encode())
    time.sleep(120)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see the workers")
def test_ngs_workers_die_with_a_killed_parent(monkeypatch):
    """The NGS engine's pool workers exit when the run that started them is SIGKILLed (else they would wait
    for chunks forever), as the call's workers do."""
    import os
    import signal
    import time

    from bsmeth.ngs import run as ngs_run

    monkeypatch.setattr(ngs_run, "process_chunk", _stuck_chunk)  # inherited by the forked run and its workers
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the run: two workers, each handed a chunk that never ends
        try:
            for _ in ngs_run._chunk_results(iter([w, w]), 2, {}, (None, None, None, None, None)):
                pass
        finally:
            os._exit(0)
    os.close(w)
    workers: list[int] = []
    with os.fdopen(r) as fh:
        while len(workers) < 2:
            workers.append(int(fh.readline()))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    deadline = time.time() + 30

    def alive(p: int) -> bool:
        try:
            return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    while any(alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in workers), "an NGS worker outlived the killed run"
