// Automated gradual pruning (src/recurrent/prune.ts) and its place in the trainer: the schedule
// against the formula, magnitude masks at the target sparsity per matrix, masked gradients keeping
// pruned weights at exactly zero through SGD steps, the record in a pruned checkpoint, and resume
// re-deriving the masks (a stopped and resumed run ends with the same weights as an uninterrupted one).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testRuntimes } from "./helpers.js";
import { Rng, batchRng } from "../src/util/random.js";
import { type LmConfig, loadLm, paramCount, paramTable } from "../src/recurrent/lm.js";
import { LmGraph, resumePath, sgdStep, trainLm, type LmData, type RunOptions } from "../src/recurrent/train.js";
import {
  PruneMasks, lastMaskUpdate, magnitudeMask, maskUpdateDue, pruneRecord, sparsityAt, zeroFractions, type PruneSchedule,
} from "../src/recurrent/prune.js";
import { main as trainMain } from "../src/cli/train-lm.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const tmp = await mkdtemp(join(tmpdir(), "dualmodule-prune-"));
after(() => rm(tmp, { recursive: true, force: true }));

test("the AGP schedule: s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³, updates every Δt and at the ramp's end", () => {
  const s: PruneSchedule = { initial: 0.1, final: 0.8, start: 10, steps: 90, every: 20 };
  const formula = (t: number) => 0.8 + (0.1 - 0.8) * (1 - (t - 10) / 90) ** 3;
  assert.equal(sparsityAt(s, 0), 0);
  assert.equal(sparsityAt(s, 9), 0);
  assert.ok(Math.abs(sparsityAt(s, 10) - 0.1) < 1e-15);
  for (const t of [11, 30, 47, 70, 99]) assert.ok(Math.abs(sparsityAt(s, t) - formula(t)) < 1e-15, `t = ${t}`);
  assert.ok(Math.abs(sparsityAt(s, 40) - (0.8 - 0.7 * (2 / 3) ** 3)) < 1e-15);
  assert.equal(sparsityAt(s, 100), 0.8);
  assert.equal(sparsityAt(s, 1000), 0.8);
  const due = Array.from({ length: 200 }, (_, t) => t).filter((t) => maskUpdateDue(s, t));
  assert.deepEqual(due, [10, 30, 50, 70, 90, 100]);
  assert.equal(lastMaskUpdate(s, 9), null);
  assert.equal(lastMaskUpdate(s, 10), 10);
  assert.equal(lastMaskUpdate(s, 49), 30);
  assert.equal(lastMaskUpdate(s, 99), 90);
  assert.equal(lastMaskUpdate(s, 100), 100);
  assert.equal(lastMaskUpdate(s, 5000), 100);
  // A ramp of length 0 prunes to s_f at once.
  assert.equal(sparsityAt({ ...s, steps: 0 }, 10), 0.8);
  assert.deepEqual(Array.from({ length: 50 }, (_, t) => t).filter((t) => maskUpdateDue({ ...s, steps: 0 }, t)), [10]);
});

test("magnitudeMask prunes exactly round(s·n) smallest magnitudes (ties by index) and contains every earlier mask", () => {
  const rng = new Rng(1);
  for (const n of [1, 7, 100, 1001]) {
    const w = new Float32Array(n);
    rng.fillUniform(w, -1, 1);
    const keep = new Uint8Array(n);
    let prev = new Uint8Array(n).fill(1);
    for (const s of [0, 0.3, 0.5, 0.9, 1]) {
      const before = w.slice();
      const k = magnitudeMask(keep, w, s);
      assert.equal(k, Math.round(s * n));
      assert.equal(keep.reduce((a, v) => a + (1 - v), 0), k);
      let maxPruned = 0, minKept = Infinity;
      for (let i = 0; i < n; i++) {
        if (keep[i]) { minKept = Math.min(minKept, Math.abs(before[i])); assert.equal(w[i], before[i]); } else { maxPruned = Math.max(maxPruned, Math.abs(before[i])); assert.equal(w[i], 0); }
        if (!prev[i]) assert.equal(keep[i], 0, "a pruned weight stays pruned");
      }
      assert.ok(maxPruned <= minKept);
      prev = keep.slice();
    }
  }
  // Ties at the threshold: the lower indices go first.
  const w = Float32Array.of(0.5, -0.2, 0.2, 0.2, 1), keep = new Uint8Array(5);
  magnitudeMask(keep, w, 0.4);
  assert.deepEqual(Array.from(keep), [1, 0, 0, 1, 1]);
});

