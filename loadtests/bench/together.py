"""Run a function in several spawned processes at once, their measured parts starting together.

The in-process limit needs N interpreters of one PyTorch thread each, and the Locust clients must run
outside the bench's process (Locust monkey-patches the process that imports it). Each call gets a
barrier to wait at once its set-up (imports, model loading) is done, so every process measures over
the same wall-clock window. The barriers are semaphores the processes inherit when they start: they
keep working after Locust has patched sockets.
"""

import importlib
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import contextmanager
from threading import Barrier

START_TIMEOUT_S = 300  # for every process to finish its set-up and reach the barrier

Together = Callable[[str, list[tuple]], list]
BARRIERS: dict[int, Barrier] = {}  # in a pool process: the barrier for each number of calls made at once


def adopt(barriers: dict[int, Barrier]) -> None:
    BARRIERS.update(barriers)


def call(target: str, parties: int, *args):
    """`module:function` called with its barrier and `args`; imported by name, so the submitting process never
    imports it."""
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)(BARRIERS[parties], *args)


@contextmanager
def processes(count: int) -> Iterator[Together]:
    """`together(target, calls)`: `target(barrier, *args)` for every `args` in `calls`, each in its own process.

    The `count` processes are spawned once and reused, so imports are paid once.
    """
    context = multiprocessing.get_context("spawn")
    barriers = {parties: context.Barrier(parties, timeout=START_TIMEOUT_S) for parties in range(1, count + 1)}
    with ProcessPoolExecutor(count, mp_context=context, initializer=adopt, initargs=(barriers,)) as pool:

        def together(target: str, calls: list[tuple]) -> list:
            if len(calls) > count:  # the extra calls would wait for a process while the others wait at the barrier
                raise ValueError(f"{len(calls)} calls at once in a pool of {count} processes")
            futures = [pool.submit(call, target, len(calls), *args) for args in calls]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if failed := [f.exception() for f in done if f.exception()]:
                barriers[len(calls)].abort()  # release the others at once rather than after the timeout
                raise failed[0]
            return [f.result() for f in futures]

        yield together
