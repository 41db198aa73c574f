"""Simulated data with the truth, outside the analysis path (``bsmeth simulate``).

``clones`` writes Sanger traces of cloned bisulfite PCR products (the design types and ``simulate`` are here);
``panel`` runs it for every amplicon of a panel; ``direct`` writes traces of uncloned product (for
``quantify``); ``calls`` writes call folders at the level of the call tables.  Amplicon sequencing is
``bsmeth.ngs.simulate``.
"""

from .clones import (
    Condition,
    Design,
    ReadModel,
    SimulationResult,
    clean_molecules,
    mixed_differences,
    seed_study_design,
    simulate,
)

__all__ = ["Condition", "Design", "ReadModel", "SimulationResult", "clean_molecules", "mixed_differences",
           "seed_study_design", "simulate"]
