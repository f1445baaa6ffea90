"""The browser demo in real headless Chromium, against a real TorchServe and the real demo server.

The camera is Chromium's fake capture device playing a Y4M video made here from committed sample
photos that the served model reads confidently, so the spelled word is known in advance.
"""

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from PIL import Image

from client.rest import RestClient
from client.settings import Server
from harness.poll import poll
from harness.server import free_ports
from tests.conftest import MARKED as HAND_BOXES
from tests.conftest import ROBOFLOW as HANDS
from tests.conftest import hottest_cells

REPO = Path(__file__).resolve().parent.parent
SAMPLE_DIRS = (REPO / "samples" / "asl2text", REPO / "samples" / "roboflow")
SCREENSHOTS = REPO / "build" / "demo"  # the README's picture is copied from here
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; `playwright install` cannot download a browser here
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
FRAME_SIDE, FPS, SEGMENT_FRAMES = 240, 5, 25  # the fake camera: 240x240, each sign held for 5 s (slow CPUs)
CONFIDENT = 0.85  # a sample joins the video only if the served model gives it this much as a camera frame
THRESHOLD, FRAMES = 0.6, 3  # spell-mode settings the test types into the page
WORDS = ("HELLO", "SIGN", "ASL")  # the first whose letters all have a confident sample is spelled
WAIT_MS = 240_000  # generous: the CPU is shared with TorchServe, Chromium and often a training run


