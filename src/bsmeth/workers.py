"""Processes beside the main one: what every forked worker of bsmeth does first, and the one-worker executor
that inherits data instead of receiving it pickled.

Pipeline position: a helper of ``pipeline`` (the call's workers, the cpg_calls.tsv writer), ``ngs.run`` (its
workers) and ``downstream`` (the figure process); it imports nothing of bsmeth.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from contextlib import contextmanager
from typing import Iterator

# fork starts workers at once, with everything already imported; Python calls it unsafe on macOS (system
# libraries may hold threads), so other systems spawn
FORK_IS_SAFE = sys.platform.startswith("linux")


def die_with_parent(parent: int) -> None:
    """Make this forked worker exit when ``parent`` dies, even by SIGKILL: nothing else would stop it writing
    into the result folder (and holding its lock, see ``outdir``).  Linux: the kernel sends SIGKILL
    (PR_SET_PDEATHSIG); elsewhere a thread checks the parent twice a second."""
    import signal

    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            armed = ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False
    if not armed:
        import threading
        import time

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the request above
        os._exit(1)


def pool_worker(parent: int) -> None:
    """What a pool's worker process does first: it dies with ``parent``; Ctrl-C is the parent's to handle (it
    stops the pool); the pool stops its workers with SIGTERM, which ends one quietly."""
    import signal

    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def quiet_child(parent: int) -> None:
    """What a forked helper process does first: Ctrl-C is the parent's to handle (it stops the helper); SIGTERM
    exits through the atomic writer's cleanup, without a traceback; and it dies with ``parent``."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    die_with_parent(parent)


SIDE: dict = {}  # in the side process: what it inherited (``side_process``'s ``data``)


@contextmanager
def side_process(data) -> Iterator:
    """One forked worker process (an executor) that inherits ``data`` (``SIDE["data"]``: not pickled), for
    work beside this process's.  An executor, not a Pool: if the worker dies (killed, out of memory) result()
    raises instead of waiting forever; if this process fails or is interrupted, the worker is stopped."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("fork"), initializer=_init_side,
                             initargs=(data, os.getpid())) as pool:
        try:
            yield pool
        except BaseException:
            for proc in getattr(pool, "_processes", {}).values():  # this executor's worker only
                proc.terminate()
            raise


def _init_side(data, parent: int) -> None:
    quiet_child(parent)
    SIDE.update(data=data)  # forked: the data (loaded tables, results) are inherited, not pickled
