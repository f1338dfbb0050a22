// Training of the word-level language model: every gradient against central finite differences of
// an independent float64 forward (test/reference-rnn.ts cells), the loss alone, learning on a tiny
// sequence, determinism, checkpoints (round trip, errors, inference side) and resume.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testRuntimes, label } from "./helpers.js";
import { gruStep, lstmStep } from "./reference-rnn.js";
import type { Runtime } from "../src/runtime/runtime.js";
import { Rng } from "../src/util/random.js";
import { encodeSafetensors } from "../src/io/safetensors.js";
import { fromF16, toF16 } from "../src/io/fp16.js";
import {
  type LmConfig, type LmParams, LmInference, initParams, layerInputSize, loadLm, paramCount, paramTable, saveLm, viewParams,
} from "../src/recurrent/lm.js";
import { LmGraph, resumePath, sgdStep, trainLm, type LmData, type RunOptions } from "../src/recurrent/train.js";
import { batchRng } from "../src/util/random.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const tmp = await mkdtemp(join(tmpdir(), "dualmodule-train-"));
after(() => rm(tmp, { recursive: true, force: true }));

function randomTokens(rng: Rng, n: number, V: number): Int32Array {
  return Int32Array.from({ length: n }, () => rng.int(V));
}

/** A graph over fresh heap parameters initialised from `seed`, with gradients. */
function makeGraph(rt: Runtime, c: LmConfig, T: number, B: number, dropout: number, seed = 7) {
  const params = rt.heap.f32(paramCount(c)), grads = rt.heap.f32(params.length);
  initParams(c, params, seed);
  return { params, grads, graph: new LmGraph(rt, c, T, B, params, grads, dropout) };
}

// ---------------------------------------------------------------------------------------------------
// Float64 reference forward, written from PyTorch's RNNModel rather than from src/recurrent/train.ts

/**
 * Mean cross-entropy of one window: input/target (T, B) time-major, the state carried in per layer
 * (S, B, H), and per dropout site s the mask (N, width_s) or null for none.
 */
function referenceLoss(c: LmConfig, p: LmParams, input: Int32Array, target: Int32Array, B: number,
                       state: Float32Array[], masks: (Float32Array | null)[]): number {
  const { emb: E, hidden: H, vocab: V, layers: L } = c, T = input.length / B;
  const h: Float64Array[][] = state.map((s) => Array.from({ length: B }, (_, b) => Float64Array.from(s.subarray(b * H, (b + 1) * H))));
  const cs: Float64Array[][] = state.map((s) => Array.from({ length: B }, (_, b) => Float64Array.from(s.subarray((B + b) * H, (B + b + 1) * H))));
  const drop = (x: Float64Array, s: number, n: number) => { const m = masks[s]; if (m) for (let i = 0; i < x.length; i++) x[i] *= m[n * x.length + i]; };
  let sum = 0;
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      const n = t * B + b;
      let x: Float64Array = Float64Array.from(p.encoder.subarray(input[n] * E, (input[n] + 1) * E));
      drop(x, 0, n);
      for (let l = 0; l < L; l++) {
        const El = layerInputSize(c, l);
        if (c.cell === "lstm") [h[l][b], cs[l][b]] = lstmStep(p.layers[l], El, H, x, h[l][b], cs[l][b]);
        else h[l][b] = gruStep(p.layers[l], El, H, x, h[l][b]);
        x = Float64Array.from(h[l][b]);
        drop(x, l + 1, n);
      }
      const logits = Array.from({ length: V }, (_, v) => {
        let s = p.decoderBias[v];
        for (let j = 0; j < H; j++) s += p.decoderWeight[v * H + j] * x[j];
        return s;
      });
      const m = Math.max(...logits);
      sum += m + Math.log(logits.reduce((a, z) => a + Math.exp(z - m), 0)) - logits[target[n]];
    }
  }
  return sum / (T * B);
}

/** Asserts |a − e| ≤ tol · max|e| elementwise, per named tensor. */
function assertTensorClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  let scale = 1e-12;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= tol * scale)) assert.fail(`${what}[${i}]: ${actual[i]}, expected ${expected[i]} (error ${err.toExponential(2)} > ${tol} × ${scale.toExponential(2)})`);
  }
}

const TINY = { vocab: 11, emb: 5, hidden: 4, layers: 1, tied: false };
const GRAD_CASES: { name: string; config: LmConfig; dropout: number }[] = [
  { name: "LSTM", config: { cell: "lstm", ...TINY }, dropout: 0 },
  { name: "GRU", config: { cell: "gru", ...TINY }, dropout: 0 },
  { name: "2-layer LSTM, tied, dropout", config: { cell: "lstm", ...TINY, emb: 4, layers: 2, tied: true }, dropout: 0.3 },
  { name: "2-layer GRU, dropout", config: { cell: "gru", ...TINY, layers: 2 }, dropout: 0.3 },
];