def camera_frame(path: Path) -> Image.Image:
    return Image.open(path).convert("RGB").resize((FRAME_SIDE, FRAME_SIDE), Image.Resampling.BILINEAR)


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    """As the page sends frames (canvas.toBlob JPEG at 0.85)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def write_y4m(path: Path, segments: list[Image.Image]) -> None:
    """A 4:2:0 Y4M video (BT.601 limited range) holding each image for SEGMENT_FRAMES frames."""
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{FRAME_SIDE} H{FRAME_SIDE} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for image in segments:
            r, g, b = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)
            y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
            u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
            v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
            planes = [y] + [c.reshape(FRAME_SIDE // 2, 2, FRAME_SIDE // 2, 2).mean(axis=(1, 3)) for c in (u, v)]
            frame = b"FRAME\n" + b"".join(np.clip(p.round(), 0, 255).astype(np.uint8).tobytes() for p in planes)
            out.write(frame * SEGMENT_FRAMES)


def start_demo(server: Server, log: Path) -> tuple[subprocess.Popen, str]:
    """`python -m demo run` on a free port, pointed at `server`; returns once it serves the page."""
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "demo", "run", "--port", str(port)],
            env={**os.environ, **server.env()}, stdout=out, stderr=subprocess.STDOUT,
        )
    try:  # until it serves the page, or has exited
        poll(lambda: process.poll() is not None or requests.get(url, timeout=1).ok, 60, f"the demo on {url}",
             interval=0.2, ignore=(requests.ConnectionError,))
    except TimeoutError:
        process.kill()
        process.wait()
    if process.poll() is not None:
        pytest.fail(f"the demo server did not start: {log.read_text()}")
    return process, url


@pytest.fixture(scope="module")
def demo(torchserve, tmp_path_factory):
    process, url = start_demo(torchserve.server, tmp_path_factory.mktemp("demo") / "demo.log")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def confident_frames(rest: RestClient, tmp_path_factory) -> dict[str, Image.Image]:
    """Per class, the sample the served default version reads best as a camera frame, if above CONFIDENT."""
    scratch = tmp_path_factory.mktemp("frames") / "frame.jpg"
    best: dict[str, tuple[float, Image.Image]] = {}
    for path in sorted(p for d in SAMPLE_DIRS for p in d.glob("*/*.jpg")):
        frame = camera_frame(path)
        scratch.write_bytes(jpeg(frame))
        answer = rest.predict(scratch, top_k=1)
        label = path.parent.name
        if answer["label"] == label and answer["probability"] >= max(CONFIDENT, best.get(label, (0,))[0]):
            best[label] = (answer["probability"], frame)
    return {label: frame for label, (_, frame) in best.items()}


@pytest.fixture(scope="module")
def spelling(confident_frames, tmp_path_factory) -> tuple[Path, str, str]:
    """The fake camera's video: nothing, the word (nothing between double letters), a stray letter, del, nothing.

    Returns the video, the word, and the stray letter typed before `del` removes it.
    """
    missing = {"nothing", "del"} - confident_frames.keys()
    assert not missing, f"the served model reads no sample of {missing} confidently"
    word = next((w for w in WORDS if set(w) <= confident_frames.keys()), None)
    assert word, f"no word of {WORDS} has confident samples for all its letters"
    stray = next(c for c in sorted(confident_frames) if len(c) == 1 and c != word[-1])
    labels = ["nothing"]
    for index, letter in enumerate(word):
        if index and letter == word[index - 1]:
            labels.append("nothing")
        labels.append(letter)
    labels += [stray, "del", "nothing", "nothing"]
    video = tmp_path_factory.mktemp("camera") / "spelling.y4m"
    write_y4m(video, [confident_frames[label] for label in labels])
    return video, word, stray


@pytest.fixture(scope="module")
def browser(spelling):
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    video, _, _ = spelling
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={video}"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, demo):
    context = browser.new_context(viewport={"width": 1200, "height": 820})
    page = context.new_page()
    page.goto(demo)
    yield page
    context.close()


def letter_is(page, label: str) -> None:
    page.wait_for_function("label => document.getElementById('letter').textContent === label", arg=label)


def test_camera_spells_a_word_and_del_deletes(page, spelling, rest):
    _, word, stray = spelling
    page.fill("#threshold", str(THRESHOLD))
    page.fill("#frames", str(FRAMES))
    page.click("#camera")
    text = "expected => document.getElementById('text').textContent === expected"
    page.wait_for_function(text, arg=word + stray, timeout=WAIT_MS)  # the word, then the stray letter
    page.wait_for_function(text, arg=word, timeout=WAIT_MS)  # ... which the del frame removes
    assert page.text_content("#answered") == rest.default_version()
    assert page.text_content("#latency").endswith(" ms")
    assert page.locator("#top3 li").count() == 3
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "spelling.png"))


def test_upload_and_drop_give_the_answer(page, rest):
    page.set_input_files("#upload", str(REPO / "samples" / "asl2text" / "B" / "B0.jpg"))
    letter_is(page, "B")
    assert page.locator("#top3 li").count() == 3
    assert page.text_content("#answered") == rest.default_version()
    data = base64.b64encode((REPO / "samples" / "asl2text" / "L" / "L105.jpg").read_bytes()).decode()
    transfer = page.evaluate_handle(
        """data => { const t = new DataTransfer();
           const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
           t.items.add(new File([bytes], 'L105.jpg', {type: 'image/jpeg'})); return t; }""",
        data,
    )
    page.dispatch_event("#stage", "drop", {"dataTransfer": transfer})
    letter_is(page, "L")
    assert page.is_hidden("#error")


def test_version_picker_lists_the_versions_and_the_chosen_one_answers(page, rest):
    page.wait_for_function("() => document.querySelector('#version option').value !== ''")
    options = page.eval_on_selector_all("#version option", "os => os.map(o => o.value)")
    assert sorted(options) == sorted(v["modelVersion"] for v in rest.describe())
    assert page.input_value("#version") == rest.default_version()
    other = next(v for v in options if v != rest.default_version())
    page.select_option("#version", other)
    page.set_input_files("#upload", str(REPO / "samples" / "asl2text" / "Y" / "Y399.jpg"))
    letter_is(page, "Y")
    assert page.text_content("#answered") == other


def test_corrupt_upload_shows_a_readable_error_and_the_page_recovers(page, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((REPO / "samples" / "asl2text" / "C" / "C707.jpg").read_bytes()[:3000])
    page.set_input_files("#upload", str(broken))
    page.wait_for_selector("#error", state="visible")
    message = page.text_content("#error")
    assert "broken.jpg" in message and "422" in message and "CorruptImage" in message
    page.set_input_files("#upload", str(REPO / "samples" / "asl2text" / "C" / "C707.jpg"))
    letter_is(page, "C")
    assert page.is_hidden("#error")


def test_torchserve_down_is_a_message_not_a_frozen_page(browser, torchserve, tmp_path):
    inference, management = free_ports(2)  # nothing listens there
    gone = Server(
        inference_url=f"http://127.0.0.1:{inference}", management_url=f"http://127.0.0.1:{management}",
        key_file=torchserve.server.key_file,
    )
    process, url = start_demo(gone, tmp_path / "demo.log")
    try:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#error", state="visible")
        assert "not reachable" in page.text_content("#error")
        page.set_input_files("#upload", str(REPO / "samples" / "asl2text" / "A" / "A602.jpg"))
        page.wait_for_function("() => document.getElementById('error').textContent.includes('503')")
        assert "A602.jpg" in page.text_content("#error") and "not reachable" in page.text_content("#error")
        assert page.text_content("#letter") == "?"
        page.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_token_never_reaches_the_browser(page, torchserve):
    received = []

    def pass_through(route):
        """Fetch each request from the demo server as the browser would, keep a copy, hand it on unchanged."""
        response = route.fetch()
        received.append(f"{route.request.url} {json.dumps(response.headers)} {response.text()}")
        route.fulfill(response=response)

    page.route("**/*", pass_through)
    page.reload()
    page.set_input_files("#upload", str(REPO / "samples" / "asl2text" / "W" / "W301.jpg"))
    letter_is(page, "W")
    broken = (REPO / "samples" / "asl2text" / "W" / "W301.jpg").read_bytes()[:1000]
    page.set_input_files("#upload", {"name": "w.jpg", "mimeType": "image/jpeg", "buffer": broken})
    page.wait_for_selector("#error", state="visible")
    paths = sorted(text.split(" ")[0].split("?")[0].rsplit("/", 1)[-1] for text in received)
    assert paths == ["", "app.js", "predict", "predict", "style.css", "versions"]
    assert "CorruptImage" in received[-1]
    keys = [entry["key"] for entry in json.loads(torchserve.server.key_file.read_text()).values()]
    for text in [page.content(), *received]:
        assert "Bearer" not in text
        assert not any(key in text for key in keys)


def test_explanation_overlays_the_heatmap(page):
    """An uploaded photo with Explain ticked gets the heatmap from POST /explanations/asl."""
    page.check("#explain")
    name = sorted(HAND_BOXES)[0]
    page.set_input_files("#upload", str(HANDS / name))
    page.wait_for_selector("#heatmap:not([hidden]), #error:not([hidden])", timeout=60_000)
    assert page.is_hidden("#error"), page.text_content("#error")
    assert page.get_attribute("#heatmap", "src").startswith("data:image/png;base64,")
    page.uncheck("#explain")
    assert page.is_hidden("#heatmap")
    page.check("#explain")  # ticked after the upload: the photo on show is explained again
    page.wait_for_selector("#heatmap:not([hidden]), #error:not([hidden])", timeout=60_000)
    assert page.is_hidden("#error"), page.text_content("#error")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "explanation.png"))


@pytest.mark.parametrize("version", ["1.0-fp32", "1.0-int8"])
def test_explain_api_maps_the_hand_on_both_versions(demo, version):
    """POST /api/explain through TorchServe's /explanations: the hottest cell lies on the hand."""
    for name, box in sorted(HAND_BOXES.items())[:3]:
        response = requests.post(
            f"{demo}/api/explain", params={"version": version}, data=(HANDS / name).read_bytes(), timeout=60
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["version"] == version
        assert answer.keys() >= {"label", "probability", "grid", "heatmap_png", "forward_passes"}, answer
        (x, y), = hottest_cells(answer)
        assert box[0] <= x <= box[2] and box[1] <= y <= box[3], f"{name}: hottest cell ({x}, {y}) off the hand"
        heatmap = Image.open(io.BytesIO(base64.b64decode(answer["heatmap_png"])))
        assert heatmap.format == "PNG" and heatmap.mode == "RGBA"


def test_demo_answers_bad_requests_with_json(demo):
    cases = [
        ({"version": "../../models"}, b"x", 400, "BadRequest"),
        ({"top_k": "3\nx"}, b"x", 400, "BadRequest"),
        ({"roi": "{\"x\": \"\u00e9\"}"}, b"x", 400, "BadRequest"),  # not a header's ASCII: the proxy refuses it
        ({"roi": '{"x": 0.5}'}, (HANDS / sorted(HAND_BOXES)[0]).read_bytes(), 400, "BadRequest"),  # the handler
        ({}, b"", 400, "EmptyImage"),
        ({"version": "9.9-none"}, (REPO / "samples" / "asl2text" / "A" / "A602.jpg").read_bytes(), 404, None),
        ({}, b"<html>not an image</html>", 415, "UnsupportedMediaType"),
    ]
    for params, body, status, kind in cases:
        response = requests.post(f"{demo}/api/predict", params=params, data=body, timeout=60)
        assert response.status_code == status, (params, response.text)
        assert response.json()["code"] == status and response.json()["message"]
        assert kind is None or response.json()["type"] == kind
    assert requests.get(demo, headers={"Host": "attacker.example"}, timeout=10).status_code == 400


def test_the_proxy_passes_the_tracking_hint(demo):
    photo = (HANDS / sorted(HAND_BOXES)[0]).read_bytes()
    detected = requests.post(f"{demo}/api/predict", data=photo, timeout=60).json()
    params = {"roi": json.dumps(detected["hand"]["roi"])}
    tracked = requests.post(f"{demo}/api/predict", params=params, data=photo, timeout=60).json()
    assert (detected["hand"]["tracked"], tracked["hand"]["tracked"]) == (False, True)
    assert tracked["label"] == detected["label"]


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://attacker.example"}])
def test_pages_of_other_sites_cannot_spend_the_token(demo, headers):
    photo = (REPO / "samples" / "asl2text" / "A" / "A602.jpg").read_bytes()
    for route in ("predict", "explain"):
        response = requests.post(f"{demo}/api/{route}", data=photo, headers=headers, timeout=60)
        assert response.status_code == 403 and response.json()["type"] == "CrossSiteRequest"
    same_site = {"Sec-Fetch-Site": "same-origin", "Origin": demo}
    assert requests.post(f"{demo}/api/predict", data=photo, headers=same_site, timeout=60).status_code == 200


def test_compose_runs_the_demo_on_host_loopback_with_torchserves_keys():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    demo = services["demo"]
    assert demo["ports"] == ["127.0.0.1:8000:8000"]
    assert demo["command"][:4] == ["python", "-m", "demo", "run"]
    assert demo["depends_on"]["torchserve"]["condition"] == "service_healthy"
    key_dir = dict(volume.split(":")[:2] for volume in demo["volumes"])["torchserve-state"]
    assert demo["environment"]["ASL_KEY_FILE"] == f"{key_dir}/key_file.json"
    assert demo["environment"]["ASL_INFERENCE_URL"] == "http://torchserve:8080"
    assert demo["image"] == services["torchserve"]["image"]
