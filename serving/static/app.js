// Generates samples through TF Serving's REST API (generate, then audio signatures) and
// shows each as a spectrogram image and a playable WAV. For a class-conditional model
// (its config lists classes) a picker asks for one class, through generate_by_name.
// No dependencies, no network but this server.
"use strict";

const DEFAULT_SAMPLE_RATE = 16000; // when the server publishes no model config

// matplotlib's "magma" sampled at 17 points; interpolated into a 256-entry table.
const MAGMA = ["#000003", "#0a0722", "#1c1046", "#350f6a", "#50127b", "#691c80", "#822581",
  "#9c2e7f", "#b63679", "#d0416f", "#e65162", "#f56a5b", "#fb8861", "#fea671", "#fec488",
  "#fde1a3", "#fbfcbf"];
const LUT = buildLut(MAGMA, 256);

const state = { model: null, urls: [] };
const $ = (id) => document.getElementById(id);

function buildLut(anchors, size) {
  const rgb = anchors.map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
  const lut = new Uint8ClampedArray(size * 3);
  for (let i = 0; i < size; i++) {
    const pos = (i / (size - 1)) * (rgb.length - 1);
    const lo = Math.min(Math.floor(pos), rgb.length - 2);
    const f = pos - lo;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = rgb[lo][c] * (1 - f) + rgb[lo + 1][c] * f;
  }
  return lut;
}

// TF Serving's JSON may carry NaN/Infinity tokens, which JSON.parse rejects.
function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    return JSON.parse(text.replace(/-?\b(?:NaN|Infinity)\b/g, "null"));
  }
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = parseJson(text); } catch (e) { /* reported below */ }
  if (!response.ok) {
    throw new Error((data && data.error) || `HTTP ${response.status} from ${path}`);
  }
  if (data === null) throw new Error(`${path} did not answer with JSON`);
  return data;
}

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

