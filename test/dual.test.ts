import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { Stack, type CellKind } from "../src/recurrent/stack.js";
import { DualModel } from "../src/recurrent/dual.js";
import { fitLittleModules } from "../src/recurrent/fit.js";
import type { Runtime } from "../src/runtime/runtime.js";
import { saveDualModel, loadDualModel } from "../src/recurrent/dual-checkpoint.js";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.js";
import { writeFileAtomic } from "../src/io/files.js";
import { fromF16, toF16 } from "../src/io/fp16.js";
import { LittleModule, RandomProjector } from "../src/recurrent/little.js";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testRuntimes, label, assertClose } from "./helpers.js";
import { randomWeights } from "./reference-rnn.js";
import { interleaveRows } from "../src/recurrent/lstm.js";
import { quantizeRows } from "../src/dual/quantize.js";
import { reference } from "../src/kernels/index.js";
import { i4RowBytes } from "../src/kernels/quant.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

/**
 * Sequences whose inputs lie in one low-dimensional subspace (`basis`), as trained models' inputs
 * do; random full-dimensional inputs would make any projection lose most of the signal.
 */
function sequences(rng: Rng, basis: Float32Array[], count: number, steps: number, n: number): Float32Array[][] {
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
  const basis = Array.from({ length: 6 }, () => Float32Array.from({ length: E }, () => rng.normal()));
  const seqs = (count: number) => sequences(rng, basis, count, 20, E);
  return { stack, train: seqs(30), valid: seqs(8), test: seqs(8) };
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
      const report = dual.accounting.report();
      assert.equal(report.insensitiveRatio, 0);
      // Nothing can be insensitive, so the little module is not asked: the step is the dense one.
      assert.equal(report.perStep.littleBytes, 0);
      assert.equal(report.memoryReduction, 1);
      // Thresholds that happen to leave every neuron sensitive run the little module and still match.
      dual.setThresholds(dual.thresholds.map((row) => row.map(() => ({ lo: -1e30, hi: 1e30 }))));
      dual.accounting.reset();
      run((x) => dual.step(x), () => dual.reset(), seqs).forEach((o, i) => assert.deepEqual(o, dense[i], `${label(rt)} ${kind} finite bounds, step ${i}`));
      assert.ok(dual.accounting.report().perStep.littleBytes > 0);
    }
  }
});

