"""Locust users that post real photos to TorchServe, one over REST and one over gRPC.

    locust -f loadtests/locustfile.py --headless -u 4 -r 4 -t 20s [--images DIR] [--model-version V]

`make loadtest` runs it through loadtests/run.py, which also writes the summary. Each user sends its
next photo as soon as the last one is answered, so the number of users is the concurrency. The
server is given by Locust's --host (REST), --grpc-target and --key-file (whose inference key
authorises every request); their defaults come from the ASL_* environment variables of
client/settings.py, which default to `make serve`'s server.
"""

import itertools
import json
import random
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import FastHttpUser, User, constant, events, task

from asl_serve.client.grpc_client import inference_pb2, inference_pb2_grpc
from asl_serve.client.settings import Server
from asl_serve.loadtests.images import DEFAULT_IMAGES, image_paths
from asl_serve.model.config import MODEL_NAME

grpc_gevent.init_gevent()  # gRPC calls must yield to the other users, like Locust's own HTTP clients

TIMEOUT_S = 30


@events.init_command_line_parser.add_listener
def add_arguments(parser) -> None:
    parser.add_argument("--images", default=str(DEFAULT_IMAGES), help="folder of photos to post (searched recursively)")
    parser.add_argument("--model-version", default="", help="version of asl to call (default: the server's default)")
    defaults = Server.from_env()
    parser.add_argument("--grpc-target", default=defaults.grpc_inference, help="gRPC inference address, host:port")
    parser.add_argument("--key-file", default=str(defaults.key_file), help="TorchServe's key_file.json")


def inference_key(options) -> str:
    return Server(key_file=Path(options.key_file)).key("inference")


@cache
def load_images(folder: str) -> tuple[bytes, ...]:
    """Every photo under `folder`, read once per process so disk reads never count as latency."""
    return tuple(p.read_bytes() for p in image_paths(folder))


def image_stream(folder: str) -> Iterator[bytes]:
    """The photos in a loop, from a random start so concurrent users do not send the same one."""
    images = load_images(folder)
    return itertools.islice(itertools.cycle(images), random.randrange(len(images)), None)


def unanswered(body: bytes | str) -> str | None:
    """Why a prediction body is not a classification, or None when it is one."""
    try:
        answer = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:200]!r}"
    if "label" in answer:
        return None
    return f"{answer.get('code')} {answer.get('type')}: {answer.get('message')}"


class RestUser(FastHttpUser):
    """POST /predictions/asl[/VERSION] with the raw photo as the body."""

    host = Server.from_env().inference_url
    wait_time = constant(0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.images = image_stream(options.images)
        self.path = f"/predictions/{MODEL_NAME}" + (f"/{options.model_version}" if options.model_version else "")
        self.headers = {
            "Authorization": f"Bearer {inference_key(options)}",
            "Content-Type": "application/octet-stream",
        }

    @task
    def predict(self) -> None:
        with self.client.post(self.path, data=next(self.images), headers=self.headers, catch_response=True) as reply:
            if reply.status_code != 200:
                reply.failure(f"HTTP {reply.status_code}: {' '.join((reply.text or '').split())[:200]}")
            elif problem := unanswered(reply.content):
                reply.failure(problem)


class GrpcUser(User):
    """TorchServe's gRPC Predictions call, timed and reported to Locust like an HTTP request."""

    wait_time = constant(0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.images = image_stream(options.images)
        self.version = options.model_version
        self.channel = grpc.insecure_channel(options.grpc_target)
        self.stub = inference_pb2_grpc.InferenceAPIsServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {inference_key(options)}"),)

    def on_stop(self) -> None:
        self.channel.close()

    @task
    def predict(self) -> None:
        request = inference_pb2.PredictionsRequest(
            model_name=MODEL_NAME, model_version=self.version, input={"data": next(self.images)}
        )
        started, length, problem = time.perf_counter(), 0, None
        try:
            reply = self.stub.Predictions(request, metadata=self.metadata, timeout=TIMEOUT_S)
        except grpc.RpcError as error:
            details = (error.details() or "").strip().splitlines()[:1]  # TorchServe adds the Java class below
            problem = RuntimeError(f"{error.code().name}: {' '.join(details)}")
        else:
            length = len(reply.prediction)
            # gRPC drops the handler's 4xx status: its error JSON arrives as the prediction
            if message := unanswered(reply.prediction):
                problem = RuntimeError(message)
        self.environment.events.request.fire(
            request_type="gRPC", name="Predictions", response_time=(time.perf_counter() - started) * 1000,
            response_length=length, exception=problem, context={},
        )
