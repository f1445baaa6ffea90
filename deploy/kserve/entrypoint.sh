#!/bin/sh
# Entry point of the Dockerfile's kserve target. KServe's TorchServe runtime passes
# `torchserve --start --model-store=... --ts-config=...` as the arguments: TorchServe daemonises,
# then KServe's wrapper takes the foreground (REST :8080, gRPC :8081) and forwards to TorchServe.
set -e
"$@"
exec /opt/kserve/bin/python /opt/kserve-wrapper/__main__.py
