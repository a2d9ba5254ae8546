// The mnist web page: a drawing pad and photo drop that call the server's
// own JSON API (/api/models, /api/classify, /api/read), which shares the core, the
// admission limits and the batcher with every other front. No framework,
// no request to any other host (the Content-Security-Policy forbids it).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  token: null,         // the bearer token, when the server asked for one; kept in memory only
  models: [],
  roles: { photo: "", read: "" }, // the models the server answers with when the page names none
  model: "",           // the model the person picked; "": the server chooses (photo model, reading model)
  strokes: [],         // each stroke: [[x, y], ...] in pad pixels
  drawing: null,
  sequence: 0,         // drawing requests sent; a late answer to an older one is dropped
  lastStrokeAt: 0,     // performance.now() when the pen last moved or lifted
  debounce: null,
  retryAfterToken: [],
  mode: "digit",       // "digit": /api/classify; "number": /api/read, on a wider pad
  boxes: [],           // the digits read from the pad, drawn over it in number mode
};
const PAD_WIDTH = { digit: 280, number: 700 };
const BOX_COLOURS = ["#dc2828", "#1e6edc", "#14963c", "#c87800"];
const INK_WIDTH = 22;     // in a 280-pixel pad: MNIST's stroke width once the digit is fitted to 20x20
const LIVE_DELAY_MS = 60; // wait this long after the pen's last move before asking

// ---------- talking to the server ----------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

/** Words for an error, as a person reads them. */
function explain(error) {
  if (!(error instanceof ApiError)) return `Cannot reach the server (${error.message}).`;
  switch (error.status) {
    case 400: return `The server could not use this image: ${error.message}`;
    case 401: return "This server needs a token: enter it above.";
    case 404: return error.message;
    case 413: return `The image is too large for this server: ${error.message}`;
    case 429: return "The server is full right now; try again in a moment.";
    case 503: return "The server is starting or shutting down; try again in a moment.";
    default: return `The server answered ${error.status}: ${error.message}`;
  }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
  let response;
  try {
    response = await fetch(path, { ...options, headers, cache: "no-store" });
  } catch (error) {
    throw new Error(error.message || "network error");
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!response.ok) {
    if (response.status === 401) askForToken();
    throw new ApiError(response.status, (body && body.error) || text || response.statusText);
  }
  return body;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function askForToken() {
  const form = $("token-form");
  if (form.hidden) {
    form.hidden = false;
    $("token").focus();
  }
}

// ---------- models ----------

async function loadModels() {
  const answer = await api("/api/models");
  state.models = answer.models;
  state.roles = { photo: answer.photo_model || "", read: answer.read_model || "" };
  const select = $("model");
  const automatic = document.createElement("option");
  automatic.value = "";
  automatic.textContent = "chosen by the server";
  select.replaceChildren(automatic, ...state.models.map((m) => {
    const option = document.createElement("option");
    option.value = m.name;
    option.textContent = m.default ? `${m.name} (default)` : m.name;
    return option;
  }));
  if (!state.models.some((m) => m.name === state.model)) state.model = "";
  select.value = state.model;
  showModel();
}

/** `?model=NAME` for the model the person picked; nothing when the server chooses. */
function modelQuery() {
  return state.model ? `?model=${encodeURIComponent(state.model)}` : "";
}

/** The model that answers the pad and the photos now: the one picked, else the server's for the mode. */
function answeringModel() {
  if (state.model) return state.model;
  return state.mode === "number" ? state.roles.read : state.roles.photo;
}

function showModel() {
  const model = state.models.find((m) => m.name === answeringModel());
  const list = $("model-info");
  if (!model) { list.replaceChildren(); return; }
  const accuracy = model.test_accuracy == null ? "unknown (no model card)" : `${(model.test_accuracy * 100).toFixed(2)} % on the MNIST test set`;
  const rows = [
    ["name", model.name + (model.default ? " (default)" : "")],
    ["answers", state.model ? "as picked" : (state.mode === "number" ? "numbers (the server's reading model)" : "drawings and photos (the server's photo model)")],
    ["file", model.file],
    ["SHA-256", model.sha256.slice(0, 12) + "…"],
    ["accuracy", accuracy],
    ["weights", model.quantization ? "int8" : "float32"],
    ["provider", model.provider],
    ["batching", `up to ${model.batching.max_batch_size} images, wait ${model.batching.max_queue_delay_us} µs`],
    ["server", model.server_version],
  ];
  list.replaceChildren(...rows.flatMap(([term, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    if (term === "SHA-256") dd.title = model.sha256;
    return [dt, dd];
  }));
}

// ---------- results ----------

function renderResult(container, answer, elapsedMs) {
  const node = $("result-template").content.firstElementChild.cloneNode(true);
  node.querySelector(".digit").textContent = answer.no_digit ? "–" : String(answer.digit);
  node.querySelector(".confidence").textContent = `${(answer.confidence * 100).toFixed(1)} %`;
  if (answer.confidence < 0.9) node.classList.add("uncertain");
  if (answer.no_digit) node.classList.add("no-digit");
  const order = answer.probabilities.map((p, d) => [p, d]).sort((a, b) => b[0] - a[0]);
  node.querySelector(".bars").replaceChildren(...answer.probabilities.map((p, d) => {
    const li = document.createElement("li");
    if (d === answer.digit) li.classList.add("top");
    const label = document.createElement("span");
    label.textContent = String(d);
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "p";
    value.textContent = p >= 0.0005 ? p.toFixed(3) : "<0.001";
    li.append(label, bar, value);
    li.title = `digit ${d}: probability ${p}`;
    return li;
  }));
  drawSeen(node.querySelector(".seen canvas"), answer.seen);
  const runnerUp = order[1] && !answer.no_digit ? `; next: ${order[1][1]} (${(order[1][0] * 100).toFixed(1)} %)` : "";
  // What the model could not know, in words (the answer's notes).
  const notes = [];
  if (answer.no_digit) notes.push("No digit found: nothing in the image stands out from the paper");
  if (answer.cut_by_frame) notes.push("The digit runs into the edge of the image: part of it may be cut off");
  if (answer.polarity_uncertain) notes.push("It could be light ink on a dark ground or dark on light: read both ways");
  node.querySelector(".meta").textContent =
    `${answer.model_name} (${answer.model}) answered in ${Math.round(elapsedMs)} ms${runnerUp}` +
    notes.map((n) => `. ${n}`).join("");
  node.dataset.digit = answer.no_digit ? "none" : String(answer.digit);
  container.replaceChildren(node);
  container.classList.remove("empty");
}

/** The 784 pixels the model saw, white ink on black as MNIST stores them. */
function drawSeen(canvas, pixels) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = pixels[i] || 0;
    image.data.set([v, v, v, 255], i * 4);
  }
  context.putImageData(image, 0, 0);
}

