// The demo page: fetches the model and the corpus slices from `dmi serve`, fits the little modules
// (src/web/lm-demo.ts does the work), then generates and measures on each click. Query string:
// ?threads=N (default: every core when cross-origin isolated, else 1).
import { LmDemo, Runtime } from "./dualmodule.js";

const $ = (id) => document.getElementById(id);
const status = (text, error = false) => { $("status").textContent = text; $("status").className = error ? "error" : ""; };
const paint = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
const us = (ms) => `${(ms * 1000).toFixed(1)} µs`;

/** Results of the last run, for the browser test (test/browser.test.ts). */
window.dmi = { runs: 0, last: null, ready: false };

async function start() {
  const threads = Number(new URLSearchParams(location.search).get("threads")) || undefined;
  const rt = await Runtime.create(threads ? { threads } : {});
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
