"""run_downstream: figures, statistics, report and exports of a call folder, in one process and in two."""

import os
import signal
from pathlib import Path

import pytest
from sigterm import sigterm_as

from bsmeth.downstream import run_downstream
from bsmeth.figures.plots import PlotConfig
from bsmeth.models import CallConfig
from bsmeth.pipeline import run_call
from bsmeth.reference import load_amplicon
from bsmeth.stats import CompareConfig


def _downstream_dir(tmp_path: Path, name: str) -> Path:
    from callfixtures import dose_design

    effect = {("BT474", d): 0.1 for d in (0, 1, 3, 10)} | {("rBT474", d): 0.2 + 0.06 * d for d in (0, 1, 3, 10)}
    return dose_design(tmp_path / name / "call", effect, n_clones=8, under_primer=(1,), snp_cpg=6)


def _call_dir(folder: Path) -> Path:
    """A real call folder (what the exports need): 24 of the example traces, three per sample."""
    root = Path(__file__).resolve().parents[1]
    traces = [str(p) for d in sorted((root / "example_reads").iterdir()) if d.is_dir()
              for p in sorted(d.glob("*.ab1"))[:3]]
    sheet = str(root / "example_reads" / "samples.csv")
    run_call(traces, load_amplicon(), folder / "call", CallConfig(threads=1), sheet)
    return folder / "call"


def test_downstream_in_two_processes_writes_the_same_files(tmp_path):
    """With two processes the figure process writes the figures, the trace snippets and the report while this
    one writes the statistics and the exports: the files must not depend on that split."""
    one, two = _call_dir(tmp_path / "one"), _call_dir(tmp_path / "two")
    exports = ("bedmethyl", "methylkit", "xlsx", "igv")
    out1 = run_downstream(one, PlotConfig(), CompareConfig(), processes=1, exports=exports)
    out2 = run_downstream(two, PlotConfig(), CompareConfig(), processes=2, exports=exports)
    assert [p.name for p in out1] == [p.name for p in out2]
    assert {"lollipop.png", "dose_response.pdf", "lollipop.tsv", "stats.tsv", "report.html",
            "results.xlsx"} <= {p.name for p in out1}
    for a, b in zip(out1, out2):
        if a.suffix == ".xlsx":  # a zip: compare what it holds
            import openpyxl

            wa, wb = openpyxl.load_workbook(a), openpyxl.load_workbook(b)
            assert wa.sheetnames == wb.sheetnames
            for name in wa.sheetnames:
                assert list(wa[name].values) == list(wb[name].values), name
            continue
        # the report (and the IGV session) quote run.json's command or paths, which name the fixture's folder
        assert a.read_bytes().replace(b"/one/", b"/two/") == b.read_bytes(), a.name
    for folder in (one, two):
        assert sorted(p.name for p in (folder / "bedmethyl").iterdir()) != []
    assert not [p for p in two.iterdir() if p.name.endswith(".tmp")]


def test_errors_of_either_half_reach_the_caller(tmp_path, monkeypatch):
    from bsmeth import report, stats
    from bsmeth.errors import InputError

    d = _downstream_dir(tmp_path, "bad")
    with pytest.raises(InputError, match="treatment"):  # raised by the statistics, in this process
        run_downstream(d, PlotConfig(), CompareConfig(by="treatment"), processes=2)

    def fails(*args, **kwargs):
        raise InputError("the report failed")

    monkeypatch.setattr(report, "save_report", fails)  # inherited by the forked figure process, which raises
    with pytest.raises(InputError, match="the report failed") as info:
        run_downstream(d, PlotConfig(), CompareConfig(), processes=2)
    assert "in the figure process" in "".join(getattr(info.value, "__notes__", []))
    monkeypatch.setattr(stats, "write_stats", lambda *a, **k: fails())  # this process's half fails
    with pytest.raises(InputError, match="the report failed"):
        run_downstream(d, PlotConfig(), CompareConfig(), processes=2)


def test_figure_process_death_is_an_error_not_a_hang(tmp_path, monkeypatch):
    from bsmeth import report

    d = _downstream_dir(tmp_path, "dies")
    # inherited by the forked figure process (it draws the snippets), which then dies as if killed by the system
    monkeypatch.setattr(report, "trace_section", lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(ChildProcessError, match="figure process stopped unexpectedly"):
        run_downstream(d, PlotConfig(), CompareConfig(), processes=2)


def test_figure_process_forked_before_the_call_waits_then_draws(tmp_path, monkeypatch):
    """``run``'s order: the figure process is forked first (it imports while the reads are aligned), told the
    folder only once the call is written; unused, it is stopped without a trace."""
    from bsmeth import downstream

    with downstream.figure_process(2) as early:
        assert early is not None
        d = _downstream_dir(tmp_path, "early")
        out = run_downstream(d, PlotConfig(formats=("svg",)), CompareConfig(), processes=2, figures=early)
    assert {"lollipop.svg", "stats.tsv", "report.html"} <= {p.name for p in out}
    assert not early._proc.is_alive() and early._proc.exitcode == 0
    with downstream.figure_process(2) as unused:
        assert unused is not None
    assert not unused._proc.is_alive()
    with downstream.figure_process(1) as none:
        assert none is None
    monkeypatch.setattr(downstream, "FORK_IS_SAFE", False)
    with downstream.figure_process(2) as none:
        assert none is None


def test_an_unused_figure_process_stops_with_sigterm_ignored_here():
    """Forked with SIGTERM ignored (as CI ran the tests), a figure process stopped at once misses its SIGTERM:
    closing its pipe ends it (it waited for ever on it, and its parent on it)."""
    from bsmeth import downstream

    with sigterm_as(signal.SIG_IGN):
        for _ in range(5):
            with downstream.figure_process(2) as unused:
                assert unused is not None
            assert not unused._proc.is_alive()


@pytest.mark.parametrize("processes", [1, 2])
def test_downstream_reports_progress_to_the_end(tmp_path, processes):
    seen: list = []
    out = run_downstream(_downstream_dir(tmp_path, "p"), PlotConfig(formats=("svg", "png")), CompareConfig(),
                         processes=processes, progress=lambda done, total: seen.append((done, total)))
    # 4 figure files, 2 TSVs, stats.tsv + heterogeneity.tsv (one step of two), report.html
    assert seen and seen[-1][0] == seen[-1][1] == len(out)
    assert all(total == len(out) for _, total in seen)
    steps = [b - a for a, b in zip([0] + [d for d, _ in seen], [d for d, _ in seen])]
    assert sorted(steps) == [1] * (len(out) - 2) + [2]
