"""The processes behind a running TorchServe, found through its management API, and their memory."""

import psutil

from asl_serve.client.rest import RestClient

MB = 1024 * 1024
MAX_GROWTH = 0.10  # the bar for a process's resident memory after its warm-up (0.10 is 10%)

# TorchServe overrides for a server whose memory is measured. The JVM's heap is fixed (HEAP_MB; the corpus and
# the soak keep 100-200 MB live), committed and touched at start, so resident memory grows only when native
# memory grows. Left to Java's defaults, G1 resizes the heap by how long its collections take and first touches
# its pages late, which says nothing about leaks (with only the minimum fixed, CI once saw the frontend grow
# 94 MB over two rounds of the corpus). A leak on the Java heap still shows, as failed requests.
HEAP_MB = 384
FIXED_HEAP = {"vmargs": f"-Xms{HEAP_MB}m -Xmx{HEAP_MB}m -XX:+AlwaysPreTouch"}
# Archive settings for one worker per version: every request of a version reaches the same process, so a
# fault hits its only worker, and memory is compared on a worker that saw the whole warm-up.
ONE_WORKER = {"minWorkers": 1, "maxWorkers": 1}


def worker_pids(rest: RestClient) -> dict[str, list[int]]:
    """Worker PIDs per version of `asl`, as the management API describes them."""
    return {version["modelVersion"]: [w["pid"] for w in version["workers"]] for version in rest.describe()}


def frontend(rest: RestClient) -> psutil.Process:
    """The Java frontend: the parent of every worker (TorchServe starts them)."""
    pid = next(pid for pids in worker_pids(rest).values() for pid in pids)
    return psutil.Process(pid).parent()


def resident_mb(rest: RestClient) -> dict[str, float]:
    """Resident memory (MB) of the frontend and of each worker, keyed `frontend` and `worker <version>#<n>`."""
    memory = {"frontend": frontend(rest).memory_info().rss / MB}
    for version, pids in sorted(worker_pids(rest).items()):
        for n, pid in enumerate(pids):
            try:
                memory[f"worker {version}#{n}"] = psutil.Process(pid).memory_info().rss / MB
            except psutil.NoSuchProcess:  # died since it was described: it has no memory to count
                continue
    return memory


def growth(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Relative growth of each process's resident memory (0.05 is 5%)."""
    return {name: after[name] / before[name] - 1 for name in before if name in after}
