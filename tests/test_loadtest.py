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

from asl_serve.client.settings import Server
from asl_serve.handler.archive import CONFIG, MANIFEST, shipped_archive
from asl_serve.harness.archives import derive, model_config
from asl_serve.harness.server import free_ports, private_torchserve
from asl_serve.layout import REPO, sample_photos
from asl_serve.loadtests.profile_stages import BASELINE
from asl_serve.model.pipeline import STAGES

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
def load_test_server(model_store):
    """A private TorchServe for the load test alone, so no other test's changes can fail its requests."""
    with private_torchserve(model_store) as torchserve:
        yield torchserve


def test_smoke_load_test_over_rest_and_grpc_has_no_failures(load_test_server, tmp_path):
    result = run_module("asl_serve.loadtests.run", "--users", "2", "--duration", "10s", "--out", str(tmp_path),
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


def test_a_load_test_without_a_server_fails_at_once_and_leaves_no_old_report(tmp_path):
    (port,) = free_ports(1)
    out = tmp_path / "loadtest"
    out.mkdir()
    (out / "summary.md").write_text("**PASS: no request failed.**\n")  # an earlier run's
    done = subprocess.run(
        [sys.executable, "-m", "asl_serve.loadtests.run", "--duration", "60s", "--out", str(out)], capture_output=True,
        text=True, timeout=60, env={**os.environ, **Server(inference_url=f"http://127.0.0.1:{port}",
                                                         key_file=tmp_path / "key_file.json").env()},
    )
    assert done.returncode == 1 and "make serve" in done.stderr
    assert "FAIL" in (out / "summary.md").read_text() and "PASS" not in (out / "summary.md").read_text()
    assert not (out / "report.html").exists()


def test_a_derived_archive_changes_only_its_version_and_serving_settings(model_store, tmp_path):
    shipped = model_store / shipped_archive("int8").name
    source = derive(shipped, tmp_path / "source.mar", handler={"default_top_k": 3})  # one more handler key to keep
    derived = derive(source, tmp_path / "derived.mar", "bench-1", batchSize=4, minWorkers=2, handler={"threads": None})
    config = model_config(derived)
    assert config["batchSize"] == 4 and config["minWorkers"] == 2
    assert "threads" not in config["handler"] and config["handler"]["default_top_k"] == 3
    with zipfile.ZipFile(shipped) as original, zipfile.ZipFile(derived) as copy:
        assert original.namelist() == copy.namelist()
        assert json.loads(copy.read(MANIFEST))["model"]["modelVersion"] == "bench-1"
        unchanged = [n for n in original.namelist() if n not in (CONFIG, MANIFEST)]
        assert all(original.read(n) == copy.read(n) for n in unchanged)  # same model, handler and labels
        assert yaml.safe_load(copy.read(CONFIG)) == config


def test_quick_bench_measures_every_kind_of_configuration_and_the_limits(tmp_path):
    result = run_module("asl_serve.loadtests.bench", "--quick", "--out", str(tmp_path), timeout=540)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (tmp_path / "benchmarks.md").read_text().startswith("# Benchmarks")
    assert (tmp_path / "figures" / "throughput_latency.png").read_bytes().startswith(PNG_MAGIC)
    measured = json.loads((tmp_path / "benchmarks.json").read_text())
    limits = measured["limits"]
    assert {(x["processes"], x["batch"]) for x in limits} == {(1, 1), (1, 8), (os.cpu_count(), 1), (os.cpu_count(), 8)}
    assert all(x["images_per_s"] > 0 and x["ms_per_image"] > 0 for x in limits)
    served = measured["measurements"]
    assert {m["served"]["handler"] for m in served} == {"ours", "baseline"}
    assert {m["transport"] for m in served} == {"REST", "gRPC"}
    assert {m["clients"] for m in served} == {1, 2}  # the shipped configuration from one and two Locust processes
    assert len({m["served"]["allocator"] for m in served}) == 2
    for m in served:
        label = (m["served"]["label"], m["transport"], m["clients"])
        assert m["requests"] > 0 and m["failures"] == 0, label
        assert m["accuracy"] >= 0.9, label  # the baseline answers as right as ours
        assert m["cpu_percent"]["client"] > 0 and m["cpu_percent"]["frontend"] > 0, label


def test_stage_profile_times_every_stage_of_both_handlers(tmp_path):
    images = tmp_path / "images"
    for path, label in sample_photos()[::15]:
        (images / label).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, images / label / path.name)
    report = tmp_path / "profile.md"
    result = run_module("asl_serve.loadtests.profile_stages", "--batches", "2", "--rounds", "1",
                        "--images", str(images), "--report", str(report), "--trace-dir", str(tmp_path / "traces"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    times = {row[0]: row[1] for row in table_rows(report.read_text())}
    for stage in (*STAGES, *BASELINE):  # the stages Classifier.classify marks, and the baseline's
        assert float(times[stage]) > 0, stage
    assert json.loads((tmp_path / "traces" / "ours-int8-batch2.json").read_text())["traceEvents"]
