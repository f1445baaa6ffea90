"use strict";
// The demo page. Frames and uploads go to this page's own server (/api/...), which adds TorchServe's
// token: nothing here knows it. No framework and no build step; nothing is loaded from elsewhere.

const FRAME_INTERVAL_MS = 100; // at most 10 frames/s; the next frame leaves when the last answer is back
const FRAME_SIDE = 320; // larger frames shrink to this longer side before JPEG encoding (the model sees 160)
const JPEG_QUALITY = 0.85;
const REQUEST_TIMEOUT_MS = 15000;
const RETRY_MS = 3000; // after an error: the version list is re-read and the camera slows to this pace
const TOP = 3;

const $ = (id) => document.getElementById(id);
const canvas = document.createElement("canvas");
const state = {
  stream: null, // the webcam, while it runs
  explaining: false, // one explanation at a time: each is ~82 forward passes
  candidate: null, // spell mode: the confident top-1 label of the last frames, and for how many
  count: 0,
  lastTyped: null, // typed once per run; `nothing` re-arms for a double letter
  photo: null, // the uploaded file on show, to explain later (the page's CSP forbids fetching blob: URLs)
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

// POST an image to /api/{route}; the JSON answer, or an ApiError with a message a person can read.
async function post(route, blob) {
  const params = new URLSearchParams({ top_k: TOP });
  if ($("version").value) params.set("version", $("version").value);
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
      const detail = body && body.message ? `${body.type}: ${body.message}` : "no details";
      throw new ApiError(`The server answered ${response.status} (${detail})`);
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

async function loadVersions() {
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
    clearError();
  } catch (error) {
    showError(`Cannot list the model versions: ${error.message} Retrying…`);
    setTimeout(loadVersions, RETRY_MS);
  }
}

function showAnswer(answer, milliseconds) {
  $("letter").textContent = answer.label;
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

async function classify(blob) {
  const started = performance.now();
  const answer = await post("predict", blob);
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
    }
  } catch (error) {
    showError(`Explanation failed: ${error.message}`);
  } finally {
    state.explaining = false;
  }
}

// Spell mode: type a label once it has been the confident top-1 for `frames` frames in a row.
function spell(answer) {
  if (!$("spell-on").checked) return;
  if (answer.probability < Number($("threshold").value)) {
    state.candidate = null;
    state.count = 0;
    return;
  }
  state.count = answer.label === state.candidate ? state.count + 1 : 1;
  state.candidate = answer.label;
  if (state.count !== Math.max(1, Math.round(Number($("frames").value)))) return;
  if (answer.label === "nothing") {
    state.lastTyped = null;
    return;
  }
  if (answer.label === state.lastTyped) return;
  state.lastTyped = answer.label;
  const text = $("text");
  if (answer.label === "del") text.textContent = text.textContent.slice(0, -1);
  else text.textContent += answer.label === "space" ? " " : answer.label;
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
        spell(await classify(frame));
        if ($("explain").checked) explain(frame);
      } catch (error) {
        showError(error.message);
        state.candidate = null;
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
    $("heatmap").hidden = true;
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
  $("video").srcObject = null;
  $("camera").textContent = "Start camera";
  $("fps").textContent = "–";
}

async function handleFile(file) {
  if (!file) return;
  stopCamera();
  $("video").hidden = true;
  $("heatmap").hidden = true;
  $("stage-hint").hidden = true;
  const photo = $("photo");
  if (photo.src) URL.revokeObjectURL(photo.src);
  photo.src = URL.createObjectURL(file);
  photo.hidden = false;
  state.photo = file;
  try {
    await classify(file);
    if ($("explain").checked) await explain(file);
  } catch (error) {
    $("letter").textContent = "?";
    $("top3").replaceChildren();
    showError(`${file.name}: ${error.message}`);
  }
}

$("camera").addEventListener("click", () => (state.stream ? stopCamera() : startCamera()));
$("upload").addEventListener("change", (event) => {
  handleFile(event.target.files[0]);
  event.target.value = ""; // the same file again is a new upload
});
$("explain").addEventListener("change", (event) => {
  if (!event.target.checked) $("heatmap").hidden = true;
  else if (!state.stream && state.photo && !$("photo").hidden) explain(state.photo);
});
$("version").addEventListener("change", () => {
  state.candidate = null;
  state.count = 0;
});
$("clear").addEventListener("click", () => {
  $("text").textContent = "";
  state.lastTyped = null;
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
const stage = $("stage");
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

loadVersions();
