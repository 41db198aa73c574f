"""The installed ``bsmeth`` command, for the tests that run it as a user would (test_cli, test_bad_inputs)."""

import shutil
import sys
from pathlib import Path


def bsmeth_cmd() -> list[str]:
    """The console script of the interpreter running the tests, else one on PATH, else the entry point."""
    exe = Path(sys.executable).with_name("bsmeth")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("bsmeth")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from bsmeth.cli import main; sys.exit(main())"]
