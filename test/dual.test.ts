import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { Stack, type CellKind } from "../src/layers/stack.js";
import { DualModel } from "../src/dual/dual.js";
import { fitLittleModules } from "../src/dual/fit.js";
import type { Runtime } from "../src/runtime/runtime.js";
import { testRuntimes, label } from "./helpers.js";
import { randomWeights } from "./reference-rnn.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

/**
 * Sequences whose inputs lie in a low-dimensional subspace, as trained models' inputs do; random
 * full-dimensional inputs would make any projection lose most of the signal.
 */
function sequences(rng: Rng, count: number, steps: number, n: number, dims = 6): Float32Array[][] {
  const basis = Array.from({ length: dims }, () => Float32Array.from({ length: n }, () => rng.normal()));
  return Array.from({ length: count }, () => Array.from({ length: steps }, () => {
    const x = new Float32Array(n);
    for (const b of basis) { const z = rng.normal(); for (let i = 0; i < n; i++) x[i] += z * b[i]; }
    return x;
  }));
}

function model(rt: Runtime, kind: CellKind, layers: number, seed: number) {
  const rng = new Rng(seed), E = 24, H = 40, gates = kind === "lstm" ? 4 : 3;
  const ws = Array.from({ length: layers }, (_, l) => randomWeights(rng, gates, l === 0 ? E : H, H, 3 / Math.sqrt(H)));
  const stack = new Stack(rt, { kind, input: E, hidden: H, layers, context: 0, residualFrom: layers }, ws);
  return { stack, train: sequences(rng, 30, 20, E), valid: sequences(rng, 8, 20, E), test: sequences(rng, 8, 20, E) };
}

function run(step: (x: Float32Array) => Float32Array, reset: () => void, seqs: Float32Array[][]): Float32Array[] {
  const out: Float32Array[] = [];
  for (const seq of seqs) { reset(); for (const x of seq) out.push(step(x).slice()); }
  return out;
}

test("ratio 0 reproduces the dense output exactly", async () => {
  for (const rt of await testRuntimes()) {
    for (const kind of ["lstm", "gru"] as const) {
      const { stack, train, test: seqs } = model(rt, kind, 2, 11);
      const { littles } = fitLittleModules(rt, stack, train, { k: 16 });
      const dual = new DualModel(rt, stack, littles);
      const dense = run((x) => stack.step(x), () => stack.reset(), seqs);
      const ours = run((x) => dual.step(x), () => dual.reset(), seqs);
      dense.forEach((d, i) => assert.deepEqual(ours[i], d, `${label(rt)} ${kind} step ${i}`));
      assert.equal(dual.accounting.report().insensitiveRatio, 0);
    }
  }
});

test("the ridge fit predicts pre-activations of inputs from a low-dimensional subspace almost exactly", async () => {
  const [rt] = await testRuntimes();
  for (const kind of ["lstm", "gru"] as const) {
    const { stack, train, valid } = model(rt, kind, 1, 12);
    const { report } = fitLittleModules(rt, stack, train, { k: 16, validation: valid, bits: 32 });
    assert.ok(report[0].validationR2! > 0.999, `${kind}: validation R² ${report[0].validationR2}`);
  }
});

test("calibrated thresholds hit the requested insensitive ratio within 2 points on held-out data", async () => {
  const [, rt] = await testRuntimes();
  for (const kind of ["lstm", "gru"] as const) {
    const { stack, train, valid, test: held } = model(rt, kind, 2, 13);
    const { littles } = fitLittleModules(rt, stack, train, { k: 16 });
    const dual = new DualModel(rt, stack, littles);
    for (const ratio of [0.1, 0.3, 0.5, 0.7, 0.9]) {
      dual.calibrate(valid, ratio);
      const achieved = dual.measure(held);
      assert.ok(Math.abs(achieved - ratio) <= 0.02, `${kind} ratio ${ratio}: achieved ${achieved}`);
      const report = dual.accounting.report();
      assert.ok(report.memoryReduction > 1 || ratio < 0.2, `${kind} ratio ${ratio}: memory reduction ${report.memoryReduction}`);
    }
  }
});

test("top-k mode marks the same fraction of every gate insensitive at every step", async () => {
  const [rt] = await testRuntimes();
  const { stack, train, test: held } = model(rt, "lstm", 1, 14);
  const { littles } = fitLittleModules(rt, stack, train, { k: 16 });
  const dual = new DualModel(rt, stack, littles);
  dual.useTopK(0.5);
  dual.measure(held.slice(0, 1));
  const H = stack.config.hidden, expected = Math.floor(0.5 * H) / H;
  for (const g of dual.accounting.report().layers[0].gates) assert.equal(g, expected);
});

test("the dual output stays close to the dense output at 50 % insensitive", async () => {
  const [rt] = await testRuntimes();
  const { stack, train, valid, test: held } = model(rt, "lstm", 1, 15);
  const { littles } = fitLittleModules(rt, stack, train, { k: 16 });
  const dual = new DualModel(rt, stack, littles);
  dual.calibrate(valid, 0.5);
  const dense = run((x) => stack.step(x), () => stack.reset(), held);
  const ours = run((x) => dual.step(x), () => dual.reset(), held);
  let err = 0, norm = 0;
  dense.forEach((d, i) => d.forEach((v, j) => { err += (v - ours[i][j]) ** 2; norm += v * v; }));
  assert.ok(Math.sqrt(err / norm) < 0.05, `relative error ${Math.sqrt(err / norm)}`);
});
