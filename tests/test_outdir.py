"""outdir.py: the result folder.  One run at a time, whole result sets, ``--force`` replaces the whole set, the
previous results survive any failure of a new run, leftovers of killed runs are cleaned, workers die with the run.

Most checks run the installed command (tests/command.py) as a user would: two real processes, real signals,
a real file-size limit.  Disk full, read-only and permission errors cannot be made for an unprivileged test
without a file system of its own, so they are injected in process (the same code path: an OSError from a write).
"""

from __future__ import annotations

import csv
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from command import bsmeth_cmd

import bsmeth.atomic as atomic_mod
import bsmeth.outdir as outdir
from bsmeth.cli import main
from bsmeth.errors import OutputError

DATA = Path(__file__).parent / "data"
DEMO = DATA / "biq_demo" / "Demo_data"
MASTER = DATA / "biq_demo" / "Master_Sequence.txt"
GOOD = DEMO / "seq_B.fasta"
TABLES = outdir.CALL_TABLES



STAGING_NAME = outdir.STAGING_PREFIX


def names(out: Path) -> list[str]:
    """The files of a result folder, sorted, without the set's manifest (outdir.SET_MANIFEST)."""
    return sorted(p.name for p in out.iterdir() if p.name != outdir.SET_MANIFEST)

def rows(path: Path) -> list[dict]:
    """A table's rows; in reads.tsv the input paths (written relative to the result folder) made absolute."""
    with open(path, newline="", encoding="utf-8") as fh:
        out = list(csv.DictReader(fh, delimiter="\t"))
    if path.name == "reads.tsv":
        for r in out:
            r["file"] = os.path.normpath(path.parent / r["file"]) if r["file"] else r["file"]
    return out


def env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}


