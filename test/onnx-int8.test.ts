// onnxruntime's dynamically quantized cells (the INT8 dense baseline of `dmi bench rnn`) against a
// float64 cell that does by hand what the graph should: weights quantized per row (symmetric, as
// quantizeRows), the input quantized by DynamicQuantizeLinear's rule (uint8, one scale and zero
// point over the whole vector, range widened to include 0), the products in exact arithmetic.
import { test } from "node:test";
import { Rng } from "../src/util/random.js";
import { OrtPeer } from "../src/onnx/peer.js";
import { quantizeRows } from "../src/dual/quantize.js";
import { gnmtStackModel, gruQuantizedModel, lstmQuantizedModel } from "../src/recurrent/onnx.js";
import { assertClose } from "./helpers.js";
import { gruStep, lstmStep, randomWeights, type RnnWeights } from "./reference-rnn.js";

function random(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  rng.fillUniform(a, -scale, scale);
  return a;
}

/** x as DynamicQuantizeLinear then dequantization see it: (q − zero point)·scale. */
function dynamicQuantized(x: ArrayLike<number>): Float64Array {
  let lo = 0, hi = 0;
  for (let i = 0; i < x.length; i++) { lo = Math.min(lo, x[i]); hi = Math.max(hi, x[i]); }
  const scale = Math.fround((hi - lo) / 255), zp = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return Float64Array.from(x, (v) => (Math.min(255, Math.max(0, Math.round(v / scale) + zp)) - zp) * scale);
}

/** The weights as the INT8 graph holds them: each row quantized to 8 bits (biases stay fp32). */
function int8Weights(w: RnnWeights, G: number, E: number, H: number): RnnWeights {
  return {
    ...w,
    weight_ih: quantizeRows(w.weight_ih, G * H, E, 8).dequantized,
    weight_hh: quantizeRows(w.weight_hh, G * H, H, 8).dequantized,
  };
}

// Weights quantized per row of [W_ih | W_hh] in the LSTM graph, per row of each in the GRU graph:
// the LSTM reference takes its row scale over both, so it quantizes the interleaved rows.
function lstmInt8Weights(w: RnnWeights, E: number, H: number): RnnWeights {
  const R = 4 * H, W = new Float32Array(R * (E + H));
  for (let r = 0; r < R; r++) { W.set(w.weight_ih.subarray(r * E, (r + 1) * E), r * (E + H)); W.set(w.weight_hh.subarray(r * H, (r + 1) * H), r * (E + H) + E); }
  const q = quantizeRows(W, R, E + H, 8).dequantized, ih = new Float32Array(R * E), hh = new Float32Array(R * H);
  for (let r = 0; r < R; r++) { ih.set(q.subarray(r * (E + H), r * (E + H) + E), r * E); hh.set(q.subarray(r * (E + H) + E, (r + 1) * (E + H)), r * H); }
  return { ...w, weight_ih: ih, weight_hh: hh };
}

const SIZES: [number, number][] = [[5, 7], [13, 4], [40, 24]];

test("ORT's dynamically quantized LSTM and GRU steps compute the INT8 cell", async () => {
  const rng = new Rng(31);
  for (const [E, H] of SIZES) {
    const w = randomWeights(rng, 4, E, H, 1);
    const x = random(rng, E, 2), h0 = random(rng, H), c0 = random(rng, H, 2);
    const xh = dynamicQuantized([...x, ...h0]);
    const [wantH, wantC] = lstmStep(lstmInt8Weights(w, E, H), E, H, xh.subarray(0, E), xh.subarray(E), c0);
    const peer = await OrtPeer.create(lstmQuantizedModel(E, H, w), 1);
    const { h1, c1 } = await peer.run({ x, h0, c0 });
    await peer.release();
    assertClose(h1, wantH, 1, 1e-5, `LSTM h1 E=${E} H=${H}`);
    assertClose(c1, wantC, 1, 1e-5, `LSTM c1 E=${E} H=${H}`);

    const g = randomWeights(rng, 3, E, H, 1);
    const gPeer = await OrtPeer.create(gruQuantizedModel(E, H, g), 1);
    const out = (await gPeer.run({ x, h0 })).h1;
    await gPeer.release();
    // The GRU graph quantizes x and h apart; the state h0 itself enters the update unquantized.
    const want = gruStepSplit(int8Weights(g, 3, E, H), E, H, dynamicQuantized(x), dynamicQuantized(h0), h0);
    assertClose(out, want, 1, 1e-5, `GRU h1 E=${E} H=${H}`);
  }
});

/** gruStep with the h of the products (hq) apart from the h of the update z·h (h). */
function gruStepSplit(w: RnnWeights, E: number, H: number, x: ArrayLike<number>, hq: ArrayLike<number>, h: ArrayLike<number>): Float64Array {
  // gruStep(w, x, hq) = (1 − z)·n + z·hq; swap z·hq for z·h: add z·(h − hq), with z recomputed here.
  const out = gruStep(w, E, H, x, hq);
  for (let j = 0; j < H; j++) {
    let a = w.bias_ih[H + j] + w.bias_hh[H + j];
    for (let c = 0; c < E; c++) a += w.weight_ih[(H + j) * E + c] * x[c];
    for (let c = 0; c < H; c++) a += w.weight_hh[(H + j) * H + c] * hq[c];
    const z = 1 / (1 + Math.exp(-a));
    out[j] += z * (h[j] - hq[j]);
  }
  return out;
}

test("ORT's quantized GNMT stack: each layer the quantized cell, context and residuals as in the LSTM-operator stack", async () => {
  const rng = new Rng(32), X = 6, C = 5, H = 4, layers = 3, residualFrom = 1;
  const ws = Array.from({ length: layers }, (_, l) => randomWeights(rng, 4, (l === 0 ? X : H) + C, H, 1));
  const x = random(rng, X), ctx = random(rng, C);
  const feeds: Record<string, Float32Array> = { x, ctx };
  const hs = ws.map(() => random(rng, H)), cs = ws.map(() => random(rng, H));
  ws.forEach((_, l) => { feeds[`h0_${l}`] = hs[l]; feeds[`c0_${l}`] = cs[l]; });
  let below: ArrayLike<number> = x;
  ws.forEach((w, l) => {
    const E = below.length + C, xh = dynamicQuantized([...Array.from(below), ...ctx, ...hs[l]]);
    const [h] = lstmStep(lstmInt8Weights(w, E, H), E, H, xh.subarray(0, E), xh.subarray(E), cs[l]);
    below = l >= residualFrom ? h.map((v, i) => v + below[i]) : h;
  });
  const peer = await OrtPeer.create(gnmtStackModel(X, H, C, residualFrom, ws, true), 1);
  const { y } = await peer.run(feeds);
  await peer.release();
  assertClose(y, below, 1, 1e-5, "quantized stack y");
});
