"use strict";
// The demo page. Frames and uploads go to this page's own server (/api/...), which adds TorchServe's
// token: nothing here knows it. No framework and no build step; nothing is loaded from elsewhere.

const FRAME_INTERVAL_MS = 100; // at most 10 frames/s; the next frame leaves when the last answer is back
const FRAME_SIDE = 320; // larger frames shrink to this longer side before JPEG encoding (the model sees 160)
const JPEG_QUALITY = 0.85;
const REQUEST_TIMEOUT_MS = 15000;
const RETRY_MS = 3000; // after an error: the version list is re-read and the camera slows to this pace
const VERSIONS_REFRESH_MS = 15000; // the version list is re-read this often (a set-default, a new version)
const TOP = 3;
const SPELL_DEFAULTS = { threshold: 0.4, frames: 3 }; // chosen by `make spelling-benchmark` on validation people
// MediaPipe's hand connections: the bones drawn between the 21 landmarks
const BONES = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10], [10, 11], [11, 12],
  [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [17, 18], [18, 19], [19, 20], [0, 17]];

const $ = (id) => document.getElementById(id);
const canvas = document.createElement("canvas");
const state = {
  stream: null, // the webcam, while it runs
  explaining: false, // one explanation at a time: each is ~82 forward passes
  speller: null, // spell mode's rule (Speller), set below
  roi: null, // the last answer's hand.roi: sent with the next frame, so the server tracks the hand
  photo: null, // the uploaded file on show, to explain later (the page's CSP forbids fetching blob: URLs)
  versionsFailed: false, // the error on show is the version list's: cleared once the list is read
  answeredAt: [], // times of recent answers, for frames/s
};

class ApiError extends Error {}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

// POST an image to /api/{route}, with the tracking hint `roi` if given; the JSON answer, or an ApiError with a
// message a person can read.
async function post(route, blob, roi = null) {
  const params = new URLSearchParams({ top_k: TOP });
  if ($("version").value) params.set("version", $("version").value);
  if (roi) params.set("roi", JSON.stringify(roi));
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  try {
    const response = await fetch(`/api/${route}?${params}`, {
      method: "POST",
      body: blob,
      headers: { "Content-Type": blob.type || "application/octet-stream" },
      signal: controller.signal,
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      throw new ApiError(body && body.message ? `${body.message} (${response.status})` :
        `The server answered ${response.status} without an explanation.`);
    }
    return body;
  } catch (error) {
    if (error instanceof ApiError) throw error;
    if (error.name === "AbortError") throw new ApiError(`No answer within ${REQUEST_TIMEOUT_MS / 1000} s.`);
    throw new ApiError("Cannot reach the demo server: is `make demo` still running?");
  } finally {
    clearTimeout(timer);
  }
}

// The version list, re-read every VERSIONS_REFRESH_MS, and every RETRY_MS while a version is not ready or the
// list cannot be read (TorchServe starting or down).
async function loadVersions() {
  let next = VERSIONS_REFRESH_MS;
  try {
    const response = await fetch("/api/versions");
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(body && body.message ? body.message : `versions: ${response.status}`);
    const select = $("version");
    const chosen = select.value;
    select.replaceChildren(
      ...body.versions.map((v) => {
        const option = new Option(`${v.version}${v.default ? " (default)" : ""}${v.ready ? "" : " – not ready"}`,
          v.version);
        option.selected = chosen ? v.version === chosen : v.default;
        return option;
      }),
    );
    if (!body.versions.every((v) => v.ready)) next = RETRY_MS;
    if (state.versionsFailed) clearError();
    state.versionsFailed = false;
  } catch (error) {
    showError(`Cannot list the model versions: ${error.message} Retrying…`);
    state.versionsFailed = true;
    next = RETRY_MS;
  }
  setTimeout(loadVersions, next);
}

// The hand the server found, drawn over the video or photo: its box, the 21 landmarks and their bones.
// Coordinates are fractions of the frame, and the overlay covers the frame exactly.
function drawHand(hand) {
  const overlay = $("overlay");
  const width = overlay.clientWidth * devicePixelRatio;
  const height = overlay.clientHeight * devicePixelRatio;
  Object.assign(overlay, { width, height });
  const context = overlay.getContext("2d");
  context.clearRect(0, 0, width, height);
  $("no-hand").hidden = hand !== null;
  $("hand").textContent = hand ? `found${hand.tracked ? ", tracked" : ""} (${hand.handedness.toLowerCase()})` :
    "no hand: the whole frame was read";
  if (!hand) return;
  const [left, top, right, bottom] = hand.box;
  const point = ([x, y]) => [x * width, y * height];
  context.lineWidth = 2 * devicePixelRatio;
  context.strokeStyle = "#2a6df4";
  context.strokeRect(left * width, top * height, (right - left) * width, (bottom - top) * height);
  context.strokeStyle = "#ffffff";
  context.beginPath();
  for (const [a, b] of BONES) {
    context.moveTo(...point(hand.landmarks[a]));
    context.lineTo(...point(hand.landmarks[b]));
  }
  context.stroke();
  context.fillStyle = "#e8590c";
  for (const landmark of hand.landmarks) {
    context.beginPath();
    context.arc(...point(landmark), 3 * devicePixelRatio, 0, 2 * Math.PI);
    context.fill();
  }
}

// No answer on show: after an error, nothing stale stays on the page.
function clearAnswer() {
  $("letter").textContent = "";
  $("top3").replaceChildren();
  for (const id of ["latency", "answered"]) $(id).textContent = "–";
  clearHand();
}

function hideHeatmap() {
  $("heatmap").hidden = true;
  $("legend").hidden = true;
}

function clearHand() {
  $("overlay").getContext("2d").clearRect(0, 0, $("overlay").width, $("overlay").height);
  $("no-hand").hidden = true;
  $("hand").textContent = "–";
}

function showAnswer(answer, milliseconds) {
  $("letter").textContent = answer.label;
  if ("hand" in answer) drawHand(answer.hand);
  $("top3").replaceChildren(
    ...answer.top_k.slice(0, TOP).map(({ label, probability }) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      const bar = document.createElement("span");
      const value = document.createElement("span");
      name.className = "label";
      name.textContent = label;
      bar.className = "bar";
      bar.style.setProperty("--p", probability);
      value.className = "value";
      value.textContent = `${(probability * 100).toFixed(1)}%`;
      item.append(name, bar, value);
      return item;
    }),
  );
  $("latency").textContent = `${Math.round(milliseconds)} ms`;
  $("answered").textContent = answer.version;
  const now = performance.now();
  state.answeredAt = [...state.answeredAt.filter((t) => now - t < 2000), now];
  $("fps").textContent = state.stream ? (state.answeredAt.length / 2).toFixed(1) : "–";
}