/** A number read: its text, confidence and, per digit, what the model saw. */
function renderReading(container, answer, elapsedMs) {
  const node = $("reading-template").content.firstElementChild.cloneNode(true);
  node.querySelector(".digit").textContent = answer.text || "–";
  node.querySelector(".confidence").textContent = `${(answer.confidence * 100).toFixed(1)} %`;
  if (answer.confidence < 0.9) node.classList.add("uncertain");
  node.querySelector(".read-digits").replaceChildren(...answer.digits.map((digit, n) => {
    const li = document.createElement("li");
    const seen = document.createElement("canvas");
    seen.width = 28;
    seen.height = 28;
    drawSeen(seen, digit.seen);
    const label = document.createElement("span");
    label.className = "read-digit";
    label.style.color = BOX_COLOURS[n % BOX_COLOURS.length];
    label.textContent = String(digit.digit);
    const confidence = document.createElement("span");
    confidence.textContent = `${(digit.confidence * 100).toFixed(1)} %`;
    li.append(seen, label, confidence);
    return li;
  }));
  const length = answer.best_length !== answer.digits.length ? ` (best as ${answer.best_length} digits)` : "";
  const checked = answer.digits.filter((digit) => digit.checked).length;
  const check = checked > 0 ? `, ${checked} standing alone checked by ${answer.check_model}` : "";
  const cutShort = answer.cut_short ? `. Part of the line may be left out: ${answer.cut_short}` : "";
  node.querySelector(".meta").textContent =
    `${answer.model_name} (${answer.model}) read ${answer.digits.length} digits${length}${check} in ${Math.round(elapsedMs)} ms${cutShort}`;
  if (answer.cut_short) node.classList.add("uncertain");
  node.dataset.text = answer.text;
  container.replaceChildren(node);
  container.classList.remove("empty");
}

