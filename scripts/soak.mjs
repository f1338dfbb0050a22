#!/usr/bin/env node
// The soak benchmark (issue 21): N dual-module steps of an LSTM on 2 threads, memory sampled along
// the way, and step N's output compared bit for bit with a fresh runtime's.
//   node scripts/soak.mjs [--steps N] [--hidden H] [--threads T] [--samples S] [--json FILE]
// The model is random (PyTorch's initialisation, src/bench/models.ts), its little modules fitted and
// calibrated to half the neurons insensitive. The state is reset every SEQ steps and the inputs
// cycle through one sequence of SEQ, so step N's output is what a fresh model gives after N mod SEQ
// steps (N mod SEQ = 0 counts as SEQ): the fresh run is short, whatever N is. Run `npm run build:ts` first.
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { enableRelaxedSimd } from "../dist/src/runtime/wasm.js";
import { Runtime } from "../dist/src/runtime/runtime.js";
import { Stack } from "../dist/src/recurrent/stack.js";
import { fitLittleModules } from "../dist/src/recurrent/fit.js";
import { DualModel } from "../dist/src/recurrent/dual.js";
import { loadDualModel, saveDualModel } from "../dist/src/recurrent/dual-checkpoint.js";
import { randomModel } from "../dist/src/bench/models.js";

const args = process.argv.slice(2);
const option = (name, fallback) => { const i = args.indexOf(name); return i < 0 ? fallback : args[i + 1]; };
const steps = Number(option("--steps", "100000")), hidden = Number(option("--hidden", "256"));
const threads = Number(option("--threads", "2")), samples = Number(option("--samples", "20")), json = option("--json", undefined);
const SEQ = 1000;

enableRelaxedSimd();
const shape = { cell: "lstm", config: { kind: "lstm", input: hidden, hidden, layers: 1, context: 0, residualFrom: 1 } };
const { weights, sequence } = randomModel(shape);
const inputs = sequence(SEQ);
const dir = mkdtempSync(join(tmpdir(), "dmi-soak-")), file = join(dir, "dual.safetensors");

// The model, fitted once and saved: the soak and the fresh run load the same file.
{
  const rt = await Runtime.create({ threads, simd: "simd" });
  const stack = new Stack(rt, shape.config, weights);
  const train = Array.from({ length: 8 }, () => sequence(100));
  const { littles } = fitLittleModules(rt, stack, train, { k: 64 });
  const model = new DualModel(rt, stack, littles);
  model.calibrate(Array.from({ length: 4 }, () => sequence(100)), 0.5);
  await saveDualModel(file, model);
  await rt.close();
}

const mib = (b) => +(b / 2 ** 20).toFixed(2);
function sample(step, rt, t0) {
  const m = process.memoryUsage();
  return { step, seconds: +((performance.now() - t0) / 1000).toFixed(1), rss_mib: mib(m.rss), js_heap_mib: mib(m.heapUsed),
    array_buffers_mib: mib(m.arrayBuffers), wasm_memory_mib: mib(rt.heap.memory.buffer.byteLength), heap_in_use_mib: mib(rt.heap.bytesInUse) };
}

// The fresh runtime is created now, beside the soaked one, so that both run the same code even if
// dist/ is rebuilt during a long run (a pool worker loads its module when it starts).
const fresh = await Runtime.create({ threads, simd: "simd" });
const again = await loadDualModel(fresh, file);
const rt = await Runtime.create({ threads, simd: "simd" });
const model = await loadDualModel(rt, file);
const rows = [];
const t0 = performance.now();
let last;
for (let n = 1; n <= steps; n++) {
  const i = (n - 1) % SEQ;
  if (i === 0) model.reset();
  last = model.step(inputs[i]);
  if (n === 1 || n % Math.max(1, Math.floor(steps / samples)) === 0 || n === steps) {
    rows.push(sample(n, rt, t0));
    // The samples so far, kept through a stop: a long run may be paused or killed before its end.
    if (json) writeFileSync(json, JSON.stringify({ samples: rows }, null, 2) + "\n");
    const r = rows[rows.length - 1];
    console.log(`step ${String(n).padStart(9)}  ${String(r.seconds).padStart(7)} s  rss ${r.rss_mib} MiB  js heap ${r.js_heap_mib} MiB  ` +
      `array buffers ${r.array_buffers_mib} MiB  wasm ${r.wasm_memory_mib} MiB (${r.heap_in_use_mib} in use)`);
  }
}
const seconds = (performance.now() - t0) / 1000;
const soaked = last.slice();
const ratio = model.accounting.report().insensitiveRatio;
await rt.close();

// The fresh runtime and model, untouched so far, run the last partial sequence.
const tail = ((steps - 1) % SEQ) + 1;
let out;
again.reset();
for (let i = 0; i < tail; i++) out = again.step(inputs[i]);
const equal = out.length === soaked.length && out.every((v, i) => Object.is(v, soaked[i]));
await fresh.close();
rmSync(dir, { recursive: true, force: true });

const first = rows[0], end = rows[rows.length - 1], peakRss = Math.max(...rows.map((r) => r.rss_mib));
const settled = rows[Math.min(1, rows.length - 1)];
const summary = { steps, hidden, threads, seconds: +seconds.toFixed(1), us_per_step: +((seconds / steps) * 1e6).toFixed(1),
  insensitive_ratio: +ratio.toFixed(3), rss_first_mib: first.rss_mib, rss_settled_mib: settled.rss_mib, rss_last_mib: end.rss_mib, rss_peak_mib: peakRss,
  wasm_first_mib: first.wasm_memory_mib, wasm_last_mib: end.wasm_memory_mib, output_equals_fresh_run: equal };
console.log(JSON.stringify(summary));
if (json) writeFileSync(json, JSON.stringify({ summary, samples: rows }, null, 2) + "\n");
process.exitCode = equal ? 0 : 1;
