"""Command-line interface: parse options, call one ``run_*`` function, print.

Top of the import graph.  Heavy libraries are imported inside commands so that
``bsmeth --help`` stays instant.  Errors of unusable input (``BsmethError``)
become one line on stderr and the exit code of their class (see ``errors``);
a traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Optional

import click

from . import __version__
from .errors import BsmethError, OutputError
from .outdir import INTERRUPT, is_write_error, note_interrupt

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _options(*opts):
    """A decorator applying a group of click options, listed in the order ``--help`` shows them."""
    def apply(f):
        for opt in reversed(opts):
            f = opt(f)
        return f

    return apply


_reference_options = _options(
    click.option("--reference", "-r", type=click.Path(dir_okay=False), metavar="FASTA",
                 help="Reference FASTA (genomic, unconverted). Default: the embedded IGFBP3 promoter "
                      "with the seed study's primers. Without primers the whole record is called."),
    click.option("--forward", metavar="SEQ", help="Forward primer, 5'->3', converted form."),
    click.option("--reverse", metavar="SEQ", help="Reverse primer, 5'->3', converted form."),
    click.option("--strand", type=click.Choice(["top", "bottom"]), default=None,
                 help="Amplified strand when no primers are given (default: top = FASTA as written)."),
    click.option("--snp", "snps", multiple=True, metavar="'POS:REF>ALT'",
                 help="Known SNP that can destroy a CpG, 1-based FASTA position, e.g. --snp '89:C>A' (quote it: "
                      "in a shell > writes to a file). Repeatable."),
    click.option("--anchor", metavar="ASSEMBLY:CHROM:START-END:STRAND",
                 help="Where the reference lies on a genome, 1-based inclusive as genome browsers show it, and "
                      "the genome strand the FASTA is written on, e.g. hg19:chr7:45960822-45961163:-. "
                      "Default for the embedded reference: that one."),
)

_panel_option = click.option(
    "--panel", type=click.Path(dir_okay=False), metavar="TSV",
    help="Several amplicons in one run: a CSV/TSV with columns amplicon, reference, forward, reverse and optional "
         "assembly, chrom, start, strand, snps (or MethAmplicons2's amplicon table); see docs/panels.md. "
         "Replaces --reference/--forward/--reverse/--snp/--anchor.")


def _amplicon(reference, forward, reverse, strand, snps, anchor=None):
    from .coords import parse_anchor
    from .models import Strand
    from .reference import load_amplicon, parse_snp

    try:
        genome = parse_anchor(anchor) if anchor else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--anchor") from None
    return load_amplicon(reference, forward, reverse, Strand(strand) if strand else None,
                         tuple(parse_snp(s) for s in snps), genome)


def _panel(kw: dict):
    """The run's panel: ``--panel``, or the one-amplicon form as a panel of one."""
    from .models import Panel

    if kw.get("panel"):
        given = [f"--{k}" for k in ("reference", "forward", "reverse", "strand", "anchor") if kw.get(k)]
        given += ["--snp"] if kw.get("snps") else []
        if given:
            raise click.UsageError(
                f"--panel names every amplicon's reference and primers: leave out {', '.join(given)}")
        from .panel import load_panel

        return load_panel(kw["panel"])
    return Panel((_amplicon(kw["reference"], kw["forward"], kw["reverse"], kw["strand"], kw["snps"],
                            kw.get("anchor")),))


class BsmethGroup(click.Group):
    """Turns unusable input into one line on stderr and its exit code, for every way the CLI is invoked."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BsmethError as e:
            if (ctx.obj or {}).get("debug"):
                raise
            click.echo(f"bsmeth: error: {e}", err=True)
            ctx.exit(e.exit_code)
        except OSError as e:  # disk full, file too large, read-only, denied: where no stage said so itself
            if (ctx.obj or {}).get("debug") or not is_write_error(e):
                raise
            from .outdir import shown_path

            where = f"{shown_path(e.filename)}: " if e.filename else ""
            click.echo(f"bsmeth: error: {where}cannot write ({e.strerror or e})", err=True)
            ctx.exit(OutputError.exit_code)


GLOBAL_HELP = {
    "debug": "Show full tracebacks on errors.",
    "quiet": "Print only errors (no progress bar, no summary).",
    "verbose": "Log every excluded read and why.",
}


def _set_global(ctx, param, value):
    """--debug, -q and -v given after the command: the same effect as before it."""
    if value:
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj[param.name] = True
        if param.name == "verbose":
            logging.getLogger("bsmeth").setLevel(logging.INFO)
    return value


def _global_options(f):
    """The group's options, accepted after the command too (``bsmeth call ... -v``)."""
    for name, short in (("debug", None), ("quiet", "-q"), ("verbose", "-v")):
        decls = [f"--{name}"] + ([short] if short else [])
        f = click.option(*decls, name, is_flag=True, expose_value=False, is_eager=True, callback=_set_global,
                         help=GLOBAL_HELP[name])(f)
    return f


def _quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and (ctx.find_root().obj or {}).get("quiet"))


def _example(*lines: str) -> str:
    """A command's --help epilog: examples, kept as written (click's \\b marker)."""
    return "\b\nExamples:\n" + "\n".join(f"  {ln}" for ln in lines)


@click.group(cls=BsmethGroup, context_settings=CONTEXT, epilog=_example(
    "bsmeth run example_reads --samples example_reads/samples.csv --out results",
    "bsmeth plot results --width double --formats pdf,tiff --dpi 600",
    "bsmeth call --help        (every command has its own help)"))
