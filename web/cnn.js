// The demo page's CNN tab: fetches the ResNet checkpoint and a few images from `dmi serve`, makes the
// network dual-module (src/web/cnn-demo.ts does the work: little modules fitted on the training
// images, thresholds calibrated per ratio), then classifies what is drawn on the canvas or the
// picked test image dense and dual, with each dual layer's sensitive map and the time per image.
import { CnnDemo, decodeCnnImages } from "./dualmodule.js";

const $ = (id) => document.getElementById(id);
const status = (text, error = false) => { $("cnn-status").textContent = text; $("cnn-status").classList.toggle("error", error); };
const paint = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
const SIDE = 28, SCALE = 10;

/** Viridis at 0, ½ and 1, interpolated: the sensitive share of a position's channels as a colour. */
const STOPS = [[68, 1, 84], [33, 145, 140], [253, 231, 37]];
function colour(f) {
  const x = Math.min(1, Math.max(0, f)) * 2, i = Math.min(1, Math.floor(x)), t = x - i;
  return STOPS[i].map((a, c) => Math.round(a + (STOPS[i + 1][c] - a) * t));
}

/** Draws a (height, width) array of values in [0, 1] on `canvas`, one pixel each, grey or in colour. */
function drawPixels(canvas, values, width, height, toRgb) {
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(width, height);
  values.forEach((v, p) => { img.data.set([...toRgb(v), 255], 4 * p); });
  ctx.putImageData(img, 0, 0);
}
const grey = (v) => [v * 255, v * 255, v * 255];

/** The canvas's 280×280 pixels averaged over 10×10 blocks: the drawn image as the network's input (1, 28, 28) in [0, 1]. */
function canvasInput(canvas) {
  const px = canvas.getContext("2d").getImageData(0, 0, SIDE * SCALE, SIDE * SCALE).data, x = new Float32Array(SIDE * SIDE);
  for (let y = 0; y < SIDE * SCALE; y++) for (let c = 0; c < SIDE * SCALE; c++) {
    x[Math.floor(y / SCALE) * SIDE + Math.floor(c / SCALE)] += px[4 * (y * SIDE * SCALE + c)] / (255 * SCALE * SCALE);
  }
  return x;
}

function showPrediction(id, prediction, classes) {
  $(id).replaceChildren(...classes.map((name, c) => {
    const row = document.createElement("div"), p = prediction.probabilities[c];
    row.className = c === prediction.top ? "bar-row top" : "bar-row";
    row.innerHTML = `<span></span><div class="bar"><div style="width:${(100 * p).toFixed(1)}%"></div></div><span>${(100 * p).toFixed(1)} %</span>`;
    row.firstChild.textContent = name;
    return row;
  }));
}

