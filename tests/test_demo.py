"""The browser demo in real headless Chromium, against a real TorchServe and the real demo server.

The camera is Chromium's fake capture device playing a Y4M video made here from committed sample photos
chosen by position (the first of each class in name order), not by how well the model reads them. The page
runs at its default settings and must type the word within `EDITS` edits.
"""

import base64
import io
import json
from pathlib import Path

import pytest
import requests
import yaml
from PIL import Image
from rapidfuzz.distance import Levenshtein

from asl_serve.client.settings import Server
from asl_serve.harness.browser import CHROMIUM, launch, running_demo, write_y4m
from asl_serve.harness.images import encode
from asl_serve.harness.server import free_ports
from asl_serve.layout import SAMPLES
from asl_serve.loadtests.spelling import with_gaps
from asl_serve.training.arms_length import to_pil
from tests.conftest import MARKED as HAND_BOXES
from tests.conftest import ROBOFLOW as HANDS
from tests.conftest import hottest_cells, room_without_the_hand

REPO = Path(__file__).resolve().parent.parent
SAMPLES = SAMPLES
SCREENSHOTS = REPO / "build" / "demo"  # the README's picture is copied from here
FRAME_SIDE, FPS, HOLD_FRAMES = 240, 10, 30  # the fake camera: 240x240, each sign held for 3 s (slow CPUs)
WORD, EDITS = "HELLO", 1  # the page must type WORD within EDITS edits (insertions, deletions, substitutions)


def camera_frame(label: str) -> Image.Image:
    """The first committed sample of `label` in name order, as a 240x240 camera frame."""
    path = sorted((SAMPLES / label).glob("*.jpg"))[0]
    return Image.open(path).convert("RGB").resize((FRAME_SIDE, FRAME_SIDE), Image.Resampling.BILINEAR)


@pytest.fixture(scope="module")
def demo(torchserve, tmp_path_factory):
    with running_demo(torchserve.server, tmp_path_factory.mktemp("demo") / "demo.log") as url:
        yield url


@pytest.fixture(scope="module")
def spelling(tmp_path_factory) -> tuple[Path, float]:
    """The fake camera's video, the room first and last, `nothing` between the double letters; and its
    length in seconds."""
    labels = ["nothing", *with_gaps(WORD, "nothing"), "nothing"]
    video = tmp_path_factory.mktemp("camera") / "spelling.y4m"
    write_y4m(video, [(camera_frame(label), HOLD_FRAMES) for label in labels], FPS)
    return video, len(labels) * HOLD_FRAMES / FPS


@pytest.fixture(scope="module")
def browser(spelling):
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright, spelling[0])
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


def test_camera_spells_a_word_from_unpicked_frames(page, spelling, rest):
    """One pass of the video at the page's defaults; the hand is drawn and the answers name the version."""
    _, seconds = spelling
    page.wait_for_function("() => document.getElementById('version').value !== ''")
    page.click("#camera")
    page.wait_for_timeout((seconds + 0.5) * 1000)  # one pass, ending on the room: the video then loops
    page.click("#camera")
    typed = page.text_content("#text")
    assert Levenshtein.distance(typed, WORD) <= EDITS, f"typed {typed!r} for {WORD!r}"
    assert page.text_content("#answered") == rest.default_version()
    assert page.text_content("#latency").endswith(" ms")
    assert page.locator("#top3 li").count() == 3
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "spelling.png"))


def answer(label: str, probability: float = 0.95, hand: bool = True) -> dict:
    return {"label": label, "probability": probability, "hand": {"score": 0.99} if hand else None}


def test_the_spelling_rule_types_once_rearms_and_deletes(page):
    """The page's own `Speller` over a scripted answer stream, at 0.8 and 3 frames: a held letter is typed
    once, whether or not the hand was found; `nothing` re-arms it; unsure frames break a run; `del` deletes."""
    stream = (
        [answer("H")] * 3 + [answer("E", hand=False)] * 5 + [answer("L")] * 3 + [answer("nothing")] * 3
        + [answer("L")] * 3 + [answer("O")] * 2 + [answer("O", 0.5)] + [answer("O")] * 2 + [answer("nothing")] * 3
        + [answer("O")] * 3 + [answer("Q")] * 3 + [answer("del")] * 3 + [answer("space")] * 3
    )
    typed = page.evaluate("""stream => {
      const speller = new Speller();
      return stream.reduce((text, a) => speller.step(text, a, 0.8, 3), "");
    }""", stream)
    assert typed == "HELLO "


