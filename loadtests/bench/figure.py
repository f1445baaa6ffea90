"""figures/throughput_latency.png: throughput against p99, one line per configuration through its concurrency levels."""

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from asl_serve.loadtests.bench.grid import GRPC, REST, SHIPPED, Served, shipped_config
from asl_serve.loadtests.bench.results import Measurement


def figure(measurements: list[Measurement], path: Path) -> None:
    """Left: our handler's grid. Right: the shipped configuration (REST and gRPC) against the baseline handler,
    with both allocator settings. One Locust process throughout."""
    series: dict[tuple[Served, str], list[Measurement]] = {}
    for m in measurements:
        if m.latencies_ms and m.clients == 1:
            series.setdefault((m.served, m.transport), []).append(m)
    fig = Figure(figsize=(16, 7))
    grid_axes, rivals_axes = fig.subplots(1, 2, sharey=True)
    colors = matplotlib.colormaps["tab20"]
    for index, ((served, transport), points) in enumerate(series.items()):
        as_shipped = served.allocator == SHIPPED
        rival = served.handler == "baseline" or not as_shipped or served == shipped_config()
        style = "--" if served.handler == "baseline" else (":" if transport == GRPC else "-")
        in_grid = served.handler == "ours" and as_shipped and transport == REST
        for axes in [rivals_axes] * rival + [grid_axes] * in_grid:
            axes.plot([p.throughput for p in points], [p.percentile(99) for p in points], style, marker="o",
                      color=colors(index % 20), label=f"{served.label}, {transport}")
            for p in points:
                axes.annotate(f"x{p.concurrency}", (p.throughput, p.percentile(99)), fontsize=7,
                              textcoords="offset points", xytext=(3, 3))
    for axes, title in ((grid_axes, "our handler: variant, batch size/delay, workers"),
                        (rivals_axes, "shipped configuration vs baseline handler")):
        axes.set_title(title)
        axes.set_xlabel("throughput (requests/s)")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=1)
    grid_axes.set_ylabel("p99 latency (ms); point labels: concurrency")
    fig.suptitle("TorchServe on this machine: throughput vs p99 latency")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
