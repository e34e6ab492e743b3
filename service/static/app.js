// The STL-SNN Serve page: pick a model, send a recording to classify (with include=frames), draw the
// answer (DESIGN.md section 11). Talks only to this origin; the API key lives in sessionStorage.
"use strict";

const KEY_STORAGE = "stlsnn.apiKey";
const TIMELINE_PATH = "/v1/models/{name}/timeline";
const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#0b5cad", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6a9f", "#c06014", "#30638e", "#a23b72",
  "#3b8b3b"];

const $ = (id) => document.getElementById(id);
const state = { classes: [], timeline: false, frames: null, step: 0, timer: null, busy: false };

class ProblemError extends Error {
  constructor(status, title, detail) {
    super(detail);
    this.status = status;
    this.title = title;
  }
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE) || "";
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// fetch on this origin with the key; a non-2xx answer throws its problem's title and detail.
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.ok) return response;
  let title = `HTTP ${response.status}`;
  let detail = response.statusText || "request failed";
  if ((response.headers.get("content-type") || "").includes("json")) {
    try {
      const body = await response.json();
      title = body.title || title;
      detail = body.detail || detail;
    } catch (_) { /* keep the status line */ }
  }
  throw new ProblemError(response.status, title, detail);
}

function showProblem(error) {
  $("problem-title").textContent = error instanceof ProblemError ? `${error.title} (${error.status}):` : "Error:";
  $("problem-detail").textContent = error.message;
  $("problem").hidden = false;
  setStatus("");
}

function clearProblem() {
  $("problem").hidden = true;
}

function setStatus(text) {
  $("status").textContent = text;
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "n/a";
  if (Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-2)) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}

// ---- models, examples, capabilities ----

async function loadModels() {
  const select = $("model");
  select.replaceChildren();
  const body = await (await api("/v1/models")).json();
  for (const model of body.models) {
    const option = el("option", { value: model.name }, model.state === "ready" ? model.name : `${model.name} (${model.state})`);
    option.disabled = model.state !== "ready";
    option.dataset.classes = JSON.stringify(model.classes || []);
    select.append(option);
  }
  if (body.default) select.value = body.default;
  if (!body.models.length) throw new ProblemError(503, "No model", "the server serves no model");
}

async function loadExamples() {
  const list = $("examples");
  list.replaceChildren();
  const body = await (await api("/v1/examples")).json();
  for (const example of body.examples) {
    const button = el("button", { type: "button", "data-name": example.name }, example.name);
    button.append(el("small", {}, `${example.format}, ${(example.size / 1024).toFixed(0)} KiB`));
    button.addEventListener("click", () => classifyExample(example.name));
    const item = el("li");
    item.append(button);
    list.append(item);
  }
  if (!body.examples.length) list.append(el("li", { class: "hint" }, "none on this server"));
}

async function detectTimeline() {
  try {
    const doc = await (await fetch("/openapi.json")).json();
    state.timeline = Boolean(doc.paths && doc.paths[TIMELINE_PATH]);
  } catch (_) {
    state.timeline = false;
  }
}

async function connect() {
  clearProblem();
  try {
    await loadModels();
    await loadExamples();
    setStatus("Ready: choose a recording.");
  } catch (error) {
    showProblem(error);
    if (error.status === 401) $("api-key").focus();
  }
}

// ---- classify ----

async function classifyExample(name) {
  try {
    const response = await api(`/v1/examples/${encodeURIComponent(name)}`);
    await classifyFile(new File([await response.blob()], name));
  } catch (error) {
    showProblem(error);
  }
}

async function classifyFile(file) {
  if (state.busy) return;
  const model = $("model").value;
  if (!model) {
    showProblem(new ProblemError(503, "No model", "no model to classify with; see the key and model fields"));
    return;
  }
  state.busy = true;
  clearProblem();
  setStatus(`Classifying ${file.name} with ${model}...`);
  $("result").setAttribute("aria-busy", "true");
  try {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("include", "frames");
    const path = `/v1/models/${encodeURIComponent(model)}`;
    const result = await (await api(`${path}/classify`, { method: "POST", body: form })).json();
    state.classes = JSON.parse($("model").selectedOptions[0].dataset.classes || "[]");
    render(result);
    await drawTimelineFor(path, file);
    setStatus(`${file.name}: ${result.prediction.label}`);
  } catch (error) {
    showProblem(error);
  } finally {
    state.busy = false;
    $("result").removeAttribute("aria-busy");
  }
}