def test_the_hand_is_drawn_on_an_uploaded_photo_and_no_hand_is_said(page):
    name = sorted(HAND_BOXES)[0]
    page.set_input_files("#upload", str(HANDS / name))
    page.wait_for_function("() => document.getElementById('hand').textContent.startsWith('found')")
    assert page.is_hidden("#no-hand")
    drawn = page.evaluate("""() => {
      const canvas = document.getElementById("overlay");
      const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      let painted = 0;
      for (let i = 3; i < pixels.length; i += 4) painted += pixels[i] > 0;
      return { painted, width: canvas.width, height: canvas.height };
    }""")
    assert drawn["width"] > 0 and 500 < drawn["painted"] < drawn["width"] * drawn["height"] / 4
    room = encode(to_pil(room_without_the_hand(name).contiguous()), "PNG")  # the same room, no hand
    page.set_input_files("#upload", {"name": "room.png", "mimeType": "image/png", "buffer": room})
    page.wait_for_function("() => document.getElementById('hand').textContent.startsWith('no hand')")
    assert page.is_visible("#no-hand")


def test_upload_and_drop_give_the_answer(page, rest):
    page.set_input_files("#upload", str(SAMPLES / "B" / "B0.jpg"))
    letter_is(page, "B")
    assert page.locator("#top3 li").count() == 3
    assert page.text_content("#answered") == rest.default_version()
    data = base64.b64encode((SAMPLES / "L" / "L105.jpg").read_bytes()).decode()
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
    page.set_input_files("#upload", str(SAMPLES / "Y" / "Y399.jpg"))
    letter_is(page, "Y")
    assert page.text_content("#answered") == other


def test_corrupt_upload_shows_a_readable_error_and_the_page_recovers(page, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((SAMPLES / "C" / "C707.jpg").read_bytes()[:3000])
    page.set_input_files("#upload", str(broken))
    page.wait_for_selector("#error", state="visible")
    message = page.text_content("#error")
    assert "broken.jpg" in message and "422" in message and "truncated" in message
    assert page.text_content("#letter") == "" and page.text_content("#answered") == "\N{EN DASH}"  # nothing stale
    page.set_input_files("#upload", str(SAMPLES / "C" / "C707.jpg"))
    letter_is(page, "C")
    assert page.is_hidden("#error")


def test_a_file_that_is_no_image_says_so_without_a_broken_image(page, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("these are notes, not a photo")
    page.set_input_files("#upload", str(notes))
    page.wait_for_selector("#error", state="visible")
    page.wait_for_selector("#stage-hint", state="visible")
    assert "not an image" in page.text_content("#stage-hint") and page.is_hidden("#photo")
    assert "415" in page.text_content("#error")


def test_a_phone_gets_one_column_and_no_sideways_scroll(browser, demo):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(demo)
    page.set_input_files("#upload", str(SAMPLES / "B" / "B0.jpg"))
    letter_is(page, "B")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    stage, answer = page.locator("#stage-panel").bounding_box(), page.locator("#answer-panel").bounding_box()
    assert answer["y"] >= stage["y"] + stage["height"]  # below it, not beside it
    bar = page.locator("#top3 .bar").first.bounding_box()
    assert bar["width"] >= 100  # the probability bars keep their room
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "phone.png"), full_page=True)
    context.close()


def focus_order(page, presses: int = 20) -> list[str]:
    """The ids (or tag names) that Tab visits, in order."""
    visited = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        visited.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    return visited


def test_a_keyboard_alone_classifies_a_photo(page):
    # Playwright turns on Chromium's file-chooser interception when a page first gets a "filechooser" listener,
    # without waiting for it: subscribed only inside expect_file_chooser, a busy machine can deliver the Enter
    # first and the chooser goes unseen. Subscribing now leaves the Tab presses below for it to take effect.
    choosers = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    page.wait_for_function("() => document.getElementById('version').value !== ''")  # the page is set up
    visited = focus_order(page)
    assert {"version", "stage", "camera", "upload", "explain", "threshold", "frames", "copy", "clear"} <= set(visited)
    page.focus("#stage")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(SAMPLES / "W" / "W301.jpg"))
    assert choosers == [chooser.value]  # one picker, opened by Enter: none while Tab moved the focus
    letter_is(page, "W")