async function classify(blob, roi = null) {
  const started = performance.now();
  const answer = await post("predict", blob, roi);
  showAnswer(answer, performance.now() - started);
  clearError();
  return answer;
}

async function explain(blob) {
  if (state.explaining) return;
  state.explaining = true;
  try {
    const answer = await post("explain", blob);
    if (!answer.heatmap_png) throw new ApiError("TorchServe answered without an explanation (no heatmap).");
    const shown = state.stream || state.photo === blob; // not an upload replaced while this one ran
    if ($("explain").checked && shown) {
      const [left, top, right, bottom] = answer.region || [0, 0, 1, 1]; // the square the CNN read
      Object.assign($("heatmap").style, {
        left: `${left * 100}%`, top: `${top * 100}%`, width: `${(right - left) * 100}%`, height: `${(bottom - top) * 100}%`,
      });
      $("heatmap").src = `data:image/png;base64,${answer.heatmap_png}`;
      $("heatmap").title = `occlusion map for ${answer.label} (${answer.forward_passes} forward passes)`;
      $("heatmap").hidden = false;
      $("legend").hidden = false;
    }
  } catch (error) {
    showError(`Explanation failed: ${error.message}`);
  } finally {
    state.explaining = false;
  }
}

// Spell mode's rule, free of the page, so that `make spelling-benchmark` replays recorded answers through it:
// a label is typed once it has been the confident top-1 for `frames` frames in a row, and once per run;
// `nothing` re-arms it for a double letter. A frame where no hand is found counts like any other: the CNN
// then reads the whole frame, and is often right where the palm detector misses a hand (a dim photo).
class Speller {
  constructor() {
    this.candidate = null; // the confident top-1 label of the last frames, and for how many
    this.count = 0;
    this.lastTyped = null;
  }

  // The text after one answer.
  step(text, answer, threshold, frames) {
    const label = answer.label;
    if (answer.probability < threshold) {
      this.candidate = null;
      this.count = 0;
      return text;
    }
    this.count = label === this.candidate ? this.count + 1 : 1;
    this.candidate = label;
    if (this.count !== Math.max(1, Math.round(frames))) return text;
    if (label === "nothing") {
      this.lastTyped = null;
      return text;
    }
    if (label === this.lastTyped) return text;
    this.lastTyped = label;
    if (label === "del") return text.slice(0, -1);
    return text + (label === "space" ? " " : label);
  }
}
state.speller = new Speller();