export async function startCnn(runtime) {
  const state = window.dmi.cnn = { ready: false, runs: 0, last: null };
  try {
    const rt = await runtime;
    status("fetching the CNN and its images…");
    const [model, data] = await Promise.all([
      fetch("./cnn-model.safetensors").then((r) => r.arrayBuffer()), fetch("./cnn-data.json").then((r) => r.json()),
    ]);
    if (data.missing) throw new Error(`the server has no images for this tab: ${data.missing}`);
    const images = decodeCnnImages(data);
    status(`fitting the little modules on ${images.fit.length / (SIDE * SIDE)} training images…`);
    await paint();
    let t0 = performance.now();
    const demo = CnnDemo.create(rt, model, images);
    const fitSeconds = (performance.now() - t0) / 1000;
    state.demo = demo;
    const c = demo.net.config;
    state.info = { fitSeconds, threads: rt.threads, variant: rt.variant, images: images.test.length / (SIDE * SIDE) };
    const info = () => `ResNet-18 (width ${c.width}) on ${images.dataset}, ${demo.net.layers.length} dual 3×3 convolutions, little modules k = ` +
      `${Math.min(...demo.net.layers.map((l) => l.dual.little.k))}–${Math.max(...demo.net.layers.map((l) => l.dual.little.k))} (INT8), fitted on ` +
      `${images.fit.length / (SIDE * SIDE)} training images in ${fitSeconds.toFixed(1)} s, thresholds calibrated per ratio on ` +
      `${images.calibrate.length / (SIDE * SIDE)} more${state.info.calibrateSeconds ? ` (last: ${state.info.calibrateSeconds.toFixed(1)} s)` : ""}; ` +
      `${rt.variant} SIMD build, ${rt.threads} thread${rt.threads > 1 ? "s" : ""}.`;

    const canvas = $("cnn-canvas"), ctx = canvas.getContext("2d");
    let input = null, picked = null;
    const thumbs = demo.test.map((x, i) => {
      const thumb = document.createElement("canvas");
      drawPixels(thumb, x, SIDE, SIDE, grey);
      thumb.title = `test image, class ${images.classes[images.testLabels[i]]}`;
      thumb.addEventListener("click", () => pick(i));
      return thumb;
    });
    $("cnn-tests").replaceChildren(...thumbs);

    const classify = () => {
      const r = demo.classify(input);
      showPrediction("cnn-dense", r.dense, images.classes);
      showPrediction("cnn-dual", r.dual, images.classes);
      $("cnn-dual-ratio").textContent = `(ratio ${$("cnn-ratio").value}, this image ${r.achievedRatio.toFixed(2)})`;
      $("cnn-maps").replaceChildren(...r.maps.map((m) => {
        const fig = document.createElement("figure"), map = document.createElement("canvas"), cap = document.createElement("figcaption");
        drawPixels(map, m.sensitive, m.width, m.height, colour);
        cap.textContent = `${m.name.replace("layer", "")} ${m.height}×${m.width}×${m.channels}: ${(100 * (1 - m.ratio)).toFixed(0)} % sensitive`;
        fig.append(map, cap);
        return fig;
      }));
      const truth = picked === null ? "drawn" : `test image ${picked}, class ${images.classes[images.testLabels[picked]]}`;
      status(`${truth}: dense says ${images.classes[r.dense.top]}, dual-module ${images.classes[r.dual.top]}`);
      const plain = (p) => ({ logits: Array.from(p.logits), probabilities: p.probabilities, top: p.top });
      state.last = { ...state.last, picked, ratio: Number($("cnn-ratio").value), mode: $("cnn-mode").value, dense: plain(r.dense), dual: plain(r.dual),
        achievedRatio: r.achievedRatio, maps: r.maps.map((m) => ({ name: m.name, ratio: m.ratio, height: m.height })) };
      state.runs++;
    };
    const pick = (i) => {
      picked = i; input = demo.test[i];
      thumbs.forEach((t, j) => t.classList.toggle("picked", j === i));
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(thumbs[i], 0, 0, SIDE * SCALE, SIDE * SCALE);
      classify();
    };
    /** Calibrates to the slider's ratio and mode (seconds, once per pair), times both networks, classifies again. */
    const calibrate = async () => {
      const ratio = Number($("cnn-ratio").value), mode = $("cnn-mode").value;
      status(`calibrating the thresholds to ratio ${ratio} (${mode})…`);
      await paint();
      t0 = performance.now();
      demo.setRatio(ratio, mode);
      state.info.calibrateSeconds = (performance.now() - t0) / 1000;
      const times = await demo.imageTimes(2);
      $("cnn-dense-ms").textContent = `${times.denseMs.toFixed(2)} ms`; $("cnn-dual-ms").textContent = `${times.dualMs.toFixed(2)} ms`;
      $("cnn-info").textContent = info();
      state.last = { ...state.last, times };
      classify();
    };
    const recalibrate = () => calibrate().catch(fail);
    $("cnn-ratio").addEventListener("input", () => { $("cnn-ratio-value").textContent = $("cnn-ratio").value; });
    $("cnn-ratio").addEventListener("change", recalibrate);
    $("cnn-mode").addEventListener("change", recalibrate);

    let drawing = false, last = null;
    const at = (e) => { const r = canvas.getBoundingClientRect(); return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height]; };
    canvas.addEventListener("pointerdown", (e) => { drawing = true; last = at(e); canvas.setPointerCapture(e.pointerId); });
    canvas.addEventListener("pointermove", (e) => {
      if (!drawing) return;
      const p = at(e);
      Object.assign(ctx, { strokeStyle: "white", lineWidth: 22, lineCap: "round", lineJoin: "round" });
      ctx.beginPath(); ctx.moveTo(...last); ctx.lineTo(...p); ctx.stroke();
      last = p;
    });
    canvas.addEventListener("pointerup", () => {
      if (!drawing) return;
      drawing = false; picked = null; input = canvasInput(canvas);
      thumbs.forEach((t) => t.classList.remove("picked"));
      classify();
    });
    $("cnn-clear").addEventListener("click", () => { ctx.fillStyle = "black"; ctx.fillRect(0, 0, canvas.width, canvas.height); });
    $("cnn-clear").disabled = false;

    pick(0);
    await calibrate();
    state.ready = true;
  } catch (e) {
    fail(e);
  }
}

function fail(e) {
  console.error(e);
  status(`error: ${e.message}`, true);
  window.dmi.cnn.error = e.message;
}