test("the ridge fit is near-exact when the projection keeps the inputs' information", async () => {
  const [rt] = await testRuntimes();
  for (const kind of ["lstm", "gru"] as const) {
    // x spans 6 dimensions and h 40: with k = 48 rows per block, nothing is lost.
    const { stack, train, valid } = model(rt, kind, 1, 12);
    const { report } = fitLittleModules(rt, stack, train, { k: 48, validation: valid, bits: 32 });
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

test("choosing insensitive neurons by their estimates beats a blind choice, and error grows with the ratio", async () => {
  const [rt] = await testRuntimes();
  const { stack, train, valid, test: held } = model(rt, "lstm", 1, 15);
  const { littles } = fitLittleModules(rt, stack, train, { k: 16 });
  const dual = new DualModel(rt, stack, littles);
  const dense = run((x) => stack.step(x), () => stack.reset(), held);
  const error = () => {
    const ours = run((x) => dual.step(x), () => dual.reset(), held);
    let err = 0, norm = 0;
    dense.forEach((d, i) => d.forEach((v, j) => { err += (v - ours[i][j]) ** 2; norm += v * v; }));
    return Math.sqrt(err / norm);
  };
  const errors = [0.1, 0.3, 0.5, 0.7, 0.9].map((ratio) => { dual.calibrate(valid, ratio); return error(); });
  for (let i = 1; i < errors.length; i++) assert.ok(errors[i] > errors[i - 1], `errors by ratio: ${errors}`);
  // Every neuron from the little module. A random half of them would keep about √½ ≈ 0.71 of this
  // error (independent errors add in quadrature); the sensitivity rule must do clearly better.
  dual.setNoneSensitive();
  const littleOnly = error();
  assert.ok(errors[2] < 0.6 * littleOnly, `error at 50 %: ${errors[2]}, little module alone: ${littleOnly}`);
});

test("a dual-module model round-trips through safetensors, in fp32 and in fp16", async () => {
  const [rt] = await testRuntimes();
  const dir = mkdtempSync(join(tmpdir(), "dmi-")), path = join(dir, "model.safetensors");
  for (const kind of ["lstm", "gru"] as const) {
    const { stack, train, valid, test: held } = model(rt, kind, 2, 16);
    const { littles } = fitLittleModules(rt, stack, train, { k: 16, bits: 4 });
    const dual = new DualModel(rt, stack, littles);
    dual.calibrate(valid, 0.5);
    const before = run((x) => dual.step(x), () => dual.reset(), held);
    await saveDualModel(path, dual);
    const loaded = await loadDualModel(rt, path);
    assert.deepEqual(loaded.thresholds, dual.thresholds);
    assert.equal(loaded.littles[0].bits, 4);
    run((x) => loaded.step(x), () => loaded.reset(), held).forEach((o, i) => assert.deepEqual(o, before[i], `${kind} step ${i}`));
    // fp16 storage: the loaded model is exactly the model of the fp16-rounded weights.
    await saveDualModel(path, dual, { dtype: "F16" });
    const half = await loadDualModel(rt, path);
    const round = (a: Float32Array) => fromF16(toF16(a));
    const rounded = new Stack(rt, stack.config, stack.layers.map((cell) => {
      const w = cell.weights();
      return { weight_ih: round(w.weight_ih), weight_hh: round(w.weight_hh), bias_ih: round(w.bias_ih), bias_hh: round(w.bias_hh) };
    }));
    const expected = new DualModel(rt, rounded, littles.map((m) => new LittleModule(rt, m.rows, m.projector, m.bits, {
      Wx: round(m.weights.Wx), Wh: round(m.weights.Wh), bx: round(m.weights.bx), bh: round(m.weights.bh),
    }, m.joint)));
    expected.setThresholds(dual.thresholds, 0.5);
    const want = run((x) => expected.step(x), () => expected.reset(), held);
    run((x) => half.step(x), () => half.reset(), held).forEach((o, i) => assert.deepEqual(o, want[i], `${kind} fp16 step ${i}`));
  }
  rmSync(dir, { recursive: true });
});

test("loading a wrong or damaged checkpoint fails with a message naming the problem", async () => {
  const [rt] = await testRuntimes();
  const dir = mkdtempSync(join(tmpdir(), "dmi-")), path = join(dir, "m.safetensors");
  await assert.rejects(loadDualModel(rt, join(dir, "missing.safetensors")), /missing.safetensors.*does not exist/);
  await writeFileAtomic(path, encodeSafetensors({ w: { dtype: "F32", shape: [1], data: new Float32Array(1) } }, { format: "other" }));
  await assert.rejects(loadDualModel(rt, path), /not a dual-module RNN checkpoint/);
  const { stack, train } = model(rt, "lstm", 1, 17);
  const dual = new DualModel(rt, stack, fitLittleModules(rt, stack, train, { k: 8 }).littles);
  await saveDualModel(path, dual);
  const file = decodeSafetensors(readFileSync(path), path);
  const tensors = Object.fromEntries(file.tensors);
  tensors["little.0.Wx"] = { dtype: "F32", shape: [160, 7], data: new Float32Array(160 * 7) };
  await writeFileAtomic(path, encodeSafetensors(tensors, file.metadata));
  await assert.rejects(loadDualModel(rt, path), /little.0.Wx.*shape \[160, 7\].*expected \[160, 8\]/);
  rmSync(dir, { recursive: true });
});

test("the SGD fit (the paper's) approaches the closed-form optimum from the projected weights", async () => {
  const [rt] = await testRuntimes();
  const { stack, train, valid } = model(rt, "gru", 1, 18);
  const ridge = fitLittleModules(rt, stack, train, { k: 16, validation: valid }).report[0];
  const sgd = (epochs: number) => fitLittleModules(rt, stack, train, { k: 16, validation: valid, method: "sgd", sgd: { epochs } }).report[0];
  const short = sgd(1), long = sgd(30);
  assert.ok(long.validationMse! < 0.5 * short.validationMse!, `sgd after 1 epoch ${short.validationMse}, after 30 ${long.validationMse}`);
  assert.ok(ridge.validationMse! <= long.validationMse! && long.validationMse! < 1.05 * ridge.validationMse!,
    `ridge ${ridge.validationMse}, sgd ${long.validationMse}`);
});

test("a joint little module (LSTM) estimates the sum of the split module's two parts", async () => {
  const [rt] = await testRuntimes();
  const rng = new Rng(21), rows = 37, E = 23, H = 19, k = 13;
  const u = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const weights = { Wx: u(rows * k), Wh: u(rows * k), bx: u(rows), bh: u(rows) };
  const xh = rt.heap.copyF32(u(E + H)), projector = new RandomProjector(rt, E, H, k, 5);
  for (const bits of [32, 8] as const) {
    const joint = new LittleModule(rt, rows, projector, bits, weights, true);
    const split = new LittleModule(rt, rows, projector, bits, weights, false);
    const est = rt.heap.f32(rows), estX = rt.heap.f32(rows), estH = rt.heap.f32(rows);
    joint.estimate(est, null, xh);
    split.estimate(estX, estH, xh);
    // fp32: the same sum up to rounding; INT8: joint quantization shares one scale per row and one
    // for the projected input, so both differ from the exact sum by a few quantization steps.
    const tol = bits === 32 ? 1e-4 : 0.05;
    let norm = 0;
    for (let r = 0; r < rows; r++) norm = Math.max(norm, Math.abs(estX[r] + estH[r]));
    for (let r = 0; r < rows; r++) {
      assert.ok(Math.abs(est[r] - (estX[r] + estH[r])) <= tol * norm, `${bits} bits row ${r}: ${est[r]} vs ${estX[r] + estH[r]}`);
    }
    assert.ok(joint.bytes < split.bytes || bits === 32, "one bias and one scale per row instead of two");
    assert.throws(() => joint.estimate(est, estH, xh), /joint module takes no estH/);
    assert.throws(() => split.estimate(est, null, xh), /split module needs an estH/);
  }
});

test("a little module at ≤ 4 bits runs on packed int4 weights: the INT8 product of the same levels, half the weight bytes", async () => {
  const rng = new Rng(23), rows = 41, E = 29, H = 17, k = 21;
  const u = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const weights = { Wx: u(rows * k), Wh: u(rows * k), bx: u(rows), bh: u(rows) };
  for (const rt of await testRuntimes()) {
    const xh = rt.heap.copyF32(u(E + H)), projector = new RandomProjector(rt, E, H, k, 7);
    for (const bits of [4, 2] as const) {
      const little = new LittleModule(rt, rows, projector, bits, weights, true);
      const est = rt.heap.f32(rows);
      little.estimate(est, null, xh);
      // The same levels through the reference INT8 product.
      const W = interleaveRows(weights.Wx, weights.Wh, rows, k, k), q = quantizeRows(W, rows, 2 * k, bits);
      const p = projector.project(xh), pq = new Int8Array(2 * k), s = reference.quantize(pq, p, 2 * k);
      const b = weights.bx.map((v, r) => v + weights.bh[r]), want = new Float32Array(rows);
      reference.matvecI8(want, q.q!, q.scales, pq, s, b, rows, 2 * k);
      assert.deepEqual(Array.from(est), Array.from(want), `${label(rt)} ${bits} bits`);
      if (bits === 4) assert.equal(little.bytes, projector.bytes + rows * (i4RowBytes(2 * k) + 4) + rows * 4);
    }
  }
});

test("INT8 big weights: close to fp32, a quarter of the bytes, exact dual ratio 0, saved and loaded", async () => {
  const [rt] = await testRuntimes();
  const { stack, train, valid, test: held } = model(rt, "lstm", 2, 31);
  const weights = stack.layers.map((cell) => cell.weights());
  const int8 = new Stack(rt, { ...stack.config, bigBits: 8 }, weights);
  const want = run((x) => stack.step(x), () => stack.reset(), held);
  const got = run((x) => int8.step(x), () => int8.reset(), held);
  let err = 0;
  got.forEach((h, i) => h.forEach((v, j) => { err = Math.max(err, Math.abs(v - want[i][j])); }));
  assert.ok(err > 0 && err < 0.05, `INT8 big weights change h by at most a few quantization steps: max |Δh| = ${err}`);
  const cell = int8.layers[0];
  assert.equal(cell.bigBytes(10), 10 * (cell.cols + 8));

  const { littles } = fitLittleModules(rt, int8, train, { k: 16 });
  const dual = new DualModel(rt, int8, littles);
  dual.setAllSensitive();
  run((x) => dual.step(x), () => dual.reset(), held).forEach((h, i) => assert.deepEqual(h, got[i], `ratio 0 step ${i}`));
  dual.calibrate(valid, 0.5);
  const before = run((x) => dual.step(x), () => dual.reset(), held);
  const dir = mkdtempSync(join(tmpdir(), "dmi-")), path = join(dir, "int8.safetensors");
  try {
    // Saved dequantized; quantizing again gives the same levels, and scales within an ulp.
    await saveDualModel(path, dual);
    const loaded = await loadDualModel(rt, path);
    assert.equal(loaded.stack.config.bigBits, 8);
    run((x) => loaded.step(x), () => loaded.reset(), held).forEach((h, i) => {
      h.forEach((v, j) => assert.ok(Math.abs(v - before[i][j]) < 1e-5, `round trip step ${i} unit ${j}: ${v} vs ${before[i][j]}`));
    });
  } finally {
    rmSync(dir, { recursive: true });
  }
  assert.throws(() => new Stack(rt, { ...model(rt, "gru", 1, 3).stack.config, bigBits: 8 }, [model(rt, "gru", 1, 3).stack.layers[0].weights()]),
    /bigBits must be 32, or 8 for an LSTM .* got 8 for gru/);
});

test("noise injection: σ = 0 is the dense model; noise hurts less on the insensitive half than on the sensitive half", async () => {
  const [rt] = await testRuntimes();
  for (const kind of ["lstm", "gru"] as const) {
    const { stack, train, valid, test: held } = model(rt, kind, 1, 41);
    const dense = run((x) => stack.step(x), () => stack.reset(), held);
    const { littles } = fitLittleModules(rt, stack, train, { k: 16 });
    const dual = new DualModel(rt, stack, littles);
    dual.calibrate(valid, 0.5);
    dual.setNoise({ target: "sensitive", sigma: 0, rng: new Rng(1) });
    run((x) => dual.step(x), () => dual.reset(), held).forEach((h, i) => assert.deepEqual(h, dense[i], `${kind} σ = 0 step ${i}`));
    const error = (target: "insensitive" | "sensitive") => {
      dual.setNoise({ target, sigma: 1, rng: new Rng(2) });
      let e = 0;
      run((x) => dual.step(x), () => dual.reset(), held).forEach((h, i) => h.forEach((v, j) => { e += Math.abs(v - dense[i][j]); }));
      return e;
    };
    const onInsensitive = error("insensitive"), onSensitive = error("sensitive");
    // A blind choice of the half would give equal errors on average.
    assert.ok(onInsensitive < 0.8 * onSensitive, `${kind}: |Δh| with noise on the insensitive half ${onInsensitive}, on the sensitive half ${onSensitive}`);
    dual.setNoise(null);
    assert.throws(() => dual.setNoise({ target: "sensitive", sigma: -1, rng: new Rng(1) }), /sigma must be finite and ≥ 0, got -1/);
  }
});

test("the reduced-rank projection predicts better than the random one at equal k, and round-trips through safetensors", async () => {
  const [rt] = await testRuntimes();
  const dir = mkdtempSync(join(tmpdir(), "dmi-")), path = join(dir, "rrr.safetensors");
  for (const kind of ["lstm", "gru"] as const) {
    const { stack, train, valid, test: held } = model(rt, kind, 2, 23);
    const fit = (projection: "random" | "rrr") => fitLittleModules(rt, stack, train, { k: 4, validation: valid, projection });
    const random = fit("random"), rrr = fit("rrr");
    rrr.report.forEach((r, l) => {
      assert.equal(r.projection, "rrr");
      assert.ok(r.validationR2! > random.report[l].validationR2! + 0.05, `${kind} layer ${l}: R² rrr ${r.validationR2}, random ${random.report[l].validationR2}`);
    });
    // Bytes per step: the projection's INT8 rows and scales (rrr) or its 16-bit indices and 32-bit
    // offsets (random), then the little weights at 8 bits, one scale and one bias per row per part.
    const cell = stack.layers[0], rows = cell.rows, k = 4, parts = kind === "lstm" ? [2 * k] : [k, k];
    const weights = parts.reduce((n, cols) => n + rows * cols + rows * 4 + rows * 4, 0);
    const dense = kind === "lstm" ? 2 * k * cell.cols + 2 * k * 4 : k * cell.input + k * cell.hidden + 2 * k * 4;
    assert.equal(rrr.littles[0].bytes, dense + weights);
    const p = random.littles[0].projector as RandomProjector;
    assert.equal(random.littles[0].bytes, p.projection.indices.length * 2 + (4 * k + 1) * 4 + weights);
    assert.equal(rrr.littles[0].macs, dense - 2 * k * 4 + 2 * rows * k);

    const dual = new DualModel(rt, stack, rrr.littles);
    dual.calibrate(valid, 0.5);
    const before = run((x) => dual.step(x), () => dual.reset(), held);
    await saveDualModel(path, dual);
    const loaded = await loadDualModel(rt, path);
    assert.equal(loaded.littles[1].projector.kind, "rrr");
    run((x) => loaded.step(x), () => loaded.reset(), held).forEach((o, i) => assert.deepEqual(o, before[i], `${kind} step ${i}`));
  }
  assert.throws(() => fitLittleModules(rt, model(rt, "lstm", 1, 3).stack, [[new Float32Array(24)]], { projection: "rrr", method: "sgd" }), /SGD fit starts from the random projection/);
  rmSync(dir, { recursive: true });
});

test("the fused step (one kernel per LSTM layer) computes what the separate kernels do, on 1 and 2 threads, fp32 and INT8 big weights", async () => {
  for (const rt of await testRuntimes()) {
    for (const bigBits of [32, 8] as const) {
      // Odd sizes; two layers (the second reads the first's h); the first wide enough that 2 threads
      // split its fused step (FUSED_PARALLEL_MIN_WORK), the second on one thread.
      const rng = new Rng(31), E = 1791, H = 257, k = 15;
      const ws = [0, 1].map((l) => randomWeights(rng, 4, l === 0 ? E : H, H, 3 / Math.sqrt(H)));
      const u = (n: number) => Float32Array.from({ length: n }, () => rng.normal() * 0.3);
      const littles = [E, H].map((input, l) => ({ input, weights: { Wx: u(4 * H * k), Wh: u(4 * H * k), bx: u(4 * H), bh: u(4 * H) }, seed: 40 + l }));
      const make = () => {
        const stack = new Stack(rt, { kind: "lstm", input: E, hidden: H, layers: 2, context: 0, residualFrom: 2, bigBits }, ws);
        return new DualModel(rt, stack, littles.map((m) => new LittleModule(rt, 4 * H, new RandomProjector(rt, m.input, H, k, m.seed), 8, m.weights, true)));
      };
      const fused = make(), separate = make();
      separate.fuse = false;
      const seqs = sequences(rng, Array.from({ length: 4 }, () => u(E)), 2, 12, E);
      const thresholds = fused.calibrate(seqs, 0.5);
      const settings: [string, (d: DualModel) => void][] = [
        ["50 %", (d) => d.setThresholds(thresholds, 0.5)],
        ["none sensitive", (d) => d.setNoneSensitive()],
        ["every one sensitive, finite bounds", (d) => d.setThresholds(thresholds.map((row) => row.map(() => ({ lo: -1e30, hi: 1e30 }))))],
      ];
      for (const [what, set] of settings) {
        set(fused); set(separate);
        const a = run((x) => fused.step(x), () => fused.reset(), seqs), b = run((x) => separate.step(x), () => separate.reset(), seqs);
        a.forEach((o, i) => assertClose(o, b[i], 1, 1e-6, `${label(rt)} big ${bigBits} ${what} step ${i}`));
        for (const l of [0, 1]) assert.deepEqual(fused.sensitiveRows(l), separate.sensitiveRows(l), `${label(rt)} big ${bigBits} ${what} layer ${l} rows`);
      }
    }
  }
});
