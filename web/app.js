// The demo page: one runtime for both tabs, the tabs, and the language-model tab: fetches the model
// and the corpus slices from `dmi serve`, fits the little modules (src/web/lm-demo.ts does the
// work), then generates and measures on each click. The CNN tab is web/cnn.js, started when first
// shown. Query string: ?threads=N (default: every core when cross-origin isolated, else 1), ?tab=cnn.
import { LmDemo, Runtime } from "./dualmodule.js";
import { startCnn } from "./cnn.js";

const $ = (id) => document.getElementById(id);
const status = (text, error = false) => { $("status").textContent = text; $("status").classList.toggle("error", error); };
const paint = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
const us = (ms) => `${(ms * 1000).toFixed(1)} µs`;

/** Results of the last run, for the browser test (test/browser.e2e.ts); the demos, for its timings. */
window.dmi = { runs: 0, last: null, ready: false };

const params = new URLSearchParams(location.search);
const threads = Number(params.get("threads")) || undefined;
const runtime = Runtime.create(threads ? { threads } : {});

let cnnStarted = false;
function showTab(name) {
  for (const tab of ["lm", "cnn"]) {
    $(tab).hidden = tab !== name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
  }
  if (name === "cnn" && !cnnStarted) { cnnStarted = true; startCnn(runtime); }
}
$("tab-lm").addEventListener("click", () => showTab("lm"));
$("tab-cnn").addEventListener("click", () => showTab("cnn"));
if (params.get("tab") === "cnn") showTab("cnn");

async function start() {
  const rt = await runtime;
  status("fetching the model and the corpus slices…");
  const [model, slices] = await Promise.all([
    fetch("./model.safetensors").then((r) => r.arrayBuffer()), fetch("./demo-data.json").then((r) => r.json()),
  ]);
  const tokens = slices.train.reduce((n, p) => n + p.length, 0);
  status(`fitting the little modules on ${tokens} training tokens…`);
  await paint();
  const t0 = performance.now();
  const demo = await LmDemo.create(rt, model, slices);
  const fitSeconds = (performance.now() - t0) / 1000;
  const c = demo.lm.config;
  const info = { variant: rt.variant, threads: rt.threads, isolated: crossOriginIsolated, hidden: c.hidden, vocab: c.vocab, fitSeconds };
  $("info").textContent = `${c.cell.toUpperCase()} ${c.layers}×${c.hidden}, vocabulary ${c.vocab}; little modules k = ${demo.dual.littles[0].k}, ` +
    `fitted in ${fitSeconds.toFixed(1)} s; ${rt.variant} SIMD build, ${rt.threads} thread${rt.threads > 1 ? "s" : ""}` +
    `${crossOriginIsolated ? " (cross-origin isolated)" : " (not cross-origin isolated: one thread)"}.`;
  window.dmi.info = info;
  window.dmi.lmDemo = demo;
  $("ratio").addEventListener("input", () => { $("ratio-value").textContent = $("ratio").value; });
  $("generate").addEventListener("click", () => run(demo).catch(fail));
  $("generate").disabled = false;
  window.dmi.ready = true;
  status("ready: type a prompt and press Generate");
}

async function run(demo) {
  $("generate").disabled = true;
  const ratio = Number($("ratio").value), prompt = $("prompt").value;
  const o = { words: Number($("words").value), temperature: Number($("temperature").value), seed: Number($("seed").value) };
  status(`calibrating to ratio ${ratio} and generating…`);
  await paint();
  demo.setRatio(ratio);
  const dense = demo.continue(prompt, "dense", o), dual = demo.continue(prompt, "dual", o);
  const ppl = demo.perplexity(prompt);
  const steps = await demo.stepTimes();
  $("dense-out").innerHTML = ""; $("dual-out").innerHTML = "";
  for (const [id, r] of [["dense-out", dense], ["dual-out", dual]]) {
    const p = document.createElement("b"); p.textContent = prompt.trim() + " ";
    $(id).append(p, r.text);
  }
  $("dual-ratio").textContent = `(ratio ${ratio}, achieved ${steps.achievedRatio.toFixed(2)})`;
  $("dense-step").textContent = us(steps.denseMs); $("dual-step").textContent = us(steps.dualMs);
  $("dense-speed").textContent = dense.tokensPerSecond.toFixed(0); $("dual-speed").textContent = dual.tokensPerSecond.toFixed(0);
  $("dense-ppl").textContent = ppl ? ppl.dense.toFixed(1) : "–"; $("dual-ppl").textContent = ppl ? ppl.dual.toFixed(1) : "–";
  $("summary").textContent = `Recurrent step: dual-module ${(steps.denseMs / steps.dualMs).toFixed(2)}× the dense speed ` +
    `(medians of interleaved rounds of 10 steps).`;
  window.dmi.last = { ratio, prompt, options: o, dense, dual, ppl, steps };
  window.dmi.runs++;
  status("ready");
  $("generate").disabled = false;
}

function fail(e) {
  console.error(e);
  status(`error: ${e.message}`, true);
  window.dmi.error = e.message;
  $("generate").disabled = false;
}

start().catch(fail);
