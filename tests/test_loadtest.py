"""The load test, the benchmark and the stage profile, run for real on a tiny setting so they cannot rot.

Speed is measured by these tools, never asserted here: the tests check that they run, that nothing
failed, and that their reports hold what they promise.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import yaml

from client.launcher import LocalTorchServe
from loadtests.archives import CONFIG, MANIFEST, derive_archive, model_config
from tests.conftest import REPO, sample_images

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_module(module: str, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m module args` from the repo root; Locust monkey-patches whatever imports it, so never this process."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of every markdown table's body rows (headers and separators left out)."""
    rows = []
    for line in markdown.splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if set("".join(cells)) <= set("-:"):
            rows.pop()  # the header above the separator
        else:
            rows.append(cells)
    return rows


@pytest.fixture(scope="module")
def load_test_server(model_store, tmp_path_factory):
    """A private TorchServe for the load test alone, so no other test's changes can fail its requests."""
    server = LocalTorchServe(tmp_path_factory.mktemp("loadtest"), model_store)
    server.start()
    yield server
    server.stop()


def test_smoke_load_test_over_rest_and_grpc_has_no_failures(load_test_server, tmp_path):
    result = run_module("loadtests.run", "--users", "2", "--duration", "10s", "--out", str(tmp_path),
                        env=load_test_server.server.env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = (tmp_path / "summary.md").read_text()
    rows = {row[0]: row for row in table_rows(summary)}
    for endpoint in ("POST /predictions/asl", "gRPC Predictions"):
        requests, failures, per_second, p50, p95, p99 = rows[endpoint][1:]
        assert int(requests) > 0 and int(failures) == 0
        assert float(per_second) > 0 and 0 < int(p50) <= int(p95) <= int(p99)
    assert "PASS: no request failed" in summary
    for name in ("report.html", "locust_stats.csv", "locust_failures.csv", "locust.json"):
        assert (tmp_path / name).stat().st_size > 0


def test_a_derived_archive_changes_only_its_version_and_serving_settings(model_store, tmp_path):
    shipped = model_store / "asl-int8.mar"
    derived = derive_archive(shipped, tmp_path / "derived.mar", "bench-1", {"batchSize": 4, "minWorkers": 2,
                                                                            "handler": {"threads": None}})
    config = model_config(derived)
    assert config["batchSize"] == 4 and config["minWorkers"] == 2
    assert "threads" not in config["handler"] and config["handler"]["default_top_k"] == 5
    with zipfile.ZipFile(shipped) as original, zipfile.ZipFile(derived) as copy:
        assert original.namelist() == copy.namelist()
        assert json.loads(copy.read(MANIFEST))["model"]["modelVersion"] == "bench-1"
        unchanged = [n for n in original.namelist() if n not in (CONFIG, MANIFEST)]
        assert all(original.read(n) == copy.read(n) for n in unchanged)  # same model, handler and labels
        assert yaml.safe_load(copy.read(CONFIG)) == config


def test_quick_bench_measures_every_kind_of_configuration(tmp_path):
    result = run_module("loadtests.bench", "--quick", "--out", str(tmp_path), timeout=540)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = (tmp_path / "benchmarks.md").read_text()
    assert (tmp_path / "figures" / "throughput_latency.png").read_bytes().startswith(PNG_MAGIC)
    for section in ("## Targets (issue 5)", "## In-process limit", "## TorchServe: our handler", "## REST vs gRPC"):
        assert section in report
    assert "**Commit**" in report and "**Machine**" in report
    rows = table_rows(report)
    limits = [row for row in rows if row[0] == "int8" and len(row) == 4]
    assert {row[2] for row in limits} == {"1", "8"} and all(float(row[3]) > 0 for row in limits)
    served = [row for row in rows if row[0].startswith(("ours", "baseline")) and len(row) == 9]
    assert {row[0].split()[0] for row in served} == {"ours", "baseline"}
    assert {row[1] for row in served} == {"REST", "gRPC"}
    for label, transport, _, per_second, *_, failures, right in served:
        assert float(per_second) > 0 and failures == "0", (label, transport)
        assert int(right.rstrip("%")) >= 90, (label, right)  # the baseline answers as right as ours


def test_stage_profile_times_every_stage_of_both_handlers(tmp_path):
    images = tmp_path / "images"
    for path, label in sample_images()[::15]:
        (images / label).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, images / label / path.name)
    report = tmp_path / "profile.md"
    result = run_module("loadtests.profile_stages", "--batches", "2", "--rounds", "1", "--images", str(images),
                        "--report", str(report), "--trace-dir", str(tmp_path / "traces"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    times = {row[0]: row[1] for row in table_rows(report.read_text())}
    for stage in ("decode", "resize", "normalise", "forward", "postprocess",
                  "decode + resize + normalise (Pillow, NumPy)"):
        assert float(times[stage]) > 0, stage
    assert json.loads((tmp_path / "traces" / "ours-int8-batch2.json").read_text())["traceEvents"]
