"""What the bench measured: the data its report, figure and benchmarks.json are made from."""

import dataclasses
import statistics
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from asl_serve.loadtests.bench.grid import Served


@dataclass(frozen=True)
class Limit:
    """The handler's pipeline with no server, in `processes` processes at once over the same window."""

    variant: str
    processes: int
    threads: int  # PyTorch threads in each process
    batch: int
    images_per_s: float  # summed over the processes
    ms_per_image: float  # median time of one call divided by the batch


@dataclass
class Share:
    """One client process's part of one measurement window."""

    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    # CPU seconds in the window: "client" (this Locust process); the first client process also reads TorchServe's
    # "frontend" (the JVM) and "workers" (its Python worker processes)
    cpu_s: dict[str, float] = field(default_factory=dict)


@dataclass
class Measurement:
    """One served configuration at one concurrency over one transport, from `clients` Locust processes."""

    served: Served
    transport: str
    concurrency: int
    clients: int = 1
    accuracy: float = float("nan")  # share of the photos answered with their folder's name, before the load
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    cpu_s: Counter = field(default_factory=Counter)

    def add(self, shares: list[Share]) -> None:
        """Pool one window of every client process (they measured at the same time)."""
        self.seconds += statistics.mean(share.seconds for share in shares)
        for share in shares:
            self.latencies_ms += share.latencies_ms
            self.failures += share.failures
            self.cpu_s.update(share.cpu_s)

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def cpu_percent(self, part: str) -> float:
        """CPU time of `part` over the window, in % of one core (summed over processes)."""
        return 100 * self.cpu_s[part] / self.seconds if self.seconds else float("nan")

    def cpu_ms_per_request(self, part: str) -> float:
        return 1000 * self.cpu_s[part] / len(self.latencies_ms) if self.latencies_ms else float("nan")

    def summary(self) -> dict:
        return {
            "served": {**dataclasses.asdict(self.served), "label": self.served.label},
            "transport": self.transport, "concurrency": self.concurrency, "clients": self.clients,
            "accuracy": self.accuracy, "seconds": self.seconds, "requests": len(self.latencies_ms),
            "failures": self.failures, "requests_per_s": self.throughput,
            **{f"p{q}_ms": self.percentile(q) for q in (50, 95, 99)},
            "cpu_percent": {part: self.cpu_percent(part) for part in self.cpu_s},
        }


def data(limits: list[Limit], measurements: list[Measurement]) -> dict:
    """Everything measured, as benchmarks.json holds it (latencies as percentiles)."""
    return {"limits": [dataclasses.asdict(x) for x in limits], "measurements": [m.summary() for m in measurements]}