for (const { name, config: c, dropout } of GRAD_CASES) {
  test(`${name} LM: every gradient matches central differences of a float64 forward`, async () => {
    for (const rt of await testRuntimes()) {
      const T = 3, B = 2, rng = new Rng(11);
      const { params, grads, graph } = makeGraph(rt, c, T, B, dropout);
      // Biases away from zero, so that their gradients are not special.
      for (const s of paramTable(c)) if (s.name.includes("bias")) new Rng(s.offset).fillUniform(params.subarray(s.offset, s.offset + s.size), -0.5, 0.5);
      const p = viewParams(c, params);
      // A first window leaves a non-zero state; the checked one starts from it.
      graph.resetState();
      graph.forward(randomTokens(rng, T * B, c.vocab), randomTokens(rng, T * B, c.vocab));
      const state = graph.getState();
      const input = randomTokens(rng, T * B, c.vocab), target = randomTokens(rng, T * B, c.vocab);
      const loss = graph.forward(input, target, new Rng(5));
      graph.backward();
      const masks = graph.masks.map((m) => (dropout > 0 ? m.slice() : null));
      if (dropout > 0) assert.ok(masks[0]!.subarray(0, T * B * c.emb).includes(0), "some inputs dropped");
      const ref = () => referenceLoss(c, p, input, target, B, state, masks);
      assert.ok(Math.abs(loss - ref()) <= 1e-5 * ref(), `${label(rt)}: loss ${loss} vs float64 ${ref()}`);

      for (const s of paramTable(c)) {
        const fd = new Float64Array(s.size);
        for (let i = 0; i < s.size; i++) {
          const at = s.offset + i, w = params[at], eps = 1e-3 * Math.max(1, Math.abs(w));
          params[at] = w + eps; const up = ref(), wUp = params[at];
          params[at] = w - eps; const down = ref(), wDown = params[at];
          params[at] = w;
          fd[i] = (up - down) / (wUp - wDown); // the perturbed weights, as float32 stored them
        }
        assertTensorClose(grads.subarray(s.offset, s.offset + s.size), fd, 2e-3, `${label(rt)} ${s.name}`);
      }
    }
  });
}

test("sgdStep clips the global gradient norm as clip_grad_norm_ does", () => {
  const p = Float32Array.of(1, 1, 1), g = Float32Array.of(3, 4, 0);
  assert.equal(sgdStep(p, g, 2, 0.5), 5);
  const step = 2 * 0.5 / (5 + 1e-6);
  assertTensorClose(p, [1 - 3 * step, 1 - 4 * step, 1], 1e-7, "clipped");
  const q = Float32Array.of(1), h = Float32Array.of(0.1);
  sgdStep(q, h, 2, 0.5); // below the bound: plain SGD
  assert.equal(q[0], Math.fround(1 - Math.fround(2 * 0.1)));
});

test("a tiny LSTM LM learns a repeated sequence: near-zero loss and every next token right after 60 steps", async () => {
  const [rt] = await testRuntimes();
  const c: LmConfig = { cell: "lstm", vocab: 11, emb: 8, hidden: 16, layers: 1, tied: false };
  const T = 5, B = 2, { params, grads, graph } = makeGraph(rt, c, T, B, 0);
  // Each stream cycles through 0..10; windows advance through the cycle, so every window has other
  // targets. With the recipe's lr 20 (steps of norm 5 after clipping) the first ~20 windows overshoot
  // above log V, the loss falls below log V / 4 after 30–37 windows (seeds 1–20) and bounces for a
  // few more; by window 60 every seed is below 0.02.
  const stream = (from: number) => Int32Array.from({ length: (T + 1) * B }, (_, n) => (Math.floor(n / B) + 3 * (n % B) + from) % 11);
  graph.resetState();
  let loss = Infinity;
  const steps = 60;
  for (let step = 0; step < steps; step++) {
    const w = stream(step * T);
    grads.fill(0);
    loss = graph.forward(w.subarray(0, T * B), w.subarray(B), new Rng(step));
    graph.backward();
    sgdStep(params, grads, 20, 0.25);
  }
  assert.ok(loss < 0.02 * Math.log(11), `loss after ${steps} steps ${loss}, log V = ${Math.log(11)}`);
  // The next, unseen window evaluated without dropout: the arg-max of every row is its target.
  const w = stream(steps * T), target = w.subarray(B);
  graph.forward(w.subarray(0, T * B), target);
  for (let n = 0; n < T * B; n++) {
    const row = graph.logits.subarray(n * c.vocab, (n + 1) * c.vocab);
    assert.equal(row.indexOf(Math.max(...row)), target[n], `row ${n}: arg-max of the logits`);
  }
});

