"""Processes beside the main one: what every forked worker of bsmeth does first, the ordered map over worker
processes that the call and the NGS engine share, and the side process: a job forked beside the main process
that inherits data instead of receiving it pickled.

Pipeline position: a helper of ``pipeline`` (the call's workers, the cpg_calls.tsv writer), ``ngs.run`` (its
workers) and ``downstream`` (the figure process); it imports nothing of bsmeth.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, NoReturn, Optional, Sequence

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


def start_child(proc) -> None:
    """``proc.start()`` with SIGTERM blocked across the fork: the child starts with it blocked and unblocks it
    once its own handler is set (``pool_worker``, ``quiet_child``), so a SIGTERM sent to it before then waits for
    that handler.  Unblocked, it would meet the disposition inherited from this process: where SIGTERM is ignored
    (a supervisor may start the run so, and tests run in-process), it would be lost and the child would run on."""
    import signal

    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        proc.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _take_sigterm() -> None:
    """Unblock SIGTERM in a child started by ``start_child``, its handler set: one sent meanwhile arrives now."""
    import signal

    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def pool_worker(parent: int) -> None:
    """What a pool's worker process does first: it dies with ``parent``; Ctrl-C is the parent's to handle (it
    stops the pool); the pool stops its workers with SIGTERM, which ends one quietly."""
    import signal

    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _take_sigterm()


def quiet_child(parent: int) -> None:
    """What a forked helper process does first: Ctrl-C is the parent's to handle (it stops the helper); SIGTERM
    exits through the atomic writer's cleanup, without a traceback; and it dies with ``parent``."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    _take_sigterm()
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
    ``fn`` is raised here in its job's turn (after the results of the jobs before it, as ``Pool.imap`` does),
    with the worker's traceback as its cause; a worker that dies (killed, out of
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
            start_child(proc)
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
        failure: Optional[tuple[int, tuple]] = None  # the first failed chunk: (index, (error, traceback))
        while nxt < sent:
            while nxt in done:
                yield from done.pop(nxt)
                nxt += 1
            if failure is not None and nxt == failure[0]:  # every result before it is yielded: now its error
                _raise_remote(failure[1])
            if nxt >= sent:
                break
            for ready in wait([*conns, *sentinels]):
                if isinstance(ready, int):  # a worker ended before it was told to: what it sent is read first
                    w = sentinels[ready]
                    if not conns[w].poll():
                        died(procs[w])
                    continue
                w = of[id(ready)]
                try:
                    index, ok, payload = pickle.loads(ready.recv_bytes())
                except (EOFError, OSError):  # (a killed worker's pipe may also be reset)
                    died(procs[w])
                busy[w] -= 1
                if not ok:  # raised in its turn, after the results of the chunks before it; no more jobs go out
                    if failure is None or index < failure[0]:
                        failure = (index, payload)
                    exhausted = True
                    continue
                done[index] = payload
                feed(w)
        for conn in conns:
            outbox.put((conn, None))
        outbox.put(None)
        sender.join()
        for proc in procs:
            proc.join()
    finally:
        outbox.put(None)
        stop_processes(procs)
        if sender.is_alive():  # its sends to stopped workers fail at once; no pipe is closed under it
            sender.join(5)
        for conn in conns:
            conn.close()


STOP_GRACE = 3.0  # seconds a stopped worker has to exit on SIGTERM (its atomic writes cleaned up) before SIGKILL


def stop_processes(procs: Sequence, grace: float = STOP_GRACE) -> None:
    """Stop these processes: SIGTERM, then SIGKILL for any still alive ``grace`` seconds later (a job that
    ignores SIGTERM, or a child not started by ``start_child`` that missed it, is not waited for until it ends)."""
    import time

    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()


def died(proc, what: str = "a worker process") -> NoReturn:
    """Raise the error for a process that ended without its answer (its pipe closed or reset)."""
    proc.join(5)
    raise ChildProcessError(f"{what} stopped unexpectedly (exit code {proc.exitcode}): killed, or out of memory?"
                            ) from None


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
        conn.send_bytes(_reply((index,), _each, fn, chunk))


def _each(fn: Callable[[Any], Any], chunk: list) -> list:
    return [fn(job) for job in chunk]


def _reply(head: tuple, fn: Callable[..., Any], *args) -> bytes:
    """What a worker sends back, pickled: (*head, True, fn(*args)), or (*head, False, ``error_report``) if
    computing or pickling the value failed; the parent raises the error again with ``_raise_remote``."""
    try:
        return pickle.dumps((*head, True, fn(*args)), pickle.HIGHEST_PROTOCOL)
    except Exception as e:
        return pickle.dumps((*head, False, error_report(e)), pickle.HIGHEST_PROTOCOL)


def _raise_remote(report: tuple[BaseException, str]) -> None:
    """A worker's ``error_report`` raised in this process, with the worker's traceback as its cause."""
    error, text = report
    raise error from RemoteTraceback(text)


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


class SideJob:
    """``fn(*args)`` running in a process forked for it (``side_process``): ``result()`` waits for its value,
    raises its error again (with its traceback as the cause, as ``ordered_map`` does), or raises
    ChildProcessError if the process died (killed, out of memory) instead of waiting forever."""

    def __init__(self, fn: Callable[..., Any], args: tuple, data, parent: int) -> None:
        ctx = mp.get_context("fork")
        mine, theirs = ctx.Pipe(duplex=False)
        self._conn = mine
        self._proc = ctx.Process(target=_side_main, args=(theirs, fn, args, data, parent), daemon=True)
        start_child(self._proc)
        theirs.close()
        self._done = False
        self._value: Any = None

    def result(self) -> Any:
        if not self._done:
            from multiprocessing.connection import wait

            wait([self._conn, self._proc.sentinel])
            try:
                ok, payload = pickle.loads(self._conn.recv_bytes())
            except (EOFError, OSError):  # it ended without a word
                died(self._proc)
            self._proc.join()
            self._conn.close()
            self._done = True
            if not ok:
                _raise_remote(payload)
            self._value = payload
        return self._value

    def stop(self) -> None:
        stop_processes([self._proc])
        self._conn.close()
        self._done = True


class SideProcess:
    """What ``side_process`` yields: ``submit(fn, *args)`` starts ``fn(*args)`` in a forked process that
    inherits the data (``SIDE["data"]``) and returns its ``SideJob``."""

    def __init__(self, data) -> None:
        self.data = data
        self.jobs: list[SideJob] = []

    def submit(self, fn: Callable[..., Any], *args) -> SideJob:
        job = SideJob(fn, args, self.data, os.getpid())
        self.jobs.append(job)
        return job


@contextmanager
def side_process(data) -> Iterator[SideProcess]:
    """Work beside this process's, in forked processes that inherit ``data`` (``SIDE["data"]``: not pickled).
    Leaving the block waits for every job and raises the first error among them; if the block fails or is
    interrupted, the jobs are stopped."""
    side = SideProcess(data)
    try:
        yield side
        for job in side.jobs:
            job.result()
    finally:  # the jobs still at work when the block or a job failed (or was interrupted)
        for job in side.jobs:
            job.stop()


def _side_main(conn, fn: Callable[..., Any], args: tuple, data, parent: int) -> None:
    quiet_child(parent)
    SIDE.update(data=data)  # forked: the data (loaded tables, results) are inherited, not pickled
    conn.send_bytes(_reply((), fn, *args))
    conn.close()
