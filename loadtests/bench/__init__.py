"""Throughput and latency side by side on this machine: the in-process limit, TorchServe with our
handler (every variant, batch sizes, workers) and with a baseline handler, over REST and gRPC.

    python -m asl_serve.loadtests.bench [--quick] [--variants int8 onnx-int8 fp32] [--batches 1:1 8:2] [--workers 1 2]
        [--threads 1] [--baseline 1:default 1:1 2:1] [--concurrency 1 4 16] [--seconds 5] [--warmup 2]
        [--limit-batches 1 4 8 16] [--limit-processes 1 N] [--limit-threads 1] [--client-processes 1 2]
        [--rounds 1] [--no-tuned-malloc] [--images DIR] [--out reports]

The limit is the handler's own pipeline (model.pipeline.Classifier: decode, kornia-rs and Kornia
preprocessing, the variant's forward, top-k) with no server, in 1 and N = cores processes of one
thread each, started together on the same photos (limit.py). Then a private TorchServe (harness.server) serves one
configuration at a time (serve.py): a copy of the built archive with its own model-config.yaml is
registered, answers every photo once (accuracy, warm-up), is loaded at each concurrency level by the
Locust users of loadtests/locustfile.py, run in client processes of their own (load.py: warm-up, then
measurement, with each client's CPU use), and is unregistered. The shipped configuration (what `make
serve` starts: handler/model-config.yaml on config.properties' default version, with the Makefile's
allocator settings) is measured over REST and gRPC, from one and from several client processes; the
rest over REST. A second server, started with the other malloc setting, serves the shipped and
baseline configurations again. Writes benchmarks.md, benchmarks.json (the figures as data) and
figures/throughput_latency.png under --out.
"""
