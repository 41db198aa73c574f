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


def interruptible() -> None:
    """``preexec_fn`` for a command a test will interrupt: Ctrl-C (SIGINT) back to its default.  A shell starts
    background jobs with SIGINT ignored, and an ignored signal stays ignored across exec, so a test suite run in
    the background (as a CI script may be) would hand its commands a SIGINT they never see."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
