"""REST calls to TorchServe's inference and management APIs, with the bearer token attached."""

import time
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from asl_serve.client.settings import BACKOFF_S, STARTUP_TIMEOUT_S, TIMEOUT_S, ClientError, ImageRejected, Server
from asl_serve.model.config import MODEL_NAME

IMAGE_REJECTED_STATUS = 413  # TorchServe's own refusal of a body over max_request_size


class RestClient:
    def __init__(self, server: Server, timeout_s: float = TIMEOUT_S, retries: int = 0):
        """`retries`: attempts after a refused connection or a 503 (no worker free, queue full), with
        exponential backoff; 0 (the default for library use) reports every failure as it happens."""
        self.server = server
        self.timeout_s = timeout_s
        self.session = requests.Session()
        retry = Retry(
            total=retries, connect=retries, read=0, status=retries, status_forcelist=(503,),
            allowed_methods=None, backoff_factor=BACKOFF_S, raise_on_status=False,
        )
        # A refused connection sent nothing, so any call may be tried again; a 503 is retried only for
        # inference: a management call (register, scale) applied before the 503 would fail its retry.
        connect_only = retry.new(status=0)
        self.session.mount("http://", HTTPAdapter(max_retries=connect_only))
        self.session.mount("https://", HTTPAdapter(max_retries=connect_only))
        self.session.mount(server.inference_url, HTTPAdapter(max_retries=retry))

    def _call(self, method: str, url: str, kind: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.server.key(kind)}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", self.timeout_s)
        try:
            response = self.session.request(method, url, headers=headers, **kwargs)
        except requests.ConnectionError:
            raise ClientError(f"cannot reach {url}: is TorchServe running (make serve)?") from None
        except requests.RequestException as error:  # e.g. no answer within the timeout
            raise ClientError(f"{method} {url} failed: {error}") from None
        if response.status_code >= 400:
            message = f"{method} {url} -> {response.status_code} {_message(response, self.server)}"
            if response.status_code == IMAGE_REJECTED_STATUS or _from_handler(response):
                raise ImageRejected(message)
            raise ClientError(message)
        return response

    def _manage(self, method: str, path: str, timeout: float | None = None, **params) -> str:
        """A management call whose answer is a status line."""
        url = self.server.management_url + path
        response = self._call(method, url, "management", params=params, timeout=timeout or self.timeout_s)
        return response.json().get("status", response.text.strip())

    def ping(self) -> str:
        """TorchServe's health status, e.g. "Healthy"."""
        return self._call("GET", f"{self.server.inference_url}/ping", "inference").json()["status"]

    def predict(self, image: Path, version: str | None = None, top_k: int | None = None) -> dict:
        # TorchServe 0.12 drops the query string on /predictions: top_k travels as a header.
        path = f"/predictions/{MODEL_NAME}" + (f"/{version}" if version else "")
        headers = {"Content-Type": "application/octet-stream", **({"top_k": str(top_k)} if top_k is not None else {})}
        response = self._call(
            "POST", self.server.inference_url + path, "inference", data=image.read_bytes(), headers=headers
        )
        return response.json()

    def list_models(self) -> list[dict]:
        return self._call("GET", f"{self.server.management_url}/models", "management").json()["models"]

    def describe(self, model: str = MODEL_NAME, version: str = "all") -> list[dict]:
        url = f"{self.server.management_url}/models/{model}/{version}"
        return self._call("GET", url, "management").json()

    def metadata(self, version: str | None = None) -> dict:
        """The handler's model metadata (describe with customized=true) of a version, default if None."""
        url = f"{self.server.management_url}/models/{MODEL_NAME}" + (f"/{version}" if version else "")
        return self._call("GET", url, "management", params={"customized": "true"}).json()[0]["customizedMetadata"]

    def default_version(self) -> str:
        """Describing the model without a version describes its default version."""
        url = f"{self.server.management_url}/models/{MODEL_NAME}"
        return self._call("GET", url, "management").json()[0]["modelVersion"]

    def register(self, archive: str, workers: int = 1) -> str:
        """Register an archive that is in the server's model store, waiting until its workers are up."""
        return self._manage(
            "POST", "/models", STARTUP_TIMEOUT_S, url=archive, initial_workers=workers, synchronous="true"
        )

    def unregister(self, version: str) -> str:
        return self._manage("DELETE", f"/models/{MODEL_NAME}/{version}")

    def set_default(self, version: str) -> str:
        return self._manage("PUT", f"/models/{MODEL_NAME}/{version}/set-default")

    def scale(self, min_workers: int, max_workers: int, version: str | None = None) -> str:
        """Set the worker range of a version (default: the default version), waiting for the change."""
        path = f"/models/{MODEL_NAME}" + (f"/{version}" if version else "")
        return self._manage(
            "PUT", path, STARTUP_TIMEOUT_S, min_worker=min_workers, max_worker=max_workers, synchronous="true"
        )

    def rotate_key(self, kind: str) -> None:
        """A new `inference` or `management` key (TorchServe's token API, with the API key); TorchServe
        writes it to the key file and refuses the old one from then on."""
        self._call("POST", f"{self.server.management_url}/token", "API", params={"type": kind})

    def wait_ready(self, timeout_s: float) -> list[dict]:
        """Poll until every version of `asl` has a READY worker; return the description."""
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            try:
                versions = self.describe()
                if versions and all(_ready(v) for v in versions):
                    return versions
                last = ", ".join(f"{v['modelVersion']}: {_states(v)}" for v in versions)
            except ClientError as error:
                last = str(error)
            time.sleep(1)
        raise ClientError(f"not all versions READY after {timeout_s:.0f}s ({last})")


def _ready(version: dict) -> bool:
    return any(w["status"] == "READY" for w in version.get("workers", []))


def _states(version: dict) -> str:
    return "/".join(w["status"] for w in version.get("workers", [])) or "no workers"


def _from_handler(response: requests.Response) -> bool:
    """The handler's own error answers name the version; TorchServe's (bad token, no such version) do not."""
    try:
        return "model_version" in response.json()
    except ValueError:
        return False


def _message(response: requests.Response, server: Server) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    message = f"{body['type']}: " if body.get("type") else ""
    message += body.get("message") or str(body)
    if body.get("type") == "InvalidKeyException":  # TorchServe answers a bad token with 400, not 401
        message += f" (is {server.key_file} the running server's key file?)"
    return message
