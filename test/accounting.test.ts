// The dual step's byte count, absolute: one small LSTM with a fixed mask, against a hand count of
// every parameter byte the step reads.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { Stack } from "../src/recurrent/stack.js";
import { DualModel } from "../src/recurrent/dual.js";
import { fitLittleModules } from "../src/recurrent/fit.js";
import { blockProjection } from "../src/dual/projection.js";
import { testRuntimes } from "./helpers.js";
import { randomWeights } from "./reference-rnn.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

// LSTM, E = 3, H = 4: 4H = 16 gate rows of E + H = 7 inputs. Little module: k = 2 (p has 2k = 4
// values), INT8 weights, one joint product (an LSTM's), projection seed 4.
const E = 3, H = 4, K = 2, SEED = 4;

// The projection of seed 4 over [x | h] = [3 | 4] columns, 2k = 4 rows: 6 nonzero columns
// (pinned below, so a change of the generator shows here rather than as a wrong total).
const NONZEROS = 6;

// Hand count, per step, with the mask "gate i all sensitive, gates f, g, o none":
//   big rows:    4 rows (gate i) × (7 weights + 1 bias) × 4 B                          = 128
//                (INT8 big weights: 4 rows × (7 weights × 1 B + 4 B scale + 4 B bias)  =  60)
//   little:      weights 16 rows × 4 × 1 B = 64, scales 16 × 4 B = 64, biases 16 × 4 B = 64 = 192
//   projection:  6 column indices × 2 B = 12, offsets (2·4 + 1) × 4 B (Int32) = 36       =  48
//   thresholds:  4 gates × (lo, hi) × 4 B                                                 =  32
//   total        128 + 192 + 48 + 32 = 400      (INT8 big weights: 60 + 192 + 48 + 32 = 332)
//   dense:       16 rows × 8 × 4 B = 512                          (INT8 big weights: 16 × 15 = 240)
const EXPECTED = {
  32: { big: 128, little: 192 + 48, thresholds: 32, total: 400, dense: 512 },
  8: { big: 60, little: 192 + 48, thresholds: 32, total: 332, dense: 240 },
} as const;

test("a dual step's bytes: every parameter byte it reads, counted by hand for a small LSTM", async () => {
  const [rt] = await testRuntimes();
  assert.equal(blockProjection([E, H], K, SEED).indices.length, NONZEROS);
  for (const bigBits of [32, 8] as const) {
    const rng = new Rng(3);
    const stack = new Stack(rt, { kind: "lstm", input: E, hidden: H, layers: 1, context: 0, residualFrom: 1, bigBits },
      [randomWeights(rng, 4, E, H, 1)]);
    const seqs = Array.from({ length: 6 }, () => Array.from({ length: 8 }, () => Float32Array.from({ length: E }, () => rng.normal())));
    const { littles } = fitLittleModules(rt, stack, seqs, { k: K, bits: 8, seed: SEED });
    const dual = new DualModel(rt, stack, littles);
    // Sensitive iff lo < estimate < hi: (−∞, ∞) takes every row of gate i, (0, 0) none of the others.
    const all = { lo: -Infinity, hi: Infinity }, none = { lo: 0, hi: 0 };
    dual.setThresholds([[all, none, none, none]], 0.75);
    dual.measure(seqs);
    const e = EXPECTED[bigBits], r = dual.accounting.report().perStep;
    assert.equal(r.bigRows, 4, `${bigBits}-bit big rows`);
    assert.equal(r.bigBytes, e.big, `${bigBits}-bit big bytes`);
    assert.equal(r.littleBytes, e.little, `${bigBits}-bit little bytes (projection included)`);
    assert.equal(r.thresholdBytes, e.thresholds, `${bigBits}-bit threshold bytes`);
    assert.equal(r.bytes, e.total, `${bigBits}-bit bytes per step`);
    assert.equal(r.denseBytes, e.dense, `${bigBits}-bit dense bytes`);
    assert.equal(dual.accounting.report().memoryReduction, e.dense / e.total);
    // Ratio 0 skips the little module: the step reads the dense bytes and nothing else.
    dual.setAllSensitive();
    dual.measure(seqs);
    const d = dual.accounting.report().perStep;
    assert.equal(d.bytes, e.dense, `${bigBits}-bit ratio 0`);
    assert.equal(d.littleBytes + d.thresholdBytes, 0);
  }
});