@click.version_option(__version__, prog_name="bsmeth")
@click.option("--debug", is_flag=True, help=GLOBAL_HELP["debug"] + " Also accepted after the command.")
@click.option("--quiet", "-q", is_flag=True, help=GLOBAL_HELP["quiet"] + " Also accepted after the command.")
@click.option("--verbose", "-v", is_flag=True, help=GLOBAL_HELP["verbose"] + " Also accepted after the command.")
@click.pass_context
def cli(ctx, debug, quiet, verbose):
    """Methylation of cloned bisulfite PCR products from Sanger reads."""
    ctx.ensure_object(dict)
    for key, value in (("debug", debug), ("quiet", quiet), ("verbose", verbose)):
        ctx.obj[key] = ctx.obj.get(key, False) or value
    logging.basicConfig(level=logging.WARNING, format="bsmeth: %(message)s")
    logging.getLogger("bsmeth").setLevel(logging.INFO if verbose else logging.NOTSET)


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal and only for runs longer than a second."""

    def __init__(self, label: str, enabled: bool, since: Optional[float] = None):
        """``since``: the ``time.monotonic()`` the one-second delay counts from (default: now)."""
        import time

        self.label, self.enabled, self.shown = label, enabled and sys.stderr.isatty(), False
        self.t0 = time.monotonic() if since is None else since
        self._time = time.monotonic

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or (not self.shown and self._time() - self.t0 < 1.0):
            return
        self.shown = True
        width = 30
        fill = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


# The options shared by ``call`` and ``run``: inputs, sheet, reference, thresholds.
_call_options = _options(
    click.argument("inputs", nargs=-1),
    click.option("--samples", "-s", "sheet", type=click.Path(dir_okay=False), metavar="CSV",
                 help="Sample sheet: columns file, sample and any conditions (cell_line, dose...)."),
    _reference_options,
    _panel_option,
    click.option("--out", "-o", required=True, type=click.Path(), help="Output folder."),
    click.option("--force", is_flag=True, help="Overwrite results already in --out."),
    click.option("--min-qual", default=20, show_default=True, help="PHRED below this at a CpG: not determined."),
    click.option("--min-conversion", default=95.0, show_default=True,
                 help="Exclude reads below this % non-CpG C conversion."),
    click.option("--min-identity", default=90.0, show_default=True, help="Exclude reads below this % identity."),
    click.option("--max-unconverted", type=int, default=None,
                 help="Exclude reads with more unconverted non-CpG C (QUMA: 5). Off by default."),
    click.option("--max-mismatches", type=int, default=None,
                 help="Exclude reads with more mismatches (QUMA: 10). Off by default."),
    click.option("--min-hq-bases", default=40, show_default=True,
                 help="Reads with fewer high-quality bases fail as low_quality."),
    click.option("--min-clone-coverage", default=50.0, show_default=True, metavar="PCT",
                 help="A clone counts in clone-level statistics (per-clone %) only with this % of the amplicon's "
                      "assessable CpGs called; per-CpG counts use every pass read."),
    click.option("--keep-duplicates", is_flag=True, help="Keep clonal duplicates (they are still reported)."),
    click.option("--duplicate-evidence", default=3.5, show_default=True,
                 help="Call two matching reads duplicates when an independent clone would match by chance "
                      "with probability below 10^-X (up to 12 reads per sample; raised by log10 of the "
                      "comparisons per clone beyond)."),
    click.option("--keep-mixed", is_flag=True, help="Keep reads whose trace shows two templates (flagged)."),
    click.option("--nome", is_flag=True,
                 help="GpC-methylase (NOMe) data: conversion over HCH only; GCG CpGs not called."),
    click.option("--curation", type=click.Path(dir_okay=False), metavar="TSV",
                 help="Clones excluded by hand: the curation.tsv downloaded from report.html (columns read, "
                      "decision, note); excluded reads fail as excluded_by_user."),
    click.option("--threads", "-j", default=0, type=click.IntRange(0, 256),
                 help="Worker processes (reading and aligning; figures beside statistics in `run`). "
                      "Default 0: one per available CPU, at most 8. Trace files: one process per 64 files at "
                      "most (fewer traces align faster in one process)."),
    click.option("--no-bam", is_flag=True,
                 help="Do not write reads.bam / reads.mod.bam (+ .bai) and amplicons.fa (docs/interop.md)."),
    click.option("--per-read", is_flag=True,
                 help="Amplicon FASTQ (NGS) input: also write reads.tsv and cpg_calls.tsv, one row per read pair "
                      "(large: about 2 KB per pair). Off by default: the tables hold counts and patterns."),
    click.option("--umi", is_flag=True,
                 help="Amplicon FASTQ (NGS) input: read pairs with the same UMI (read name: Illumina "
                      "'...:ACGTACGT', umi_tools '..._ACGTACGT', detected per file) on the same amplicon and strand "
                      "are one molecule, counted once by its pairs' majority call per CpG (docs/ngs.md)."),
    click.option("--umi-pattern", metavar="REGEX",
                 help="With --umi: the UMI is group 'umi' (or the first group) of this regular expression, searched "
                      "in the first word of each read name (instead of detecting the convention)."),
)


def _available_cpus(cap: int = 8) -> int:
    try:
        n = len(os.sched_getaffinity(0))  # the CPUs this process may use, not all the machine has
    except AttributeError:  # macOS, Windows
        n = os.cpu_count() or 1
    return max(1, min(cap, n))


def _threads(kw: dict) -> int:
    """--threads, or one per available CPU (at most 8); more than the CPUs available are capped, with a note."""
    if "_threads" not in kw:
        n, cpus = kw["threads"], _available_cpus(cap=1 << 16)
        if not n:
            n = min(cpus, 8)
        elif n > cpus:
            ctx = click.get_current_context(silent=True)
            if not (kw.get("quiet_here") or (ctx is not None and (ctx.find_root().obj or {}).get("quiet"))):
                click.echo(f"bsmeth: note: --threads {n} capped at {cpus}, the CPUs available to this run", err=True)
            n = cpus
        kw["_threads"] = n
    return kw["_threads"]


# the numeric options of call/run: (lowest, highest) allowed; None = no upper bound
_RANGES = {"min_qual": (0, 99), "min_conversion": (0, 100), "min_identity": (0, 100), "max_unconverted": (0, None),
           "max_mismatches": (0, None), "min_hq_bases": (0, None), "duplicate_evidence": (0, None),
           "min_clone_coverage": (0, 100)}
# options given in percent: a value in (0, 1] is a fraction typed where a percent is meant (0.95 for 95 %)
_PERCENT = ("min_conversion", "min_identity", "min_clone_coverage")


def _check_ranges(kw: dict) -> None:
    """A usage error (exit 2) for a threshold no run can mean: negative, NaN, infinite, a percent over 100."""
    import math

    for name, (low, high) in _RANGES.items():
        v = kw.get(name)
        if v is not None and (not math.isfinite(v) or v < low or (high is not None and v > high)):
            allowed = f"from {low} to {high}" if high is not None else f"a finite number >= {low}"
            raise click.BadParameter(f"{v} is not {allowed}", param_hint=f"'--{name.replace('_', '-')}'")
        if name in _PERCENT and v is not None and 0 < v <= 1:
            raise click.BadParameter(f"{v:g} looks like a fraction, but this option is a percent: did you mean "
                                     f"{100 * v:g}?", param_hint=f"'--{name.replace('_', '-')}'")


def _call_config(kw: dict):
    from .models import CallConfig

    _check_ranges(kw)
    return CallConfig(
        min_qual=kw["min_qual"], min_conversion=kw["min_conversion"] / 100, min_identity=kw["min_identity"] / 100,
        max_unconverted=kw["max_unconverted"], max_mismatches=kw["max_mismatches"],
        min_hq_bases=kw["min_hq_bases"], keep_duplicates=kw["keep_duplicates"], nome=kw["nome"],
        threads=_threads(kw), duplicate_min_evidence=kw["duplicate_evidence"],
        min_clone_coverage=kw["min_clone_coverage"] / 100,
        keep_mixed=kw["keep_mixed"], write_bam=not kw["no_bam"])


def _ngs_inputs(kw: dict) -> bool:
    """Are the inputs amplicon-sequencing FASTQ (short reads, every file FASTQ by content)?  Then the NGS
    engine (``bsmeth.ngs``) takes them; any other input goes to the clone workflow.  Answered once per command
    (``run`` asks twice; a folder of 2,000 traces takes 0.07 s to list)."""
    if "_ngs_inputs" not in kw:
        kw["_ngs_inputs"] = _look_for_ngs(kw)
    return kw["_ngs_inputs"]


def _look_for_ngs(kw: dict) -> bool:
    from .ngs.fastq import looks_like_ngs

    if kw["inputs"]:
        from .reads import collect

        paths = [f.path for f in collect(list(kw["inputs"]), warn=False)]  # the run itself warns
    elif kw["sheet"]:
        from .samples import read_sheet

        paths = list(read_sheet(kw["sheet"]).order)
    else:
        return False
    return looks_like_ngs(paths)


class NgsProgress:
    """Pairs done and the rate, on stderr, at most once a second (a terminal only, as ``Progress``)."""

    def __init__(self, enabled: bool):
        self.enabled, self.last, self.shown = enabled and sys.stderr.isatty(), 0.0, False

    def __call__(self, pairs: int, seconds: float) -> None:
        if self.enabled and seconds - self.last >= 1.0:
            self.last, self.shown = seconds, True
            sys.stderr.write(f"\rread pairs: {pairs:,} ({pairs / max(seconds, 1e-9):,.0f}/s)")
            sys.stderr.flush()

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def _do_ngs(kw: dict, panel, downstream=None):
    from .ngs.run import NgsConfig, run_ngs

    progress = NgsProgress(not _quiet())
    ngs = NgsConfig(per_read=kw["per_read"], umi=kw["umi"] or bool(kw["umi_pattern"]),
                    umi_pattern=kw["umi_pattern"])
    try:
        run = run_ngs(kw["inputs"], panel, Path(kw["out"]), _call_config(kw), kw["sheet"], command=sys.argv,
                      force=kw["force"], ngs=ngs, progress=progress,
                      downstream=downstream)
    finally:
        progress.close()
    if not _quiet():
        reasons = ", ".join(f"{k} {v}" for k, v in run.reasons().items()) or "none"
        unit = " molecules (UMI families)" if run.tally.umi else ""
        click.echo(f"{run.n_pairs} read pairs in {len(run.samples)} samples: {run.n_pass}{unit} pass, "
                   f"{run.n_pairs - run.n_pass} fail ({reasons}); {run.seconds:.1f} s")
    return run


def _do_call(ctx, kw: dict, meanwhile=None, downstream=None):
    """Run ``call`` from parsed options; prints the summary unless quiet.  Returns the CallRun (an NgsRun for
    amplicon FASTQ input)."""
    from .pipeline import run_call

    panel = _panel(kw)
    quiet = _quiet()
    for amp in panel:
        for w in amp.warnings:
            if not quiet:
                click.echo(f"bsmeth: warning: {w}" if len(panel) == 1 else f"bsmeth: warning: {amp.name}: {w}",
                           err=True)
    if _ngs_inputs(kw):
        return _do_ngs(kw, panel, downstream)
    if kw["umi"] or kw["umi_pattern"]:
        raise click.UsageError("--umi and --umi-pattern apply to amplicon sequencing FASTQ (the NGS engine); these "
                               "inputs are clone reads (Sanger traces or long reads): leave them out")
    run = run_call(kw["inputs"], panel, Path(kw["out"]), _call_config(kw), kw["sheet"], command=sys.argv,
                   force=kw["force"], progress=Progress("aligning files", not quiet), meanwhile=meanwhile,
                   downstream=downstream, curation=kw["curation"])
    if not quiet:
        reasons = ", ".join(f"{k} {v}" for k, v in run.reasons().items()) or "none"
        click.echo(f"{len(run.results)} reads in {len(run.samples)} samples: {run.n_pass} pass, "
                   f"{len(run.results) - run.n_pass} fail ({reasons})")
    return run


@cli.command(context_settings=CONTEXT, epilog=_example(
    "bsmeth call example_reads --samples example_reads/samples.csv --out calls",
    "bsmeth call reads/*.ab1 --reference my.fa --forward TTGTTTAGGGTTTTTG --reverse AACAAACCTCAAAC --out calls",
    "bsmeth call reads/ --snp '89:C>A' --out calls -v      (quotes: > is a shell redirection)"))
@_call_options
@_global_options
@click.pass_context
def call(ctx, **kw):
    """Call every CpG of every read in INPUTS (files, folders, glob patterns)."""
    from .reads import listings_kept

    with listings_kept():  # the inputs are listed once, to choose the engine and to run
        run = _do_call(ctx, kw)
    if not _quiet() and hasattr(run, "n_pairs"):
        click.echo(f"results in {run.out}/ (summary.tsv, samples.tsv, patterns.tsv, funnel.tsv, cpg_strands.tsv"
                   f"{', umi_families.tsv' if run.tally.umi else ''}"
                   f"{', reads.tsv, cpg_calls.tsv' if kw['per_read'] else ''}, run.json)")
        return
    if not _quiet():
        bams = ", reads.bam, reads.mod.bam" if not kw["no_bam"] else ""
        click.echo(f"results in {run.out}/ (reads.tsv, cpg_calls.tsv, summary.tsv, alignments.txt{bams}, run.json)")


_export_option = click.option(
    "--export", "export_formats", default=",".join(("bedmethyl", "bismark", "methylkit", "xlsx", "igv")),
    show_default=True, metavar="LIST",
    help="Tables for other tools: bedmethyl, bismark (coverage + CpG report), methylkit, xlsx (results.xlsx), "
         "igv (igv_session.xml); 'none' for none.")


def _export_formats(text: str) -> tuple[str, ...]:
    items = tuple(x.strip().lower() for x in text.split(",") if x.strip())
    return () if items in ((), ("none",)) else items


def _do_export(call_dir, formats, quiet: bool):
    from .exports import run_export

    result = run_export(call_dir, formats)
    if not quiet:
        for w in result.warnings:
            click.echo(f"bsmeth: warning: {w}", err=True)
    return result


@cli.command(context_settings=CONTEXT, epilog=_example(
    "bsmeth export results", "bsmeth export results --export bedmethyl,xlsx"))
@click.argument("call_dir", type=click.Path(file_okay=False, exists=True))
@_export_option
@_global_options
@click.pass_context
def export(ctx, call_dir, export_formats):
    """bedMethyl, Bismark coverage and CpG report, methylKit tables (per sample and all samples), results.xlsx
    and an IGV session, from a call folder (docs/interop.md)."""
    formats = _export_formats(export_formats)
    result = _do_export(call_dir, formats, _quiet())
    if not _quiet():
        click.echo(f"{len(result.files)} files in {call_dir}/ (listed in exports.tsv)")


def _role(value):
    """'auto' keeps automatic choice, 'none' switches a role off."""
    if value is None:
        return "auto"
    return None if value.lower() == "none" else value


_figure_options = _options(
    click.option("--rows", default=None, metavar="COLUMN",
                 help="Sample-sheet column whose levels make the grid rows (default: cell_line; 'none')."),
    click.option("--cols", default=None, metavar="COLUMN",
                 help="Column whose levels make the grid columns, numeric order (default: dose; 'none')."),
    click.option("--layout", type=click.Choice(["equal", "proportional", "position"]), default="equal",
                 show_default=True,
                 help="CpG spacing: equal; proportional to the positions (small gaps widened); or position "
                      "(QUMA's: a linear bp scale, circles moved apart only where they would overlap)."),
    click.option("--order", "order", type=click.Choice(["input", "methylation", "cluster"]), default=None,
                 help="Clone rows of a panel, within each allele group: input (reads.tsv order, the default), "
                      "methylation (most methylated on top) or cluster (hierarchical clustering of the patterns, "
                      "dendrogram right of the rows)."),
    click.option("--sort-clones", is_flag=True, help="Most methylated clone on top: --order methylation."),
    click.option("--allele-groups/--no-allele-groups", default=True, show_default=True,
                 help="Group a panel's clones by the allele they carry at the amplicon's SNP (known, e.g. "
                      "rs2854744, or found from the clones), marked beside the rows; no SNP site: no groups."),
    click.option("--width-mm", "--width", "width", default=None, metavar="single|onehalf|double|MM",
                 help="Figure width: a journal column (single 89 mm, onehalf 120 mm, double 183 mm) or "
                      "millimetres. Text is set at 6-8 pt at that width. Default: lollipop grid double, "
                      "dose-response single."),
)

_file_options = _options(
    click.option("--formats", default="svg,png,pdf", show_default=True, metavar="LIST",
                 help="Figure files to write, comma-separated: svg, png, pdf, tiff (LZW)."),
    click.option("--dpi", default=300, show_default=True, type=click.IntRange(50, 2400),
                 help="Resolution of PNG and TIFF."),
    click.option("--max-height-mm", default=240.0, show_default=True, type=click.FloatRange(50, 5000),
                 help="Taller figures continue on further pages (one PDF; fig_p1.png, fig_p2.png...)."),
)


def _plot_config(kw: dict):
    from .figures.layout import parse_width
    from .figures.plots import PlotConfig

    try:
        width = parse_width(kw["width"])
    except ValueError as e:  # an option value no run can mean: a usage error (exit 2), like every other option
        raise click.BadParameter(str(e), param_hint="'--width-mm'") from None
    extra = {}
    if "formats" in kw:
        extra = dict(formats=tuple(x.strip().lower() for x in kw["formats"].split(",") if x.strip()),
                     dpi=kw["dpi"], max_height_mm=kw["max_height_mm"])
    order = kw["order"] or ("methylation" if kw["sort_clones"] else "input")
    if kw["sort_clones"] and order != "methylation":
        raise click.BadParameter(f"--sort-clones is --order methylation: it cannot go with --order {order}",
                                 param_hint="'--order'")
    return PlotConfig(rows=_role(kw["rows"]), cols=_role(kw["cols"]), layout=kw["layout"], order=order,
                      allele_groups=kw["allele_groups"], width_mm=width, **extra)


_compare_options = _options(
    click.option("--by", default=None, metavar="COLUMN",
                 help="Column defining the groups compared (default: cell_line)."),
    click.option("--within", default=None, metavar="COLUMN",
                 help="Also compare within each level of this column (default: dose; 'none')."),
    click.option("--dose", "dose_col", default=None, metavar="COLUMN", help="Numeric dose column (default: dose)."),
    click.option("--seed", default=1, show_default=True, type=click.IntRange(0),
                 help="Seed of the bootstrap intervals and permutations: the same seed gives the same stats.tsv."),
)


def _compare_config(kw: dict):
    from .stats import CompareConfig

    return CompareConfig(by=_role(kw["by"]), within=_role(kw["within"]), dose=_role(kw["dose_col"]), seed=kw["seed"])


@cli.command(context_settings=CONTEXT, epilog=_example(
    "bsmeth plot results                                   (svg, png, pdf; grid 183 mm wide)",
    "bsmeth plot results --width single --formats pdf,tiff --dpi 600",
    "bsmeth plot results --width-mm 180 --layout position --order methylation",
    "bsmeth plot results --order cluster --no-allele-groups",
    "bsmeth plot results --rows dose --cols cell_line"))
@click.argument("call_dir", type=click.Path(file_okay=False, exists=True))
@_figure_options
@_file_options
@_global_options
def plot(call_dir, **kw):
    """Lollipop grid and dose-response figure from a call folder, each with its data (lollipop.tsv,
    dose_response.tsv)."""
    from .figures.plots import run_plot
    from .outdir import claim

    with claim(call_dir, create=False):
        paths = run_plot(call_dir, _plot_config(kw))
    for p in paths:
        if not _quiet():
            click.echo(str(p))


@cli.command(context_settings=CONTEXT, epilog=_example(
    "bsmeth compare results", "bsmeth compare results --by cell_line --within none --dose dose"))
@click.argument("call_dir", type=click.Path(file_okay=False, exists=True))
@_compare_options
@_global_options
def compare(call_dir, **kw):
    """Statistics between conditions (clone-level tests first) into CALL_DIR/stats.tsv."""
    from .outdir import claim
    from .stats import run_compare

    with claim(call_dir, create=False):
        path = run_compare(call_dir, _compare_config(kw))
    if not _quiet():
        click.echo(str(path))


@cli.command(context_settings=CONTEXT, epilog=_example(
    "bsmeth report results", "bsmeth report results --layout position --order cluster"))
@click.argument("call_dir", type=click.Path(file_okay=False, exists=True))
@_figure_options
@_compare_options
@_global_options
def report(call_dir, **kw):
    """Self-contained HTML report (CALL_DIR/report.html) from a call folder.

    The figure options change the figures drawn into the report (files: bsmeth plot). The statistics come
    from CALL_DIR/stats.tsv when it exists (bsmeth compare); without it they are computed with the
    statistics options.
    """
    from .outdir import claim
    from .report import write_report

    with claim(call_dir, create=False):
        path = write_report(call_dir, plot_config=_plot_config(kw), compare_config=_compare_config(kw))
    if not _quiet():
        click.echo(str(path))


@cli.command(context_settings=CONTEXT, epilog=_example(
    "bsmeth run example_reads --samples example_reads/samples.csv --out results",
    "bsmeth run reads/ --samples sheet.csv --out results --formats svg,pdf,tiff --width single",
    "bsmeth run reads/ --samples sheet.csv --snp '89:C>A' --out results -v"))
@_call_options
@_figure_options
@_file_options
@_compare_options
@_export_option
@_global_options
@click.pass_context
def run(ctx, **kw):
    """The whole job: call + plot + compare + report.html + exports (BAM, bedMethyl, xlsx...), in one folder."""
    import time

    t0 = time.monotonic()
    plot_config, compare_config, threads = _plot_config(kw), _compare_config(kw), _threads(kw)
    from .figures.plots import check_config

    check_config(plot_config)  # bad figure options fail before the call, not after it
    from .reads import listings_kept

    with listings_kept():  # the inputs are listed once, to choose the engine and to run
        _run(ctx, kw, t0, plot_config, compare_config, threads)


def _run(ctx, kw: dict, t0: float, plot_config, compare_config, threads: int) -> None:
    from .downstream import figure_process, import_downstream_libraries, run_downstream

    # BAM, bedMethyl, xlsx...: from the per-read results of clones; not (yet) for amplicon FASTQ (docs/ngs.md)
    formats = _export_formats(kw["export_formats"]) if not _ngs_inputs(kw) else ()

    # with -j 2 or more, a process forked now imports the figure libraries while the reads are aligned, then
    # draws the figures and the report while this process writes the statistics (downstream)
    with figure_process(threads) as figures:

        def downstream(folder: Path) -> list[Path]:
            """Figures, statistics, report and exports: they join the new result set before it replaces the old
            one (outdir)."""
            quiet = _quiet()
            return run_downstream(folder, plot_config, compare_config, threads,
                                  progress=Progress("figures, statistics, report", not quiet, since=t0),
                                  exports=formats, figures=figures,
                                  warn=None if quiet else lambda w: click.echo(f"bsmeth: warning: {w}", err=True))

        # one process: it imports the later stages' libraries first (or, with workers, while they align)
        call_run = _do_call(ctx, kw, meanwhile=None if figures else import_downstream_libraries(),
                            downstream=downstream)
    if not _quiet():
        names = ", ".join(sorted(set(call_run.added)))
        click.echo(f"results in {call_run.out}/: tables, {names}")


@cli.command(context_settings=CONTEXT, epilog=_example(
    "bsmeth simulate --out sim --seed 1",
    "bsmeth simulate --out sim --design design.json      (schema and an example: docs/simulate.md)",
    "bsmeth simulate --out direct --direct               (uncloned product, for bsmeth quantify)"))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--design", type=click.Path(dir_okay=False, exists=True), metavar="JSON",
              help="Design file: samples, clones, methylation levels, faults (schema and example: "
                   "docs/simulate.md). Default: the seed study, BT474/rBT474 x dose 0,1,3,10.")
@click.option("--seed", default=1, show_default=True, type=click.IntRange(0),
              help="Random seed: the same seed gives the same files.")
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
@click.option("--direct", is_flag=True,
              help="Direct sequencing of uncloned PCR product instead of clones: reads at 0, 10, 25, 50, 75, 90 "
                   "and 100 % methylation, for `bsmeth quantify`.")
@click.option("--ngs", is_flag=True,
              help="Paired-end bisulfite amplicon sequencing instead of clones: FASTQ.gz per sample (R1, R2), "
                   "BT474/rBT474 x dose in --replicates replicates, planted artefacts, truth (docs/simulate.md).")
@click.option("--pairs", default=10_000, show_default=True, help="--ngs: read pairs per sample.")
@click.option("--replicates", default=2, show_default=True, help="--ngs: samples per condition.")
@click.option("--directional", is_flag=True, help="--ngs: a directional library (R1 always from the forward "
                                                  "primer); default: non-directional.")
@click.option("--umi-length", default=0, show_default=True, type=click.IntRange(0, 32),
              help="--ngs: give every molecule a UMI of this many bases (in the read names, Illumina style) and "
                   "read it as a family of PCR copies; 0: no UMIs.")
@click.option("--family-size", default=4.0, show_default=True, type=click.FloatRange(1, 1e6),
              help="--ngs --umi-length: mean read pairs per molecule (log-normal).")
@click.option("--family-sigma", default=1.0, show_default=True, type=click.FloatRange(0, 5),
              help="--ngs --umi-length: spread of log(family size); 2 or more: strong PCR jackpotting.")
@_reference_options
@_panel_option
@_global_options
def simulate(out, design, seed, force, direct, ngs, pairs, replicates, directional, umi_length, family_size,
             family_sigma, reference, forward, reverse, strand, snps, anchor, panel):
    """Write realistic simulated .ab1 traces of cloned bisulfite products, a sample sheet and the truth."""
    import json

    from .errors import InputError, OutputError
    from .simulate import Design, seed_study_design
    from .simulate import simulate as run_simulate

    out_p = Path(out)
    if out_p.exists() and any(out_p.iterdir()) and not force:
        raise OutputError(f"--out {out}: folder is not empty; add --force or choose another folder")
    if ngs:
        from dataclasses import replace

        from .ngs.simulate import default_design, simulate_ngs

        kw = dict(reference=reference, forward=forward, reverse=reverse, strand=strand, snps=snps, anchor=anchor,
                  panel=panel)
        p = _panel(kw)
        d = replace(default_design(p, pairs=pairs, replicates=replicates), directional=directional,
                    umi_length=umi_length, family_mean=family_size, family_sigma=family_sigma)
        try:
            sim = simulate_ngs(d, p, out_p, seed=seed, command=" ".join(["bsmeth"] + sys.argv[1:]))
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        click.echo(f"{sim.n_pairs} simulated read pairs of {len(p)} amplicon(s), {len(sim.samples)} samples, in "
                   f"{out_p}/fastq/; sample sheet {sim.sample_sheet.name}, panel panel.tsv, truth in "
                   f"{sim.truth_cpgs.name} and truth_pairs.tsv.gz")
        return
    if direct:
        from .simulate.direct import simulate_direct

        amp = _amplicon(reference, forward, reverse, strand, snps, anchor)
        res = simulate_direct(amp, out_p, seed=seed)
        click.echo(f"{len(res.traces)} simulated direct-sequencing traces in {out_p}/; sample sheet samples.csv, "
                   "truth in truth_direct.tsv")
        return
    kw = dict(reference=reference, forward=forward, reverse=reverse, strand=strand, snps=snps, anchor=anchor,
              panel=panel)
    amplicons = _panel(kw).amplicons
    if design:
        try:
            d = Design.from_dict(json.loads(Path(design).read_text(encoding="utf-8-sig")))
            for amp in amplicons:
                d.check(amp)
        except (ValueError, TypeError, KeyError, RecursionError) as e:
            why = "the JSON is nested too deeply" if isinstance(e, RecursionError) else e
            raise InputError(f"--design {design}: {why}; see docs/simulate.md") from None
        except OSError as e:
            raise InputError(f"--design {design}: cannot read ({e.strerror or e})") from None
    else:
        d = None  # the seed study's design, made for each amplicon's CpGs
    if panel:
        if direct:
            raise click.UsageError("--direct simulates one amplicon: leave out --panel")
        from .models import Panel
        from .simulate.panel import simulate_panel

        sim = simulate_panel(d, Panel(amplicons), out_p, seed=seed, command=" ".join(["bsmeth"] + sys.argv[1:]))
        click.echo(f"{sim.n_reads} simulated traces of {len(sim.per_amplicon)} amplicons in {out_p}/ (one folder per "
                   f"amplicon); sample sheet {sim.sample_sheet.name}, truth in {sim.truth_reads.name} and "
                   f"{sim.truth_cpgs.name}")
        return
    amp = amplicons[0]
    d = d or seed_study_design(n_cpgs=len(amp.cpgs))
    res = run_simulate(d, amp, out_p, seed=seed, command=" ".join(["bsmeth"] + sys.argv[1:]))
    faults = ", ".join(f"{k} {v}" for k, v in res.faults.items()) or "none"
    click.echo(f"{res.n_reads} simulated traces in {out_p}/ (faults: {faults}); "
               f"sample sheet {res.sample_sheet.name}, truth in {res.truth_reads.name} and {res.truth_cpgs.name}")
    for note in res.skipped:
        click.echo(f"bsmeth: note: {note}", err=True)


@cli.group(context_settings=CONTEXT, epilog=_example("bsmeth reference show",
                                                   "bsmeth reference show --reference my.fa --snp '120:G>A'"))
def reference():
    """Inspect the reference and amplicon."""


@reference.command("show", context_settings=CONTEXT, epilog=_example(
    "bsmeth reference show",
    "bsmeth reference show --reference my.fa --forward TTGTTTAGGGTTTTTG --reverse AACAAACCTCAAAC",
    "bsmeth reference show --snp '89:C>A'      (quotes: > is a shell redirection)"))
@_reference_options
@_panel_option
@_global_options
def reference_show(reference, forward, reverse, strand, snps, anchor, panel):
    """Print each amplicon: span, strand, genome position, CpG table and warnings."""
    from .coords import one_based

    kw = dict(reference=reference, forward=forward, reverse=reverse, strand=strand, snps=snps, anchor=anchor,
              panel=panel)
    for k, amp in enumerate(_panel(kw)):
        if k:
            click.echo("")
        click.echo(f"reference  {amp.name}  ({len(amp.reference)} bp)  from {amp.source}")
        if amp.forward:
            click.echo(f"primers    forward {amp.forward}  reverse {amp.reverse}")
        else:
            click.echo("primers    none: the whole record is the target region")
        written = " (FASTA as written)" if amp.strand.value == "top" else " (reverse complement of the FASTA)"
        click.echo(f"amplicon   {one_based(amp.start)}-{amp.end} (1-based, inclusive)  {amp.length} bp  "
                   f"amplified strand: {amp.strand.value}{written}")
        frame = amp.frame
        if frame.anchor is not None:
            g0, g1 = frame.genome_span()
            click.echo(f"genome     {frame.anchor.assembly} {frame.anchor.chrom}:{one_based(g0)}-{g1}  "
                       f"amplified strand on the genome: {frame.genome_strand}")
        else:
            click.echo("genome     no anchor (give --anchor or a panel with assembly, chrom, start, strand)")
        n_ok = sum(not c.under_primer for c in amp.cpgs)
        click.echo(f"CpGs       {len(amp.cpgs)} in the amplicon, {n_ok} assessable")
        click.echo("")
        click.echo("cpg\tpos\tamplicon_pos\tchrom\tgenome_pos\tstrand\tunder_primer\tsnp")
        chrom, gstrand = (frame.anchor.chrom, frame.genome_strand) if frame.anchor else ("", "")
        for c in amp.cpgs:
            gpos = one_based(c.genome_pos)
            click.echo(f"{c.number}\t{one_based(c.ref_pos)}\t{one_based(c.target_pos)}\t{chrom}\t"
                       f"{'' if gpos is None else gpos}\t{gstrand}\t{'yes' if c.under_primer else 'no'}\t"
                       f"{c.snp.name if c.snp else ''}")
        n_primer = len(amp.cpgs) - n_ok
        warnings = list(amp.warnings)
        if n_primer:
            warnings.append(f"{n_primer} CpG(s) overlap a primer site: not assessable (the primer is copied into "
                            "the product)")
        for w in warnings:
            click.echo(f"warning: {amp.name}: {w}", err=True)


@cli.command(context_settings=CONTEXT, epilog=_example(
    "bsmeth quantify direct/ --samples direct/samples.csv --out q",
    "bsmeth quantify reads/*.ab1 --standard0 std0/ --standard100 std100/ --out q --formats pdf"))
@click.argument("inputs", nargs=-1)
@click.option("--samples", "-s", "sheet", type=click.Path(dir_okay=False), metavar="CSV",
              help="Sample sheet: columns file, sample and any conditions (cell_line, dose...).")
@_reference_options
@click.option("--out", "-o", required=True, type=click.Path(), help="Output folder.")
@click.option("--force", is_flag=True, help="Overwrite quantify results already in --out.")
@click.option("--standard0", multiple=True, metavar="PATH",
              help="Reads of 0 % methylated product (file, folder or pattern; repeatable). With --standard100: "
                   "per-CpG dye calibration.")
@click.option("--standard100", multiple=True, metavar="PATH",
              help="Reads of 100 % methylated product (repeatable). Alone: one dye ratio for all CpGs.")
@click.option("--min-signal", default=0.25, show_default=True, type=click.FloatRange(0, 1),
              help="C + T peaks below this fraction of a full peak there: no estimate (low_signal).")
@click.option("--formats", default="svg,png,pdf", show_default=True, metavar="LIST",
              help="Plot files to write, comma-separated: svg, png, pdf, tiff.")
@_global_options
@click.pass_context
def quantify(ctx, inputs, sheet, reference, forward, reverse, strand, snps, anchor, out, force, standard0, standard100,
             min_signal, formats):
    """Percent methylation per CpG from direct reads of uncloned bisulfite PCR product (not clones)."""
    from .quantify import QuantifyConfig, run_quantify

    amp = _amplicon(reference, forward, reverse, strand, snps, anchor)
    quiet = _quiet()
    for w in amp.warnings:
        if not quiet:
            click.echo(f"bsmeth: warning: {w}", err=True)
    fmts = tuple(x.strip().lower() for x in formats.split(",") if x.strip())
    config = QuantifyConfig(standard0=tuple(standard0), standard100=tuple(standard100), min_signal=min_signal,
                            formats=fmts, force=force)
    table = run_quantify(inputs, amp, Path(out), config, sheet, command=sys.argv)
    if not quiet:
        click.echo(f"results in {table.parent}/ (quantify.tsv, quantify.json, quantify.{{{','.join(fmts)}}})")


def _on_interrupt(signum, frame):
    """Ctrl-C and SIGTERM: noted (``outdir.INTERRUPT``: an interrupt Python drops in a callback still stops the
    result set from being published), then KeyboardInterrupt."""
    note_interrupt(signum)
    raise KeyboardInterrupt


def _caused_by_interrupt(e: BaseException) -> bool:
    """Python wraps some exceptions (e.g. a Ctrl-C/SIGTERM landing in ``__set_name__`` while a library is
    imported, as RuntimeError): an interrupt then arrives as the cause of another exception."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _exit_interrupted() -> None:
    click.echo("bsmeth: interrupted; no partial output was written", err=True)
    sys.exit(130)


def main(argv=None) -> None:
    """Entry point: turns errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    # bsmeth works in parallel with processes (-j); its matrices are small, and OpenBLAS threads on top of that
    # only spin on the cores the workers use (read when numpy loads, so before any command imports it)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    debug = "--debug" in args
    INTERRUPT.clear()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, _on_interrupt)
    if before[signal.SIGINT] is signal.default_int_handler:  # not when started with Ctrl-C ignored
        signal.signal(signal.SIGINT, _on_interrupt)
    try:
        _main(args, debug)
    finally:  # called in-process (tests, scripts): the caller's handlers again
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _main(args: list[str], debug: bool) -> None:
    try:
        rv = cli.main(args=args, prog_name="bsmeth", standalone_mode=False)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _exit_interrupted()
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except BsmethError as e:
        if debug:
            raise
        click.echo(f"bsmeth: error: {e}", err=True)
        sys.exit(e.exit_code)
    except Exception as e:  # a bug: say so in one line unless --debug
        if _caused_by_interrupt(e):
            _exit_interrupted()
        if debug:
            raise
        click.echo(f"bsmeth: internal error: {type(e).__name__}: {e} (rerun with --debug and report it)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
