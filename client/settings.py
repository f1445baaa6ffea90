"""Where the server is and how to authenticate: addresses from config.properties, keys from key_file.json."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from asl_serve.layout import KEY_FILE

TIMEOUT_S = 30  # per call, REST and gRPC
# How long a start-up may take: every version READY (make serve, test servers), or workers loading the model
# (register, scale). A loaded 2-core machine needs the margin.
STARTUP_TIMEOUT_S = 240
BACKOFF_S = 0.5  # first pause between retries, doubled at each further one (REST and gRPC)


class ClientError(Exception):
    """A failure worth one clear line to the user (server down, bad token, unknown version)."""


class ImageRejected(ClientError):
    """The server refused this one image (not an image, corrupt, too large, bad top_k): others may pass."""


@dataclass(frozen=True)
class Server:
    inference_url: str = "http://127.0.0.1:8080"
    management_url: str = "http://127.0.0.1:8081"
    metrics_url: str = "http://127.0.0.1:8082"
    grpc_inference: str = "127.0.0.1:7070"
    grpc_management: str = "127.0.0.1:7071"
    key_file: Path = KEY_FILE

    @classmethod
    def from_env(cls) -> "Server":
        """Defaults match config.properties; ASL_* environment variables point elsewhere."""
        defaults = cls()
        return cls(
            inference_url=os.environ.get("ASL_INFERENCE_URL", defaults.inference_url),
            management_url=os.environ.get("ASL_MANAGEMENT_URL", defaults.management_url),
            metrics_url=os.environ.get("ASL_METRICS_URL", defaults.metrics_url),
            grpc_inference=os.environ.get("ASL_GRPC_INFERENCE", defaults.grpc_inference),
            grpc_management=os.environ.get("ASL_GRPC_MANAGEMENT", defaults.grpc_management),
            key_file=Path(os.environ.get("ASL_KEY_FILE", defaults.key_file)),
        )

    def env(self) -> dict[str, str]:
        """The ASL_* variables that point another process (the CLI) at this server."""
        return {
            "ASL_INFERENCE_URL": self.inference_url,
            "ASL_MANAGEMENT_URL": self.management_url,
            "ASL_METRICS_URL": self.metrics_url,
            "ASL_GRPC_INFERENCE": self.grpc_inference,
            "ASL_GRPC_MANAGEMENT": self.grpc_management,
            "ASL_KEY_FILE": str(self.key_file),
        }

    def key(self, kind: str) -> str:
        """The `inference` or `management` key TorchServe wrote at start-up."""
        try:
            keys = json.loads(self.key_file.read_text())
        except FileNotFoundError:
            raise ClientError(f"no {self.key_file}: is TorchServe running (make serve)?") from None
        except ValueError:
            raise ClientError(f"{self.key_file} is not TorchServe's JSON key file") from None
        try:
            return keys[kind]["key"]
        except KeyError:
            raise ClientError(f"{self.key_file} has no {kind} key") from None
