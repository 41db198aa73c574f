"""Processes beside the main one: what every forked worker of bsmeth does first, the ordered map over worker
processes that the call and the NGS engine share, and the one-worker executor that inherits data instead of
receiving it pickled.

Pipeline position: a helper of ``pipeline`` (the call's workers, the cpg_calls.tsv writer), ``ngs.run`` (its
workers) and ``downstream`` (the figure process); it imports nothing of bsmeth.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence

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


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process: the ``__cause__`` of the error ``ordered_map``
    raises again in this process (shown with ``--debug``)."""

    def __str__(self) -> str:
        return f"\n\"\"\"\n{self.args[0]}\"\"\""


def ordered_map(fn: Callable[[Any], Any], jobs: Iterable, processes: int, initializer: Callable[..., None],
                initargs: Sequence = (), chunksize: int = 1, in_flight: int = 2) -> Iterator:
    """``fn(job)`` for each of ``jobs`` (read lazily), computed by ``processes`` worker processes and yielded in
    the jobs' order; ``initializer(*initargs)`` starts each worker (it calls ``pool_worker``).

    Jobs go out ``chunksize`` at a time, at most ``in_flight`` chunks a worker, each worker to its own pipe;
    results come back pickled, a chunk in one message, and are unpickled here (this thread: no thread spins
    on them, as multiprocessing.Pool's worker handler does, polling the result pipe while results wait in it).
    A thread sends the jobs, so a large job never waits for a large result to be read.  An error raised by
    ``fn`` is raised here, with the worker's traceback as its cause; a worker that dies (killed, out of
    memory) is a ChildProcessError, not a hang; if this generator fails or is closed early, the workers are
    stopped.  Workers fork where that is safe (``FORK_IS_SAFE``), else spawn (``fn``, ``initializer`` and
    ``initargs`` are then pickled)."""
    import queue
    import threading
    from multiprocessing.connection import wait

    ctx = mp.get_context("fork" if FORK_IS_SAFE else "spawn")
    conns, procs = [], []
    outbox: queue.SimpleQueue = queue.SimpleQueue()
    sender = threading.Thread(target=_send_jobs, args=(outbox,), daemon=True)
    try:
        for _ in range(processes):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(theirs, fn, initializer, tuple(initargs)), daemon=True)
            proc.start()
            theirs.close()
            conns.append(mine)
            procs.append(proc)
        sender.start()
        source = iter(jobs)
        busy = [0] * processes  # chunks a worker has not sent back
        done: dict[int, list] = {}  # chunk index -> results, until every earlier chunk is yielded
        sent = nxt = 0
        exhausted = False

        def feed(w: int, limit: int = in_flight) -> None:
            nonlocal sent, exhausted
            while not exhausted and busy[w] < limit:
                chunk = [job for _, job in zip(range(chunksize), source)]
                if not chunk:
                    exhausted = True
                    return
                outbox.put((conns[w], (sent, chunk)))
                busy[w] += 1
                sent += 1

        for limit in range(1, in_flight + 1):  # a chunk to every worker before a second to any
            for w in range(processes):
                feed(w, limit)
        of = {id(c): w for w, c in enumerate(conns)}
        sentinels = {p.sentinel: w for w, p in enumerate(procs)}
        while nxt < sent:
            while nxt in done:
                yield from done.pop(nxt)
                nxt += 1
            if nxt >= sent:
                break
            for ready in wait([*conns, *sentinels]):
                if isinstance(ready, int):  # a worker ended before it was told to: what it sent is read first
                    w = sentinels[ready]
                    if not conns[w].poll():
                        _died(procs[w])
                    continue
                w = of[id(ready)]
                try:
                    index, ok, payload = pickle.loads(ready.recv_bytes())
                except (EOFError, OSError):  # (a killed worker's pipe may also be reset)
                    _died(procs[w])
                if not ok:
                    error, text = payload
                    raise error from RemoteTraceback(text)
                done[index] = payload
                busy[w] -= 1
                feed(w)
        for conn in conns:
            outbox.put((conn, None))
        outbox.put(None)
        sender.join()
        for proc in procs:
            proc.join()
    finally:
        outbox.put(None)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join()
        if sender.is_alive():  # its sends to stopped workers fail at once; no pipe is closed under it
            sender.join(5)
        for conn in conns:
            conn.close()


def _died(proc) -> None:
    proc.join(5)
    raise ChildProcessError(f"a worker process stopped unexpectedly (exit code {proc.exitcode})")


def _send_jobs(outbox) -> None:
    """``ordered_map``'s sender: (connection, message) pairs until None."""
    while (item := outbox.get()) is not None:
        conn, message = item
        try:
            conn.send(message)
        except OSError:  # the worker is gone: ordered_map sees its sentinel
            pass


def _serve(conn, fn: Callable[[Any], Any], initializer: Callable[..., None], initargs: tuple) -> None:
    """An ``ordered_map`` worker: chunks of jobs in, (index, ok, results or (error, traceback)) out."""
    initializer(*initargs)
    while (message := conn.recv()) is not None:
        index, chunk = message
        try:
            out = pickle.dumps((index, True, [fn(job) for job in chunk]), pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            out = pickle.dumps((index, False, error_report(e)), pickle.HIGHEST_PROTOCOL)
        conn.send_bytes(out)


def error_report(e: BaseException) -> tuple[BaseException, str]:
    """An error raised in a forked process, as it travels to the parent (which raises it again): the error, or a
    RuntimeError naming it when it cannot make the trip (an error that does not pickle, or pickles but cannot
    be rebuilt, would be lost on the way), and the text of its traceback."""
    import traceback

    text = "".join(traceback.format_exception(e))
    try:
        pickle.loads(pickle.dumps(e, pickle.HIGHEST_PROTOCOL))
        return e, text
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}"), text


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