function render(result) {
  const input = result.input;
  $("result").hidden = false;
  $("prediction-label").textContent = `${result.prediction.label} (${fmt(result.prediction.score)})`;
  $("input-facts").textContent = `${input.filename || "upload"}: ${input.format}, ${input.events.toLocaleString("en")} events, `
    + `${(input.duration_us / 1000).toFixed(1)} ms, sensor ${input.sensor_size.join("x")}, ${input.time_steps} time steps; `
    + `model ${result.model.name} v${result.model.version}, ${result.timing_ms.total.toFixed(0)} ms`;
  drawTopK(result.top_k);
  drawRaster(result.spikes.layers, input.time_steps);
  drawRates(result.spikes.layers);
  drawEnergy(result.energy);
  setFrames(input.frames);
}

// ---- frames: one canvas image per time step, ON and OFF in two colours ----

function decodeFrames(payload) {
  const bytes = Uint8Array.from(atob(payload.data), (c) => c.charCodeAt(0));
  const view = new DataView(bytes.buffer);
  const counts = new Uint16Array(bytes.length / 2);
  for (let i = 0; i < counts.length; i++) counts[i] = view.getUint16(2 * i, true);
  const [steps, , height, width] = payload.shape;
  const nonzero = counts.filter((v) => v > 0).sort();
  const scale = nonzero.length ? Math.max(1, nonzero[Math.floor(0.99 * (nonzero.length - 1))]) : 1;
  return { steps, height, width, counts, scale };
}

function setFrames(payload) {
  stopPlaying();
  state.frames = payload ? decodeFrames(payload) : null;
  $("frames-figure").hidden = !state.frames;
  if (!state.frames) return;
  const canvas = $("frames");
  canvas.width = state.frames.width;
  canvas.height = state.frames.height;
  canvas.style.aspectRatio = `${state.frames.width} / ${state.frames.height}`;
  showStep(0);
  if (!window.matchMedia("(prefers-reduced-motion: reduce)").matches) startPlaying();
}

