# asl-serve: train, export, archive, serve and test an ASL alphabet classifier on TorchServe.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SHARED := ../shared/data/asl
DATA ?= $(wildcard $(SHARED)/*/train)
# asl_serve.layout.EXPORT_DIR, where the Python commands write and read the exports by default: here only to track them
EXPORT_DIR := build/export
WEIGHTS := training/weights/asl_lite0.pt
EXPORTS := $(EXPORT_DIR)/asl_fp32.pt $(EXPORT_DIR)/asl_int8.pt $(EXPORT_DIR)/asl_fp32.onnx $(EXPORT_DIR)/asl_int8.onnx
MARS := model_store/asl-fp32.mar model_store/asl-int8.mar model_store/asl-onnx-int8.mar
# glibc's allocator settings for TorchServe, from the one file that holds them (docs/performance.md)
MALLOC_ENV := $(shell grep -v '^\#' deploy/allocator.env)
# TorchServe keeps its pid file (TMPDIR) and worker sockets (TEMP) in the temp directory: this checkout's own,
# so that `make stop` here never stops a server another checkout started.
TS_TMP := $(CURDIR)/build/tmp
TS_ENV := TMPDIR=$(TS_TMP) TEMP=$(TS_TMP)
# What an archive is built from: all of model/ (it ships whole), the handler, its settings and the builder
CORE := $(shell find model -type f -not -path '*/__pycache__/*') handler/asl_handler.py handler/model-config.yaml \
        handler/archive.py asl_serve/__init__.py

.DEFAULT_GOAL := help
.PHONY: help install java-check train export figures evaluate compare archive serve demo stop protos rollout-demo kserve-bundle \
        serve-kserve kserve-venv soak bad-inputs faults loadtest bench profile image base-image compose-up compose-down kube-play kube-down test lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-19s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install the project with pinned dependencies

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; asl-serve needs Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

java-check:
	@command -v java >/dev/null || { echo "error: TorchServe needs Java 17 (e.g. apt install openjdk-17-jre-headless)"; exit 1; }
	@v=$$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -1); \
	  [ "$${v:-0}" -ge 17 ] || { echo "error: TorchServe needs Java 17, found Java $${v:-unknown}"; exit 1; }

train: $(STAMP) ## train on DATA="dir1 dir2" (default: every shared train/ split); writes the committed weights
	$(PY) -m asl_serve.training.arms_length $(addprefix --data ,$(DATA))
	$(PY) -m asl_serve.training.train $(addprefix --data ,$(DATA))
	$(PY) -m asl_serve.training.hand_shape $(addprefix --data ,$(DATA))

$(EXPORTS) &: $(WEIGHTS) $(STAMP)
	$(PY) -m asl_serve.training.export $(addprefix --data ,$(DATA))

export: $(EXPORTS) ## TorchScript and ONNX, fp32 and int8 (refuses an int8 below 99% agreement with its fp32)

figures: $(STAMP) ## reports/figures/augmentations.png from real images
	$(PY) -m asl_serve.training.figures $(addprefix --data ,$(DATA))

URL ?=
VERSION ?=
evaluate: $(EXPORTS) ## accuracy per set and class, every variant: reports/evaluation.md (URL=, VERSION=, DATA=: README)
	$(if $(and $(wildcard $(SHARED)),$(filter-out command line,$(origin DATA))),$(PY) -m asl_serve.training.arms_length)
	$(PY) -m $(if $(URL),harness.served_evaluation --url $(URL) $(addprefix --version ,$(VERSION)),training.evaluate) \
	  $(if $(filter command line,$(origin DATA)),$(addprefix --data ,$(DATA)) --report reports/evaluation-data.md)

compare: $(EXPORTS) ## reports/model_comparison.md: every variant's file size and forward latency
	$(PY) -m asl_serve.training.compare $(addprefix --data ,$(DATA))

$(MARS) &: $(EXPORTS) $(CORE) $(wildcard reports/evaluation.json reports/training_metrics.json)
	$(PY) -m asl_serve.handler.archive

archive: $(MARS) ## model_store/asl-{int8,fp32,onnx-int8}.mar (torch-model-archiver)

serve: java-check $(MARS) ## start TorchServe in the background and wait until every version is READY
	@if $(PY) -m asl_serve.client wait-ready --wait 2 >/dev/null 2>&1; then echo "TorchServe is already running."; else \
	  mkdir -p $(TS_TMP) && $(TS_ENV) $(MALLOC_ENV) $(VENV)/bin/torchserve --start --ts-config config.properties --model-store model_store \
	    --log-config log4j2.xml --ncs >/dev/null 2>&1 || { echo "error: torchserve did not start; see logs/"; exit 1; }; fi
	@$(PY) -m asl_serve.client wait-ready || { echo "see logs/model_log.log"; exit 1; }
	@echo
	@echo "TorchServe is up. Try:"
	@echo '  TOKEN=$$($(PY) -c "import json; print(json.load(open(\"key_file.json\"))[\"inference\"][\"key\"])")'
	@echo '  curl -H "Authorization: Bearer $$TOKEN" -T $(firstword $(wildcard samples/asl2text/A/*.jpg)) \'
	@echo '       http://127.0.0.1:8080/predictions/asl'
	@echo "  $(PY) -m asl_serve.client predict samples/asl2text/B/*.jpg"
	@echo "Stop it with: make stop"

demo: java-check $(MARS) ## the browser demo on http://127.0.0.1:8000/ (starts TorchServe first if it is not up)
	@$(PY) -m asl_serve.client wait-ready --wait 2 >/dev/null 2>&1 || $(MAKE) --no-print-directory serve
	@$(PY) -m asl_serve.demo start

stop: ## stop the demo and TorchServe
	@$(PY) -m asl_serve.demo stop
	@$(TS_ENV) $(VENV)/bin/torchserve --stop

protos: $(STAMP) ## gRPC stubs in client/proto/ from the protos inside the installed TorchServe
	$(PY) -m asl_serve.client.protos

rollout-demo: java-check $(MARS) ## roll a fresh version out and back under load: reports/rollout.md
	$(PY) -m asl_serve.drills.rollout

# KServe's Python model server has its own venv: its pins clash with the project's protobuf and numpy.
KSERVE_VENV := build/kserve-venv
KSERVE_STAMP := $(KSERVE_VENV)/.installed
KSERVE_PORT ?= 8090
# TorchServe's inference address (config.properties): KServe's model server forwards there.
KSERVE_PREDICTOR ?= 127.0.0.1:8080

$(KSERVE_STAMP): deploy/kserve/requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; asl-serve needs Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip install --quiet -r deploy/kserve/requirements.txt
	@touch $@

kserve-venv: $(KSERVE_STAMP) ## build/kserve-venv: KServe's model server (make serve-kserve, its test)

serve-kserve: java-check $(MARS) $(KSERVE_STAMP) ## KServe v2 (Open Inference Protocol) on :8090 before TorchServe; Ctrl-C stops
	@$(PY) -m asl_serve.client wait-ready --wait 2 >/dev/null 2>&1 || $(MAKE) --no-print-directory serve
	@echo "KServe v2 on http://127.0.0.1:$(KSERVE_PORT)/v2/models/asl/infer (send TorchServe's inference key as a Bearer token)"
	@$(KSERVE_VENV)/bin/python deploy/kserve/open_inference.py --model_name asl --http_port $(KSERVE_PORT) \
	  --predictor_host $(KSERVE_PREDICTOR) --predictor_protocol v1

kserve-bundle: $(MARS) ## build/kserve/: config/ + model-store/ laid out for KServe's TorchServe runtime
	$(PY) deploy/kserve/bundle.py --model-store model_store --out build/kserve

SETS ?= test
spelling-benchmark: java-check $(MARS) ## the page spelling in Chromium (fake camera): reports/spelling.md (SETS=validation: choose defaults)
	$(PY) -m asl_serve.loadtests.spelling --sets $(SETS)

USERS ?= 4
DURATION ?= 20s
loadtest: $(STAMP) protos ## Locust against the running server (make serve): reports/loadtest/ with summary.md
	$(PY) -m asl_serve.loadtests.run --users $(USERS) --duration $(DURATION)

bench: java-check $(MARS) protos ## side-by-side benchmark on private servers: reports/benchmarks.md + figure
	$(PY) -m asl_serve.loadtests.bench

profile: $(MARS) ## time per handler stage, and an explanation's cost: reports/profile.md, explain_cost.md
	$(PY) -m asl_serve.loadtests.profile_stages
	$(PY) -m asl_serve.loadtests.explain_cost

soak: java-check $(MARS) ## 10-minute Locust soak, 8 users, on a private server: reports/soak.md
	$(PY) -m asl_serve.drills.soak --duration 10m --users 8

bad-inputs: java-check $(MARS) ## the bad-input corpus against a private server: reports/bad_inputs.md
	$(PY) -m asl_serve.drills.bad_inputs

faults: java-check $(MARS) ## kill -9 and freeze workers under load, time the recovery: reports/faults.md
	$(PY) -m asl_serve.drills.faults

base-image: ## Debian 12 + Python 3.11 base from apt's mirror, where no registry answers (root, debootstrap)
	deploy/container/engine.sh base-image

image: $(MARS) ## the runtime image asl-serve:0.1.0, docker or podman (BASE_IMAGE= PIP_CONF= CA_BUNDLE= WHEELS=)
	deploy/container/engine.sh image

compose-up: image ## TorchServe + demo with Compose on 127.0.0.1, healthy; keys in build/compose/key_file.json
	deploy/container/engine.sh compose-up

compose-down: ## stop and remove the Compose stack (its state volume stays)
	deploy/container/engine.sh compose-down

kube-play: image ## deploy/k8s in a local pod (podman kube play): ready, then a prediction through the sidecar
	$(PY) -m asl_serve.drills.kube_play up

kube-down: ## remove what make kube-play started
	$(PY) -m asl_serve.drills.kube_play down

test: $(STAMP) $(MARS) protos $(KSERVE_STAMP) ## run the test suite (real TorchServe on free ports; ../shared data where present)
	$(PY) -m pytest -q -rs

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check .

clean: ## remove build outputs (keeps .venv and the committed weights)
	rm -rf build model_store/*.mar logs key_file.json .pytest_cache client/proto
