"""The result folder (``--out``, or the call folder of ``plot``/``compare``/``report``): who writes it and how a
new result set replaces an old one.

Pipeline position: bottom (imports only ``errors``); used by ``pipeline`` (call, run), ``quantify`` and ``cli``
(plot, compare, report).  The rules, documented in docs/outputs.md:

* **One run per folder.**  A run holds an exclusive lock on the folder (``flock`` on the folder itself, no
  lock file) from before its first read is aligned until its last file is in place; a second run into the
  same folder exits 4 at once.  The lock belongs to the process and the workers it forked, so a killed run
  never leaves a stale lock.
* **A result set appears whole.**  ``call``, ``run`` and ``quantify`` write every file into a hidden
  staging folder inside the result folder (``.bsmeth-staging-*``, the same file system, so moving is a
  rename).  When the last file is written the staging folder is renamed ``.bsmeth-ready`` (with a manifest
  of its files), then swapped in: the previous set's files move out, completeness marker first
  (``run.json``, ``quantify.json``), the new files move in, marker last.  Until that swap the previous
  results are untouched: a full disk, a file-size limit, an error or a kill leaves them as they were.
* **Recovery.**  Whoever takes the lock next finishes a swap that a kill interrupted (the swap is
  idempotent: it only renames, guided by the manifest), and removes the staging folders and the atomic
  writer's temporaries (``.<name>.XXXXXXXX.tmp``) that killed runs left.
* **``--force`` replaces the whole set** of its kind: every file bsmeth makes for it (``KINDS``), figures,
  statistics and report of an earlier ``run`` included, so nothing stale stays beside new tables.  Files
  the user put into the folder are never touched.
* ``plot``, ``compare`` and ``report`` add to a call folder: they take the lock, recover, and write file
  by file (each atomically, see ``atomic``).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import OutputError

FIGURE_SUFFIXES = ("svg", "png", "pdf")


@dataclass(frozen=True)
class Kind:
    """The files of one kind of result set.  ``marker`` is written last and marks the set complete."""

    name: str
    files: tuple[str, ...]
    figures: tuple[str, ...]  # stems, in every FIGURE_SUFFIXES format
    marker: str

    def names(self) -> tuple[str, ...]:
        return self.files + tuple(f"{s}.{x}" for s in self.figures for x in FIGURE_SUFFIXES)


# the call tables (pipeline.OUTPUTS), then what plot, compare and report add
CALL_TABLES = ("reads.tsv", "cpg_calls.tsv", "summary.tsv", "samples.tsv", "alignments.txt", "run.json")
CALL = Kind("call", CALL_TABLES + ("stats.tsv", "report.html"), ("lollipop", "dose_response"), "run.json")
QUANTIFY = Kind("quantify", ("quantify.tsv", "quantify.json"), ("quantify",), "quantify.json")
KINDS = (CALL, QUANTIFY)

STAGING_PREFIX = ".bsmeth-staging-"
READY = ".bsmeth-ready"
OLD = ".bsmeth-old"
MANIFEST = ".manifest"
SET_MANIFEST = ".bsmeth-manifest"  # in the result folder: every file of the set in it (figures per amplicon, BAMs,
# exports...), so that the next set replaces exactly those, whatever names they had
# the atomic writer's temporary names: '.' + final name + '.' + mkstemp's 8 random characters + '.tmp'
_TMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
_WRITE_ERRORS = {getattr(errno, name) for name in ("ENOSPC", "EFBIG", "EROFS", "EACCES", "EPERM", "EDQUOT", "EIO")
                 if hasattr(errno, name)}


def _fail(out: Path, what: str, e: OSError) -> OutputError:
    return OutputError(f"--out {out}: {what} ({e.strerror or e})")


def _lock(out: Path) -> int | None:
    """An exclusive lock on the folder, or None where the file system has no locks (a note is printed)."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        return None
    try:
        fd = os.open(out, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        raise _fail(out, "cannot open the folder", e) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputError(f"--out {out}: another bsmeth run is writing into this folder; wait until it has "
                          "finished or choose another folder") from None
    except OSError as e:  # e.g. a network file system without locks
        os.close(fd)
        import logging

        logging.getLogger("bsmeth").warning("note: --out %s cannot be locked (%s): do not start two runs into it "
                                            "at once", out, e.strerror or e)
        return None
    return fd


@contextmanager
def claim(out: str | os.PathLike, create: bool = True) -> Iterator[Path]:
    """Hold the result folder ``out`` (created if ``create``) for this run; finish or clean up what killed
    runs left there.  Exits 4 (``OutputError``) if another run holds it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a folder")
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _fail(out, "cannot create the folder", e) from None
    elif not out.is_dir():
        raise OutputError(f"{out}: no such folder")
    fd = _lock(out)
    try:
        recover(out)
        yield out
    finally:
        if fd is not None:
            os.close(fd)


def recover(out: Path) -> None:
    """Finish an interrupted swap; remove staging folders and atomic temporaries of killed runs.  Call only
    while holding the folder (``claim``)."""
    try:
        if (out / READY).is_dir():
            _swap(out, out / READY)
        for entry in os.scandir(out):
            if entry.name.startswith(STAGING_PREFIX) or entry.name == OLD:
                shutil.rmtree(entry.path, ignore_errors=True)
            elif _TMP.match(entry.name) and _TMP.match(entry.name)["name"] in _ALL_NAMES:
                os.unlink(entry.path)
    except OSError as e:
        raise _fail(out, "cannot clean up after an earlier run", e) from None


_ALL_NAMES = frozenset(n for k in KINDS for n in k.names())


def existing(out: Path, kind: Kind) -> list[str]:
    """The files of a ``kind`` result set in ``out``."""
    return [n for n in kind.names() if (out / n).exists()]


@dataclass(frozen=True)
class Staging:
    """Where a new result set is written (``path``) before ``commit`` swaps it into ``out``."""

    out: Path
    root: Path  # .bsmeth-staging-XXXX
    path: Path  # root / <the result folder's own name>: figures and report name the folder as the user does
    kind: Kind


@contextmanager
def new_result_set(out: str | os.PathLike, kind: Kind, force: bool) -> Iterator[Staging]:
    """Claim ``out`` and give a staging folder for a new ``kind`` result set; when the block ends without an
    error the set is swapped in (``commit``), else the staging folder is removed and ``out`` is unchanged.

    Without ``force`` a folder that holds such a set already is refused (exit 4) before any work.
    """
    with claim(out) as out:
        found = existing(out, kind)
        if found and not force:
            raise OutputError(f"--out {out}: already holds results ({', '.join(found[:3])}"
                              f"{' ...' if len(found) > 3 else ''}); add --force to replace them or choose another "
                              "folder")
        try:
            root = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
            path = root / (out.resolve().name or "results")
            path.mkdir()
        except OSError as e:
            raise _fail(out, "cannot write", e) from None
        staging = Staging(out, root, path, kind)
        try:
            yield staging
            commit(staging)
        finally:
            shutil.rmtree(root, ignore_errors=True)


# Set by the command line's Ctrl-C/SIGTERM handler before it raises KeyboardInterrupt.  Python drops an
# exception raised in some callbacks ("Exception ignored in ..."): a finaliser such as the aligner's result
# objects' ``__del__``, which runs for every read, or an at-fork hook while a worker is forked.  So an
# interrupt can be lost: the loops over files and chunks check this flag (``raise_if_interrupted``), and
# ``commit`` does, so such a run still stops soon and never replaces the previous results.
INTERRUPT: list[int] = []


def note_interrupt(signum: int) -> None:
    INTERRUPT.append(signum)


def raise_if_interrupted() -> None:
    """KeyboardInterrupt if an interrupt was noted (one whose own exception Python may have dropped)."""
    if INTERRUPT:
        raise KeyboardInterrupt


def commit(staging: Staging) -> None:
    """Swap the complete set in ``staging`` into its folder: the old set's files out, the new ones in (not
    after an interrupt, even one Python dropped: ``INTERRUPT``)."""
    raise_if_interrupted()
    out, kind = staging.out, staging.kind
    names = sorted(os.listdir(staging.path))
    if kind.marker not in names:
        raise OutputError(f"--out {out}: the new results are incomplete ({kind.marker} was not written)")
    try:
        from .atomic import write_text

        write_text(staging.path / MANIFEST, "".join(n + "\n" for n in names))
        os.replace(staging.path, out / READY)  # from here on the new set is complete: recover() finishes it
    except OSError as e:
        raise _fail(out, "cannot write", e) from None
    try:
        _swap(out, out / READY)
    except OSError as e:
        raise _fail(out, "cannot move the new results in (the next bsmeth command in this folder finishes that)",
                    e) from None


def _swap(out: Path, ready: Path) -> None:
    """Move the set in ``ready`` into ``out``; idempotent, so a swap killed half-way can be run again."""
    try:
        new = (ready / MANIFEST).read_text(encoding="utf-8").split()
    except FileNotFoundError:  # killed before the manifest: nothing was moved yet, and the set is incomplete
        shutil.rmtree(ready)
        return
    kind = next(k for k in KINDS if k.marker in new)
    trash = out / OLD
    trash.mkdir(exist_ok=True)
    try:  # the files of the set in the folder, as its manifest lists them (sets written before it: kind.names())
        listed = [n for n in (out / SET_MANIFEST).read_text(encoding="utf-8").split() if "/" not in n]
    except FileNotFoundError:
        listed = []
    # 1. the old set out, its marker first: from now on the folder never shows a marker next to a mixed set.
    #    A name of the new set that is no longer in ``ready`` was already moved in: it stays.
    old = [n for n in dict.fromkeys([*kind.names(), *listed])
           if n not in (SET_MANIFEST, MANIFEST) and (out / n).exists() and not (n in new and not (ready / n).exists())]
    old.sort(key=lambda n: n != kind.marker)
    for n in old:
        os.replace(out / n, trash / n)
    # 2. the new set in, its marker last; then its manifest
    for n in sorted(new, key=lambda n: n == kind.marker):
        if (ready / n).exists():
            os.replace(ready / n, out / n)
    from .atomic import write_text

    write_text(out / SET_MANIFEST, "".join(n + "\n" for n in new))
    shutil.rmtree(ready, ignore_errors=True)
    shutil.rmtree(trash, ignore_errors=True)


def shown_path(path: str | os.PathLike) -> str:
    """A path as the user knows it: inside a staging folder, the place the file will have in the result folder."""
    return re.sub(r"(^|/)" + re.escape(STAGING_PREFIX) + r"[^/]+/[^/]+(/|$)", r"\1", os.fspath(path))


def is_write_error(e: BaseException) -> bool:
    """An OS error that means "the output cannot be written" (disk full, file too large, read-only, denied)."""
    return isinstance(e, OSError) and e.errno in _WRITE_ERRORS
