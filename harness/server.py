"""A private TorchServe: the repo's config.properties on free ports, in its own work directory.

Everything it writes (config, key_file.json, logs, pid file, worker sockets) lives in that directory,
so it runs beside a `make serve` server, or another private one, without touching it.

    with private_torchserve(settings={"responseTimeout": 5}) as torchserve:
        RestClient(torchserve.server).predict(photo)
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from asl_serve.client.rest import RestClient
from asl_serve.client.settings import STARTUP_TIMEOUT_S, Server
from asl_serve.handler import ts_config
from asl_serve.harness.archives import derive
from asl_serve.layout import CONFIG_PROPERTIES, LOG_CONFIG, MODEL_STORE, allocator_env

PORT_KEYS = ("inference", "management", "metrics", "grpc_inference", "grpc_management")
JVM_EXIT_TIMEOUT_S = 30  # after `torchserve --stop`, before the JVM is terminated directly


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def render_config(base: str, ports: dict[str, int], model_store: Path, properties: dict[str, str]) -> str:
    """The repo's config with this server's ports, model store and any overridden properties."""
    addresses = {f"{name}_address": f"http://127.0.0.1:{ports[name]}"
                 for name in ("inference", "management", "metrics")}
    grpc_ports = {f"{name}_port": str(ports[name]) for name in ("grpc_inference", "grpc_management")}
    return ts_config.render(base, {**addresses, **grpc_ports, "model_store": str(model_store), **properties})


class PrivateTorchServe:
    """One TorchServe in `workdir`, serving the archives of `store`; `start` and `stop` may be repeated."""

    def __init__(self, workdir: Path, store: Path, properties: dict[str, str] | None = None,
                 env: dict[str, str] | None = None):
        self.workdir, self.store = workdir, store
        self.properties = properties or {}
        self.extra_env = allocator_env() if env is None else env
        self.server: Server | None = None
        self.jvm: psutil.Process | None = None

    def start(self, ready_timeout_s: float = STARTUP_TIMEOUT_S) -> Server:
        """Start on fresh free ports and return once every configured version is READY."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports = dict(zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True))
        config = render_config(CONFIG_PROPERTIES.read_text(), ports, self.store, self.properties)
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
                [torchserve_command(), "--start", "--ts-config", "config.properties", "--model-store",
                 str(self.store), "--log-config", str(LOG_CONFIG), "--ncs"],
                cwd=self.workdir, env=self.env(), stdout=out, stderr=subprocess.STDOUT,
            )
        if started.returncode != 0:
            raise RuntimeError(f"torchserve --start failed: {console.read_text()}")
        self.jvm = psutil.Process(int((self.workdir / "tmp" / ".model_server.pid").read_text()))
        RestClient(self.server).wait_ready(ready_timeout_s)
        return self.server

    def stop(self) -> None:
        """`torchserve --stop`, then wait for the JVM: it has been seen to outlive the command after long
        runs, so it is terminated directly if it does not exit in time."""
        subprocess.run([torchserve_command(), "--stop"], cwd=self.workdir, env=self.env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        jvm, self.jvm = self.jvm, None
        if jvm is None:
            return
        try:
            jvm.wait(timeout=JVM_EXIT_TIMEOUT_S)
        except psutil.TimeoutExpired:
            print(f"warning: torchserve --stop left JVM {jvm.pid} running; terminating it", file=sys.stderr)
            jvm.terminate()
            jvm.wait(timeout=JVM_EXIT_TIMEOUT_S)
        except psutil.NoSuchProcess:
            pass

    def log(self, name: str = "model_log.log") -> str:
        path = self.workdir / "logs" / name
        return path.read_text(errors="replace") if path.exists() else ""

    def env(self) -> dict[str, str]:
        # TorchServe keeps its pid file (TMPDIR) and worker sockets (TEMP) in the temp dir: private ones
        # keep servers apart.
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        logs = str(self.workdir / "logs")
        return {**os.environ, **self.extra_env, "TMPDIR": str(tmp), "TEMP": str(tmp), "LOG_LOCATION": logs,
                "METRICS_LOCATION": logs}


def torchserve_command() -> str:
    on_path = shutil.which("torchserve") is not None
    return "torchserve" if on_path else str(Path(sys.executable).parent / "torchserve")


def copy_store(source: Path, target: Path, archives: list[str] | None, settings: dict) -> Path:
    """The archives of `source` (all, or those named) in `target`, with `settings` in their model-config.yaml."""
    target.mkdir(parents=True, exist_ok=True)
    for archive in sorted(source.glob("*.mar")) if archives is None else [source / name for name in archives]:
        if not archive.exists():
            raise FileNotFoundError(f"{archive} is missing: run `make archive`")
        if settings:
            derive(archive, target / archive.name, **settings)
        else:
            shutil.copy2(archive, target / archive.name)
    return target


@contextmanager
def private_torchserve(store: Path = MODEL_STORE, archives: list[str] | None = None, settings: dict | None = None,
                       properties: dict[str, str] | None = None, env: dict[str, str] | None = None,
                       workdir: Path | None = None) -> Iterator[PrivateTorchServe]:
    """A started private TorchServe serving a copy of `store` (all archives, or `archives`), stopped on exit.

    `settings` go into every copied archive's model-config.yaml (`harness.archives.derive`), `properties`
    override config.properties, and `env` is added to the server's environment: by default the allocator
    variables `make serve` sets, so that what is measured and tested is what ships.
    Without `workdir`, a temporary directory is used and removed.
    """
    with tempfile.TemporaryDirectory(prefix="torchserve-") as tmp:
        root = workdir or Path(tmp)
        store_copy = copy_store(store, root / "model_store", archives, settings or {})
        torchserve = PrivateTorchServe(root / "torchserve", store_copy, properties, env)
        try:
            torchserve.start()
            yield torchserve
        finally:
            torchserve.stop()