/** Each digit's box, and the digit, over an image drawn in `context` at `scale`. */
function drawBoxes(context, digits, scale) {
  context.lineWidth = 2;
  context.font = "bold 18px sans-serif";
  digits.forEach((digit, n) => {
    const colour = BOX_COLOURS[n % BOX_COLOURS.length];
    const b = digit.box;
    context.strokeStyle = colour;
    context.fillStyle = colour;
    context.strokeRect(b.x * scale, b.y * scale, b.width * scale, b.height * scale);
    context.fillText(String(digit.digit), b.x * scale, Math.max(16, b.y * scale - 4));
  });
}

async function readNumber(blob) {
  const started = performance.now();
  const query = modelQuery();
  const answer = await api(`/api/read${query}`, {
    method: "POST",
    headers: { "Content-Type": blob.type || "application/octet-stream" },
    body: blob,
  });
  return { answer, elapsed: performance.now() - started };
}

async function classify(blob) {
  const started = performance.now();
  const query = modelQuery();
  const answer = await api(`/api/classify${query}`, {
    method: "POST",
    headers: { "Content-Type": blob.type || "application/octet-stream" },
    body: blob,
  });
  return { answer, elapsed: performance.now() - started };
}

// ---------- the drawing pad ----------

const pad = $("pad");
const ink = pad.getContext("2d");

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * (pad.width / box.width), (event.clientY - box.top) * (pad.height / box.height)];
}

function paintStroke(points) {
  ink.beginPath();
  ink.moveTo(points[0][0], points[0][1]);
  for (const [x, y] of points.slice(1)) ink.lineTo(x, y);
  if (points.length === 1) ink.lineTo(points[0][0] + 0.1, points[0][1]);
  ink.stroke();
}

function repaint(withBoxes = true) {
  ink.fillStyle = "#fff";
  ink.fillRect(0, 0, pad.width, pad.height);
  ink.strokeStyle = "#000";
  ink.lineWidth = INK_WIDTH;
  ink.lineCap = "round";
  ink.lineJoin = "round";
  state.strokes.forEach(paintStroke);
  if (withBoxes && state.mode === "number") drawBoxes(ink, state.boxes, 1);
}

/** The pad's strokes (not the boxes drawn over them) as a PNG.
 * Synchronously: Chromium runs toBlob's encoding as an idle task, which in
 * a busy or headless tab arrives up to a second late. */
function padImage() {
  repaint(false);
  const url = pad.toDataURL("image/png");
  repaint(true);
  const bytes = atob(url.split(",")[1]);
  const png = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) png[i] = bytes.charCodeAt(i);
  return new Blob([png], { type: "image/png" });
}

function drawingChanged() {
  state.lastStrokeAt = performance.now();
  clearTimeout(state.debounce);
  state.debounce = setTimeout(predictDrawing, LIVE_DELAY_MS);
}

async function predictDrawing() {
  const result = $("drawing-result");
  if (state.strokes.length === 0) {
    state.boxes = [];
    result.classList.add("empty");
    const hint = state.mode === "number" ? "Write a number on the pad." : "Draw a digit on the pad.";
    result.replaceChildren(Object.assign(document.createElement("p"), { className: "placeholder", textContent: hint }));
    delete result.dataset.latencyMs;
    return;
  }
  const sequence = ++state.sequence;
  const strokeAt = state.lastStrokeAt;
  const blob = padImage();
  try {
    if (state.mode === "number") {
      const { answer, elapsed } = await readNumber(blob);
      if (sequence !== state.sequence) return; // a newer drawing is on its way
      state.boxes = answer.digits;
      repaint();
      renderReading(result, answer, elapsed);
    } else {
      const { answer, elapsed } = await classify(blob);
      if (sequence !== state.sequence) return; // a newer drawing is on its way
      renderResult(result, answer, elapsed);
    }
    // From the pen's last move to the answer on the page (read by the browser test).
    result.dataset.latencyMs = (performance.now() - strokeAt).toFixed(1);
    showError("");
  } catch (error) {
    if (sequence !== state.sequence) return;
    if (error.status === 401) state.retryAfterToken.push(predictDrawing);
    showError(explain(error));
  }
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  state.drawing = [padPoint(event)];
  state.strokes.push(state.drawing);
  repaint();
  drawingChanged();
});
pad.addEventListener("pointermove", (event) => {
  if (!state.drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) state.drawing.push(padPoint(e));
  repaint();
  drawingChanged();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!state.drawing) return;
    state.drawing = null;
    drawingChanged();
  });
}

