"""python -m asl_serve.demo run | start | stop: the browser demo on http://127.0.0.1:8000/ in front of TorchServe.

    run   [--host H] [--port P] [--allowed-host NAME ...] [--ssl-certfile PEM --ssl-keyfile PEM]
                             serve in the foreground (uvicorn)
    start [same options]     in the background (`make demo`): pid in logs/demo.pid, output in logs/demo.log
    stop                     stop the background one (`make stop`)

TorchServe's addresses and key file come from the ASL_* variables, as for `python -m asl_serve.client`.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import uvicorn

from asl_serve.client.settings import Server
from asl_serve.demo.server import LOOPBACK_HOSTS, create_app
from asl_serve.layout import LOGS

PID_FILE = LOGS / "demo.pid"
START_TIMEOUT_S = 30


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m asl_serve.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("run", "start", "stop"))
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--allowed-host", action="append", dest="allowed_hosts",
        help="a Host header to accept (repeatable; default 127.0.0.1 and localhost)",
    )
    parser.add_argument("--ssl-certfile", type=Path, help="serve https with this certificate (PEM): browsers give "
                        "the camera only to https pages or localhost")
    parser.add_argument("--ssl-keyfile", type=Path, help="the certificate's private key (PEM)")
    args = parser.parse_args(argv)
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        parser.error("--ssl-certfile and --ssl-keyfile go together")
    return args


def start(args: argparse.Namespace) -> int:
    """Run the server detached and return once it answers, so `make demo` can print its address."""
    if (pid := running_pid()) is not None:
        running = parse(command_line(pid)[3:])  # python -m asl_serve.demo run ...
        url = address(running.host, running.port, running.ssl_certfile is not None)
        print(f"The demo is already running: open {url}  (pid {pid}; stop it with: make stop)")
        return 0
    LOGS.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "asl_serve.demo", "run", "--host", args.host, "--port", str(args.port)]
    command += [f"--allowed-host={name}" for name in args.allowed_hosts or ()]
    if args.ssl_certfile:
        command += ["--ssl-certfile", str(args.ssl_certfile.resolve())]
        command += ["--ssl-keyfile", str(args.ssl_keyfile.resolve())]
    with (LOGS / "demo.log").open("a") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    PID_FILE.write_text(str(process.pid))
    url = address(args.host, args.port, args.ssl_certfile is not None)
    local = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection((local, args.port), timeout=1).close()  # it listens
            print(f"The demo is up: open {url}  (stop it with: make stop)")
            return 0
        except OSError:
            time.sleep(0.3)
    stop()
    print(f"error: the demo did not come up at {url}; see {LOGS / 'demo.log'}")
    return 1


def running_pid() -> int | None:
    """The background server's pid, if the pid file names a live `python -m asl_serve.demo` process; a stale pid
    file (after a crash or a reboot, the pid now someone else's) is removed."""
    if not PID_FILE.exists():
        return None
    pid = int(PID_FILE.read_text())
    if "demo" in command_line(pid):
        return pid
    PID_FILE.unlink()
    return None


def command_line(pid: int) -> list[str]:
    """The arguments of a running process, or [] where there is none."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def address(host: str, port: int, tls: bool = False) -> str:
    return f"{'https' if tls else 'http'}://{host}:{port}/"


def stop() -> int:
    """SIGTERM the background server; uvicorn finishes its requests and exits."""
    pid = running_pid()
    if pid is None:
        return 0
    PID_FILE.unlink()
    os.kill(pid, signal.SIGTERM)
    print("demo stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "stop":
        return stop()
    if args.command == "start":
        return start(args)
    app = create_app(Server.from_env(), tuple(args.allowed_hosts or LOOPBACK_HOSTS))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", ssl_certfile=args.ssl_certfile,
                ssl_keyfile=args.ssl_keyfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
