"""Start a private TorchServe from the repo's config.properties on free ports (tests, benchmarks, demos).

Everything it writes (config, key_file.json, logs, pid file) lives in its own work directory, so it
runs beside a `make serve` server without touching it.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from client.rest import RestClient
from client.settings import REPO, Server

PORT_KEYS = ("inference", "management", "metrics", "grpc_inference", "grpc_management")
LOG_CONFIG = REPO / "log4j2.xml"  # each line once, access and metric lines in their own files


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def render_config(base: str, ports: dict[str, int], model_store: Path, overrides: dict[str, str]) -> str:
    """The repo's config with this server's ports, model store and any overridden properties."""
    text = base
    for name in ("inference", "management", "metrics"):
        address = f"{name}_address=http://127.0.0.1:{ports[name]}"
        text = re.sub(rf"^{name}_address=.*$", address, text, flags=re.M)
    for name in ("grpc_inference", "grpc_management"):
        text = re.sub(rf"^{name}_port=.*$", f"{name}_port={ports[name]}", text, flags=re.M)
    text = re.sub(r"^model_store=.*$", f"model_store={model_store}", text, flags=re.M)
    for key, value in overrides.items():
        pattern = rf"^{re.escape(key)}=.*?(?<!\\)$"  # a whole property, continuation lines included
        if re.search(pattern, text, flags=re.M | re.S):
            text = re.sub(pattern, f"{key}={value}", text, count=1, flags=re.M | re.S)
        else:
            text += f"\n{key}={value}\n"
    return text


def archive_with_settings(archive: Path, target: Path, **settings: int) -> Path:
    """A copy of `archive` whose model-config.yaml sets these top-level keys (e.g. maxBatchDelay).

    The archive's model-config.yaml wins over `models=` in config.properties, so this is how a private
    server gets other batching or timeouts than the shipped archives.
    """
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "model-config.yaml":
                for key, value in settings.items():
                    data, count = re.subn(rf"(?m)^{key}: *\S+".encode(), f"{key}: {value}".encode(), data)
                    if count != 1:
                        raise ValueError(f"{archive} sets no {key} to replace")
            copy.writestr(item, data)
    return target


@dataclass
class LocalTorchServe:
    workdir: Path
    model_store: Path
    overrides: dict[str, str] = field(default_factory=dict)
    server: Server | None = None

    def start(self, ready_timeout_s: float = 240) -> Server:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports = dict(zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True))
        base = (REPO / "config.properties").read_text()
        config = render_config(base, ports, self.model_store, self.overrides)
        (self.workdir / "config.properties").write_text(config)
        self.server = Server(
            inference_url=f"http://127.0.0.1:{ports['inference']}",
            management_url=f"http://127.0.0.1:{ports['management']}",
            metrics_url=f"http://127.0.0.1:{ports['metrics']}",
            grpc_inference=f"127.0.0.1:{ports['grpc_inference']}",
            grpc_management=f"127.0.0.1:{ports['grpc_management']}",
            key_file=self.workdir / "key_file.json",
        )
        console = self.workdir / "torchserve.out"
        with console.open("w") as out:  # a file, not a pipe: the Java child keeps it open
            started = subprocess.run(
                [self._torchserve(), "--start", "--ts-config", "config.properties", "--model-store",
                 str(self.model_store), "--log-config", str(LOG_CONFIG), "--ncs"],
                cwd=self.workdir, env=self._env(), stdout=out, stderr=subprocess.STDOUT,
            )
        if started.returncode != 0:
            raise RuntimeError(f"torchserve --start failed: {console.read_text()}")
        self.started_at = time.monotonic()
        RestClient(self.server).wait_ready(ready_timeout_s)
        return self.server

    def stop(self) -> None:
        subprocess.run(
            [self._torchserve(), "--stop"], cwd=self.workdir, env=self._env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def log(self, name: str = "model_log.log") -> str:
        path = self.workdir / "logs" / name
        return path.read_text(errors="replace") if path.exists() else ""

    def _env(self) -> dict[str, str]:
        # TorchServe keeps its pid file (TMPDIR) and worker sockets (TEMP) in the temp dir: private ones
        # keep servers apart.
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        logs = str(self.workdir / "logs")
        return {**os.environ, "TMPDIR": str(tmp), "TEMP": str(tmp), "LOG_LOCATION": logs,
                "METRICS_LOCATION": logs}

    @staticmethod
    def _torchserve() -> str:
        on_path = shutil.which("torchserve") is not None
        return "torchserve" if on_path else str(Path(sys.executable).parent / "torchserve")
