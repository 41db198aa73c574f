"""run_call end to end on real reads: sample assignment, NOMe hint, threads, streaming."""

import csv
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bsmeth.models import CallConfig, Reason, Status
from bsmeth.pipeline import run_call
from bsmeth.reference import load_amplicon


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_folder_is_one_sample_and_subfolders_are_samples(tmp_path, data):
    src = data / "nomeplot" / "Oct4"
    for i, f in enumerate(sorted(src.glob("*.seq"))):
        sub = tmp_path / "in" / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, sub)
    amp = load_amplicon(src / "Oct4-Reference-Genomic.txt")
    run = run_call([str(tmp_path / "in")], amp, tmp_path / "out", CallConfig(nome=True))
    assert run.samples == ("a", "b")
    assert len(run.results) == 16


def test_nome_hint_and_nome_mode(tmp_path, data, caplog):
    src = data / "nomeplot" / "Oct4"
    amp = load_amplicon(src / "Oct4-Reference-Genomic.txt")
    reads = [str(src)]
    plain = run_call(reads, amp, tmp_path / "plain", CallConfig())
    assert plain.n_pass == 0  # QUMA-style conversion over all CpH excludes every NOMe-treated clone...
    assert sum("NOMe data?" in r.detail for r in plain.results) >= 12  # ...but says why
    assert "--nome" in caplog.text
    nome = run_call(reads, amp, tmp_path / "nome", CallConfig(nome=True))
    assert nome.n_pass >= 12
    # Oct4 is an active promoter in ES cells: essentially unmethylated (NOMePlot authors)
    called = [c for r in nome.results if r.status is Status.PASS for c in r.calls if c.call.value != "-"]
    assert sum(c.call.value == "M" for c in called) / len(called) < 0.1


