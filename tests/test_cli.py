"""The command line: click runner for options and errors, plus real subprocess runs of the installed command."""

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from command import bsmeth_cmd, interruptible

from bsmeth.cli import cli, main


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_help_lists_commands():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0
    for cmd in ("call", "reference"):
        assert cmd in r.output


@pytest.mark.parametrize("command", ["call", "run"])
def test_the_inputs_are_listed_once(tmp_path, monkeypatch, command):
    """``call`` and ``run`` look at the inputs to choose the engine, then run on them: one listing of a folder
    (``reads.listings_kept``), and none kept after the command."""
    from bsmeth import reads

    root = Path(__file__).resolve().parents[1] / "example_reads"
    plate = tmp_path / "plate"
    plate.mkdir()
    for f in sorted(root.rglob("*.ab1"))[:3]:
        (plate / f.name).write_bytes(f.read_bytes())
    walks = []
    real = reads._walk
    monkeypatch.setattr(reads, "_walk", lambda *a: walks.append(a[0]) or real(*a))
    extra = ["--export", "none", "--formats", "svg"] if command == "run" else []
    r = CliRunner().invoke(cli, [command, str(plate), "--out", str(tmp_path / "out"), *extra])
    assert r.exit_code == 0, r.output
    assert walks == [str(plate)]
    assert reads._KEPT is None


def test_reference_show_default_amplicon():
    r = CliRunner().invoke(cli, ["reference", "show"])
    assert r.exit_code == 0, r.output
    assert "226 bp" in r.output
    assert "27 in the amplicon, 25 assessable" in r.output
    lines = [ln.split("\t") for ln in r.output.splitlines() if ln[:1].isdigit()]
    assert len(lines) == 27
    # the CpG under the forward primer's 5' base; hg19 minus-strand C (SOURCE.md: index 36 = chr7:45,961,127)
    assert lines[0] == ["1", "37", "1", "chr7", "45961127", "-", "yes", ""]
    assert lines[5][7] == "rs2854744"
    assert "hg19 chr7:45960902-45961127" in r.output


def test_reference_show_whole_record(biq):
    r = CliRunner().invoke(cli, ["reference", "show", "--reference", str(biq["reference"])])
    assert r.exit_code == 0
    assert "whole record" in r.output and "35 in the amplicon, 35 assessable" in r.output


def test_reference_primer_not_binding_is_one_line(biq, capsys):
    with pytest.raises(SystemExit) as e:
        main(["reference", "show", "--reference", str(biq["reference"]), "--forward", "ACGTACGTACGTACGTAC",
              "--reverse", "GGGGGGGGGGGGGGGGGG"])
    assert e.value.code == 3
    err = capsys.readouterr().err
    assert err.startswith("bsmeth: error: the primer pair does not amplify this reference: forward primer "
                          "'ACGTACGTACGTACGTAC'") and err.count("\n") == 1
    assert "Traceback" not in err


