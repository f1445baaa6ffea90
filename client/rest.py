"""REST calls to TorchServe's inference and management APIs, with the bearer token attached."""

import time
from pathlib import Path

import requests

from client.settings import ClientError, Server

TIMEOUT_S = 30


class RestClient:
    def __init__(self, server: Server):
        self.server = server
        self.session = requests.Session()

    def _call(self, method: str, url: str, kind: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.server.key(kind)}", **kwargs.pop("headers", {})}
        try:
            response = self.session.request(method, url, headers=headers, timeout=TIMEOUT_S, **kwargs)
        except requests.ConnectionError:
            raise ClientError(f"cannot reach {url}: is TorchServe running (make serve)?") from None
        if response.status_code >= 400:
            raise ClientError(f"{method} {url} -> {response.status_code}: {_message(response)}")
        return response

    def predict(self, image: Path, version: str | None = None, top_k: int | None = None) -> dict:
        path = "/predictions/asl" + (f"/{version}" if version else "")
        params = {"top_k": top_k} if top_k else None
        response = self._call(
            "POST", self.server.inference_url + path, "inference", data=image.read_bytes(), params=params,
            headers={"Content-Type": "application/octet-stream"},
        )
        return response.json()

    def describe(self, model: str = "asl", version: str = "all") -> list[dict]:
        return self._call("GET", f"{self.server.management_url}/models/{model}/{version}", "management").json()

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


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
        return body.get("message") or str(body)
    except ValueError:
        return response.text.strip()[:200]
