"""workers.ordered_map: results in the jobs' order whatever the workers' speed, errors and deaths reach the
caller, large jobs and results do not deadlock, and a caller that stops early leaves no worker behind.
workers.side_process: a forked job that inherits its data, with the same care for errors, deaths and stops."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigterm import sigterm_as

from bsmeth.workers import SIDE, RemoteTraceback, ordered_map, pool_worker, quiet_child, side_process, start_child

_STARTED: dict = {}


def _start(parent: int, tag: str = "") -> None:
    pool_worker(parent)
    _STARTED["tag"] = tag


def _slow_square(job: tuple[int, float]) -> tuple[int, int, str]:
    k, delay = job
    time.sleep(delay)
    return k, k * k, _STARTED["tag"]


@settings(max_examples=8, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.0, 0.002, 0.01]), max_size=40), st.integers(1, 3), st.integers(1, 5),
       st.integers(1, 3))
def test_results_come_in_job_order(delays, processes, chunksize, in_flight):
    jobs = list(enumerate(delays))
    got = list(ordered_map(_slow_square, iter(jobs), processes, _start, (os.getpid(), "init ran"),
                           chunksize, in_flight))
    assert got == [(k, k * k, "init ran") for k, _ in jobs]


def _pid(job: int) -> int:
    time.sleep(0.2)
    return os.getpid()


def test_every_worker_gets_work_before_any_gets_a_second_chunk():
    pids = list(ordered_map(_pid, range(2), 2, _start, (os.getpid(),), in_flight=2))
    assert len(set(pids)) == 2


class _Odd(ValueError):
    pass


def _fails_on_3(job: int) -> int:
    if job == 3:
        raise _Odd(f"job {job} is odd")
    return job


def test_a_workers_error_is_raised_here_with_its_traceback():
    got = []
    with pytest.raises(_Odd, match="job 3 is odd") as err:
        for x in ordered_map(_fails_on_3, range(10), 2, _start, (os.getpid(),)):
            got.append(x)
    assert got == [0, 1, 2]
    assert isinstance(err.value.__cause__, RemoteTraceback) and "_fails_on_3" in str(err.value.__cause__)


def _slow_0_fails_on_3(job: int) -> int:
    if job == 0:
        time.sleep(0.5)
    return _fails_on_3(job)


def test_an_error_waits_for_the_results_before_it():
    """Job 3 fails at once on one worker while job 0 is still running on the other: 0, 1 and 2 come first."""
    got = []
    with pytest.raises(_Odd, match="job 3 is odd"):
        for x in ordered_map(_slow_0_fails_on_3, range(10), 2, _start, (os.getpid(),)):
            got.append(x)
    assert got == [0, 1, 2]


class _Unpicklable(Exception):
    def __init__(self, a, b):
        super().__init__(a)  # pickles with one argument, cannot be rebuilt from it


def _raises_unpicklable(job: int) -> int:
    raise _Unpicklable("lost?", 2)


def test_an_error_that_cannot_travel_still_says_what_it_was():
    with pytest.raises(RuntimeError, match="_Unpicklable: lost"):
        list(ordered_map(_raises_unpicklable, range(2), 2, _start, (os.getpid(),)))


def _dies(job: int) -> int:
    if job == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return job


def test_a_worker_that_dies_is_an_error_not_a_hang():
    with pytest.raises(ChildProcessError, match="stopped unexpectedly"):
        list(ordered_map(_dies, range(20), 2, _start, (os.getpid(),)))


def _echo_big(job: bytes) -> bytes:
    return job * 2


def test_large_jobs_and_results_do_not_deadlock():
    jobs = [bytes([k]) * 300_000 for k in range(12)]  # each far beyond a pipe's buffer, both ways
    got = list(ordered_map(_echo_big, iter(jobs), 2, _start, (os.getpid(),), chunksize=2, in_flight=2))
    assert got == [j * 2 for j in jobs]


def _pid_then_wait(job: int) -> int:
    if job > 0:
        time.sleep(60)
    return os.getpid()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see the workers")
def test_stopping_early_stops_the_workers():
    gen = ordered_map(_pid_then_wait, range(10), 2, _start, (os.getpid(),), in_flight=1)
    first = next(gen)
    t = time.perf_counter()
    gen.close()  # the other worker is 60 s into a job
    assert time.perf_counter() - t < 10
    assert not Path(f"/proc/{first}").exists() or Path(f"/proc/{first}/stat").read_text().split()[2] == "Z"


_DEAF: dict = {}


def _deaf_then_wait(job: int) -> int:
    """Job 0 returns; job 1 ignores SIGTERM (as a worker forked where SIGTERM is ignored, and signalled before
    it installs its handler, does), says so, and sleeps."""
    if job > 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _DEAF["deaf"].set()
        time.sleep(60)
    return os.getpid()


def test_a_worker_deaf_to_sigterm_is_killed_not_waited_for():
    _DEAF["deaf"] = mp.get_context("fork").Event()
    gen = ordered_map(_deaf_then_wait, range(2), 2, _start, (os.getpid(),), in_flight=1)
    next(gen)
    assert _DEAF["deaf"].wait(10)
    t = time.perf_counter()
    gen.close()
    assert time.perf_counter() - t < 10


# --------------------------------------------------------------------------- side_process

def _inherited(scale: int) -> tuple[int, bytes]:
    data = SIDE["data"]
    return os.getpid(), data["payload"] * scale


def test_a_side_job_sees_the_data_it_inherited_and_returns_its_value():
    payload = b"x" * 300_000  # the value far beyond a pipe's buffer: read while the job waits to send it
    with side_process({"payload": payload}) as side:
        job = side.submit(_inherited, 2)
        pid, value = job.result()
    assert pid != os.getpid() and value == payload * 2
    assert job.result() == (pid, value)  # asked again: the same value, no second wait


def _side_fails(text: str) -> None:
    raise _Odd(text)


def test_a_side_jobs_error_is_raised_here_with_its_traceback():
    with pytest.raises(_Odd, match="bad table") as err:
        with side_process(None) as side:
            side.submit(_side_fails, "bad table").result()
    assert isinstance(err.value.__cause__, RemoteTraceback) and "_side_fails" in str(err.value.__cause__)


def test_leaving_the_block_waits_for_the_job_and_raises_its_error():
    with pytest.raises(_Odd, match="never asked"):
        with side_process(None) as side:
            side.submit(_side_fails, "never asked")


def _side_dies() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_side_job_that_dies_is_an_error_not_a_hang():
    with pytest.raises(ChildProcessError, match="stopped unexpectedly"):
        with side_process(None) as side:
            side.submit(_side_dies).result()


def _side_sleeps() -> int:
    time.sleep(60)
    return os.getpid()


@pytest.mark.parametrize("sigterm", [signal.SIG_DFL, signal.SIG_IGN], ids=["sigterm_default", "sigterm_ignored"])
def test_a_failure_beside_the_side_job_stops_it(sigterm):
    """Also with SIGTERM ignored in this process (as CI started the tests once), when the job is stopped at once,
    before it can have set its own handler: the stop is not lost (the block waited out the job's 60 s)."""
    t = time.perf_counter()
    with sigterm_as(sigterm), pytest.raises(KeyError):
        with side_process(None) as side:
            job = side.submit(_side_sleeps)
            raise KeyError("the main process failed")
    assert time.perf_counter() - t < 10
    assert not job._proc.is_alive()


def _side_deaf_sleeps() -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    SIDE["data"].set()
    time.sleep(60)
    return os.getpid()


def test_a_side_job_deaf_to_sigterm_is_killed_not_waited_for():
    """A job that ignores SIGTERM itself is killed after the grace, not waited for."""
    deaf = mp.get_context("fork").Event()
    t = time.perf_counter()
    with pytest.raises(KeyError):
        with side_process(deaf) as side:
            job = side.submit(_side_deaf_sleeps)
            assert deaf.wait(10)
            raise KeyError("the main process failed")
    assert time.perf_counter() - t < 10
    assert not job._proc.is_alive()


def _late_handler(first: str, parent: int) -> None:
    time.sleep(0.5)  # the SIGTERM is sent meanwhile, before the child's handler
    {"pool_worker": pool_worker, "quiet_child": quiet_child}[first](parent)
    time.sleep(30)


@pytest.mark.parametrize("first, exitcode", [("pool_worker", -signal.SIGTERM), ("quiet_child", 1)])
def test_a_sigterm_sent_before_the_childs_handler_waits_for_it(first, exitcode):
    """start_child forks with SIGTERM blocked: with SIGTERM ignored here, a SIGTERM sent before the child sets
    its handler is not lost (the child would sleep on) but taken by that handler."""
    proc = mp.get_context("fork").Process(target=_late_handler, args=(first, os.getpid()), daemon=True)
    try:
        with sigterm_as(signal.SIG_IGN):
            start_child(proc)
            proc.terminate()
        proc.join(10)
    finally:
        if proc.is_alive():
            proc.kill()
    assert proc.exitcode == exitcode