const CONFIG: LmConfig = { cell: "lstm", vocab: 12, emb: 6, hidden: 8, layers: 2, tied: false };

test("masks per recurrent matrix reach the target; masked gradients keep pruned weights exactly zero through SGD", async () => {
  const [rt] = await testRuntimes();
  const params = rt.heap.f32(paramCount(CONFIG)), grads = rt.heap.f32(params.length);
  const rng = new Rng(2);
  rng.fillUniform(params, -0.3, 0.3);
  const graph = new LmGraph(rt, CONFIG, 5, 2, params, grads, 0.1);
  const masks = new PruneMasks(CONFIG);
  assert.deepEqual(masks.matrices.map((m) => m.name), ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l1", "rnn.weight_hh_l1"]);
  masks.update(params, 0.7);
  for (const m of masks.matrices) assert.equal(masks.sparsity()[m.name], Math.round(0.7 * m.size) / m.size);
  const zeros = zeroFractions(CONFIG, params);
  for (const m of masks.matrices) assert.equal(zeros[m.name], Math.round(0.7 * m.size) / m.size);
  const dense = paramTable(CONFIG).filter((s) => !s.name.startsWith("rnn.weight_"));
  const denseBefore = dense.map((s) => params.slice(s.offset, s.offset + s.size));
  for (let step = 0; step < 5; step++) {
    const input = Int32Array.from({ length: 10 }, () => rng.int(12)), target = Int32Array.from({ length: 10 }, () => rng.int(12));
    grads.fill(0);
    graph.forward(input, target, batchRng(1, 0, step));
    graph.backward();
    masks.maskGrads(grads);
    for (const m of masks.matrices) {
      let live = 0;
      for (let i = 0; i < m.size; i++) {
        if (!m.keep[i]) assert.equal(grads[m.offset + i], 0);
        else if (grads[m.offset + i] !== 0) live++;
      }
      assert.ok(live > 0, `${m.name} still learns`);
    }
    sgdStep(params, grads, 1, 0.25);
    for (const m of masks.matrices) for (let i = 0; i < m.size; i++) if (!m.keep[i]) assert.equal(params[m.offset + i], 0);
  }
  // The embedding, decoder and biases are not pruned (and did train).
  dense.forEach((s, j) => assert.notDeepEqual(params.slice(s.offset, s.offset + s.size), denseBefore[j], s.name));
  assert.ok(dense.every((s) => !s.name.startsWith("rnn.weight_")));
});

/** A noisy cycle (learnable): 210 training tokens are 21 windows of (bptt 5, batch 2), the last one shorter. */
function tinyData(): LmData {
  const rng = new Rng(4);
  const seq = (n: number) => Int32Array.from({ length: n }, (_, i) => (rng.uniform() < 0.2 ? rng.int(12) : i % 12));
  return { train: seq(210), valid: seq(60), test: seq(60) };
}

function run(out: string, extra: Partial<RunOptions> = {}): RunOptions {
  return {
    config: CONFIG, corpus: "test", epochs: 4, out,
    options: { bptt: 5, batch: 2, evalBatch: 2, lr: 5, clip: 0.25, dropout: 0.1, seed: 3 }, ...extra,
  };
}

test("pruning a trained model: target reached per matrix, recorded in the checkpoint; a stopped and resumed run ends identical", async () => {
  const [rt] = await testRuntimes();
  const data = tinyData();
  const denseOut = join(tmp, "dense.safetensors");
  await trainLm(rt, run(denseOut, { epochs: 2 }), data);
  const dense = (await loadLm(denseOut)).params;
  // 21 windows per epoch; the ramp over the first 30 windows, masks updated every 4.
  const prune = { initial: 0, final: 0.8, start: 0, steps: 30, every: 4, from: "dense.safetensors" };
  const straightOut = join(tmp, "p80.safetensors");
  const reports: { pruning?: { sparsity: number; ramping: boolean }; improved: boolean }[] = [];
  const straight = await trainLm(rt, run(straightOut, { init: dense, prune }), data, { onEpoch: (e) => reports.push(e) });
  assert.deepEqual(reports.map((e) => e.pruning?.ramping), [true, false, false, false]);
  assert.equal(reports[0].improved, false, "no best while the ramp rises");
  assert.ok(reports[0].pruning!.sparsity > 0 && reports[0].pruning!.sparsity < 0.8);
  assert.equal(reports[1].pruning!.sparsity, 0.8);

  const best = await loadLm(straightOut), record = pruneRecord(best, straightOut)!;
  assert.equal(record.sparsity, 0.8);
  assert.equal(record.final, 0.8);
  assert.equal(record.from, "dense.safetensors");
  const zeros = zeroFractions(CONFIG, best.params);
  for (const s of paramTable(CONFIG).filter((p) => p.name.startsWith("rnn.weight_"))) {
    assert.equal(zeros[s.name], Math.round(0.8 * s.size) / s.size, s.name);
    assert.equal(record.matrices[s.name], zeros[s.name]);
  }
  assert.deepEqual(straight.params, best.params);
  assert.equal(zeroFractions(CONFIG, dense)["rnn.weight_hh_l0"], 0);

  // The same run stopped mid-ramp (window 13 of epoch 1, between two updates), resumed twice.
  const resumedOut = join(tmp, "p80b.safetensors");
  let windows = 0;
  const stopped = await trainLm(rt, run(resumedOut, { init: dense, prune }), data, { stopRequested: () => windows++ >= 13 });
  assert.equal(stopped.stopped, true);
  const mid = await loadLm(resumePath(resumedOut));
  assert.equal(mid.resume?.batch, 13);
  assert.equal(pruneRecord(mid, "mid")!.sparsity, sparsityAt(prune, 12));
  windows = 0;
  const again = await trainLm(rt, run(resumedOut, { prune, resume: mid }), data, { stopRequested: () => windows++ >= 15 });
  assert.equal(again.stopped, true);
  const done = await trainLm(rt, run(resumedOut, { prune, resume: await loadLm(resumePath(resumedOut)) }), data);
  assert.equal(done.stopped, false);
  assert.deepEqual((await loadLm(resumePath(resumedOut))).params, (await loadLm(resumePath(straightOut))).params);
  assert.deepEqual((await loadLm(resumedOut)).params, best.params);

  // A resume must keep the schedule; a ramp must end within the run.
  await assert.rejects(trainLm(rt, run(resumedOut, { prune: { ...prune, final: 0.9 }, resume: mid }), data),
    /cannot resume: the checkpoint's pruning schedule .* is \[0,0.8,0,30,4\], this run's \[0,0.9,0,30,4\]/);
  await assert.rejects(trainLm(rt, run(resumedOut, { prune: undefined, resume: mid }), data), /this run's none/);
  await assert.rejects(trainLm(rt, run(join(tmp, "x.safetensors"), { init: dense, prune: { ...prune, steps: 84 } }), data),
    /the pruning ramp ends at window 84 but 4 epochs of 21 windows have 84/);
});

test("dmi train lm --prune from the shipped SOTU LSTM-128: model and recipe from the dense file, a pruned checkpoint, then --resume", async () => {
  const dense = fileURLToPath(new URL("../../models/sotu-lstm-128.safetensors", import.meta.url));
  const out = join(tmp, "sotu-p50.safetensors");
  const quick = ["--max-batches", "3", "--eval-batch", "2", "--threads", "1"];
  await trainMain(["--prune", "0.5", "--prune-from", dense, "--prune-steps", "2", "--prune-every", "1", "--epochs", "1", "--out", out, ...quick]);
  const p = await loadLm(out), d = await loadLm(dense), record = pruneRecord(p, out)!;
  assert.deepEqual(p.config, d.config);
  assert.equal(p.training.corpus, "sotu");
  assert.equal(p.training.lr, d.training.lr, "the dense checkpoint's learning rate by default");
  assert.deepEqual({ ...record, matrices: undefined }, { initial: 0, final: 0.5, start: 0, steps: 2, every: 1, from: "sotu-lstm-128.safetensors", sparsity: 0.5, matrices: undefined });
  for (const f of Object.values(zeroFractions(p.config, p.params))) assert.ok(Math.abs(f - 0.5) < 1e-4);
  // --resume continues with the file's schedule (one more epoch), and refuses another target.
  await trainMain(["--resume", "--epochs", "2", "--out", out, ...quick]);
  assert.equal((await loadLm(resumePath(out))).training.epoch, 2);
  assert.equal(pruneRecord(await loadLm(resumePath(out)), out)!.sparsity, 0.5);
  await assert.rejects(trainMain(["--resume", "--prune", "0.8", "--epochs", "3", "--out", out]), /the resumed run prunes to 0.5; drop --prune/);
  await assert.rejects(trainMain(["--prune", "0.8", "--out", out]), /--prune S and --prune-from FILE go together/);
  await assert.rejects(trainMain(["--prune", "0.8", "--prune-from", dense, "--hidden", "64", "--out", out]), /drop --cell, --hidden/);
});
