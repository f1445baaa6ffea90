"""The processes behind a running TorchServe, found through its management API, and their memory."""

import psutil

from client.rest import RestClient

MB = 1024 * 1024

# TorchServe overrides for a server whose memory is measured. The JVM commits and touches a 384 MB heap at
# start (the corpus and the soak keep 100-200 MB live), so its resident memory grows only when the heap has
# to expand past that or native memory grows. With Java's defaults it creeps by tens of MB a minute for a
# long while, as G1 resizes a small heap and first touches pages, which says nothing about leaks.
PRETOUCHED_HEAP = {"vmargs": "-Xms384m -XX:+AlwaysPreTouch"}
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
