"""REST calls to TorchServe's inference and management APIs, with the bearer token attached."""

import time
from pathlib import Path

import requests

from client.settings import MODEL, ClientError, Server

TIMEOUT_S = 30
STARTUP_TIMEOUT_S = 120  # register and scale wait for workers to load the model (startupTimeout)


class RestClient:
    def __init__(self, server: Server):
        self.server = server
        self.session = requests.Session()

    def _call(self, method: str, url: str, kind: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.server.key(kind)}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", TIMEOUT_S)
        try:
            response = self.session.request(method, url, headers=headers, **kwargs)
        except requests.ConnectionError:
            raise ClientError(f"cannot reach {url}: is TorchServe running (make serve)?") from None
        except requests.RequestException as error:  # e.g. no answer within the timeout
            raise ClientError(f"{method} {url} failed: {error}") from None
        if response.status_code >= 400:
            raise ClientError(f"{method} {url} -> {response.status_code}: {_message(response, self.server)}")
        return response

    def _manage(self, method: str, path: str, timeout: float = TIMEOUT_S, **params) -> str:
        """A management call whose answer is a status line."""
        url = self.server.management_url + path
        response = self._call(method, url, "management", params=params, timeout=timeout)
        return response.json().get("status", response.text.strip())

    def predict(self, image: Path, version: str | None = None, top_k: int | None = None) -> dict:
        # TorchServe 0.12 drops the query string on /predictions: top_k travels as a header.
        path = f"/predictions/{MODEL}" + (f"/{version}" if version else "")
        headers = {"Content-Type": "application/octet-stream", **({"top_k": str(top_k)} if top_k else {})}
        response = self._call(
            "POST", self.server.inference_url + path, "inference", data=image.read_bytes(), headers=headers
        )
        return response.json()

    def list_models(self) -> list[dict]:
        return self._call("GET", f"{self.server.management_url}/models", "management").json()["models"]

    def describe(self, model: str = MODEL, version: str = "all") -> list[dict]:
        url = f"{self.server.management_url}/models/{model}/{version}"
        return self._call("GET", url, "management").json()

    def default_version(self) -> str:
        """Describing the model without a version describes its default version."""
        url = f"{self.server.management_url}/models/{MODEL}"
        return self._call("GET", url, "management").json()[0]["modelVersion"]

    def register(self, archive: str, workers: int = 1) -> str:
        """Register an archive that is in the server's model store, waiting until its workers are up."""
        return self._manage(
            "POST", "/models", STARTUP_TIMEOUT_S, url=archive, initial_workers=workers, synchronous="true"
        )

    def unregister(self, version: str) -> str:
        return self._manage("DELETE", f"/models/{MODEL}/{version}")

    def set_default(self, version: str) -> str:
        return self._manage("PUT", f"/models/{MODEL}/{version}/set-default")

    def scale(self, min_workers: int, max_workers: int, version: str | None = None) -> str:
        """Set the worker range of a version (default: the default version), waiting for the change."""
        path = f"/models/{MODEL}" + (f"/{version}" if version else "")
        return self._manage(
            "PUT", path, STARTUP_TIMEOUT_S, min_worker=min_workers, max_worker=max_workers, synchronous="true"
        )

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


def _message(response: requests.Response, server: Server) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    message = body.get("message") or str(body)
    if body.get("type") == "InvalidKeyException":  # TorchServe answers a bad token with 400, not 401
        message += f" (is {server.key_file} the running server's key file?)"
    return message