def run_cmd(args: list, cwd: Path, preexec=None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(bsmeth_cmd() + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=env(),
                          timeout=timeout, preexec_fn=preexec)


def start(args: list, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(bsmeth_cmd() + [str(a) for a in args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env())


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of the folder (hidden ones too), by name."""
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def many_reads(folder: Path, n: int) -> Path:
    """``n`` copies of the demo reads: a call that takes seconds, so that a second run meets it."""
    folder.mkdir()
    demo = sorted(DEMO.glob("seq_*.fasta"))
    for i in range(n):
        shutil.copy(demo[i % len(demo)], folder / f"r{i:04d}.fasta")
    return folder


def wait_for(cond, proc: subprocess.Popen, what: str, limit: float = 120) -> None:
    deadline = time.time() + limit
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.stderr.read()}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within {limit} s")
        time.sleep(0.02)


def staging_dirs(out: Path) -> list[Path]:
    return list(out.glob(outdir.STAGING_PREFIX + "*"))


def assert_complete_call_set(out: Path, reads: int) -> None:
    for name in TABLES:
        assert (out / name).is_file(), name
    assert len(rows(out / "reads.tsv")) == reads
    assert json.loads((out / "run.json").read_text())["counts"]["reads"] == reads
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != outdir.SET_MANIFEST], \
        "no staging folder or temporary left"


# ---------------------------------------------------------------------------------------------- one run per folder
def test_a_second_run_into_a_held_folder_exits_4_and_nothing_is_mixed(tmp_path):
    """While a run holds --out (its lock), another run (with or without --force) and `report` exit 4 at once
    and write nothing.  The holder here is this test (outdir.claim, what every run takes), so the check does
    not depend on how long a real run lasts (a call of hundreds of reads takes well under a second)."""
    out = tmp_path / "out"
    assert run_cmd(["call", GOOD, "-r", MASTER, "--out", out], tmp_path).returncode == 0
    before = snapshot(out)
    with outdir.claim(out):
        for args in (["call", GOOD, "-r", MASTER, "--out", out], ["call", GOOD, "-r", MASTER, "--out", out, "--force"],
                     ["report", out]):
            b = run_cmd(args, tmp_path)
            assert b.returncode == 4, (args, b.stderr)
            assert "another bsmeth run is writing into this folder" in b.stderr and "Traceback" not in b.stderr
            assert len(b.stderr.strip().splitlines()) == 1
    assert snapshot(out) == before, "nothing of the refused runs"


def test_two_runs_started_together_one_succeeds_the_other_exits_4(tmp_path):
    """Whatever the timing: the first to claim the folder writes it; the other meets either the lock or the
    finished results (no --force), and exits 4.  The result set is the winner's, whole."""
    reads = many_reads(tmp_path / "reads", 60)
    out = tmp_path / "out"
    a = start(["call", reads, "-r", MASTER, "--out", out, "-j", "1"], tmp_path)
    b = start(["call", GOOD, DEMO / "seq_C.fasta", "-r", MASTER, "--out", out, "-j", "1"], tmp_path)
    codes = sorted([a.wait(timeout=300), b.wait(timeout=300)])
    assert codes == [0, 4], (codes, a.stderr.read(), b.stderr.read())
    n = len(rows(out / "reads.tsv"))
    assert n in (60, 2)
    assert_complete_call_set(out, n)
    files = {r["file"] for r in rows(out / "reads.tsv")}
    assert files == ({str(p) for p in reads.iterdir()} if n == 60 else {str(GOOD), str(DEMO / "seq_C.fasta")})


# ---------------------------------------------------------------------------------------------- --force
def test_force_replaces_the_whole_set_and_keeps_other_files(tmp_path):
    """Figures, statistics and report of an earlier `run` go with --force; the user's files and a quantify set stay."""
    out = tmp_path / "out"
    assert run_cmd(["call", GOOD, "-r", MASTER, "--out", out], tmp_path).returncode == 0
    stale = ["report.html", "stats.tsv", "lollipop.png", "lollipop.svg", "dose_response.pdf"]
    for name in stale:
        (out / name).write_text("from an earlier run\n")
    mine = {"notes.txt": b"my notes\n", "quantify.tsv": b"a quantify set\n", "quantify.json": b"{}\n"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    p = run_cmd(["call", DEMO / "seq_C.fasta", "-r", MASTER, "--out", out], tmp_path)
    assert p.returncode == 4 and "already holds results" in p.stderr
    p = run_cmd(["call", DEMO / "seq_C.fasta", "-r", MASTER, "--out", out, "--force"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert [r["read"] for r in rows(out / "reads.tsv")] == ["seq_C"]
    assert not [n for n in stale if (out / n).exists()], "no stale file of the earlier set"
    assert {n: (out / n).read_bytes() for n in mine} == mine
    from bsmeth.readsbam import output_names

    assert names(out) == sorted([*TABLES, *output_names(), *mine])


# ---------------------------------------------------------------------------------------- failures keep the old set


def test_an_interrupt_lost_while_aligning_stops_the_run_at_the_next_file(tmp_path, capsys, monkeypatch):
    """A Ctrl-C landing in a finaliser (the aligner's results are freed by ``__del__`` for every read) loses its
    KeyboardInterrupt; the noted signal stops the loop over files at the next one (FASTA files: one a chunk of
    ``process_files``), instead of after them all."""
    from bsmeth import pipeline
    from bsmeth.cli import _on_interrupt

    seen = []
    real = pipeline.process_files

    def process_then_lose_an_interrupt(*args, **kwargs):
        seen.append(args[0])
        result = real(*args, **kwargs)
        try:
            _on_interrupt(signal.SIGINT, None)
        except KeyboardInterrupt:
            pass  # dropped, as Python drops it in __del__
        return result

    monkeypatch.setattr(pipeline, "process_files", process_then_lose_an_interrupt)  # a file a call (FASTA)
    inputs = [str(p) for p in sorted(DEMO.glob("seq_*.fasta"))]
    assert len(inputs) > 2
    with pytest.raises(SystemExit) as e:
        main(["call", *inputs, "-r", str(MASTER), "--out", str(tmp_path / "out"), "--threads", "1"])
    assert e.value.code == 130 and "interrupted" in capsys.readouterr().err
    assert len(seen) == 1  # the next file was not started
    assert not (tmp_path / "out" / "reads.tsv").exists()


def test_an_interrupt_python_dropped_still_keeps_the_previous_results(tmp_path, capsys, monkeypatch):
    """Python drops an exception raised in some callbacks (an at-fork hook while a worker is forked), so the
    KeyboardInterrupt of a Ctrl-C/SIGTERM can be lost; the handler notes the signal first, and the result set is
    not published: exit 130, the previous results untouched, no staging folder left."""
    from bsmeth import pipeline

    out = tmp_path / "out"
    assert run_cmd(["call", GOOD, "-r", MASTER, "--out", out], tmp_path).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = pipeline.write_outputs

    def write_then_signal(*args, **kwargs):  # the signal arrives, its exception is swallowed
        result = real(*args, **kwargs)
        try:
            from bsmeth.cli import _on_interrupt

            _on_interrupt(signal.SIGTERM, None)
        except KeyboardInterrupt:
            pass
        return result

    monkeypatch.setattr(pipeline, "write_outputs", write_then_signal)
    with pytest.raises(SystemExit) as e:
        main(["call", str(DEMO / "seq_C.fasta"), "-r", str(MASTER), "--out", str(out), "--force"])
    assert e.value.code == 130 and "interrupted" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.setattr(pipeline, "write_outputs", real)
    # the next run in this process is not held back by the old signal
    main(["call", str(DEMO / "seq_C.fasta"), "-r", str(MASTER), "--out", str(out), "--force"])
    assert [r["read"] for r in rows(out / "reads.tsv")] == ["seq_C"]
def test_file_size_limit_exits_4_and_keeps_the_previous_results(tmp_path):
    """EFBIG for real (ulimit -f): one line, exit 4, the previous results byte for byte, no leftovers."""
    out = tmp_path / "out"
    assert run_cmd(["call", GOOD, "-r", MASTER, "--out", out], tmp_path).returncode == 0
    before = snapshot(out)

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))  # cpg_calls.tsv of 3 reads is larger

    p = run_cmd(["call", GOOD, DEMO / "seq_C.fasta", DEMO / "seq_E.fasta", "-r", MASTER, "--out", out, "--force",
                 "-j", "1"], tmp_path, preexec=small_files)
    assert p.returncode == 4, p.stderr
    line = p.stderr.strip().splitlines()[-1]  # (a warning before it: three files, three samples of one read)
    assert line.startswith("bsmeth: error: ") and "File too large" in line and "Traceback" not in p.stderr
    assert STAGING_NAME not in line and line.startswith(f"bsmeth: error: {out}/"), "the file as the user knows it"
    assert snapshot(out) == before
    from bsmeth.readsbam import output_names

    assert names(out) == sorted([*TABLES, *output_names()])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EDQUOT])
def test_os_write_errors_exit_4_and_keep_the_previous_results(tmp_path, capsys, monkeypatch, code):
    out = tmp_path / "out"
    assert main_code(["call", GOOD, "-r", MASTER, "--out", out], capsys)[0] == 0
    before = snapshot(out)
    real = os.fdopen

    class Failing:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

        def write(self, data):
            raise OSError(code, os.strerror(code))

    def fdopen(fd, mode="r", *args, **kwargs):  # the atomic writer's handles fail; reading files goes on
        fh = real(fd, mode, *args, **kwargs)
        return Failing(fh) if "w" in mode else fh

    monkeypatch.setattr(atomic_mod.os, "fdopen", fdopen)
    got, err = main_code(["call", GOOD, DEMO / "seq_C.fasta", "-r", MASTER, "--out", out, "--force"], capsys)
    assert got == 4, err
    assert err.startswith("bsmeth: error: ") and os.strerror(code) in err and err.count("\n") == 1
    assert snapshot(out) == before


def test_os_error_outside_the_atomic_writer_is_exit_4(tmp_path, capsys, monkeypatch):
    """An OSError of the write-error class from any stage (here: the staging folder cannot be made on a
    read-only file system) is exit 4 with one line, never 'internal error'."""
    def read_only(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "out"))

    monkeypatch.setattr(outdir.tempfile, "mkdtemp", read_only)
    got, err = main_code(["call", GOOD, "-r", MASTER, "--out", tmp_path / "out"], capsys)
    assert got == 4 and "Read-only file system" in err and err.count("\n") == 1

    from bsmeth import pipeline

    monkeypatch.undo()

    def disk_full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "somewhere.png")

    monkeypatch.setattr(pipeline, "write_outputs", disk_full)
    got, err = main_code(["call", GOOD, "-r", MASTER, "--out", tmp_path / "out2"], capsys)
    assert got == 4 and err == "bsmeth: error: somewhere.png: cannot write (No space left on device)\n"