def test_call_biq(tmp_path, biq):
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["call", str(biq["reads"]), "--reference", str(biq["reference"]), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "10 reads in 1 samples: 5 pass" in r.output
    for name in ("reads.tsv", "cpg_calls.tsv", "summary.tsv", "samples.tsv", "alignments.txt", "run.json"):
        assert (out / name).is_file()
    meta = json.loads((out / "run.json").read_text())
    assert meta["counts"] == {"reads": 10, "pass": 5, "fail": 5,
                              "by_reason": {"duplicate": 1, "low_conversion": 2, "low_identity": 2}}
    assert meta["parameters"]["min_conversion_pct"] == 95  # in the units of the option (--min-conversion 95)
    assert len(rows(out / "cpg_calls.tsv")) == 10 * 35  # every read aligned (some then fail QC) x 35 CpGs
    assert not list(out.glob(".*tmp"))


def test_call_refuses_to_overwrite_without_force(tmp_path, biq):
    out = tmp_path / "out"
    args = ["call", str(biq["reads"]), "--reference", str(biq["reference"]), "--out", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 4
    main(["-q"] + args + ["--force"])  # returns normally: exit code 0
    assert (out / "run.json").is_file()


def test_thresholds_are_options(tmp_path, biq):
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["call", str(biq["reads"]), "--reference", str(biq["reference"]), "--out", str(out),
                                 "--min-conversion", "85", "--min-identity", "70", "--keep-duplicates"])
    assert r.exit_code == 0
    status = {x["read"]: x["status"] for x in rows(out / "reads.tsv")}
    assert all(v == "pass" for v in status.values())


def test_installed_command_subprocess(tmp_path, gm9):
    out = tmp_path / "gm9"
    p = subprocess.run(bsmeth_cmd() + ["call", str(gm9["j1"]), str(gm9["ko"]), "--reference", str(gm9["reference"]),
                                       "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    samples = {r["sample"]: r for r in rows(out / "samples.tsv")}
    assert float(samples["Gm9_J1_multi_fasta"]["methylation_pct"]) > 60
    assert float(samples["Gm9_16aabb_multi_fasta"]["methylation_pct"]) < 35


def test_missing_input_subprocess_no_traceback(tmp_path):
    p = subprocess.run(bsmeth_cmd() + ["call", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 3
    assert p.stderr.startswith("bsmeth: error:") and "Traceback" not in p.stderr
    assert not (tmp_path / "o").exists()


def test_debug_shows_traceback(tmp_path):
    p = subprocess.run(bsmeth_cmd() + ["--debug", "call", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "Traceback" in p.stderr


def _many_reads(path: Path, biq_reads: Path, copies: int) -> None:
    text = biq_reads.read_text()
    with open(path, "w") as fh:
        for i in range(copies):
            fh.write(text.replace(">", f">c{i}_"))


@pytest.mark.parametrize("sig,threads", [(signal.SIGINT, "1"), (signal.SIGTERM, "1"), (signal.SIGINT, "2"),
                                         (signal.SIGTERM, "2")])
def test_interrupt_leaves_previous_outputs_intact(tmp_path, biq, sig, threads):
    out = tmp_path / "out"
    first = subprocess.run(bsmeth_cmd() + ["call", str(biq["reads"]), "--reference", str(biq["reference"]),
                                           "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for i in range(40):  # 40 files x 5,000 reads: many seconds of alignment, spread over the workers
        _many_reads(tmp_path / f"big{i}.fasta", biq["reads"], 500)
    proc = subprocess.Popen(bsmeth_cmd() + ["call", *map(str, sorted(tmp_path.glob("big*.fasta"))), "--reference",
                                            str(biq["reference"]), "--out", str(out), "--force", "-j", threads],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    time.sleep(2.5)
    assert proc.poll() is None, "the run ended before the signal: make the input larger"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # the previous complete outputs, untouched; no temp files


def test_help_imports_no_heavy_library():
    """`bsmeth --help` must be instant: pandas, matplotlib, scipy and Biopython load only where used."""
    code = ("import sys; from bsmeth.cli import cli; "
            "print(','.join(m for m in ('pandas', 'matplotlib', 'scipy', 'Bio') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "", p.stdout


def test_readme_main_command_on_example_reads(tmp_path):
    """The README's first command (after its install step), on the committed example reads."""
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "results"
    p = subprocess.run(bsmeth_cmd() + ["run", str(root / "example_reads"), "--samples",
                                       str(root / "example_reads" / "samples.csv"), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    for name in ("reads.tsv", "cpg_calls.tsv", "summary.tsv", "run.json", "stats.tsv", "report.html",
                 "lollipop.svg", "lollipop.png", "lollipop.pdf", "dose_response.png"):
        assert (out / name).stat().st_size > 0, name
    reads = rows(out / "reads.tsv")
    assert len(reads) == 96
    samples = {r["sample"]: float(r["methylation_pct"]) for r in rows(out / "samples.tsv")}
    # resistant cells more methylated, rising with dose; sensitive cells low
    assert samples["rBT474_d0"] < samples["rBT474_d1"] < samples["rBT474_d3"] < samples["rBT474_d10"]
    assert max(v for k, v in samples.items() if k.startswith("BT474")) < 15
    stats = rows(out / "stats.tsv")
    trend = {r["scope"]: float(r["p"]) for r in stats if r["test"].startswith("trend_jt")}
    assert any(p < 0.001 for s, p in trend.items() if "rBT474" in s)
    # the allele split at rs2854744 and the heterogeneity table (issue 15), in stats, heterogeneity.tsv and report
    assert len([r for r in stats if r["test"] == "asm_perm_clones" and r["groups"].startswith("rs2854744=")]) == 8
    assert {r["metric"] for r in rows(out / "heterogeneity.tsv")} == {"epipolymorphism", "entropy", "pdr", "mhl"}
    report = (out / "report.html").read_text()
    assert 'id="alleles-rs2854744"' in report and 'id="heterogeneity"' in report


def test_plot_compare_report_on_a_call_folder(tmp_path, biq):
    out = tmp_path / "out"
    runner = CliRunner()
    assert runner.invoke(cli, ["call", str(biq["dir"] / "Demo_data"), "--reference", str(biq["reference"]),
                               "--out", str(out)]).exit_code == 0
    r = runner.invoke(cli, ["plot", str(out), "--formats", "png", "--layout", "proportional"])
    assert r.exit_code == 0, r.output
    assert (out / "lollipop.png").is_file() and not (out / "lollipop.svg").exists()
    r = runner.invoke(cli, ["compare", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "stats.tsv").is_file()
    r = runner.invoke(cli, ["report", str(out)])
    assert r.exit_code == 0, r.output
    html = (out / "report.html").read_text()
    assert "seq_B" in html and "<img" in html


def test_plot_unknown_column_is_one_line(tmp_path, biq):
    out = tmp_path / "out"
    CliRunner().invoke(cli, ["call", str(biq["reads"]), "--reference", str(biq["reference"]), "--out", str(out)])
    r = CliRunner().invoke(cli, ["plot", str(out), "--rows", "nonexistent"])
    assert r.exit_code == 3
    assert "bsmeth: error:" in r.output and "nonexistent" in r.output


class _FakeTTY:
    def __init__(self, tty: bool):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, s):
        self.text += s

    def flush(self):
        pass


@pytest.mark.parametrize("tty,enabled,shown", [(True, True, True), (False, True, False), (True, False, False)])
def test_progress_bar_only_on_a_terminal_and_not_quiet(monkeypatch, tty, enabled, shown):
    from bsmeth import cli as cli_mod

    fake = _FakeTTY(tty)
    monkeypatch.setattr(cli_mod.sys, "stderr", fake)
    bar = cli_mod.Progress("aligning files", enabled)
    bar.t0 -= 5  # the run has lasted more than a second
    bar(3, 10)
    bar(10, 10)
    assert ("aligning files" in fake.text and "10/10" in fake.text) == shown


def test_progress_bar_hidden_for_short_runs(monkeypatch):
    from bsmeth import cli as cli_mod

    fake = _FakeTTY(True)
    monkeypatch.setattr(cli_mod.sys, "stderr", fake)
    bar = cli_mod.Progress("aligning files", True)
    bar(1, 2)  # well under a second since it started
    assert fake.text == ""


def test_verbose_logs_every_excluded_read(tmp_path, biq):
    p = subprocess.run(bsmeth_cmd() + ["-v", "call", str(biq["reads"]), "--reference", str(biq["reference"]),
                                       "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    logged = [ln for ln in p.stderr.splitlines() if ln.startswith("bsmeth: ")]
    for read, reason in (("seqA", "low_identity"), ("seq_D", "low_conversion"), ("seq_G", "duplicate")):
        assert any(read in ln and reason in ln for ln in logged), (read, p.stderr)


def test_simulate_direct_then_quantify(tmp_path):
    """The direct-sequencing path from the command line: simulated uncloned product at known levels."""
    runner = CliRunner()
    r = runner.invoke(cli, ["simulate", "--direct", "--out", str(tmp_path / "d"), "--seed", "5"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d" / "truth_direct.tsv").is_file()
    r = runner.invoke(cli, ["quantify", str(tmp_path / "d"), "--samples", str(tmp_path / "d" / "samples.csv"),
                            "--out", str(tmp_path / "q"), "--formats", "png"])
    assert r.exit_code == 0, r.output
    est: dict[str, list[float]] = {}
    for row in rows(tmp_path / "q" / "quantify.tsv"):
        if row["percent"]:
            est.setdefault(row["sample"], []).append(float(row["percent"]))
    mean = {s: sum(v) / len(v) for s, v in est.items()}
    assert mean["direct_000"] < 10
    assert 40 < mean["direct_050"] < 60
    assert mean["direct_100"] > 90


def test_simulate_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x")
    r = CliRunner().invoke(cli, ["simulate", "--out", str(tmp_path / "d")])
    assert r.exit_code == 4 and "--force" in r.output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_during_figures_leaves_no_temp_files(tmp_path, sig):
    """`run` interrupted after its tables, while the figures and statistics are made in two processes: the
    new result set was never complete, so the folder is as before the run (here: empty), without leftovers."""
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "results"
    proc = subprocess.Popen(bsmeth_cmd() + ["run", str(root / "example_reads"), "--samples",
                                            str(root / "example_reads" / "samples.csv"), "--out", str(out), "-j", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    deadline = time.time() + 60
    while not list(out.glob(".bsmeth-staging-*/*/run.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the figures and statistics, about a second after run.json
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(out.iterdir()) == []  # no table of the unfinished set, no staging folder, no temp file


def _commands(group, prefix=()):
    import click

    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_help_shows_an_example():
    runner = CliRunner()
    names = [()] + [path for path, _ in _commands(cli)]
    assert ("reference", "show") in names and ("run",) in names
    for path in names:
        r = runner.invoke(cli, [*path, "--help"])
        assert r.exit_code == 0, path
        assert "Examples:" in r.output, path
        example = r.output.split("Examples:", 1)[1]
        assert "bsmeth " + " ".join(path) in example, path


def test_snp_is_quoted_wherever_it_is_shown():
    """Unquoted, `--snp 89:C>A` makes the shell write a file named A."""
    root = Path(__file__).resolve().parents[1]
    r = CliRunner().invoke(cli, ["call", "--help"])
    assert "'89:C>A'" in r.output
    for text in (r.output, (root / "README.md").read_text(), (root / "docs" / "simulate.md").read_text()):
        for m in re.finditer(r"--snp ([^\s`]+)", text):
            value = m.group(1)
            assert not (">" in value and not value.startswith(("'", '"'))), value


def test_simulate_help_points_to_a_document_that_exists():
    root = Path(__file__).resolve().parents[1]
    r = CliRunner().invoke(cli, ["simulate", "--help"])
    assert "docs/simulate.md" in r.output
    doc = (root / "docs" / "simulate.md").read_text()
    for key in ("conditions", "n_clones", "methylation", "faults", "poor_conversion", "read_length"):
        assert key in doc


def test_report_offers_only_options_that_change_the_report():
    r = CliRunner().invoke(cli, ["report", "--help"])
    assert "--formats" not in r.output and "--dpi" not in r.output
    for opt in ("--rows", "--layout", "--width-mm", "--by", "stats.tsv"):
        assert opt in r.output, opt


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_before_or_after_the_command(tmp_path, biq, where):
    args = ["call", str(biq["reads"]), "--reference", str(biq["reference"]), "--out", str(tmp_path / "o")]
    cmd = bsmeth_cmd() + (["-v", *args] if where == "before" else [*args, "-v"])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert any("seq_D" in ln and "low_conversion" in ln for ln in p.stderr.splitlines())
    r = CliRunner().invoke(cli, ["plot", str(tmp_path / "o"), "--formats", "svg", "-q"])
    assert r.exit_code == 0 and r.output == ""
    r = CliRunner().invoke(cli, ["plot", str(tmp_path / "o"), "--formats", "svg"])
    assert "lollipop.svg" in r.output


def test_debug_after_the_command_shows_the_traceback(tmp_path):
    p = subprocess.run(bsmeth_cmd() + ["reference", "show", "--reference", str(tmp_path / "missing.fa"), "--debug"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "Traceback" in p.stderr
    p = subprocess.run(bsmeth_cmd() + ["reference", "show", "--reference", str(tmp_path / "missing.fa")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and "Traceback" not in p.stderr


def test_plot_width_and_format_options(tmp_path, biq):
    out = tmp_path / "out"
    runner = CliRunner()
    runner.invoke(cli, ["call", str(biq["reads"]), "--reference", str(biq["reference"]), "--out", str(out)])
    r = runner.invoke(cli, ["plot", str(out), "--width", "single", "--formats", "tiff,svg", "--dpi", "150",
                            "--layout", "position"])
    assert r.exit_code == 0, r.output
    assert (out / "lollipop.tiff").is_file() and (out / "lollipop.svg").is_file() and (out / "lollipop.tsv").is_file()
    assert 'width="252.28pt"' in (out / "lollipop.svg").read_text()  # 89 mm
    r = runner.invoke(cli, ["plot", str(out), "--width-mm", "12"])
    assert r.exit_code == 2 and "width" in r.output  # a usage error, like every option out of range
    r = runner.invoke(cli, ["plot", str(out), "--width-mm", "wide"])
    assert r.exit_code == 2 and "single" in r.output
