"""SIGTERM's disposition in the test process for a block: the tests of stopping worker processes run as CI may
start the suite, with SIGTERM ignored (a forked child inherits the disposition)."""

import signal
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def sigterm_as(handler=signal.SIG_IGN) -> Iterator[None]:
    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
