"""Wait for a condition: the one poll-until-deadline loop of the tooling and the tests."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(check: Callable[[], T], timeout: float, what: str, interval: float = 0.1,
         ignore: tuple[type[Exception], ...] = ()) -> T:
    """`check()`'s first truthy result, asked every `interval` s; TimeoutError naming `what` after `timeout` s.

    Exceptions of the `ignore` types count as "not yet" (a server still starting, a worker being replaced).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except ignore:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: still not the case after {timeout:g} s")
        time.sleep(interval)
