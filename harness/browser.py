"""The demo in real Chromium: a fake camera playing a Y4M video, and the demo server started on a free port.

Debian's `chromium` package is driven by Playwright (`executable_path`): Playwright's own browser download
cannot work here. The tests and `make spelling-benchmark` share these parts.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from asl_serve.client.settings import Server
from asl_serve.harness.poll import poll
from asl_serve.harness.server import free_ports

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
DEMO_START_TIMEOUT_S = 60


def write_y4m(path: Path, segments: list[tuple[Image.Image, int]], fps: int) -> None:
    """A 4:2:0 Y4M video (BT.601 limited range): each image held for its number of frames.

    Every image must have the first one's size, with even sides.
    """
    width, height = segments[0][0].size
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image, frames in segments:
            r, g, b = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)
            y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
            u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
            v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
            planes = [y] + [c.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3)) for c in (u, v)]
            frame = b"FRAME\n" + b"".join(np.clip(p.round(), 0, 255).astype(np.uint8).tobytes() for p in planes)
            out.write(frame * frames)


def launch(playwright, video: Path):
    """Headless Chromium whose camera plays `video` (looping) without asking for permission."""
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True,
        args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={video}"],
    )


@contextmanager
def running_demo(server: Server, log: Path) -> Iterator[str]:
    """`python -m asl_serve.demo run` on a free port, pointed at `server`: its URL once it serves the page, stopped
    on exit.

    RuntimeError with the demo's output if it exits or does not serve the page in time.
    """
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "asl_serve.demo", "run", "--port", str(port)],
            env={**os.environ, **server.env()}, stdout=out, stderr=subprocess.STDOUT,
        )
    try:  # until it serves the page, or has exited
        poll(lambda: process.poll() is not None or requests.get(url, timeout=1).ok, DEMO_START_TIMEOUT_S,
             f"the demo on {url}", interval=0.2, ignore=(requests.ConnectionError,))
    except TimeoutError:
        process.kill()
        process.wait()
    if process.poll() is not None:
        raise RuntimeError(f"the demo server did not start: {log.read_text()}")
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
