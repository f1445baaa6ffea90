"""TorchServe adapter: request parsing, error statuses and metrics around `model.pipeline.Classifier`.

Accepted inputs per request: the raw body (`curl -T img.jpg`), a multipart field `data`
(`curl -F data=@img.jpg`), JSON `{"data": "<base64>"}`, or a gRPC input `data`. `top_k` comes
from a `top_k` header, multipart field, JSON field or gRPC input (default: `handler.default_top_k` in
model-config.yaml if set, else `model.config.DEFAULT_TOP_K`). `roi`, from the same places, is an optional
tracking hint: the previous frame's `hand.roi` (`model.hands`); a bad one is a 400, explanations ignore it.
`POST /explanations/asl` answers with an occlusion map (`model.explain`) instead of a prediction.
A KServe v1 body, `{"instances": [{"data": "<base64>"}, ...]}` (what KServe's TorchServe wrapper forwards),
is answered as KServe v1 expects: `{"predictions": [<answer>, ...]}`, one object per instance in order; a
bad instance fails its request with the status it would get alone, its message naming the instance.
A bad request gets its own 4xx JSON answer; the rest of its batch is answered normally. Every answer
names the version that produced it (`X-Model-Version` header, `model_version` field).
"""

import base64
import binascii
import dataclasses
import json
import logging
import time
from pathlib import Path

from ts.metrics.dimension import Dimension
from ts.metrics.metric_type_enum import MetricTypes

from asl_serve.model.classes import CLASS_NAMES
from asl_serve.model.config import DEFAULT_TOP_K, PREPROCESS
from asl_serve.model.decode import CorruptImage, EmptyImage, ImageError, ImageTooLarge, NotAnImage
from asl_serve.model.explain import explain
from asl_serve.model.hands import BadHint, parse_hint
from asl_serve.model.pipeline import BatchResult, Classifier, HandReader, elapsed_ms
from asl_serve.model.runtime import load_model, use_threads

logger = logging.getLogger(__name__)

METADATA = "metadata.json"  # written by handler/archive.py
EVALUATION = "evaluation.json"  # reports/evaluation.json, packed by handler/archive.py when present
VERSION_HEADER = "X-Model-Version"
MAX_INSTANCES = 16  # per KServe v1 request: one request must not hold a worker for long
STREAM_NEXT = "ts_stream_next"  # TorchServe's "more messages follow" response header for gRPC streams


class BadRequest(ValueError):
    """A request the handler cannot read (no image field, bad base64, bad top_k): it never reaches the core."""


# What went wrong -> the HTTP status and the stable error type every client sees.
ERRORS: dict[type[Exception], tuple[int, str]] = {
    BadRequest: (400, "BadRequest"),
    EmptyImage: (400, "EmptyImage"),
    NotAnImage: (415, "UnsupportedMediaType"),
    ImageTooLarge: (413, "ImageTooLarge"),
    CorruptImage: (422, "CorruptImage"),
}


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


def request_value(request: dict, name: str, header: str | None) -> object:
    """A per-request parameter from a multipart field or gRPC input, the JSON body, or its header (or None).

    (TorchServe 0.12 drops the query string on /predictions, so `?top_k=` never reaches a handler.)
    """
    body = request.get("body")
    raw = request.get(name, body.get(name) if isinstance(body, dict) else None)
    return header if raw is None else raw


def requested_hint(request: dict, header: str | None) -> dict | None:
    """The `roi` tracking hint, checked, or None."""
    raw = request_value(request, "roi", header)
    try:
        return None if raw is None else parse_hint(raw)
    except BadHint as error:
        raise BadRequest(str(error)) from None


def requested_top_k(request: dict, header: str | None, default: int) -> int:
    """`top_k` as `request_value` finds it, or the default."""
    raw = request_value(request, "top_k", header)
    if raw is None:
        return default
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw)
    if not text.strip().isdigit() or not 1 <= int(text) <= len(CLASS_NAMES):
        raise BadRequest(f"top_k must be an integer from 1 to {len(CLASS_NAMES)}, got {text!r}")
    return int(text)


def instances_of(request: dict) -> list[dict] | None:
    """The instances of a KServe v1 request, each shaped like a request of its own; None for one image."""
    body = request.get("body")
    if not (isinstance(body, dict) and "instances" in body):
        return None
    instances = body["instances"]
    if not isinstance(instances, list) or not 1 <= len(instances) <= MAX_INSTANCES:
        raise BadRequest(f'"instances" must be a list of 1 to {MAX_INSTANCES} objects {{"data": "<base64>"}}')
    return [{"body": instance} for instance in instances]