// [H][W][1] in [-1, 1] -> PNG data URL; row 0 (lowest frequency) is drawn at the bottom.
function spectrogramDataUrl(spec) {
  const h = spec.length;
  const w = spec[0].length;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(w, h);
  for (let y = 0; y < h; y++) {
    const row = spec[h - 1 - y];
    for (let x = 0; x < w; x++) {
      let v = Array.isArray(row[x]) ? row[x][0] : row[x];
      v = Number.isFinite(v) ? Math.max(-1, Math.min(1, v)) : 0;
      const idx = Math.round(((v + 1) / 2) * 255) * 3;
      const o = (y * w + x) * 4;
      image.data[o] = LUT[idx];
      image.data[o + 1] = LUT[idx + 1];
      image.data[o + 2] = LUT[idx + 2];
      image.data[o + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
  return canvas.toDataURL("image/png");
}

// Float samples in [-1, 1] -> 16-bit mono PCM WAV blob.
function wavBlob(samples, rate) {
  const n = samples.length;
  const buffer = new ArrayBuffer(44 + 2 * n);
  const v = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) v.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF");
  v.setUint32(4, 36 + 2 * n, true);
  text(8, "WAVE");
  text(12, "fmt ");
  v.setUint32(16, 16, true); // fmt chunk size
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, rate, true);
  v.setUint32(28, rate * 2, true); // byte rate
  v.setUint16(32, 2, true); // block align
  v.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  v.setUint32(40, 2 * n, true);
  for (let i = 0; i < n; i++) {
    const s = Number.isFinite(samples[i]) ? Math.max(-1, Math.min(1, samples[i])) : 0;
    v.setInt16(44 + 2 * i, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

function drawWave(canvas, samples) {
  const w = (canvas.width = canvas.clientWidth * (window.devicePixelRatio || 1));
  const h = (canvas.height = 40 * (window.devicePixelRatio || 1));
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#822581";
  const per = samples.length / w;
  for (let x = 0; x < w; x++) {
    let lo = 0;
    let hi = 0;
    // At least one sample per column, so short clips stretch instead of leaving gaps.
    const first = Math.floor(x * per);
    const last = Math.max(Math.floor((x + 1) * per), first + 1);
    for (let i = first; i < last && i < samples.length; i++) {
      lo = Math.min(lo, samples[i] || 0);
      hi = Math.max(hi, samples[i] || 0);
    }
    ctx.fillRect(x, ((1 - hi) / 2) * h, 1, Math.max(1, ((hi - lo) / 2) * h));
  }
}

// The model's classes (config.model.classes when it is conditional), shown in the picker.
function showClasses(config) {
  const model = (config && config.model) || {};
  const classes = model.conditional && Array.isArray(model.classes) ? model.classes : [];
  const select = $("class");
  const known = [...select.options].slice(1).map((o) => o.value);
  if (known.join("\n") !== classes.join("\n")) {
    const keep = select.value;
    select.replaceChildren(select.options[0]);
    for (const name of classes) select.add(new Option(name, name));
    select.value = classes.includes(keep) ? keep : "";
  }
  $("class-field").hidden = classes.length === 0;
  return classes;
}

async function modelConfig(prefix) {
  try { return await api(`${prefix}/config`); } catch (e) { return null; }
}

function card(k, seed, spec, audio, rate, className) {
  const el = document.createElement("article");
  el.className = "card";
  const img = document.createElement("img");
  img.src = spectrogramDataUrl(spec);
  img.alt = `Spectrogram of sample ${k + 1}`;
  const wave = document.createElement("canvas");
  wave.className = "wave";
  const player = document.createElement("audio");
  player.controls = true;
  player.preload = "auto";
  const url = URL.createObjectURL(wavBlob(audio, rate));
  state.urls.push(url);
  player.src = url;
  player.dataset.samples = String(audio.length);
  player.dataset.sampleRate = String(rate);
  const meta = document.createElement("div");
  meta.className = "meta";
  const seconds = (audio.length / rate).toFixed(2);
  const info = document.createElement("span");
  info.textContent = `#${k + 1}${className ? ` \u00b7 ${className}` : ""} \u00b7 seed ${seed} \u00b7 ${seconds} s`;
  meta.appendChild(info);
  if (className) el.dataset.className = className;
  const links = document.createElement("span");
  const stem = className ? `sample_${k}_${className}` : `sample_${k}`;
  for (const [label, href, name] of [["PNG", img.src, `${stem}.png`], ["WAV", url, `${stem}.wav`]]) {
    const a = document.createElement("a");
    a.href = href;
    a.download = name;
    a.textContent = label;
    links.appendChild(a);
  }
  meta.appendChild(links);
  el.append(img, wave, player, meta);
  return { el, wave };
}

async function generate(event) {
  event.preventDefault();
  const count = Number($("count").value);
  const seed = Number($("seed").value);
  if (!Number.isInteger(count) || count < 1) return setStatus("Count must be a whole number of at least 1.", true);
  if (!Number.isSafeInteger(seed) || seed < 0) return setStatus("Seed must be a whole number of at least 0.", true);
  const button = $("generate");
  button.disabled = true;
  setStatus("Generating\u2026");
  const started = performance.now();
  try {
    const model = state.model || (await api("/healthz")).model;
    // Pin the newest AVAILABLE version so both calls hit the same model.
    const status = await api(`/v1/models/${model}`);
    const versions = status.model_version_status.filter((s) => s.state === "AVAILABLE").map((s) => Number(s.version));
    if (!versions.length) throw new Error(`model ${model} has no available version`);
    const version = Math.max(...versions);
    const prefix = `/v1/models/${model}/versions/${version}`;
    const config = await modelConfig(prefix);
    const classes = showClasses(config);
    const wanted = $("class").value;
    const generated = (await api(`${prefix}:predict`, classes.length
      ? { signature_name: "generate_by_name", inputs: { seed, count, class_name: wanted } }
      : { signature_name: "generate", inputs: { seed, count } })).outputs;
    const audioInputs = classes.length ? { z: generated.z, label: generated.label } : { z: generated.z };
    let audio = (await api(`${prefix}:predict`, { signature_name: "audio", inputs: audioInputs })).outputs;
    if (!Array.isArray(audio)) audio = audio.audio;
    const rate = Number(config && config.data && config.data.sample_rate) || DEFAULT_SAMPLE_RATE;

    state.urls.forEach((u) => URL.revokeObjectURL(u));
    state.urls = [];
    const grid = $("samples");
    grid.replaceChildren();
    const waves = [];
    generated.spectrogram.forEach((spec, k) => {
      const className = classes.length ? classes[generated.label[k]] : "";
      const { el, wave } = card(k, seed, spec, audio[k], rate, className);
      grid.appendChild(el);
      waves.push([wave, audio[k]]);
    });
    waves.forEach(([canvas, samples]) => drawWave(canvas, samples));
    const ms = Math.round(performance.now() - started);
    setStatus(`${count} sample${count > 1 ? "s" : ""} from ${model} version ${version} at ${rate} Hz in ${ms} ms.`);
  } catch (e) {
    setStatus(`Error: ${e.message}`, true);
  } finally {
    button.disabled = false;
  }
}

async function init() {
  $("controls").addEventListener("submit", generate);
  $("random-seed").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 1e9); });
  const badge = $("model-badge");
  try {
    const response = await fetch("/healthz");
    const health = await response.json();
    state.model = health.model;
    $("api-path").textContent = `/v1/models/${health.model}`;
    badge.textContent = health.version ? `${health.model} \u00b7 version ${health.version}` : `${health.model} \u00b7 no version loaded`;
    badge.classList.add(health.version ? "ok" : "bad");
    if (health.version) showClasses(await modelConfig(`/v1/models/${health.model}/versions/${health.version}`));
  } catch (e) {
    badge.textContent = "server unreachable";
    badge.classList.add("bad");
  }
}

init();
