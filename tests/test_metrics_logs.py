"""Metrics and logs of a real TorchServe: the handler's series as parsed by prometheus_client, the Grafana
dashboard and Prometheus config against them, and log files that say each thing once, in one place."""

import json
import re
from collections import Counter
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from prometheus_client.samples import Sample

from asl_serve.client.settings import Server
from asl_serve.handler import ts_config
from asl_serve.layout import REPO, sample_photos
from asl_serve.model.pipeline import STAGES as PIPELINE_STAGES
from tests.conftest import VERSIONS, families

DASHBOARD = REPO / "deploy" / "monitoring" / "grafana-dashboard.json"
SCRAPE_CONFIG = REPO / "deploy" / "monitoring" / "prometheus.yml"
STAGES = set(PIPELINE_STAGES)
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "le"}


def post(server: Server, body: bytes, version: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {server.key('inference')}", "Content-Type": "application/octet-stream"}
    return requests.post(f"{server.inference_url}/predictions/asl/{version}", data=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def traffic(torchserve) -> Server:
    """The session server after a good and a bad request to each version."""
    for version in VERSIONS:
        assert post(torchserve.server, sample_photos()[0][0].read_bytes(), version).status_code == 200
        assert post(torchserve.server, b"plain text", version).status_code == 415
    return torchserve.server


def labelled(family, **labels) -> list[Sample]:
    return [s for s in family.samples if labels.items() <= s.labels.items()]


def test_handler_timings_and_batch_sizes_are_histograms_per_version(traffic):
    found = families(traffic)
    stages, batches = found["asl_stage_seconds"], found["asl_batch_size"]
    assert (stages.type, batches.type) == ("histogram", "histogram")
    for version in VERSIONS:
        counts = labelled(stages, ModelVersion=version)
        assert STAGES <= {s.labels["Stage"] for s in counts} <= STAGES | {"explain"}  # explain: /explanations
        assert all(s.value >= 1 for s in counts if s.name == "asl_stage_seconds_count")
        buckets = [s for s in labelled(batches, ModelVersion=version) if s.name == "asl_batch_size_bucket"]
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value >= 2  # both requests, in batches of 1+


def test_batches_are_counted_per_size(traffic):
    batches = families(traffic)["asl_batches"]
    assert batches.type == "counter"
    for version in VERSIONS:
        sizes = {int(s.labels["BatchSize"]): s.value for s in labelled(batches, ModelVersion=version)}
        assert sizes and set(sizes) <= set(range(1, 9)) and all(count >= 1 for count in sizes.values())


def test_handler_time_is_emitted_as_declared(traffic):
    """TorchServe's metrics.yaml declares HandlerTime for every model: this handler emits it for each batch."""
    handler_time = families(traffic)["HandlerTime"]
    assert handler_time.type == "gauge"
    assert {s.labels["ModelName"] for s in handler_time.samples} >= {"asl"}
    assert all(s.value > 0 for s in handler_time.samples)


def test_errors_are_counted_by_type_and_version(traffic):
    errors = families(traffic)["asl_request_errors"]
    assert errors.type == "counter"
    for version in VERSIONS:
        (sample,) = labelled(errors, ModelVersion=version, ErrorType="UnsupportedMediaType")
        assert sample.name == "asl_request_errors_total" and sample.value >= 1


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_dashboard_queries_use_exposed_series_and_labels(traffic):
    found = families(traffic)
    exposed = {s.name: set(s.labels) for family in found.values() for s in family.samples}
    exposed |= {name: set() for name in found}  # families with no sample yet still have a name
    queries = dashboard_queries()
    assert len(queries) >= 8
    for query in queries:
        names = {w for w in re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*[\[{]", query)} - PROMQL_WORDS
        assert names, query
        for name in names:
            assert name in exposed, f"{name} (in {query}) is not on /metrics"
            for group in re.findall(r"by \(([^)]*)\)", query):
                for label in (g.strip() for g in group.split(",")):
                    assert label in exposed[name] or label in {"le"}, f"{name} has no label {label}"
    histograms = {name for name, family in found.items() if family.type == "histogram"}
    used = {re.sub("|".join(HISTOGRAM_SUFFIXES) + "$", "", w) for q in queries for w in re.findall(r"asl_\w+", q)}
    assert {"asl_stage_seconds", "asl_batch_size"} <= used & histograms
    assert any("asl_batches_total" in q and "BatchSize" in q for q in queries)
    assert any("asl_request_errors_total" in q for q in queries)


def test_scrape_config_targets_the_metrics_port_of_the_config():
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    (static,) = [job for job in config["scrape_configs"] if "static_configs" in job]
    port = urlsplit(ts_config.read()["metrics_address"]).port
    assert static["metrics_path"] == "/metrics"
    assert static["static_configs"][0]["targets"] == [f"127.0.0.1:{port}"]


def timestamped(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\d{4}-\d{2}-\d{2}T", line)]


def test_each_log_line_is_written_once_in_its_own_file(torchserve, traffic):
    ts_log = torchserve.log("ts_log.log")
    repeated = [line for line, count in Counter(timestamped(ts_log)).items() if count > 1]
    assert timestamped(ts_log) and repeated == []
    assert "ACCESS_LOG" not in ts_log and "[METRICS]" not in ts_log and "MODEL_LOG" not in ts_log
    assert "Invalid model config in mar" not in ts_log  # worker counts come from config.properties on purpose
    assert "POST /predictions/asl/1.0-fp32" in torchserve.log("access_log.log")
    assert "asl_stage_seconds" in torchserve.log("model_metrics.log")


def test_requests_do_not_grow_ts_log(torchserve, traffic):
    before = len(timestamped(torchserve.log("ts_log.log")))
    for _ in range(10):
        assert post(torchserve.server, sample_photos()[1][0].read_bytes(), "1.0-int8").status_code == 200
    assert len(timestamped(torchserve.log("ts_log.log"))) - before <= 2  # not 14 lines a request as before


def test_int8_worker_loads_without_the_deprecation_notice(torchserve):
    model_log = torchserve.log("model_log.log")
    assert "loaded asl_int8.pt" in model_log
    assert "Quantizer.cpp" not in model_log and "deprecated" not in model_log
