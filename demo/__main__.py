"""python -m demo run | start | stop: the browser demo on http://127.0.0.1:8000/ in front of TorchServe.

    run   [--host H] [--port P] [--allowed-host NAME ...]   serve in the foreground (uvicorn)
    start [same options]     in the background (`make demo`): pid in logs/demo.pid, output in logs/demo.log
    stop                     stop the background one (`make stop`)

TorchServe's addresses and key file come from the ASL_* variables, as for `python -m client`.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
import uvicorn

from client.settings import Server
from demo.server import LOOPBACK_HOSTS, create_app
from training.config import REPO

LOGS = REPO / "logs"
PID_FILE = LOGS / "demo.pid"
START_TIMEOUT_S = 30


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("run", "start", "stop"))
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--allowed-host", action="append", dest="allowed_hosts",
        help="a Host header to accept (repeatable; default 127.0.0.1 and localhost)",
    )
    return parser.parse_args(argv)


def start(args: argparse.Namespace) -> int:
    """Run the server detached and return once it answers, so `make demo` can print its address."""
    if (pid := running_pid()) is not None:
        print(f"the demo is already running (pid {pid}); `make stop` stops it")
        return 1
    LOGS.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "demo", "run", "--host", args.host, "--port", str(args.port)]
    command += [f"--allowed-host={name}" for name in args.allowed_hosts or ()]
    with (LOGS / "demo.log").open("a") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    PID_FILE.write_text(str(process.pid))
    url = f"http://{args.host}:{args.port}/"
    local = f"http://127.0.0.1:{args.port}/" if args.host in ("0.0.0.0", "::") else url
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            requests.get(local, timeout=1)  # any answer (a refused Host header too) means it listens
            print(f"The demo is up: open {url}  (stop it with: make stop)")
            return 0
        except requests.RequestException:
            time.sleep(0.3)
    stop()
    print(f"error: the demo did not come up at {url}; see {LOGS / 'demo.log'}")
    return 1


def running_pid() -> int | None:
    """The background server's pid, if the pid file names a live `python -m demo` process; a stale pid
    file (after a crash or a reboot, the pid now someone else's) is removed."""
    if not PID_FILE.exists():
        return None
    pid = int(PID_FILE.read_text())
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        command = []
    if b"demo" in command:
        return pid
    PID_FILE.unlink()
    return None


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
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