def in_instance(error: BadRequest | ImageError, position: int) -> BadRequest | ImageError:
    """The same error, its message naming the KServe v1 instance it came from."""
    return type(error)(f"instance {position}: {error}")


def status_of(error: BadRequest | ImageError) -> tuple[int, str]:
    """The HTTP status and error type for a failed request; an `ImageError` subclass not listed is a 400."""
    return next((answer for kind, answer in ERRORS.items() if isinstance(error, kind)), (400, "InvalidImage"))


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def over_grpc(context, idx: int) -> bool:
    """True for a gRPC request: TorchServe hands REST requests their HTTP headers (Host at least) as
    strings, gRPC ones only the per-input content types (dicts)."""
    return not any(isinstance(value, str) for value in context.get_all_request_header(idx).values())


class ASLHandler:
    """Loads the model of this .mar (TorchScript or ONNX, `model.runtime`) and answers batches of requests."""

    def __init__(self):
        self.classifier: Classifier | None = None
        self.default_top_k = DEFAULT_TOP_K
        self.version = ""
        self.metadata: dict = {}

    def initialize(self, context) -> None:
        settings = (context.model_yaml_config or {}).get("handler", {})
        threads = int(settings.get("threads", 1))
        use_threads(threads)  # workers x threads <= cores: no oversubscription
        self.default_top_k = int(settings.get("default_top_k", DEFAULT_TOP_K))
        model_dir = Path(context.system_properties["model_dir"])
        self.version = context.manifest["model"]["modelVersion"]
        self.metadata = self.describe(model_dir, context.manifest["model"]["modelName"])
        model = load_model(model_dir / context.manifest["model"]["serializedFile"], threads)
        self.classifier = Classifier(model, PREPROCESS, HandReader.load(threads))
        logger.info("loaded %s with %d thread(s)", context.manifest["model"]["serializedFile"], threads)

    def describe(self, model_dir: Path, model_name: str) -> dict:
        """The model-metadata answer (`describe ?customized=true`): what this archive serves and how it scored."""
        built = read_json(model_dir / METADATA) or {"variant": "unknown", "missing": f"{METADATA} not in the archive"}
        evaluation = read_json(model_dir / EVALUATION)
        variant = built["variant"]
        return {
            "model": model_name,
            "model_version": self.version,
            **built,
            "classes": list(CLASS_NAMES),
            "input": {
                **dataclasses.asdict(PREPROCESS),  # image_size (square side), mean, std, max_pixels
                "channels": "RGB",
                "preprocessing": "decode (kornia-rs for JPEG/PNG, Pillow otherwise; EXIF orientation applied; "
                "large JPEGs at a reduced DCT scale); find the hand (MediaPipe's palm detector and hand-landmark "
                "models, LiteRT); crop the square of hand_crop times the hand's longer side around it (the whole "
                "frame where no hand is found); antialiased resize to image_size (kornia-rs, on uint8), scale to "
                "[0, 1], normalise with mean and std (Kornia); the CNN's answer is fused with the landmark "
                "classifier's where a hand is found",
            },
            "evaluation": (
                {"file": EVALUATION, "sets": evaluation[variant]}
                if evaluation and variant in evaluation
                else {"missing": f"no {variant} entry: {EVALUATION} was absent or incomplete at build time"}
            ),
        }

    def handle(self, data: list[dict], context) -> list:
        """One answer per request, each on its own: a request with the `describe` header (the management
        API's `?customized=true`, or anyone's inference request carrying it) gets the model's metadata, and
        the requests batched with it are predicted as usual."""
        started = time.perf_counter()
        described = {idx for idx in range(len(data)) if context.get_request_header(idx, "describe") == "True"}
        answers = self.predict(data, context, skip=described)
        for idx in described:
            answers[idx] = json.dumps(self.metadata)
        for idx in range(len(answers)):
            context.set_response_content_type(idx, "application/json")
            context.set_response_header(idx, VERSION_HEADER, self.version)
            if over_grpc(context, idx):
                # gRPC StreamPredictions fails the worker when this is absent: each answer is the last (and
                # only) message of its stream. Unary gRPC ignores it; REST must not get it (TorchServe 0.12
                # then sends a chunk without the response head and the client waits forever).
                context.set_response_header(idx, STREAM_NEXT, "false")
        # TorchServe's metrics.yaml declares HandlerTime; its BaseHandler, which this module does not use, emits it
        context.metrics.add_time("HandlerTime", round(elapsed_ms(started), 2), None, "ms")
        return answers

    def predict(self, data: list[dict], context, skip: set[int]) -> list[str | None]:
        """Unreadable requests are answered here; the images of the others (one per request, or a KServe v1
        request's instances) go to the core in two groups: explanations (`POST /explanations/...` arrives
        with the header `explain: True`) and predictions. Requests in `skip` are left to the caller (None in
        their slots)."""
        failed: dict[int, BadRequest] = {}
        items: dict[int, list[tuple[bytes, int, dict | None]]] = {}
        kserve: set[int] = set()
        for idx, request in enumerate(data):
            if idx in skip:
                continue
            try:
                items[idx], is_kserve = self.read(request, context, idx)
                if is_kserve:
                    kserve.add(idx)
            except BadRequest as error:
                failed[idx] = error
        explained = [i for i in items if context.get_request_header(i, "explain") == "True"]
        results: dict[int, list[dict | ImageError]] = {}
        timings: dict[str, float] = {}
        for indices, run in ((items.keys() - explained, self.classifier.classify), (explained, self.explain)):
            flat = [(i, item) for i in sorted(indices) for item in items[i]]
            if flat:
                result = run(*([item[part] for _, item in flat] for part in range(3)))
                timings.update(result.timings_ms)
                for (i, _), output in zip(flat, result.outputs, strict=True):
                    results.setdefault(i, []).append(output)
        self.record(len(data), timings, [*failed.values(), *(o for r in results.values() for o in r)],
                    context.metrics)
        answers: list[str | None] = []
        for idx in range(len(data)):
            if idx in skip:
                answers.append(None)
                continue
            output = failed.get(idx) or self.answer(results[idx], idx in kserve, idx in explained)
            if isinstance(output, dict):
                answers.append(json.dumps(output))
            else:
                status, kind = status_of(output)
                context.set_response_status(status, kind, idx)
                body = {"code": status, "type": kind, "message": str(output), "model_version": self.version}
                answers.append(json.dumps(body))
        return answers

    def read(self, request: dict, context, idx: int) -> tuple[list[tuple[bytes, int, dict | None]], bool]:
        """(image, top_k, hint) for each image of one request, and whether it is a KServe v1 request. An
        instance's own `top_k` or `roi` wins over the request's."""
        instances = instances_of(request)
        top_k = request_value(request, "top_k", context.get_request_header(idx, "top_k"))
        roi = request_value(request, "roi", context.get_request_header(idx, "roi"))
        parts = []
        for position, part in enumerate(instances or [request]):
            try:
                parts.append((image_bytes(part), requested_top_k(part, top_k, self.default_top_k),
                              requested_hint(part, roi)))
            except BadRequest as error:
                raise (error if instances is None else in_instance(error, position)) from None
        return parts, instances is not None

    def answer(self, outputs: list[dict | ImageError], kserve: bool, explained: bool) -> dict | ImageError:
        """One request's answer from its images' outputs: the output itself, or for KServe v1 the list of
        them under "predictions" (or "explanations"), or the first instance's error."""
        if not kserve:
            return {**outputs[0], "model_version": self.version} if isinstance(outputs[0], dict) else outputs[0]
        errors = [in_instance(o, n) for n, o in enumerate(outputs) if not isinstance(o, dict)]
        key = "explanations" if explained else "predictions"
        return errors[0] if errors else {key: [{**o, "model_version": self.version} for o in outputs]}

    def explain(self, images: list[bytes], _top_k: list[int], _hints: list[dict | None]) -> BatchResult:
        """Occlusion maps, called like `Classifier.classify` (an explanation has no top-k and finds the hand anew)."""
        return explain(self.classifier, images)

    def record(self, batch_size: int, timings_ms: dict[str, float], outputs: list, metrics) -> None:
        """Batch size (a histogram, and a counter per size), time per stage and failed requests by type, each
        labelled with this version."""
        version = Dimension("ModelVersion", self.version)
        metrics.add_metric("asl_batch_size", batch_size, "count", None, [version], MetricTypes.HISTOGRAM)
        # TorchServe's Prometheus histograms have fixed latency buckets (5, 7.5, 10 ...): sizes 6-8 share two.
        # One counter per size tells every size apart; the histogram keeps the exact mean (_sum / _count).
        metrics.add_metric("asl_batches", 1, "count", None, [Dimension("BatchSize", str(batch_size)), version],
                           MetricTypes.COUNTER)
        for stage, ms in timings_ms.items():
            metrics.add_metric("asl_stage_seconds", ms / 1000.0, "seconds", None,
                               [Dimension("Stage", stage), version], MetricTypes.HISTOGRAM)
        for output in outputs:
            if not isinstance(output, dict):
                metrics.add_metric("asl_request_errors_total", 1, "count", None,
                                   [Dimension("ErrorType", status_of(output)[1]), version], MetricTypes.COUNTER)


_service = ASLHandler()


def handle(data, context):
    """TorchServe entry point: initialise once per worker, then answer each batch."""
    if _service.classifier is None:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
