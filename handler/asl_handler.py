"""TorchServe adapter: request parsing, error statuses and metrics around `model.pipeline.Classifier`.

Accepted inputs per request: the raw body (`curl -T img.jpg`), a multipart field `data`
(`curl -F data=@img.jpg`), JSON `{"data": "<base64>"}`, or a gRPC input `data`. `top_k` comes
from a `top_k` header, multipart field, JSON field or gRPC input (default from model-config.yaml).
A bad request gets its own 4xx JSON answer; the rest of its batch is answered normally.
"""

import base64
import binascii
import json
import logging
import os
from pathlib import Path

import torch
from ts.metrics.dimension import Dimension

from model.classes import CLASS_NAMES
from model.config import PREPROCESS
from model.decode import ImageError
from model.pipeline import Classifier

logger = logging.getLogger(__name__)


class BadRequest(ImageError):
    status, kind = 400, "BadRequest"


def image_bytes(request: dict) -> bytes:
    """The image in one TorchServe request, whichever of the accepted forms it came in."""
    payload = request.get("data")
    if payload is None:
        payload = request.get("body")
    if payload is None:
        raise BadRequest(
            'no image: send the raw body, a multipart field "data", or JSON {"data": "<base64>"}'
        )
    if isinstance(payload, dict):
        if "data" not in payload:
            raise BadRequest('the JSON body needs a "data" field holding the base64-encoded image')
        payload = payload["data"]
    if isinstance(payload, str):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as error:
            raise BadRequest(f'"data" is not valid base64: {error}') from error
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    raise BadRequest('"data" must be a base64 string or raw image bytes')


def requested_top_k(request: dict, header: str | None, default: int) -> int:
    """`top_k` from a multipart field or gRPC input, the JSON body, the `top_k` header, or the default.

    (TorchServe 0.12 drops the query string on /predictions, so `?top_k=` never reaches a handler.)
    """
    body = request.get("body")
    raw = request.get("top_k", body.get("top_k") if isinstance(body, dict) else None)
    raw = header if raw is None else raw
    if raw is None:
        return default
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw)
    if not text.strip().isdigit() or not 1 <= int(text) <= len(CLASS_NAMES):
        raise BadRequest(f"top_k must be an integer from 1 to {len(CLASS_NAMES)}, got {text!r}")
    return int(text)


def error_body(error: ImageError) -> dict:
    return {"code": error.status, "type": error.kind, "message": str(error)}


class ASLHandler:
    """Loads the TorchScript model of this .mar and answers batches of requests."""

    def __init__(self):
        self.classifier: Classifier | None = None
        self.default_top_k = 5

    def initialize(self, context) -> None:
        settings = (context.model_yaml_config or {}).get("handler", {})
        threads = int(settings.get("threads", 1))
        torch.set_num_threads(threads)  # workers x threads <= cores: no OpenMP oversubscription
        os.environ["OMP_NUM_THREADS"] = str(threads)
        self.default_top_k = int(settings.get("default_top_k", 5))
        model_dir = Path(context.system_properties["model_dir"])
        model = torch.jit.load(str(model_dir / context.manifest["model"]["serializedFile"]), map_location="cpu")
        self.classifier = Classifier(torch.jit.freeze(model.eval()), PREPROCESS)
        logger.info("loaded %s with %d thread(s)", context.manifest["model"]["serializedFile"], threads)

    def handle(self, data: list[dict], context) -> list:
        inputs, ks = [], []
        for idx, request in enumerate(data):
            try:
                ks.append(requested_top_k(request, context.get_request_header(idx, "top_k"), self.default_top_k))
                inputs.append(image_bytes(request))
            except BadRequest as error:
                ks.append(1)
                inputs.append(error)
        result = self.classifier.classify(inputs, ks)
        metrics = context.metrics
        metrics.add_metric("HandlerBatchSize", len(data), "count")
        for stage, ms in result.timings_ms.items():
            metrics.add_time(f"Handler{stage.capitalize()}Time", ms, None, "ms")
        responses = []
        for idx, output in enumerate(result.outputs):
            context.set_response_content_type(idx, "application/json")
            if isinstance(output, ImageError):
                context.set_response_status(output.status, output.kind, idx)
                metrics.add_counter("HandlerRequestErrors", 1, None, [Dimension("ErrorType", output.kind)])
                responses.append(json.dumps(error_body(output)))
            else:
                responses.append(json.dumps(output))
        return responses


_service = ASLHandler()


def handle(data, context):
    """TorchServe entry point: initialise once per worker, then answer each batch."""
    if _service.classifier is None:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
