"""Simulated clones of a panel: the same design for every amplicon, one sample sheet, truth per amplicon.

``simulate --panel panel.tsv``: each amplicon is simulated by ``simulate`` into
its own folder (``<out>/<amplicon>/``, read ids prefixed with the amplicon
name so that they stay distinct), with its own seed derived from the run's.
The top folder gets one sample sheet for all amplicons (a sample holds the
reads of every amplicon: one plate of clones from several PCRs of one DNA) and
the truth of every amplicon with an ``amplicon`` column.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from ..atomic import write_text
from ..models import Panel
from .clones import Design, SimulationResult, seed_study_design, simulate


@dataclass(frozen=True)
class PanelSimulation:
    out_dir: Path
    per_amplicon: dict  # amplicon name -> SimulationResult
    sample_sheet: Path
    truth_reads: Path
    truth_cpgs: Path

    @property
    def n_reads(self) -> int:
        return sum(r.n_reads for r in self.per_amplicon.values())


def _read(path: Path, delimiter: str = "\t") -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline=""), delimiter=delimiter))


def _write(path: Path, rows: list[list[str]], delimiter: str = "\t") -> Path:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return write_text(path, buf.getvalue())


def simulate_panel(design: Optional[Design], panel: Panel, out_dir: Union[str, Path], seed: int = 1,
                   command: str = "") -> PanelSimulation:
    """Simulate ``design`` for every amplicon of ``panel`` into ``out_dir``; same seed, same files.

    ``design`` None: the seed study's design made for each amplicon's CpGs (``seed_study_design``).
    """
    out = Path(out_dir)
    results: dict[str, SimulationResult] = {}
    sheet: list[list[str]] = []
    reads: list[list[str]] = []
    cpgs: list[list[str]] = []
    for k, amp in enumerate(panel):
        sub = out / amp.name
        res = simulate(design or seed_study_design(n_cpgs=len(amp.cpgs)), amp, sub, seed=seed * 1000 + k,
                       command=command, id_prefix=f"{amp.name}_")
        results[amp.name] = res
        for part, target, prefix_file in ((res.sample_sheet, sheet, True), (res.truth_reads, reads, True),
                                          (res.truth_cpgs, cpgs, False)):
            rows = _read(part, "," if part.suffix == ".csv" else "\t")
            head, body = rows[0], rows[1:]
            if prefix_file and "file" in head:
                i = head.index("file")
                body = [[*r[:i], f"{amp.name}/{r[i]}", *r[i + 1:]] for r in body]
            if part.suffix == ".csv":
                if not target:
                    target.append(head)
                target.extend(body)
            else:
                if not target:
                    target.append(["amplicon", *head])
                target.extend([amp.name, *r] for r in body)
    return PanelSimulation(out, results, _write(out / "samples.csv", sheet, ","),
                           _write(out / "truth_reads.tsv", reads), _write(out / "truth_cpgs.tsv", cpgs))