test("training is deterministic for a seed: the same losses and weights bit for bit", async () => {
  const rt = (await testRuntimes())[1]; // two threads
  const c: LmConfig = { cell: "gru", vocab: 50, emb: 12, hidden: 24, layers: 2, tied: false };
  const run = () => {
    const T = 6, B = 3, { params, grads, graph } = makeGraph(rt, c, T, B, 0.2, 1), rng = new Rng(9), losses: number[] = [];
    graph.resetState();
    for (let step = 0; step < 5; step++) {
      grads.fill(0);
      losses.push(graph.forward(randomTokens(rng, T * B, c.vocab), randomTokens(rng, T * B, c.vocab), batchRng(1, 0, step)));
      graph.backward();
      sgdStep(params, grads, 20, 0.25);
    }
    return { losses, params: params.slice() };
  };
  const a = run(), b = run();
  assert.deepEqual(b.losses, a.losses);
  assert.deepEqual(b.params, a.params);
  assert.notEqual(a.losses[4], a.losses[0]);
});

test("graph errors: window longer than T, backward without a training forward, evaluation-only graph", async () => {
  const [rt] = await testRuntimes();
  const c: LmConfig = { cell: "lstm", ...TINY };
  const { params, graph } = makeGraph(rt, c, 2, 2, 0);
  assert.throws(() => graph.forward(new Int32Array(6), new Int32Array(6)), /exceeds T = 2/);
  assert.throws(() => graph.forward(Int32Array.of(0, 11), Int32Array.of(0, 1)), /input\[1\] = 11 is outside \[0, 11\)/);
  assert.throws(() => graph.backward(), /no training forward/);
  graph.forward(new Int32Array(4), new Int32Array(4));
  assert.throws(() => graph.backward(), /no training forward/);
  const evalOnly = new LmGraph(rt, c, 2, 2, params, null, 0);
  assert.throws(() => evalOnly.forward(new Int32Array(4), new Int32Array(4), new Rng(1)), /evaluation only/);
  assert.throws(() => new LmGraph(rt, c, 2, 2, new Float32Array(params.length), null, 0), /heap arrays/);
});

// ---------------------------------------------------------------------------------------------------
// Checkpoints and the inference side

const INFO = { corpus: "test", seed: 1, epoch: 3, lr: 5, bestValidLoss: 4.25, dropout: 0.2, clip: 0.25, bptt: 3, batch: 2 };

test("checkpoint round trip (F32 exact, F16 rounded) gives the same logits; batch-1 inference agrees", async () => {
  const [rt] = await testRuntimes();
  const c: LmConfig = { cell: "gru", vocab: 13, emb: 6, hidden: 6, layers: 2, tied: true };
  const T = 4, B = 1, { params, graph } = makeGraph(rt, c, T, B, 0);
  const rng = new Rng(2), input = randomTokens(rng, T, c.vocab), target = randomTokens(rng, T, c.vocab);
  graph.resetState();
  graph.forward(input, target);
  const logits = graph.logits.slice();

  const path = join(tmp, "lm.safetensors");
  await saveLm(path, { config: c, params, training: INFO });
  const loaded = await loadLm(path);
  assert.deepEqual(loaded.config, c);
  assert.deepEqual(loaded.training, INFO);
  assert.equal(loaded.resume, undefined);
  assert.deepEqual(loaded.params, params.slice());
  const again = makeGraph(rt, c, T, B, 0);
  again.params.set(loaded.params);
  again.graph.resetState();
  again.graph.forward(input, target);
  assert.deepEqual(again.graph.logits, logits);

  await saveLm(path, { config: c, params, training: INFO, vocabDigest: "ab".repeat(32) }, "F16");
  const half = await loadLm(path);
  assert.deepEqual(half.params, fromF16(toF16(params)));
  assert.equal(half.vocabDigest, "ab".repeat(32));

  // The trained weights in the batch-1 inference layers: step by step, the same logits.
  const inference = new LmInference(rt, c, viewParams(c, params));
  inference.reset();
  for (let t = 0; t < T; t++) {
    assertTensorClose(inference.step(input[t]), logits.subarray(t * c.vocab, (t + 1) * c.vocab), 1e-5, `inference step ${t}`);
  }
});

test("checkpoint errors name the file and say what to do", async () => {
  const c: LmConfig = { cell: "lstm", ...TINY };
  const path = join(tmp, "bad.safetensors");
  await writeFile(path, encodeSafetensors({}, { format: "dualmodule-rnn", version: "1" }));
  await assert.rejects(loadLm(path), /bad\.safetensors: not a language-model checkpoint .*dmi train lm/);
  await writeFile(path, encodeSafetensors({}, { format: "dualmodule-lm", version: "9" }));
  await assert.rejects(loadLm(path), /format version "9" is not supported/);
  await saveLm(path, { config: c, params: new Float32Array(paramCount(c)), training: INFO });
  await assert.rejects(loadLm(join(tmp, "missing.safetensors")), /cannot read language-model checkpoint .* does not exist/);
  await assert.rejects(saveLm(path, { config: { ...c, tied: true }, params: new Float32Array(1), training: INFO }), /tied weights need emb = hidden/);
});