function spell(answer) {
  if (!$("spell-on").checked) return;
  const text = $("text");
  text.textContent = state.speller.step(text.textContent, answer, Number($("threshold").value),
    Number($("frames").value));
}

function grabFrame() {
  const video = $("video");
  const scale = Math.min(1, FRAME_SIDE / Math.max(video.videoWidth, video.videoHeight));
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
}

async function cameraLoop(stream) {
  while (state.stream === stream) {
    const started = performance.now();
    let pause = FRAME_INTERVAL_MS;
    if ($("video").videoWidth > 0) {
      const frame = await grabFrame();
      try {
        const answer = await classify(frame, state.roi);
        state.roi = answer.hand ? answer.hand.roi : null;
        spell(answer);
        if ($("explain").checked) explain(frame);
      } catch (error) {
        showError(error.message);
        clearAnswer();
        state.speller.candidate = null;
        state.roi = null;
        pause = RETRY_MS;
      }
    }
    await sleep(Math.max(0, pause - (performance.now() - started)));
  }
}

async function startCamera() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    state.stream = stream;
    $("video").srcObject = stream;
    $("video").hidden = false;
    $("photo").hidden = true;
    hideHeatmap();
    $("stage-hint").hidden = true;
    $("camera").textContent = "Stop camera";
    cameraLoop(stream);
  } catch (error) {
    showError(`The camera is not available: ${error.message}`);
  }
}

function stopCamera() {
  if (!state.stream) return;
  state.stream.getTracks().forEach((track) => track.stop());
  state.stream = null;
  state.roi = null;
  $("video").srcObject = null;
  clearHand();
  $("camera").textContent = "Start camera";
  $("fps").textContent = "–";
}

async function handleFile(file) {
  if (!file) return;
  stopCamera();
  $("video").hidden = true;
  hideHeatmap();
  $("stage-hint").hidden = true;
  clearHand();
  const photo = $("photo");
  if (photo.src) URL.revokeObjectURL(photo.src);
  photo.src = URL.createObjectURL(file);
  photo.hidden = false;
  state.photo = file;
  try {
    await classify(file);
    if ($("explain").checked) await explain(file);
  } catch (error) {
    clearAnswer();
    showError(`${file.name}: ${error.message}`);
  }
}

$("camera").addEventListener("click", () => (state.stream ? stopCamera() : startCamera()));
$("upload").addEventListener("change", (event) => {
  handleFile(event.target.files[0]);
  event.target.value = ""; // the same file again is a new upload
});
$("explain").addEventListener("change", (event) => {
  if (!event.target.checked) hideHeatmap();
  else if (!state.stream && state.photo && !$("photo").hidden) explain(state.photo);
});
$("version").addEventListener("change", () => {
  state.speller = new Speller();
  state.roi = null;
});
$("clear").addEventListener("click", () => {
  $("text").textContent = "";
  state.speller = new Speller();
});
$("copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("text").textContent);
    $("copy").textContent = "Copied";
    setTimeout(() => ($("copy").textContent = "Copy"), 1500);
  } catch (error) {
    showError(`Copy failed: ${error.message}`);
  }
});
// A file the browser cannot show (the server says what it is): the hint instead of a broken-image icon.
$("photo").addEventListener("error", () => {
  if (!$("photo").getAttribute("src")) return;
  $("photo").hidden = true;
  $("stage-hint").textContent = "This file is not an image the browser can show.";
  $("stage-hint").hidden = false;
});
const stage = $("stage");
// The drop zone is also a button for keyboards: Enter or Space opens the file picker.
stage.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" && event.key !== " ") return;
  event.preventDefault();
  $("upload").click();
});
stage.addEventListener("dragover", (event) => {
  event.preventDefault();
  stage.classList.add("dragging");
});
stage.addEventListener("dragleave", () => stage.classList.remove("dragging"));
stage.addEventListener("drop", (event) => {
  event.preventDefault();
  stage.classList.remove("dragging");
  handleFile(event.dataTransfer.files[0]);
});

$("threshold").value = SPELL_DEFAULTS.threshold;
$("frames").value = SPELL_DEFAULTS.frames;
loadVersions();
