"""gRPC calls to TorchServe's inference and management services, with the token as call metadata.

Same methods and answers as client.rest.RestClient, so callers pick a transport and nothing else.
"""

import json
from pathlib import Path

import grpc
from google.protobuf import empty_pb2

from client import protos
from client.settings import BACKOFF_S, STARTUP_TIMEOUT_S, TIMEOUT_S, ClientError, ImageRejected, Server
from model.config import MODEL_NAME

protos.generate()  # a fresh clone has no stubs yet; a cheap check when they are current
from client.proto import inference_pb2, inference_pb2_grpc, management_pb2, management_pb2_grpc  # noqa: E402

LIST_LIMIT = 100  # TorchServe takes an unset ListModels limit as 0 and lists nothing


def channel_options(retries: int) -> list[tuple[str, object]]:
    """gRPC's own retry policy: UNAVAILABLE (server not reachable, or TorchServe's 503) is tried again."""
    if not retries:
        return [("grpc.enable_retries", 0)]
    policy = {
        "maxAttempts": retries + 1,
        "initialBackoff": f"{BACKOFF_S}s",
        "maxBackoff": f"{BACKOFF_S * 2 ** retries}s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    config = {"methodConfig": [{"name": [{}], "retryPolicy": policy}]}  # every method of the channel's service
    return [("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(config))]


class GrpcClient:
    def __init__(self, server: Server, timeout_s: float = TIMEOUT_S, retries: int = 0):
        """`retries` as for RestClient: 0 (the default for library use) reports every failure at once."""
        self.server = server
        self.timeout_s = timeout_s
        # Only inference is retried: a management call (register, scale) that TorchServe applied before
        # answering UNAVAILABLE would fail its retry with a misleading conflict.
        inference = grpc.insecure_channel(server.grpc_inference, options=channel_options(retries))
        management = grpc.insecure_channel(server.grpc_management, options=channel_options(0))
        self._stubs = {
            "inference": inference_pb2_grpc.InferenceAPIsServiceStub(inference),
            "management": management_pb2_grpc.ManagementAPIsServiceStub(management),
        }

    def _call(self, service: str, rpc: str, request, timeout: float | None = None):
        """Call `rpc` on the inference or management service with that service's key."""
        metadata = (("authorization", f"Bearer {self.server.key(service)}"),)
        try:
            return getattr(self._stubs[service], rpc)(request, metadata=metadata, timeout=timeout or self.timeout_s)
        except grpc.RpcError as error:
            raise ClientError(self._message(service, rpc, error)) from None

    def _manage(self, rpc: str, request, timeout: float | None = None) -> str:
        return self._call("management", rpc, request, timeout).msg

    def _message(self, service: str, rpc: str, error: grpc.RpcError) -> str:
        address = getattr(self.server, f"grpc_{service}")
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            return f"cannot reach gRPC {service} at {address}: is TorchServe running (make serve)?"
        # TorchServe appends the Java exception class on a second line, and drops the details of some
        # refusals (a version already registered, unregistering the default) that REST does explain.
        details = (error.details() or "").strip().splitlines()[:1] or ["no details (the REST API gives them)"]
        if error.code() == grpc.StatusCode.PERMISSION_DENIED:
            details.append(f"(is {self.server.key_file} the running server's key file?)")
        return f"{rpc} at {address} -> {error.code().name}: {' '.join(details)}"

    def ping(self) -> str:
        """TorchServe's health status, e.g. "Healthy"."""
        return json.loads(self._call("inference", "Ping", empty_pb2.Empty()).health)["status"]

    def predict(self, image: Path, version: str | None = None, top_k: int | None = None) -> dict:
        inputs = {"data": image.read_bytes(), **({"top_k": str(top_k).encode()} if top_k is not None else {})}
        request = inference_pb2.PredictionsRequest(
            model_name=MODEL_NAME, model_version=version or "", input=inputs
        )
        answer = json.loads(self._call("inference", "Predictions", request).prediction)
        if "label" not in answer:
            # TorchServe 0.12's gRPC frontend answers OK whatever status the handler set for one request of
            # a batch (docs/versions.md, "gRPC statuses"): the handler's error JSON is the whole answer.
            raise ImageRejected(f"Predictions -> {answer['code']} {answer['type']}: {answer['message']}")
        return answer

    def list_models(self) -> list[dict]:
        request = management_pb2.ListModelsRequest(limit=LIST_LIMIT)
        return json.loads(self._manage("ListModels", request))["models"]

    def describe(self, model: str = MODEL_NAME, version: str = "all") -> list[dict]:
        request = management_pb2.DescribeModelRequest(model_name=model, model_version=version)
        return json.loads(self._manage("DescribeModel", request))

    def metadata(self, version: str | None = None) -> dict:
        """The handler's model metadata (describe with customized=true) of a version, default if None."""
        request = management_pb2.DescribeModelRequest(
            model_name=MODEL_NAME, model_version=version or "", customized=True
        )
        return json.loads(self._manage("DescribeModel", request))[0]["customizedMetadata"]

    def default_version(self) -> str:
        """Describing the model without a version describes its default version."""
        return self.describe(version="")[0]["modelVersion"]

    def register(self, archive: str, workers: int = 1) -> str:
        """Register an archive that is in the server's model store, waiting until its workers are up."""
        request = management_pb2.RegisterModelRequest(url=archive, initial_workers=workers, synchronous=True)
        return self._manage("RegisterModel", request, STARTUP_TIMEOUT_S)

    def unregister(self, version: str) -> str:
        request = management_pb2.UnregisterModelRequest(model_name=MODEL_NAME, model_version=version)
        return self._manage("UnregisterModel", request)

    def set_default(self, version: str) -> str:
        request = management_pb2.SetDefaultRequest(model_name=MODEL_NAME, model_version=version)
        return self._manage("SetDefault", request)

    def scale(self, min_workers: int, max_workers: int, version: str | None = None) -> str:
        """Set the worker range of a version (default: the default version), waiting for the change."""
        request = management_pb2.ScaleWorkerRequest(
            model_name=MODEL_NAME, model_version=version or "", min_worker=min_workers, max_worker=max_workers,
            synchronous=True,
        )
        return self._manage("ScaleWorker", request, STARTUP_TIMEOUT_S)

