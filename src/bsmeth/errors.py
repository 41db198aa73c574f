"""Errors for input that cannot be used at all.

Bottom of the import graph: every stage may raise these; only ``cli`` catches
them and turns them into one line on stderr and an exit code.  QC failures of
single reads are *not* errors: they are rows with a reason (see ``qc``).

Exit codes (documented in the README):
  0  success
  1  unexpected internal error (a bug: rerun with --debug and report it)
  2  usage error (bad option; raised by click)
  3  unusable input (reference, primers, sample sheet, input paths)
  4  output problem: the output folder cannot be written (disk full, file too large, read-only, denied:
     ``OutputError``, or an ``OSError`` of that class, see ``outdir.is_write_error``), it holds results
     and --force was not given, or another run holds it
  130 interrupted (Ctrl-C / SIGTERM); no partial output is left behind
"""


class BsmethError(Exception):
    """Base class: input that cannot be used.  The message says what, where and what to do."""

    exit_code = 3


class ReferenceFileError(BsmethError):
    """The reference FASTA cannot be used (missing, empty, not DNA)."""


class PrimerError(BsmethError):
    """A primer does not bind the reference, binds more than once, or is not DNA."""


class InputError(BsmethError):
    """Input paths or read files that cannot be used as a whole (no reads at all, missing path)."""


class SampleSheetError(BsmethError):
    """The sample sheet is malformed or does not match the inputs."""


class OutputError(BsmethError):
    """The output directory cannot be written."""

    exit_code = 4


class ReadFormatError(BsmethError):
    """One read file cannot be parsed.  Caught per file and turned into a ``fail`` row (``unreadable``)."""
