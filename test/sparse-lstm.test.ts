// An LSTM layer holding its big weights in compressed rows (a pruned layer: src/recurrent/lstm.ts
// `sparse`) against the same weights held dense, zeros and all: dense steps, big-module rows, the
// dense view of the weights, the bytes counted; and dual-module inference on the pruned stack
// (little modules fitted to the pruned weights) against the same little modules on the dense one.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { testRuntimes, label, assertClose } from "./helpers.js";
import { Rng } from "../src/util/random.js";
import { Stack, type StackConfig, type LayerWeights } from "../src/recurrent/stack.js";
import { magnitudeMask } from "../src/recurrent/prune.js";
import { fitLittleModules } from "../src/recurrent/fit.js";
import { DualModel } from "../src/recurrent/dual.js";
import { blockBytes } from "../src/kernels/sparse.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const CONFIG: StackConfig = { kind: "lstm", input: 13, hidden: 24, layers: 2, context: 0, residualFrom: 2 };

/** Random weights, each weight matrix pruned by magnitude to `sparsity`. */
function prunedWeights(rng: Rng, sparsity: number): LayerWeights[] {
  const H = CONFIG.hidden, R = 4 * H;
  return [CONFIG.input, H].map((E) => {
    const u = (n: number) => { const a = new Float32Array(n); rng.fillUniform(a, -0.4, 0.4); return a; };
    const w = { weight_ih: u(R * E), weight_hh: u(R * H), bias_ih: u(R), bias_hh: u(R) };
    magnitudeMask(new Uint8Array(w.weight_ih.length), w.weight_ih, sparsity);
    magnitudeMask(new Uint8Array(w.weight_hh.length), w.weight_hh, sparsity);
    return w;
  });
}

const sequence = (rng: Rng, n: number) => Array.from({ length: n }, () => {
  const x = new Float32Array(CONFIG.input);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  return x;
});

test("a sparse LSTM stack steps, recomputes rows and counts bytes as the same pruned weights held dense", async () => {
  for (const rt of await testRuntimes()) {
    const rng = new Rng(1), weights = prunedWeights(rng, 0.8);
    const dense = new Stack(rt, CONFIG, weights), sparse = new Stack(rt, { ...CONFIG, sparseBig: true }, weights);
    for (const x of sequence(rng, 6)) {
      const a = dense.step(x).slice(), b = sparse.step(x);
      assertClose(b, a, 1, 1e-5, `${label(rt)} dense step`);
    }
    sparse.layers.forEach((cell, l) => {
      const d = dense.layers[l];
      assert.deepEqual(cell.W, d.W, "the dense view holds the pruned weights as zeros");
      assert.deepEqual(cell.weights(), d.weights());
      if (cell.kind !== "lstm" || d.kind !== "lstm") throw new Error("LSTM layers expected");
      // Big-module rows: the listed rows recomputed from the same pre-activation estimates.
      const rows = Int32Array.from({ length: cell.rows }, (_, r) => r).filter((r) => r % 3 !== 1), count = rows.length;
      const idx = rt.heap.i32(cell.rows);
      idx.set(rows);
      const pre = new Float32Array(cell.rows);
      rng.fillUniform(pre, -1, 1);
      cell.xh.set(d.xh); cell.c.set(d.c);
      cell.pre.set(pre); d.pre.set(pre);
      cell.computeRows(idx, count); d.computeRows(idx, count);
      assertClose(cell.pre, d.pre, 1, 1e-5, `${label(rt)} layer ${l} rows`);
      assertClose(cell.h, d.h, 1, 1e-5, `${label(rt)} layer ${l} h`);
      // Bytes: the nonzeros' blocks (fp32 value + u16 index), a row pointer and a bias per row.
      let nnz = 0, blocks = 0, listed = 0;
      const W = d.W;
      for (let r = 0; r < cell.rows; r++) {
        let n = 0;
        for (let c = 0; c < cell.cols; c++) if (W[r * cell.cols + c] !== 0) n++;
        nnz += n; blocks += blockBytes(n);
        if (r % 3 !== 1) listed += blockBytes(n) + 8;
      }
      assert.equal(cell.nonzeros, nnz);
      assert.ok(Math.abs(nnz / (cell.rows * cell.cols) - 0.2) < 0.01);
      assert.equal(cell.bigBytes(cell.rows), blocks + 8 * cell.rows);
      assert.equal(cell.rowBytes(idx, count), listed);
      assert.ok(Math.abs(cell.bigBytes(count) - (count / cell.rows) * (blocks + 8 * cell.rows)) < 1e-9, "the average row for a count");
      assert.ok(cell.bigBytes(cell.rows) < 0.4 * d.bigBytes(d.rows), "80 % pruned: about 0.3 of the dense bytes, and the row overheads");
      assert.equal(d.rowBytes(idx, count), d.bigBytes(count));
    });
  }
});

test("dual-module inference on the pruned stack: little modules fitted to the pruned weights, the same steps as on the dense view", async () => {
  const [rt] = await testRuntimes();
  const rng = new Rng(2), weights = prunedWeights(rng, 0.9);
  const dense = new Stack(rt, CONFIG, weights), sparse = new Stack(rt, { ...CONFIG, sparseBig: true }, weights);
  const train = Array.from({ length: 8 }, () => sequence(rng, 30)), valid = Array.from({ length: 3 }, () => sequence(rng, 30));
  const a = fitLittleModules(rt, dense, train, { k: 8 }).littles, b = fitLittleModules(rt, sparse, train, { k: 8 }).littles;
  const dualDense = new DualModel(rt, dense, a), dualSparse = new DualModel(rt, sparse, b);
  const ta = dualDense.calibrate(valid, 0.5), tb = dualSparse.calibrate(valid, 0.5);
  tb.forEach((row, l) => row.forEach((bounds, g) => {
    assert.ok(Math.abs(bounds.lo - ta[l][g].lo) <= 1e-4 * (1 + Math.abs(ta[l][g].lo)) || bounds.lo === ta[l][g].lo, `layer ${l} gate ${g} lo`);
  }));
  dualSparse.setThresholds(ta, 0.5);
  dualDense.accounting.reset(); dualSparse.accounting.reset();
  let maxDiff = 0, sameRows = 0, steps = 0;
  for (const x of sequence(rng, 40)) {
    const h1 = dualDense.step(x).slice(), h2 = dualSparse.step(x);
    for (let i = 0; i < h1.length; i++) maxDiff = Math.max(maxDiff, Math.abs(h1[i] - h2[i]));
    for (let l = 0; l < 2; l++) if (dualDense.sensitiveRows(l).join() === dualSparse.sensitiveRows(l).join()) sameRows++;
    steps++;
  }
  assert.ok(maxDiff < 1e-3, `outputs agree: max |Δ| ${maxDiff}`);
  assert.ok(sameRows >= 2 * steps - 2, `the same sensitive rows at nearly every step (${sameRows} of ${2 * steps})`);
  const rd = dualDense.accounting.report(), rs = dualSparse.accounting.report();
  assert.ok(rs.insensitiveRatio > 0.3, `achieved ratio ${rs.insensitiveRatio}`);
  assert.ok(rs.perStep.bigBytes < 0.25 * rd.perStep.bigBytes, "the big module reads only the nonzeros of the sensitive rows");
});
