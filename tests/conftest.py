"""Shared test fixtures: paths to the real data in tests/data (nothing reads ../shared)."""

import os
import tempfile
from pathlib import Path

# Tests write nothing into the source tree: Hypothesis keeps its example database elsewhere.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "bsmeth-hypothesis"))

import pytest  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data() -> Path:
    return DATA


@pytest.fixture
def biq(data) -> dict:
    d = data / "biq_demo"
    return {"reads": d / "multiFASTA.fasta", "reference": d / "Master_Sequence.txt", "dir": d}


@pytest.fixture
def gm9(data) -> dict:
    d = data / "quma_gm9"
    return {"j1": d / "Gm9_J1_multi_fasta.txt", "ko": d / "Gm9_16aabb_multi_fasta.txt",
            "reference": d / "sample_genome_fasta.txt"}