@pytest.mark.parametrize("viewport", [{"width": 1200, "height": 820}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_axe_finds_no_serious_accessibility_violation(browser, demo, viewport):
    """axe-core (axe-playwright-python) on the page with an answer on show; what it finds is kept in build/demo."""
    from axe_playwright_python.sync_playwright import Axe

    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(demo)
    page.set_input_files("#upload", str(SAMPLES / "B" / "B0.jpg"))
    letter_is(page, "B")
    results = Axe().run(page)
    context.close()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"axe-{viewport['width']}.json").write_text(json.dumps(results.response["violations"], indent=1))
    serious = [(v["id"], v["help"]) for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == []


def test_the_version_list_recovers_when_torchserve_comes_back(page, rest):
    """The first reads of /api/versions fail (TorchServe down), the next say not ready (starting): the list
    comes right without a reload."""
    answers = []

    def flaky(route):
        answers.append(route.request.url)
        if len(answers) == 1:
            route.fulfill(status=503, json={"code": 503, "type": "TorchServeUnavailable", "message": "down"})
        elif len(answers) == 2:
            body = route.fetch().json()
            route.fulfill(json={**body, "versions": [{**v, "ready": False} for v in body["versions"]]})
        else:
            route.continue_()

    page.route("**/api/versions", flaky)
    page.reload()
    page.wait_for_selector("#error", state="visible")
    page.wait_for_function("() => document.getElementById('version').textContent.includes('not ready')")
    page.wait_for_function("() => !document.getElementById('version').textContent.includes('not ready')")
    assert page.is_hidden("#error") and page.input_value("#version") == rest.default_version()


def test_torchserve_down_is_a_message_not_a_frozen_page(browser, torchserve, tmp_path):
    inference, management = free_ports(2)  # nothing listens there
    gone = Server(
        inference_url=f"http://127.0.0.1:{inference}", management_url=f"http://127.0.0.1:{management}",
        key_file=torchserve.server.key_file,
    )
    with running_demo(gone, tmp_path / "demo.log") as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#error", state="visible")
        assert "not reachable" in page.text_content("#error") and "127.0.0.1" not in page.text_content("#error")
        page.set_input_files("#upload", str(SAMPLES / "A" / "A602.jpg"))
        page.wait_for_function("() => document.getElementById('error').textContent.includes('503')")
        assert "A602.jpg" in page.text_content("#error") and "not reachable" in page.text_content("#error")
        assert page.text_content("#letter") == "" and page.locator("#top3 li").count() == 0  # nothing stale
        page.close()


def test_the_token_never_reaches_the_browser(page, torchserve):
    received = []

    def pass_through(route):
        """Fetch each request from the demo server as the browser would, keep a copy, hand it on unchanged."""
        response = route.fetch()
        received.append(f"{route.request.url} {json.dumps(response.headers)} {response.text()}")
        route.fulfill(response=response)

    page.route("**/*", pass_through)
    page.reload()
    page.set_input_files("#upload", str(SAMPLES / "W" / "W301.jpg"))
    letter_is(page, "W")
    broken = (SAMPLES / "W" / "W301.jpg").read_bytes()[:1000]
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
        ({"version": "9.9-none"}, (SAMPLES / "A" / "A602.jpg").read_bytes(), 404, None),
        ({}, b"<html>not an image</html>", 415, "UnsupportedMediaType"),
    ]
    for params, body, status, kind in cases:
        response = requests.post(f"{demo}/api/predict", params=params, data=body, timeout=60)
        assert response.status_code == status, (params, response.text)
        assert response.json()["code"] == status and response.json()["message"]
        assert kind is None or response.json()["type"] == kind
    assert requests.get(demo, headers={"Host": "attacker.example"}, timeout=10).status_code == 400


def test_no_key_file_is_a_plain_503_without_server_paths(tmp_path):
    missing = Server(key_file=tmp_path / "key_file.json")
    with running_demo(missing, tmp_path / "demo.log") as url:
        response = requests.post(f"{url}/api/predict", data=b"x", timeout=30)
    assert response.status_code == 503 and response.json()["type"] == "TorchServeUnavailable"
    assert "make serve" in response.json()["message"] and str(tmp_path) not in response.text


def test_the_proxy_passes_the_tracking_hint(demo):
    photo = (HANDS / sorted(HAND_BOXES)[0]).read_bytes()
    detected = requests.post(f"{demo}/api/predict", data=photo, timeout=60).json()
    params = {"roi": json.dumps(detected["hand"]["roi"])}
    tracked = requests.post(f"{demo}/api/predict", params=params, data=photo, timeout=60).json()
    assert (detected["hand"]["tracked"], tracked["hand"]["tracked"]) == (False, True)
    assert tracked["label"] == detected["label"]


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://attacker.example"}])
def test_pages_of_other_sites_cannot_spend_the_token(demo, headers):
    photo = (SAMPLES / "A" / "A602.jpg").read_bytes()
    for route in ("predict", "explain"):
        response = requests.post(f"{demo}/api/{route}", data=photo, headers=headers, timeout=60)
        assert response.status_code == 403 and response.json()["type"] == "CrossSiteRequest"
    same_site = {"Sec-Fetch-Site": "same-origin", "Origin": demo}
    assert requests.post(f"{demo}/api/predict", data=photo, headers=same_site, timeout=60).status_code == 200


def test_compose_runs_the_demo_on_host_loopback_with_torchserves_keys():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    demo = services["demo"]
    assert demo["ports"] == ["127.0.0.1:${ASL_DEMO_PORT:-8000}:8000"]  # 8000 unless moved
    assert demo["command"][:4] == ["python", "-m", "asl_serve.demo", "run"]
    assert demo["depends_on"]["torchserve"]["condition"] == "service_healthy"
    key_dir = dict(volume.split(":")[:2] for volume in demo["volumes"])["torchserve-state"]
    assert demo["environment"]["ASL_KEY_FILE"] == f"{key_dir}/key_file.json"
    assert demo["environment"]["ASL_INFERENCE_URL"] == "http://torchserve:8080"
    assert demo["image"] == services["torchserve"]["image"]