@pytest.mark.parametrize("fork, table_process", [(True, False), (True, True), (False, False)])
def test_threads_give_identical_outputs(tmp_path, gm9, monkeypatch, fork, table_process):
    """Linux forks its workers, macOS and Windows spawn them; large runs on Linux also write cpg_calls.tsv in a
    forked process (here forced by a threshold of one read)."""
    from bsmeth import pipeline

    monkeypatch.setattr(pipeline, "FORK_IS_SAFE", fork)
    if table_process:
        monkeypatch.setattr(pipeline, "PARALLEL_TABLE_READS", 1)
    amp = load_amplicon(gm9["reference"])
    inputs = [str(gm9["j1"]), str(gm9["ko"])]
    run_call(inputs, amp, tmp_path / "one", CallConfig(threads=1))
    run_call(inputs, amp, tmp_path / "two", CallConfig(threads=2))
    for name in ("reads.tsv", "cpg_calls.tsv", "summary.tsv", "alignments.txt"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_duplicates_looked_for_in_forked_processes_are_the_same(tmp_path, monkeypatch):
    """Large runs on more than one process look for each sample's duplicates in forked processes (here forced
    by a threshold of one read): the same reads are flagged, with the same kept read, as in one process."""
    from bsmeth import pipeline
    from bsmeth.simulate import seed_study_design, simulate

    amp = load_amplicon()
    simulate(seed_study_design(), amp, tmp_path / "reads", seed=3)
    monkeypatch.setattr(pipeline, "PARALLEL_DUPLICATE_READS", 1)
    monkeypatch.setattr(pipeline, "FILES_PER_WORKER", 1)
    args = ([str(tmp_path / "reads")], amp)
    run_call(*args, tmp_path / "one", CallConfig(threads=1), sheet_path=str(tmp_path / "reads" / "samples.csv"))
    calls = []
    real = pipeline.ordered_map
    monkeypatch.setattr(pipeline, "ordered_map", lambda fn, *a, **k: calls.append(fn) or real(fn, *a, **k))
    run_call(*args, tmp_path / "two", CallConfig(threads=2), sheet_path=str(tmp_path / "reads" / "samples.csv"))
    assert pipeline._links_job in calls
    one = rows(tmp_path / "one" / "reads.tsv")
    assert any(r["reason"] == "duplicate" for r in one)
    assert one == rows(tmp_path / "two" / "reads.tsv")


def test_sheet_alone_gives_the_inputs(tmp_path, gm9):
    sheet = tmp_path / "s.csv"
    sheet.write_text(f"file,sample,cells\n{gm9['j1']},J1,wt\n{gm9['ko']},KO,Dnmt3a/3b-/-\n")
    amp = load_amplicon(gm9["reference"])
    run = run_call([], amp, tmp_path / "out", CallConfig(), sheet_path=str(sheet))
    assert run.samples == ("J1", "KO")
    reads = rows(tmp_path / "out" / "reads.tsv")
    assert list(reads[0])[:4] == ["read", "file", "sample", "cells"]
    assert {r["cells"] for r in reads} == {"wt", "Dnmt3a/3b-/-"}
    samples = {r["sample"]: r for r in rows(tmp_path / "out" / "samples.tsv")}
    # wild type heavily methylated, the Dnmt3a/3b double knockout much less (QUMA sample's biology)
    assert float(samples["J1"]["methylation_pct"]) > 60 > 35 > float(samples["KO"]["methylation_pct"])


def test_samples_come_in_the_sheets_order(tmp_path, gm9):
    """Inputs are read in sorted path order; samples.tsv and summary.tsv follow the sheet."""
    inputs = sorted([str(gm9["j1"]), str(gm9["ko"])])
    first, second = ("J1", "KO") if inputs[0] == str(gm9["ko"]) else ("KO", "J1")  # the sheet reverses the files
    name = {"J1": gm9["j1"], "KO": gm9["ko"]}
    sheet = tmp_path / "s.csv"
    sheet.write_text(f"file,sample\n{name[first]},{first}\n{name[second]},{second}\n")
    run = run_call(inputs, load_amplicon(gm9["reference"]), tmp_path / "out", CallConfig(), sheet_path=str(sheet))
    assert run.samples == (first, second)
    assert [r["sample"] for r in rows(tmp_path / "out" / "samples.tsv")] == [first, second]
    assert list(dict.fromkeys(r["sample"] for r in rows(tmp_path / "out" / "summary.tsv"))) == [first, second]


def test_gm9_vector_trimmed_and_junk_excluded(tmp_path, gm9):
    amp = load_amplicon(gm9["reference"])
    run = run_call([str(gm9["j1"]), str(gm9["ko"])], amp, tmp_path / "out", CallConfig())
    by_id = {r.read_id: r for r in run.results}
    assert by_id["Gm9_J1_seq_15"].reason is Reason.LOW_CONVERSION
    assert by_id["Gm9_16aabb_seq_16"].aligned.orientation == "-"
    for r in run.results:
        if r.status is Status.PASS:
            # the read starts with ~30-50 nt of pGEM-T-Easy vector: the alignment begins after it
            assert r.aligned.read_start >= 20 if r.aligned.orientation == "+" else True
            assert r.qc.identity >= 0.9
    junk = [r.read_id for r in run.results if r.reason is Reason.NO_AMPLICON]
    assert len(junk) >= 4


def test_progress_advances_while_workers_align(tmp_path, monkeypatch):
    """`run` imports its later libraries while the call's workers align: one import a batch of results, so
    the progress bar moves between them instead of staying blank, then jumping to the end."""
    from bsmeth import pipeline

    monkeypatch.setattr(pipeline, "FILES_PER_WORKER", 1)  # 96 traces would stay in one process
    root = Path(__file__).resolve().parents[1]
    events: list = []
    steps = [lambda k=k: events.append(f"step{k}") for k in range(3)]
    run_call([str(root / "example_reads")], load_amplicon(), tmp_path / "o", CallConfig(threads=2),
             str(root / "example_reads" / "samples.csv"), progress=lambda done, total: events.append(done),
             meanwhile=steps)
    counts = [e for e in events if isinstance(e, int)]
    assert counts == sorted(counts) and counts[-1] == 96
    assert len(counts) >= 12  # small chunks: many updates, not one jump
    assert [e for e in events if isinstance(e, str)] == ["step0", "step1", "step2"]
    first_step = events.index("step0")
    assert 0 < first_step and events.index("step2") < len(events) - 1  # interleaved with the results


@pytest.mark.parametrize("per_worker,pool", [(64, False), (1, True)])
def test_small_trace_runs_stay_in_one_process(tmp_path, monkeypatch, per_worker, pool):
    """Under FILES_PER_WORKER trace files a process, a pool costs more than it saves: no workers start; with a
    lower bound the same run goes to the workers, and the tables are the same."""
    from bsmeth import pipeline

    started = []
    real = pipeline.ordered_map
    monkeypatch.setattr(pipeline, "ordered_map", lambda *a, **k: started.append(a) or real(*a, **k))
    monkeypatch.setattr(pipeline, "FILES_PER_WORKER", per_worker)
    root = Path(__file__).resolve().parents[1]
    traces = sorted((root / "example_reads").rglob("*.ab1"))[:12]
    run_call([str(t) for t in traces], load_amplicon(), tmp_path / "two", CallConfig(threads=2))
    run_call([str(t) for t in traces], load_amplicon(), tmp_path / "one", CallConfig(threads=1))
    assert bool(started) == pool
    for name in ("reads.tsv", "cpg_calls.tsv", "summary.tsv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_result_but_is_dataclass_replace():
    """``ReadResult.but`` (the per-read replace that skips ``__init__``) gives what ``dataclasses.replace`` gives,
    and refuses a field the result does not have."""
    from dataclasses import replace as dc_replace

    from bsmeth.models import ReadResult, Reason, Status

    r = ReadResult("r1", "a/r1.ab1", "S", Status.FAIL, Reason.LOW_QUALITY, "short", length=12)
    assert r.but(file="r1.ab1", detail="x") == dc_replace(r, file="r1.ab1", detail="x")
    assert r.but(file="r1.ab1").file == "r1.ab1" and r.file == "a/r1.ab1"
    with pytest.raises(TypeError, match="no field nope"):
        r.but(nope=1)


@pytest.mark.parametrize("registered", [True, False])
def test_calls_pickle_their_cpgs_as_plain_values(registered, monkeypatch):
    """A read's calls travel between processes with their CpGs as plain values: back in a process that registered
    the amplicon's CpGs they point at its own tuple (the tables' fast path), elsewhere at an equal tuple made from
    the values, the SNP on a CpG included."""
    import pickle

    from bsmeth import models
    from bsmeth.alignment import align
    from bsmeth.calling import call_read
    from bsmeth.reference import convert

    monkeypatch.setattr(models, "_KEY_OF", {})  # this test's registry only
    monkeypatch.setattr(models, "_TUPLE_OF_KEY", {})
    amp = load_amplicon()
    assert any(c.snp is not None for c in amp.cpgs)  # the IGFBP3 amplicon's rs2854744 sits on a CpG
    calls = call_read(amp, align(amp, convert(amp.target, methylated_cpg=True), None), CallConfig())
    if registered:
        models.register_cpgs(amp.cpgs)
    back = pickle.loads(pickle.dumps(calls))
    assert list(back) == list(calls) and back.codes == calls.codes and "M" in back.codes
    assert back.cpgs == amp.cpgs and (back.cpgs is amp.cpgs) == registered
    assert models.cpgs_key(back.cpgs) == models.cpgs_key(amp.cpgs)


def test_run_steps_takes_every_generator_through_a_step_before_the_next():
    from bsmeth.pipeline import run_steps

    log = []

    def steps(name: str, n: int):
        for k in range(n):
            log.append((k, name))
            yield
        log.append((n, name))
        return f"{name} after {n}"

    assert run_steps([steps("a", 2), steps("b", 0), steps("c", 3)]) == ["a after 2", "b after 0", "c after 3"]
    assert [k for k, _ in log] == sorted(k for k, _ in log)  # round by round


@pytest.mark.parametrize("panel", [False, True])
def test_reads_side_by_side_give_the_results_of_one_by_one(panel):
    """``process_files`` takes STEP_READS reads side by side through the stages: the same results, in the same
    order, as each file alone (traces, and FASTA files of 111 and 3 reads; one amplicon, and the two-amplicon
    panel with its assignment step)."""
    from bsmeth.models import Panel
    from bsmeth.output import calls_table, reads_table
    from bsmeth.panel import load_panel
    from bsmeth.pipeline import STEP_READS, process_file, process_files

    root = Path(__file__).resolve().parents[1]
    data = root / "tests" / "data" / "panel"
    amp = load_panel(data / "panel.tsv") if panel else Panel((load_amplicon(),))
    files = [*sorted((root / "example_reads").rglob("*.ab1"))[: STEP_READS + 5],
             data / "EPM2AIP1_reads_on_target_full.fasta", data / "offtarget_reads_same_run.fasta"]
    jobs = [(f, f.parent.name) for f in files]
    together = process_files(jobs, amp, CallConfig())
    alone = [process_file(f, s, amp, CallConfig()) for f, s in jobs]
    assert [len(x) for x in together] == [len(x) for x in alone] == [1] * (len(files) - 2) + [111, 3]
    flat = [r for x in together for r in x], [r for x in alone for r in x]
    assert reads_table(flat[0], {}, ()) == reads_table(flat[1], {}, ())
    assert calls_table(amp, flat[0]) == calls_table(amp, flat[1])
    assert len({r.amplicon for r in flat[0]} - {""}) == len(amp)  # every amplicon got reads


def test_results_pickle_whole_with_their_arrays_as_bytes():
    """Results cross from the workers packed (``models._pack``: arrays as bytes): every field comes back equal,
    in the same order, arrays with their dtype (read-only views), calls pointing at the registered CpGs."""
    import pickle

    import numpy as np

    from bsmeth.models import CpGCalls, register_panel
    from bsmeth.pipeline import as_panel, process_file

    root = Path(__file__).resolve().parents[1]
    amp = load_amplicon()
    register_panel(as_panel(amp))
    results = [r for f in sorted((root / "example_reads").rglob("*.ab1"))[:16]
               for r in process_file(f, "S", amp, CallConfig())]
    back = pickle.loads(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))

    def same(x, y) -> bool:
        if isinstance(x, np.ndarray):
            nan = x.dtype.kind == "f"
            return isinstance(y, np.ndarray) and x.dtype == y.dtype and np.array_equal(x, y, equal_nan=nan)
        if hasattr(x, "__dataclass_fields__"):
            return type(x) is type(y) and list(vars(x)) == list(vars(y)) and all(
                same(v, vars(y)[k]) for k, v in vars(x).items() if k != "_objects")
        return x == y

    assert all(same(a, b) for a, b in zip(results, back)) and len(back) == len(results)
    calls = [b.calls for b in back if isinstance(b.calls, CpGCalls)]
    assert calls and all(c.cpgs is amp.cpgs for c in calls)
    aligned = [b.aligned for b in back if b.aligned is not None]
    assert aligned and not aligned[0].bases.flags.writeable


def test_every_amplicon_of_a_large_panel_stays_registered(monkeypatch):
    """Past the registry's bound (64 tuples) a panel's first amplicons were dropped, and their results came
    back from the workers with copies of their CpGs (the slow path of every table); a panel is kept whole."""
    import pickle
    import random

    from bsmeth import memo, models
    from bsmeth.models import CpGCalls, Panel
    from bsmeth.reference import build_amplicon

    monkeypatch.setattr(models, "_KEY_OF", {})
    monkeypatch.setattr(models, "_TUPLE_OF_KEY", {})
    monkeypatch.setattr(memo, "_KEEP", [16])
    rng = random.Random(1)
    amps: list = []
    while len(amps) < models._REGISTERED + 6:
        a = build_amplicon(f"a{len(amps)}", "".join(rng.choice("ACGT") for _ in range(200)))
        if a.cpgs:
            amps.append(a)
    models.register_panel(Panel(tuple(amps)))
    for a in (amps[0], amps[-1]):
        n = len(a.cpgs)
        calls = CpGCalls(a.cpgs, "M" * n, "." * n, "C" * n, bytes(n), None, None, b"")
        assert pickle.loads(pickle.dumps(calls)).cpgs is a.cpgs


def test_table_process_errors_and_death_reach_the_caller(tmp_path, gm9, monkeypatch):
    """cpg_calls.tsv written by a forked process: its error is raised here, its death is an error, not a hang,
    and neither leaves a result set behind."""
    import os
    import signal

    from bsmeth import pipeline

    monkeypatch.setattr(pipeline, "PARALLEL_TABLE_READS", 1)
    amp = load_amplicon(gm9["reference"])

    def fails(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline, "calls_table", fails)  # inherited by the forked table writer
    with pytest.raises(OSError, match="No space left"):
        run_call([str(gm9["j1"])], amp, tmp_path / "full", CallConfig(threads=2))
    monkeypatch.setattr(pipeline, "calls_table", lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(ChildProcessError, match="stopped unexpectedly"):
        run_call([str(gm9["j1"])], amp, tmp_path / "killed", CallConfig(threads=2))
    assert not (tmp_path / "full" / "run.json").exists() and not (tmp_path / "killed" / "run.json").exists()


@given(st.lists(st.sampled_from(["a", "b", "..", "x y", "é"]), max_size=4),
       st.lists(st.sampled_from(["a", "b", "out", "é"]), max_size=3), st.sampled_from(["r1.ab1", "r 2.scf", ""]))
def test_results_relative_is_os_relpath(read_dirs, out_dirs, name):
    """The input paths reads.tsv holds (one relpath per folder) are what os.path.relpath gives for each file."""
    import os

    from bsmeth.models import ReadResult, Status
    from bsmeth.pipeline import results_relative

    f = os.path.join("/data", *read_dirs, name) if name else ""
    out = os.path.join("/data", *out_dirs, "results")
    (r,) = results_relative([ReadResult("r", f, "S", Status.PASS)], Path(out))
    assert r.file == (os.path.relpath(os.path.abspath(f), os.path.abspath(out)) if f else "")


def test_duplicates_of_a_run_are_those_of_mark_duplicates(tmp_path):
    """The call flags the duplicates ``qc.mark_duplicates`` finds among its reads, by the ids the tables show."""
    from bsmeth import pipeline
    from bsmeth.qc import mark_duplicates

    root = Path(__file__).resolve().parents[1]
    run = run_call([str(root / "example_reads")], load_amplicon(), tmp_path / "o", CallConfig(threads=1),
                   str(root / "example_reads" / "samples.csv"))
    flagged = {r.read_id: r.duplicate_of for r in run.results if r.duplicate_of}
    assert len(flagged) == 2
    cleared = [r.but(status=Status.PASS, reason=None, duplicate_of=None, detail="") if r.duplicate_of else r
               for r in run.results]
    amp = load_amplicon()
    again = mark_duplicates(amp, cleared, pipeline.fit_to_amplicon(CallConfig(), amp))
    assert {r.read_id: r.duplicate_of for r in again if r.duplicate_of} == flagged
    assert [(r.status, r.reason, r.detail) for r in again] == [(r.status, r.reason, r.detail) for r in run.results]
