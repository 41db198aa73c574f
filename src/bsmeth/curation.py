"""A user's curation of clones (``--curation curation.tsv``): reads excluded by hand, applied reproducibly.

Pipeline position: inside ``call``, after QC and duplicate marking (``pipeline.run_call``).  The file is what
the report's curation panel downloads (docs/report.md): a table read by ``tsv.read_table`` with the columns
``read``, ``decision`` (``exclude`` or ``include``) and ``note``.  A read to ``exclude`` that would pass becomes
``fail`` with reason ``excluded_by_user`` (the last reason in precedence: a read failing QC keeps its own
reason); ``include`` records that a read was looked at and kept, and changes nothing (a read failing QC is
reinstated by changing the threshold that failed it, not here).  A read id the run does not have is an error
naming the file and line: a curation of another run must not be applied silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from .errors import InputError
from .models import ReadResult, Reason, Status

COLUMNS = ("read", "decision", "note")
EXCLUDE, INCLUDE = "exclude", "include"
DECISIONS = (EXCLUDE, INCLUDE)


@dataclass(frozen=True)
class Decision:
    read: str
    decision: str  # one of DECISIONS
    note: str = ""
    line: int = 0  # line of the file (1 = header)


@dataclass(frozen=True)
class Curation:
    source: str  # the file as given
    decisions: tuple[Decision, ...]

    @property
    def excluded(self) -> tuple[str, ...]:
        return tuple(d.read for d in self.decisions if d.decision == EXCLUDE)

    def as_dict(self, applied: Sequence[str] = ()) -> dict:
        """The record written into run.json: the file, every decision, and which exclusions changed a read."""
        return {"file": self.source, "excluded": list(self.excluded),
                "included": [d.read for d in self.decisions if d.decision == INCLUDE],
                "applied": list(applied),
                "notes": {d.read: d.note for d in self.decisions if d.note}}


def load_curation(path: str | os.PathLike) -> Curation:
    """Read a curation file; raise ``InputError`` naming the file and line for anything that is not one."""
    from .tsv import TableError, read_table

    p = Path(path)
    if not p.is_file():
        raise InputError(f"--curation {p}: no such file (the curation.tsv downloaded from report.html)")
    try:
        header, rows = read_table(p)
    except TableError as e:
        raise InputError(f"--curation {p}: not a tab-separated table ({e})") from None
    names = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS[:2] if c not in names]
    if missing:
        raise InputError(f"--curation {p}: line 1: missing column(s) {', '.join(missing)}; expected "
                         f"{', '.join(COLUMNS)} (tab-separated, as report.html downloads it)")
    at = {c: names.index(c) for c in COLUMNS if c in names}
    seen: dict[str, Decision] = {}
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        read = row[at["read"]].strip()
        decision = row[at["decision"]].strip().lower()
        note = row[at["note"]].strip() if "note" in at else ""
        if not read:
            raise InputError(f"--curation {p}: line {line}: empty read id")
        if decision not in DECISIONS:
            raise InputError(f"--curation {p}: line {line}: decision {row[at['decision']]!r} for read {read!r}; "
                             f"write {' or '.join(DECISIONS)}")
        before = seen.get(read)
        if before is not None and before.decision != decision:
            raise InputError(f"--curation {p}: line {line}: read {read!r} is to {decision} here but to "
                             f"{before.decision} on line {before.line}")
        if before is None:
            seen[read] = Decision(read, decision, note, line)
    return Curation(str(path), tuple(seen.values()))


def apply_curation(results: Sequence[ReadResult], curation: Curation) -> tuple[list[ReadResult], list[str]]:
    """``results`` with every passing read to exclude turned into ``fail``/``excluded_by_user``, and the ids so
    changed.  Raises ``InputError`` for a read id that is not in ``results``."""
    known = {r.read_id for r in results}
    for d in curation.decisions:
        if d.read not in known:
            raise InputError(f"--curation {curation.source}: line {d.line}: read {d.read!r} is not a read of this "
                             "run (ids as in reads.tsv); is the curation file of another run?")
    decided = {d.read: d for d in curation.decisions if d.decision == EXCLUDE}
    out, applied = [], []
    for r in results:
        d = decided.get(r.read_id)
        if d is not None and r.status is Status.PASS:
            r = replace(r, status=Status.FAIL, reason=Reason.EXCLUDED_BY_USER,
                        detail=f"excluded by the user (curation line {d.line})" + (f": {d.note}" if d.note else ""))
            applied.append(r.read_id)
        out.append(r)
    return out, applied
