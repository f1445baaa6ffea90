"""Container health probe for TorchServe: exit 0 when healthy, 1 (with the reason on stderr) when not.

    python deploy/probe.py live    # the management API answers: the frontend is up (restart it if not)
    python deploy/probe.py ready   # REST /ping is Healthy and every version of `asl` has a READY worker

Standard library only, so a probe costs a Python start-up and no heavy imports. TorchServe 0.12 asks
for its token even on /ping, so the probe sends the key from key_file.json when the file exists (a
server started with token auth off writes none). Addresses and key file come from the same ASL_*
variables as the client, defaulting to loopback and ./key_file.json (TorchServe's working directory).
"""

import json
import os
import sys
import urllib.request
from pathlib import Path

TIMEOUT_S = 4  # per request; `ready` makes two, inside the 10 s the probes allow
MODEL = "asl"


def key(kind: str) -> str | None:
    """The `inference` or `management` key TorchServe wrote at start-up, or None if it wrote none."""
    path = Path(os.environ.get("ASL_KEY_FILE", "key_file.json"))
    if not path.exists():
        return None
    return json.loads(path.read_text())[kind]["key"]


def get_json(url: str, kind: str):
    request = urllib.request.Request(url)
    token = key(kind)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        return json.load(response)


def live(inference: str, management: str) -> str | None:
    get_json(f"{management}/models", "management")
    return None


def ready(inference: str, management: str) -> str | None:
    status = get_json(f"{inference}/ping", "inference").get("status")
    if status != "Healthy":
        return f"/ping says {status}"
    versions = get_json(f"{management}/models/{MODEL}/all", "management")
    waiting = [v["modelVersion"] for v in versions if not any(w["status"] == "READY" for w in v["workers"])]
    return f"no READY worker for {', '.join(waiting)}" if waiting else None


CHECKS = {"live": live, "ready": ready}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: probe.py {{{'|'.join(CHECKS)}}}", file=sys.stderr)
        return 2
    inference = os.environ.get("ASL_INFERENCE_URL", "http://127.0.0.1:8080")
    management = os.environ.get("ASL_MANAGEMENT_URL", "http://127.0.0.1:8081")
    try:
        problem = CHECKS[argv[0]](inference, management)
    except (OSError, ValueError, KeyError) as error:  # refused, timed out, HTTP 4xx/5xx, bad JSON
        problem = f"{type(error).__name__}: {error}"
    if problem:
        print(f"{argv[0]}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