function showStep(step) {
  const f = state.frames;
  state.step = ((step % f.steps) + f.steps) % f.steps;
  const plane = f.height * f.width;
  const offBase = state.step * 2 * plane;
  const onBase = offBase + plane;
  const ctx = $("frames").getContext("2d");
  const image = ctx.createImageData(f.width, f.height);
  for (let i = 0; i < plane; i++) {
    const on = Math.min(1, f.counts[onBase + i] / f.scale);
    const off = Math.min(1, f.counts[offBase + i] / f.scale);
    image.data[4 * i] = 17 + 238 * on;
    image.data[4 * i + 1] = Math.min(255, 17 + 153 * on + 127 * off);
    image.data[4 * i + 2] = 17 + 238 * off;
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  $("step").value = `step ${state.step + 1} of ${f.steps}`;
}

function startPlaying() {
  if (!state.frames || state.timer) return;
  state.timer = setInterval(() => showStep(state.step + 1), 400);
  $("play").textContent = "Pause";
  $("play").setAttribute("aria-pressed", "true");
}

function stopPlaying() {
  clearInterval(state.timer);
  state.timer = null;
  $("play").textContent = "Play";
  $("play").setAttribute("aria-pressed", "false");
}

function stepBy(delta) {
  if (!state.frames) return;
  stopPlaying();
  showStep(state.step + delta);
}

// ---- charts (SVG by hand) ----

// Drawn at the container's width (one SVG unit per CSS pixel), so its text stays legible on a phone.
function barChart(container, rows, { max = 1, format = fmt, colour = "#0b5cad" } = {}) {
  const width = Math.max(280, Math.min(520, container.clientWidth || 400));
  const rowHeight = 22;
  const labelWidth = Math.min(160, 12 + 7 * Math.max(...rows.map((r) => r.label.length)));
  const barSpace = width - labelWidth - 90;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${rows.length * rowHeight + 4}`, role: "img" });
  rows.forEach((row, i) => {
    const y = i * rowHeight + 2;
    const w = max > 0 ? Math.max(1, (row.value / max) * barSpace) : 1;
    svg.append(svgEl("text", { x: labelWidth - 6, y: y + 14, "text-anchor": "end" }, row.label));
    const bar = svgEl("rect", { x: labelWidth, y: y + 3, width: w, height: rowHeight - 8, fill: row.colour || colour, rx: 2 });
    bar.append(svgEl("title", {}, `${row.label}: ${format(row.value)}`));
    svg.append(bar);
    svg.append(svgEl("text", { x: labelWidth + w + 6, y: y + 14 }, format(row.value)));
  });
  svg.setAttribute("aria-label", rows.map((r) => `${r.label} ${format(r.value)}`).join(", "));
  container.replaceChildren(svg);
}

function classColour(label) {
  const index = state.classes.indexOf(label);
  return PALETTE[(index >= 0 ? index : label.length) % PALETTE.length];
}

function drawTopK(topK) {
  const rows = topK.map((c) => ({ label: c.label, value: c.score, colour: classColour(c.label) }));
  barChart($("topk"), rows, { max: Math.max(...topK.map((c) => c.score), 1e-9) });
}

function drawRates(layers) {
  const rows = layers.map((l) => ({ label: l.name, value: l.rate }));
  barChart($("rates"), rows, { max: Math.max(...layers.map((l) => l.rate), 1e-9), colour: "#00798c" });
}

// Layers as rows, time steps as columns, shade = spikes / neurons of that layer at that step.
function drawRaster(layers, timeSteps) {
  const perStep = layers.length > 0 && layers.every((l) => Array.isArray(l.steps) && l.steps.length === timeSteps);
  $("raster-note").hidden = perStep;
  if (!perStep) {
    const rows = layers.map((l) => ({ label: l.name, value: l.count }));
    barChart($("raster"), rows, { max: Math.max(...layers.map((l) => l.count), 1), format: (v) => `${v}` });
    return;
  }
  const labelWidth = 150;
  const cell = Math.max(8, Math.min(40, Math.floor(320 / timeSteps)));
  const rowHeight = 22;
  const width = labelWidth + timeSteps * cell + 4;
  const height = layers.length * rowHeight + 20;
  const fractions = layers.map((l) => l.steps.map((s) => s / l.neurons));
  const top = Math.max(...fractions.flat(), 1e-9);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "spike raster" });
  layers.forEach((layer, row) => {
    const y = row * rowHeight;
    svg.append(svgEl("text", { x: labelWidth - 6, y: y + 15, "text-anchor": "end" }, layer.name));
    fractions[row].forEach((fraction, t) => {
      const shade = Math.round(255 * (1 - fraction / top));
      const rect = svgEl("rect", { x: labelWidth + t * cell, y: y + 2, width: cell - 1, height: rowHeight - 4,
        fill: `rgb(${shade},${shade},${Math.min(255, shade + 40)})`, stroke: "#d0d7de", "stroke-width": 0.5 });
      rect.append(svgEl("title", {}, `${layer.name}, step ${t + 1}: ${layer.steps[t]} spikes (${fmt(fraction)} per neuron)`));
      svg.append(rect);
    });
  });
  svg.append(svgEl("text", { x: labelWidth, y: height - 4 }, `time step 1..${timeSteps} \u2192`));
  $("raster").replaceChildren(svg);
}

function drawEnergy(energy) {
  const rows = [
    { label: "SNN (this request)", value: energy.snn_pj, colour: "#00798c" },
    { label: "ANN estimate", value: energy.ann_pj, colour: "#8d6a9f" },
  ];
  barChart($("energy"), rows, { max: Math.max(energy.snn_pj, energy.ann_pj, 1e-9), format: (v) => `${fmt(v)} pJ` });
  const facts = [
    ["profile", energy.profile],
    ["SOPs", energy.sops.toLocaleString("en")],
    ["ANN MACs (one pass)", energy.dense_macs.toLocaleString("en")],
    ["SNN energy", `${fmt(energy.snn_pj)} pJ`],
    ["ANN energy", `${fmt(energy.ann_pj)} pJ`],
    ["ANN / SNN", energy.ratio === null ? "n/a (no operation)" : `${fmt(energy.ratio)}x`],
  ];
  if (energy.measured_gpu_j !== null && energy.measured_gpu_j !== undefined) facts.push(["measured GPU", `${fmt(energy.measured_gpu_j)} J`]);
  $("energy-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("assumptions").replaceChildren(...energy.assumptions.map((a) => el("li", {}, a)));
}

// ---- timeline strip (DESIGN.md section 10's answer), only where the server has the endpoint ----

async function drawTimelineFor(modelPath, file) {
  $("timeline-figure").hidden = true;
  if (!state.timeline) return;
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    drawTimeline(await (await api(`${modelPath}/timeline`, { method: "POST", body: form })).json());
  } catch (error) {
    // the classification stands; a model exported before per-step outputs has no timeline
    setStatus(`timeline unavailable: ${error.message}`);
  }
}

function drawTimeline(answer) {
  const windows = answer.windows || [];
  const segments = answer.segments || [];
  if (!windows.length) return;
  const start = Math.min(...windows.map((w) => w.start_us));
  const end = Math.max(...windows.map((w) => w.end_us));
  const span = Math.max(1, end - start);
  const width = 640;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} 56`, role: "img", "aria-label": "timeline of labelled segments" });
  svg.append(svgEl("rect", { x: 0, y: 4, width, height: 30, fill: "#eaeef2" }));
  const list = [];
  for (const seg of segments) {
    const x = ((seg.start_us - start) / span) * width;
    const w = Math.max(1, ((seg.end_us - seg.start_us) / span) * width);
    const rect = svgEl("rect", { x, y: 4, width: w, height: 30, fill: classColour(seg.label) });
    const when = `${((seg.start_us - start) / 1e6).toFixed(2)}-${((seg.end_us - start) / 1e6).toFixed(2)} s`;
    rect.append(svgEl("title", {}, `${seg.label} (${fmt(seg.score)}), ${when}`));
    svg.append(rect);
    if (w > 60) svg.append(svgEl("text", { x: x + 4, y: 24, fill: "#fff" }, seg.label));
    list.push(el("li", {}, `${when}: ${seg.label} (${fmt(seg.score)}, ${seg.windows} windows)`));
  }
  svg.append(svgEl("text", { x: 0, y: 50 }, "0 s"));
  svg.append(svgEl("text", { x: width, y: 50, "text-anchor": "end" }, `${(span / 1e6).toFixed(2)} s`));
  $("timeline").replaceChildren(svg);
  $("timeline-list").replaceChildren(...list);
  $("timeline-figure").hidden = false;
}

// ---- wiring ----

function wire() {
  const keyField = $("api-key");
  keyField.value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyField.value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    connect();
  });
  $("file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) classifyFile(file);
    event.target.value = "";
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    const file = event.dataTransfer.files[0];
    if (file) classifyFile(file);
  });
  $("prev").addEventListener("click", () => stepBy(-1));
  $("next").addEventListener("click", () => stepBy(1));
  $("play").addEventListener("click", () => (state.timer ? stopPlaying() : startPlaying()));
  $("frames").addEventListener("keydown", (event) => {
    const actions = { ArrowLeft: () => stepBy(-1), ArrowRight: () => stepBy(1), " ": () => $("play").click() };
    if (actions[event.key]) {
      event.preventDefault();
      actions[event.key]();
    }
  });
}

wire();
detectTimeline();
connect();