function undo() {
  state.strokes.pop();
  repaint();
  drawingChanged();
}
function clearPad() {
  state.strokes = [];
  repaint();
  drawingChanged();
}
$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", clearPad);
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement) return;
  if ((event.ctrlKey || event.metaKey) && event.key === "z") { event.preventDefault(); undo(); }
  if (event.key === "Escape") clearPad();
});

// ---------- photos: pick, snap, drop, paste ----------

async function predictFile(file) {
  const item = document.createElement("li");
  const source = document.createElement("div");
  source.className = "source";
  const thumb = document.createElement("img");
  thumb.alt = "";
  const url = URL.createObjectURL(file);
  thumb.src = url;
  thumb.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
  thumb.addEventListener("error", () => { URL.revokeObjectURL(url); thumb.remove(); }, { once: true });
  const name = document.createElement("span");
  name.textContent = file.name || "pasted image";
  source.append(thumb, name);
  const result = document.createElement("div");
  result.className = "result empty";
  result.textContent = "reading…";
  item.append(source, result);
  $("photo-results").prepend(item);
  const mode = state.mode;
  const run = async () => {
    try {
      if (mode === "number") {
        const { answer, elapsed } = await readNumber(file);
        renderReading(result, answer, elapsed);
        item.dataset.text = answer.text;
        boxPhoto(source, file, answer.digits);
      } else {
        const { answer, elapsed } = await classify(file);
        renderResult(result, answer, elapsed);
        item.dataset.digit = answer.no_digit ? "none" : String(answer.digit);
      }
    } catch (error) {
      if (error.status === 401) state.retryAfterToken.push(run);
      result.textContent = explain(error);
      result.classList.add("failed");
      item.dataset.error = String(error.status || "network");
    }
  };
  await run();
}

/** Replaces a photo's thumbnail by a canvas with the digits' boxes drawn on it. */
function boxPhoto(source, file, digits) {
  const url = URL.createObjectURL(file);
  const image = new Image();
  image.addEventListener("load", () => {
    const canvas = document.createElement("canvas");
    const scale = Math.min(1, 480 / image.naturalWidth);
    canvas.width = Math.max(1, Math.round(image.naturalWidth * scale));
    canvas.height = Math.max(1, Math.round(image.naturalHeight * scale));
    canvas.className = "boxed";
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0, canvas.width, canvas.height);
    drawBoxes(context, digits, scale);
    const thumb = source.querySelector("img");
    if (thumb) thumb.replaceWith(canvas); else source.prepend(canvas);
    URL.revokeObjectURL(url);
  }, { once: true });
  image.addEventListener("error", () => URL.revokeObjectURL(url), { once: true });
  image.src = url;
}

function predictFiles(files) {
  for (const file of files) predictFile(file);
}

for (const id of ["files", "camera"]) {
  $(id).addEventListener("change", (event) => {
    predictFiles(event.target.files);
    event.target.value = "";
  });
}
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  predictFiles(event.dataTransfer.files);
});
document.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData ? event.clipboardData.files : [])];
  if (files.length) predictFiles(files);
});

// ---------- one digit or a number ----------

for (const radio of document.querySelectorAll('input[name="mode"]')) {
  radio.addEventListener("change", (event) => {
    state.mode = event.target.value;
    state.strokes = [];
    state.boxes = [];
    pad.width = PAD_WIDTH[state.mode];
    pad.classList.toggle("wide", state.mode === "number");
    pad.setAttribute("aria-label", state.mode === "number" ? "drawing pad: write a number" : "drawing pad: draw one digit");
    showModel();
    repaint();
    predictDrawing();
  });
}

// ---------- model choice and token ----------

$("model").addEventListener("change", (event) => {
  state.model = event.target.value;
  showModel();
  if (state.strokes.length) predictDrawing();
});

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  state.token = $("token").value.trim() || null;
  $("token").value = "";
  try {
    await loadModels();
    $("token-form").hidden = true;
    showError("");
    const retries = state.retryAfterToken.splice(0);
    retries.forEach((retry) => retry());
  } catch (error) {
    showError(error.status === 401 ? "That token was refused; check it and try again." : explain(error));
    askForToken();
  }
});

// ---------- start ----------

repaint();
loadModels().catch((error) => {
  if (error.status !== 401) showError(explain(error));
});