// ---------------------------------------------------------------------------------------------------
// The loop: epochs, checkpoints, resume

function tinyRun(out: string, epochs: number): { run: RunOptions; data: LmData } {
  const rng = new Rng(4), V = 12;
  // A noisy cycle: learnable, so that validation improves at first.
  const seq = (n: number) => Int32Array.from({ length: n }, (_, i) => (rng.uniform() < 0.2 ? rng.int(V) : i % V));
  return {
    run: {
      config: { cell: "lstm", vocab: V, emb: 6, hidden: 8, layers: 1, tied: false }, corpus: "test", epochs, out,
      options: { bptt: 5, batch: 2, evalBatch: 2, lr: 20, clip: 0.25, dropout: 0.2, seed: 3 },
    },
    data: { train: seq(210), valid: seq(60), test: seq(60) },
  };
}

test("resume continues from the saved epoch, lr and window: the same weights as an uninterrupted run", async () => {
  const [rt] = await testRuntimes();
  const straight = tinyRun(join(tmp, "a.safetensors"), 3);
  const reports: { epoch: number; lr: number; improved: boolean; trainLoss: number }[] = [];
  const a = await trainLm(rt, straight.run, straight.data, { onEpoch: (e) => reports.push(e) });
  assert.equal(a.epoch, 3);
  assert.ok(a.testLoss !== null && a.testLoss < Math.log(12), `test loss ${a.testLoss}`);
  const aFinal = (await loadLm(resumePath(straight.run.out))).params;

  // Stopped after 3 windows of the second epoch, then resumed twice (mid-epoch, then at an epoch end).
  const b = tinyRun(join(tmp, "b.safetensors"), 3);
  let windows = 0;
  const first = await trainLm(rt, { ...b.run, epochs: 1 }, b.data);
  assert.equal(first.epoch, 1);
  const stopped = await trainLm(rt, { ...b.run, resume: await loadLm(resumePath(b.run.out)) }, b.data, { stopRequested: () => windows++ >= 3 });
  assert.equal(stopped.stopped, true);
  const mid = await loadLm(resumePath(b.run.out));
  assert.equal(mid.training.epoch, 1);
  assert.equal(mid.resume?.batch, 3);
  assert.equal(mid.training.lr, reports[0].lr);
  assert.equal(mid.training.epochs, b.run.epochs, "the planned total, for a --resume without --epochs");
  const resumedReports: { trainLoss: number }[] = [];
  const done = await trainLm(rt, { ...b.run, resume: mid }, b.data, { onEpoch: (e) => resumedReports.push(e) });
  assert.equal(resumedReports[0].trainLoss, reports[1].trainLoss, "the interrupted epoch's training loss covers all its windows");
  assert.equal(done.epoch, 3);
  assert.equal(done.lr, a.lr);
  assert.equal(done.bestValidLoss, a.bestValidLoss);
  assert.equal(done.testLoss, a.testLoss);
  assert.deepEqual((await loadLm(resumePath(b.run.out))).params, aFinal);
  assert.deepEqual((await loadLm(b.run.out)).params, (await loadLm(straight.run.out)).params);

  // A resume with a different recipe is refused with a hint.
  await assert.rejects(trainLm(rt, { ...b.run, options: { ...b.run.options, seed: 4 }, resume: mid }, b.data), /cannot resume: the checkpoint has seed 3, this run 4/);
});

test("a state stopped after 2 windows resumes with the config's fields in another order, ending where an uninterrupted run ends", async () => {
  const rt = (await testRuntimes())[1]; // two threads
  const straight = tinyRun(join(tmp, "c.safetensors"), 1);
  await trainLm(rt, straight.run, straight.data);
  const b = tinyRun(join(tmp, "d.safetensors"), 1);
  let windows = 0;
  const stopped = await trainLm(rt, b.run, b.data, { stopRequested: () => ++windows > 2 });
  assert.equal(stopped.stopped, true);
  const state = await loadLm(resumePath(b.run.out));
  assert.equal(state.resume?.batch, 2);
  const { cell, vocab, emb, hidden, layers, tied } = b.run.config;
  const reordered: LmConfig = { tied, layers, hidden, emb, vocab, cell };
  const done = await trainLm(rt, { ...b.run, config: reordered, resume: state }, b.data);
  assert.equal(done.stopped, false);
  assert.deepEqual((await loadLm(b.run.out)).params, (await loadLm(straight.run.out)).params);
});