def main_code(args: list, capsys) -> tuple[int, str]:
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


def test_a_killed_run_leaves_the_previous_results_and_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "out"
    assert run_cmd(["call", GOOD, "-r", MASTER, "--out", out], tmp_path).returncode == 0
    (out / ".reads.tsv.k1ll3d00.tmp").write_text("half a table from a killed writer")
    (out / ".my_own.tmp").write_text("not bsmeth's")
    before = {n: (out / n).read_bytes() for n in TABLES}
    reads = many_reads(tmp_path / "reads", 300)
    a = start(["call", reads, "-r", MASTER, "--out", out, "--force", "-j", "1"], tmp_path)
    wait_for(lambda: staging_dirs(out), a, "the staging folder")
    a.kill()
    a.wait(timeout=60)
    assert {n: (out / n).read_bytes() for n in TABLES} == before, "the previous results are untouched"
    assert staging_dirs(out), "the killed run's staging folder is there (the next run removes it)"
    p = run_cmd(["call", GOOD, "-r", MASTER, "--out", out], tmp_path)  # without --force: refused, but cleans
    assert p.returncode == 4 and "already holds results" in p.stderr
    assert not staging_dirs(out) and not (out / ".reads.tsv.k1ll3d00.tmp").exists()
    assert (out / ".my_own.tmp").exists(), "only bsmeth's temporaries are removed"
    assert {n: (out / n).read_bytes() for n in TABLES} == before


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the worker processes")
def test_workers_die_with_a_killed_run(tmp_path):
    """After SIGKILL of `bsmeth run`, its forked figure worker (and any alignment worker) is gone within seconds,
    so nothing keeps writing into the folder; the next command cleans the staging folder."""
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    proc = start(["run", root / "example_reads", "--samples", root / "example_reads" / "samples.csv", "--out", out,
                  "-j", "2"], tmp_path)
    wait_for(lambda: list(out.glob(".bsmeth-staging-*/*/run.json")) and children(proc.pid), proc,
             "the figure worker")
    workers = children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.time() + 30
    while [w for w in workers if alive(w)] and time.time() < deadline:
        time.sleep(0.1)
    assert not [w for w in workers if alive(w)], "a worker outlived the killed run"
    p = run_cmd(["report", out], tmp_path)  # takes the folder: cleans up; there is no complete set to report on
    assert p.returncode == 3 and "run.json: missing" in p.stderr
    assert list(out.iterdir()) == []


