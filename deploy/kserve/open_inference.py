"""The Open Inference Protocol (KServe v2) for asl, served by KServe's own Python model server.

A KServe transformer: it takes a v2 request whose one BYTES input `image` holds encoded images (JPEG, PNG,
...), each element the image's base64 text, in plain JSON or with the binary-tensor extension. It forwards
them to TorchServe as one KServe v1 request (`/v1/models/asl:predict`, `{"instances": [{"data": ...}, ...]}`)
and answers with two outputs: `label` (BYTES) and `probability` (FP32), one element per image.
Why base64 even in binary form: KServe 0.21's server turns every BYTES element into UTF-8 text before a
model sees it, and fails raw image bytes (here a 400 saying so).

Locally `make serve-kserve` runs it in front of `make serve`'s TorchServe; in a cluster KServe runs it as
the InferenceService's transformer in front of the kserve-torchserve predictor (docs/deploy.md, "KServe").
It holds no secret: the caller's `Authorization` header is forwarded (KServe forwards it), and TorchServe's
4xx answers keep their status. It runs in its own venv (deploy/kserve/requirements.txt), apart from the
project's pins, so it imports nothing of the project.
"""

import argparse
import asyncio
import base64
import binascii

import httpx
from fastapi.responses import ORJSONResponse
from kserve import Model, model_server
from kserve.errors import InferenceError, InvalidInput, inference_error_handler
from kserve.model_server import ModelServer
from kserve.predictor_config import PredictorConfig
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.protocol.rest.server import RESTServer

INPUT = "image"
MAX_IMAGES = 16  # the handler's limit of instances per KServe v1 request (handler/asl_handler.py)
OUTPUTS = {"label": "BYTES", "probability": "FP32"}


class ASLTransformer(Model):
    """v2 tensors in, one v1 request to TorchServe, v2 tensors out."""

    def __init__(self, name: str, predictor: PredictorConfig):
        super().__init__(name, predictor)
        self.ready = True

    def get_input_types(self) -> list[dict]:
        return [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict]:
        return [{"name": name, "datatype": datatype, "shape": [-1]} for name, datatype in OUTPUTS.items()]

    async def preprocess(self, payload: InferRequest, headers: dict | None = None) -> dict:
        if not isinstance(payload, InferRequest):
            raise InvalidInput(f"send an Open Inference Protocol request to /v2/models/{self.name}/infer")
        if len(payload.inputs) != 1 or payload.inputs[0].datatype != "BYTES":
            raise InvalidInput(f'one BYTES input "{INPUT}" holding encoded images (JPEG, PNG, ...) is expected')
        images = list(payload.inputs[0].data or [])
        if not 1 <= len(images) <= MAX_IMAGES:
            raise InvalidInput(f"1 to {MAX_IMAGES} images per request, got {len(images)}")
        return {"instances": [{"data": base64_image(image, n)} for n, image in enumerate(images)]}

    async def postprocess(self, result: dict, headers: dict | None = None,
                          response_headers: dict | None = None) -> InferResponse:
        predictions = result["predictions"]
        outputs = [
            InferOutput(name, [len(predictions)], datatype, [p[name] for p in predictions])
            for name, datatype in OUTPUTS.items()
        ]
        version = predictions[0].get("model_version")
        return InferResponse(response_id="", model_name=self.name, infer_outputs=outputs, model_version=version)


def base64_image(element: object, position: int) -> str:
    """One image as the v1 request carries it, checked to be base64 text."""
    try:
        base64.b64decode(element, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidInput(f"element {position}: each BYTES element must be an image's base64 text") from None
    return element


async def undecodable_bytes(request, error: InferenceError) -> ORJSONResponse:
    """KServe's server fails a BYTES element that is not UTF-8 (raw image bytes) before the model sees it, as a
    500 quoting the whole element: it is the caller's mistake, so a 400 saying what to send."""
    if str(error).startswith("Failed to encode"):
        return ORJSONResponse({"error": f'each element of "{INPUT}" must be an image\'s base64 text, not its raw '
                               "bytes"}, status_code=400)
    return await inference_error_handler(request, error)


async def predictor_error(_request, error: httpx.HTTPStatusError) -> ORJSONResponse:
    """TorchServe's error answer with its own status (a 422 stays a 422), in the protocol's `{"error": ...}`."""
    try:
        body = error.response.json()
        message = f'{body["type"]}: {body["message"]}'
    except (ValueError, KeyError, TypeError):
        message = error.response.text
    return ORJSONResponse({"error": message}, status_code=error.response.status_code)


class ErrorMappingRESTServer(RESTServer):
    """KServe's REST server, with TorchServe's 4xx and undecodable BYTES answered as the caller's errors."""

    def _add_exception_handlers(self, app) -> None:
        super()._add_exception_handlers(app)
        app.add_exception_handler(httpx.HTTPStatusError, predictor_error)
        app.add_exception_handler(InferenceError, undecodable_bytes)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser], conflict_handler="resolve", description=__doc__)
    parser.add_argument("--http_host", default="127.0.0.1",
                        help="address to listen on (a cluster's container needs 0.0.0.0)")
    args, _ = parser.parse_known_args()
    model = ASLTransformer(args.model_name, PredictorConfig(
        args.predictor_host, args.predictor_protocol, args.predictor_use_ssl,
        args.predictor_request_timeout_seconds, args.predictor_request_retries,
        args.enable_predictor_health_check))
    server = ModelServer(http_port=args.http_port, enable_grpc=False)
    server.register_model(model)
    rest = ErrorMappingRESTServer(model_server.FASTAPI_APP_IMPORT_STRING, server.dataplane,
                                  server.model_repository_extension, args.http_port)
    rest.config.host = args.http_host  # RESTServer binds 0.0.0.0; here loopback unless told otherwise
    asyncio.run(rest.start())


if __name__ == "__main__":
    main()