def children(pid: int) -> list[int]:
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat_file.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ---------------------------------------------------------------------------------------------- the swap, in process
def make_set(folder: Path, tag: str, names=TABLES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_text(f"{tag} {n}\n")


@pytest.mark.parametrize("kill_after", range(0, 18))
def test_a_swap_killed_at_any_rename_is_finished_by_the_next_claim(tmp_path, monkeypatch, kill_after):
    """The swap only renames, guided by the manifest: stopped after any number of renames, the next claim
    ends with exactly the new set (never a marker beside a mixed set, never the old set half-replaced)."""
    out = tmp_path / "out"
    make_set(out, "old", TABLES + ("report.html", "lollipop.png"))
    (out / "notes.txt").write_text("mine\n")
    staging_root = out / (outdir.STAGING_PREFIX + "x")
    new = staging_root / "out"
    make_set(new, "new")
    staging = outdir.Staging(out, staging_root, new, outdir.CALL)
    real, calls = os.replace, []

    def replace(a, b):  # every rename counts, the manifest's and the staging folder's too
        if len(calls) >= kill_after:
            raise KeyboardInterrupt  # the kill
        calls.append((a, b))
        real(a, b)

    monkeypatch.setattr(outdir.os, "replace", replace)
    try:
        outdir.commit(staging)
        finished = True
    except KeyboardInterrupt:
        finished = False
        # what a reader sees meanwhile: a marker only next to a whole set
        if (out / "run.json").exists():
            text = {(out / n).read_text().split()[0] for n in TABLES if (out / n).exists()}
            assert len(text) == 1 and all((out / n).exists() for n in TABLES)
    ready = finished or (out / outdir.READY).is_dir()  # killed before that: the new set never became whole
    monkeypatch.undo()
    with outdir.claim(out):
        pass
    if ready:
        assert names(out) == sorted([*TABLES, "notes.txt"]), (kill_after, finished)
        assert {(out / n).read_text() for n in TABLES} == {f"new {n}\n" for n in TABLES}
    else:
        assert names(out) == sorted([*TABLES, "report.html", "lollipop.png", "notes.txt"])
        assert {(out / n).read_text() for n in TABLES} == {f"old {n}\n" for n in TABLES}


def test_recover_removes_only_bsmeth_temporaries(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in (".reads.tsv.abcdefgh.tmp", ".lollipop.png.a1b2c3d4.tmp", ".quantify.json.zzzzzzzz.tmp"):
        (out / name).write_text("x")
    keep = [".notes.txt.abcdefgh.tmp", ".reads.tsv.tmp", "reads.tsv.abcdefgh.tmp", ".bsmeth-mine"]
    for name in keep:
        (out / name).write_text("x")
    (out / (outdir.STAGING_PREFIX + "old")).mkdir()
    with outdir.claim(out):
        pass
    assert names(out) == sorted(keep)


def test_claim_refuses_a_file_and_an_uncreatable_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        with outdir.claim(f):
            pass
    with pytest.raises(OutputError, match="cannot create the folder"):
        with outdir.claim(f / "sub"):
            pass


def test_new_set_is_not_swapped_in_when_the_block_fails(tmp_path):
    out = tmp_path / "out"
    make_set(out, "old")
    with pytest.raises(ZeroDivisionError):
        with outdir.new_result_set(out, outdir.CALL, force=True) as staging:
            make_set(staging.path, "new")
            _ = 1 / 0  # the block fails
    assert {(out / n).read_text() for n in TABLES} == {f"old {n}\n" for n in TABLES}
    assert names(out) == sorted(TABLES)


def test_threads_beyond_the_cpus_are_capped_with_a_note(tmp_path):
    p = run_cmd(["call", GOOD, "-r", MASTER, "--out", tmp_path / "out", "--threads", "256"], tmp_path)
    assert p.returncode == 0, p.stderr
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert f"bsmeth: note: --threads 256 capped at {cpus}, the CPUs available to this run" in p.stderr
    if sys.platform.startswith("linux"):
        assert json.loads((tmp_path / "out" / "run.json").read_text())["parameters"]["threads"] == cpus
