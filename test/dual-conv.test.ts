// The dual-module convolution: the INT8 GEMM and its input kernels against exact references, the
// little module against a float64 reference, and the dual-module ResNet-18 (ratio 0 is the dense
// network bit for bit, calibrated ratios hold on held-out images, skipped outputs are not computed,
// the accounting adds up, bad input is named).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { type PatchGeometry, patchGeometry } from "../src/kernels/conv.js";
import { MAX_I8_COLS } from "../src/kernels/quant.js";
import { reference } from "../src/kernels/index.js";
import { randomResNetWeights, resnet18Small } from "../src/conv/resnet.js";
import { NO_WATCH } from "../src/util/stopwatch.js";
import { DualResNet } from "../src/conv/dual.js";
import { saveDualResNet } from "../src/conv/dual-checkpoint.js";
import { type DualBackend, LittleConv, littleConvDims, referenceDualBackend, runtimeDualBackend } from "../src/conv/dual-conv.js";
import { quantizeRows } from "../src/dual/quantize.js";
import { IMAGE_SIZE, imagesToFloat, loadImageSet } from "../src/data/images.js";
import { impls, testRuntimes } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

// ---------------------------------------------------------------------------------------------
// Kernels

/** Y (M, N) from the exact integer sums, scaled as the interface specifies. */
function gemmI8Expected(Wq: Int8Array, wScales: Float32Array, Xq: Int8Array, xScales: Float32Array, perColumn: boolean,
                        bias: Float32Array | null, M: number, N: number, K: number): Float32Array {
  const Y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let acc = 0;
    for (let k = 0; k < K; k++) acc += Wq[m * K + k] * Xq[n * K + k];
    const v = Math.fround(Math.fround(acc) * Math.fround(wScales[m] * xScales[perColumn ? n : 0]));
    Y[m * N + n] = bias ? Math.fround(v + bias[m]) : v;
  }
  return Y;
}

test("gemmI8 equals the exact integer product scaled in f32, on odd shapes, per-column and per-tensor scales", async () => {
  const rng = new Rng(21);
  // [M, N, K]: empty, tiny, odd sizes around the 4×2 blocks and 16-byte steps, one past the two-thread threshold.
  const shapes: [number, number, number][] = [[0, 3, 5], [1, 1, 1], [3, 5, 15], [5, 3, 17], [7, 9, 33], [17, 31, 16], [16, 784, 48], [33, 257, 37]];
  for (const impl of await impls()) {
    for (const [M, N, K] of shapes) {
      for (const perColumn of [true, false]) {
        const Wq = impl.i8(M * K), Xq = impl.i8(N * K), wScales = impl.f32(M), xScales = impl.f32(perColumn ? N : 1), bias = impl.f32(M);
        for (let i = 0; i < Wq.length; i++) Wq[i] = rng.int(256) - 128;
        for (let i = 0; i < Xq.length; i++) Xq[i] = rng.int(255) - 127;
        for (let i = 0; i < M; i++) wScales[i] = 0.001 + 0.01 * rng.uniform();
        for (let i = 0; i < xScales.length; i++) xScales[i] = 0.002 + 0.01 * rng.uniform();
        rng.fillUniform(bias, -1, 1);
        const b = perColumn ? bias : null, Y = impl.f32(M * N).fill(NaN);
        impl.k.gemmI8(Y, Wq, wScales, Xq, xScales, perColumn, b, M, N, K);
        assert.deepEqual(Array.from(Y), Array.from(gemmI8Expected(Wq, wScales, Xq, xScales, perColumn, b, M, N, K)),
          `${impl.name} ${M}×${N}×${K} perColumn=${perColumn}`);
      }
    }
    // Extremes: −128·−128 everywhere sums past 2^24 and must stay exact (i32), tail included.
    const K = 4099, Wq = impl.i8(5 * K).fill(-128), Xq = impl.i8(3 * K).fill(-128), Y = impl.f32(15);
    impl.k.gemmI8(Y, Wq, impl.f32(5).fill(1), Xq, impl.f32(1).fill(1), false, null, 5, 3, K);
    assert.deepEqual(Array.from(Y), new Array(15).fill(Math.fround(K * 16384)), `${impl.name} extremes`);
  }
});

test("quantizeRowsI8 quantizes each row as quantize does, and names a non-finite row", async () => {
  const rng = new Rng(22);
  for (const impl of await impls()) {
    for (const [rows, cols] of [[0, 4], [1, 1], [7, 36], [300, 49]]) {
      const X = impl.f32(rows * cols), Q = impl.i8(rows * cols), scales = impl.f32(rows);
      for (let i = 0; i < X.length; i++) X[i] = rng.normal() * (1 + (i % 7));
      if (rows > 2) X.fill(0, cols, 2 * cols); // a zero row: scale 1, levels 0
      impl.k.quantizeRowsI8(Q, scales, X, rows, cols);
      for (let r = 0; r < rows; r++) {
        const q = new Int8Array(cols);
        const s = reference.quantize(q, X.slice(r * cols, (r + 1) * cols), cols);
        assert.equal(scales[r], s, `${impl.name} ${rows}×${cols} row ${r} scale`);
        assert.deepEqual(Array.from(Q.subarray(r * cols, (r + 1) * cols)), Array.from(q), `${impl.name} ${rows}×${cols} row ${r}`);
      }
    }
    const X = impl.f32(3 * 20).fill(1);
    for (const bad of [NaN, Infinity, -Infinity]) {
      X[45] = bad;
      assert.throws(() => impl.k.quantizeRowsI8(impl.i8(60), impl.f32(3), X, 3, 20), /quantizeRowsI8: X row 2 has a NaN or infinite value/, impl.name);
    }
  }
});

test("im2rowI8 cuts the same patches as im2row, into padded rows whose padding it leaves alone", async () => {
  const rng = new Rng(23);
  const geometries: PatchGeometry[] = [
    patchGeometry(1, 1, 1, 1), patchGeometry(4, 28, 28, 3, 1, 1), patchGeometry(5, 9, 9, 3, 2, 1),
    patchGeometry(2, 11, 11, 5, 2, 2), patchGeometry(3, 6, 6, 1, 2, 0), patchGeometry(3, 9, 9, 4, 1, 2),
    { C: 3, H: 7, W: 5, R: 3, S: 2, strideH: 2, strideW: 3, padTop: 1, padLeft: 0, OH: 4, OW: 2 },
  ];
  for (const impl of await impls()) {
    for (const g of geometries) {
      const CRS = g.C * g.R * g.S, P = g.OH * g.OW;
      const x = impl.i8(g.C * g.H * g.W);
      for (let i = 0; i < x.length; i++) x[i] = rng.int(255) - 127;
      const want = new Float32Array(P * CRS);
      reference.im2row(want, Float32Array.from(x), g);
      for (const rowBytes of [CRS, Math.ceil(CRS / 16) * 16 + 16]) {
        const patches = impl.i8(P * rowBytes).fill(77);
        impl.k.im2rowI8(patches, x, g, rowBytes);
        for (let p = 0; p < P; p++) {
          for (let j = 0; j < rowBytes; j++) {
            const v = patches[p * rowBytes + j], w = j < CRS ? want[p * CRS + j] : 77;
            if (v !== w) assert.fail(`${impl.name} ${JSON.stringify(g)} rowBytes ${rowBytes}: patch ${p} byte ${j} is ${v}, expected ${w}`);
          }
        }
      }
    }
  }
});

test("im2rowSensitive cuts exactly the patches of positions with a listed output, and leaves the other rows alone", async () => {
  const rng = new Rng(25);
  const cases: [PatchGeometry, number][] = [
    [patchGeometry(1, 1, 1, 1), 1], [patchGeometry(16, 28, 28, 3, 1, 1), 16], [patchGeometry(5, 9, 9, 3, 2, 1), 3],
    [{ C: 3, H: 7, W: 5, R: 3, S: 2, strideH: 2, strideW: 3, padTop: 1, padLeft: 0, OH: 4, OW: 2 }, 7],
  ];
  for (const impl of await impls()) {
    for (const [g, K] of cases) {
      const P = g.OH * g.OW, CRS = g.C * g.R * g.S;
      const x = impl.f32(g.C * g.H * g.W);
      rng.fillUniform(x, -1, 1);
      const want = new Float32Array(P * CRS);
      reference.im2row(want, Float32Array.from(x), g);
      for (const density of [0, 0.02, 0.3, 1]) {
        const listed: number[] = [];
        for (let i = 0; i < K * P; i++) if (rng.uniform() < density) listed.push(i);
        const idx = impl.i32(listed.length + 2).fill(-5); // longer than count: the tail is ignored
        idx.set(listed);
        const needed = new Set(listed.map((i) => i % P));
        const patches = impl.f32(P * CRS).fill(NaN);
        impl.k.im2rowSensitive(patches, x, g, idx, listed.length, K);
        for (let p = 0; p < P; p++) for (let j = 0; j < CRS; j++) {
          const v = patches[p * CRS + j];
          if (needed.has(p) ? v !== want[p * CRS + j] : !Number.isNaN(v)) {
            assert.fail(`${impl.name} ${JSON.stringify(g)} density ${density}: patch ${p} element ${j} is ${v}${needed.has(p) ? `, expected ${want[p * CRS + j]}` : ", should be untouched"}`);
          }
        }
      }
    }
    const g = patchGeometry(1, 3, 3, 3, 1, 1), idx = impl.i32(3);
    idx.set([4, 2, 7]);
    assert.throws(() => impl.k.im2rowSensitive(impl.f32(81), impl.f32(9), g, idx, 3, 2), /im2rowSensitive: idx\[1\] = 2 must be greater than idx\[0\] = 4/);
    idx.set([4, 12, 18]);
    assert.throws(() => impl.k.im2rowSensitive(impl.f32(81), impl.f32(9), g, idx, 3, 2), /idx\[2\] = 18 must be .* below K·P = 18/);
    assert.throws(() => impl.k.im2rowSensitive(impl.f32(81), impl.f32(9), g, idx, 4, 2), /idx must have at least count = 4 elements, got 3/);
  }
});

test("int8 GEMM kernels name bad arguments before running", async () => {
  for (const impl of await impls()) {
    const Y = impl.f32(6).fill(5), Wq = impl.i8(8), Xq = impl.i8(12), ws = impl.f32(2).fill(1), xs = impl.f32(3).fill(1);
    assert.throws(() => impl.k.gemmI8(Y, Wq, ws, Xq, impl.f32(2).fill(1), true, null, 2, 3, 4), /gemmI8: xScales must have 3 elements, got 2/);
    assert.throws(() => impl.k.gemmI8(Y, Wq, ws, Xq, impl.f32(3).fill(0), true, null, 2, 3, 4), /gemmI8: xScales\[0\] = 0 must be finite and > 0/);
    assert.throws(() => impl.k.gemmI8(Y, Wq, impl.f32(2).fill(NaN), Xq, xs, true, null, 2, 3, 4), /gemmI8: wScales\[0\] = NaN must be finite and > 0/);
    assert.throws(() => impl.k.gemmI8(Y, impl.i8(6), ws, Xq, xs, true, null, 2, 3, 4), /gemmI8: Wq must have 8 elements, got 6/);
    assert.throws(() => impl.k.gemmI8(Y, Wq, ws, Xq, xs, true, impl.f32(3), 2, 3, 4), /gemmI8: bias must have 2 elements, got 3/);
    assert.throws(() => impl.k.gemmI8(Y.subarray(0, 0), impl.i8(0), impl.f32(0), impl.i8(0), xs.subarray(0, 1), false, null, 0, 0, MAX_I8_COLS + 1),
      /K must be ≤ 131071/);
    const aliasOfY = new Int8Array(Y.buffer, Y.byteOffset, 8);
    assert.throws(() => impl.k.gemmI8(Y, aliasOfY, ws, Xq, xs, true, null, 2, 3, 4), /gemmI8: Y must not overlap Wq/);
    assert.throws(() => impl.k.im2rowI8(impl.i8(10), impl.i8(4), patchGeometry(1, 2, 2, 3, 1, 1), 8), /im2rowI8: rowBytes must be an integer ≥ 9, got 8/);
    assert.throws(() => impl.k.im2rowI8(impl.i8(10), impl.i8(4), patchGeometry(1, 2, 2, 3, 1, 1), 9), /im2rowI8: patches must have 36 elements, got 10/);
    assert.ok(Y.every((v) => v === 5), `${impl.name}: a rejected call wrote Y`);
  }
});

// ---------------------------------------------------------------------------------------------
// The little module

const mnist = loadImageSet("mnist", "test");
const PX = IMAGE_SIZE * IMAGE_SIZE;
function digits(from: number, count: number): Float32Array[] {
  return Array.from({ length: count }, (_, i) => imagesToFloat(new Float32Array(PX), mnist, [from + i]));
}

async function backend(): Promise<DualBackend> {
  return runtimeDualBackend((await testRuntimes())[0]);
}

test("littleConvDims: Johnson–Lindenstrauss k for K channels, capped at C·R·S; channel projections in whole channels", () => {
  assert.deepEqual(littleConvDims({ C: 64, K: 64, R: 3, S: 3 }, { projection: "patch" }), { k: 199, channels: 0 });
  assert.deepEqual(littleConvDims({ C: 4, K: 64, R: 3, S: 3 }, { projection: "patch" }), { k: 36, channels: 0 });
  assert.deepEqual(littleConvDims({ C: 64, K: 64, R: 3, S: 3 }, {}), { k: 198, channels: 22 });
  assert.deepEqual(littleConvDims({ C: 64, K: 64, R: 3, S: 3 }, { k: 40 }), { k: 36, channels: 4 });
  assert.throws(() => littleConvDims({ C: 4, K: 4, R: 3, S: 3 }, { k: 0 }), /k must be a positive integer, got 0/);
  assert.throws(() => littleConvDims({ C: 4, K: 4, R: 3, S: 3 }, { projection: "rows" as "patch" }), /projection must be "patch" or "channel"/);
});

test("little module estimates agree with a float64 reference within the quantization error bound (both projections, INT8 and INT4)", async () => {
  const be = await backend(), rng = new Rng(24);
  const g = patchGeometry(6, 9, 9, 3, 2, 1), K = 11, P = g.OH * g.OW, CRS = 54;
  const x = be.f32(6 * 81);
  rng.fillUniform(x, -1, 2);
  const patches = be.f32(P * CRS);
  be.kernels.im2row(patches, x, g);
  for (const projection of ["patch", "channel"] as const) {
    for (const bits of [8, 4] as const) {
      const little = new LittleConv(be, g, K, { projection, bits, k: 18, seed: 5 });
      const W = new Float32Array(K * little.k), b = new Float32Array(K);
      for (let i = 0; i < W.length; i++) W[i] = rng.normal();
      rng.fillUniform(b, -1, 1);
      little.setWeights(W, b);
      const E = be.f32(K * P);
      little.estimate(E, x, patches);
      // float64: z = P·patch (from the f32 projection, exact up to its own rounding), e = W z + b.
      const Z = Float64Array.from(little.project(x, patches));
      const q = quantizeRows(W, K, little.k, bits);
      for (let p = 0; p < P; p++) {
        const z = Z.subarray(p * little.k, (p + 1) * little.k);
        // The input scale: per position ("patch") or for the whole projected image ("channel").
        const zMax = projection === "patch" ? Math.max(...z.map(Math.abs)) : Math.max(...Z.map(Math.abs));
        const sz = zMax / 127;
        for (let k = 0; k < K; k++) {
          let e = b[k], bound = 1e-5 * Math.abs(b[k]);
          for (let j = 0; j < little.k; j++) {
            const w = W[k * little.k + j];
            e += w * z[j];
            // |w z − ŵ ẑ| ≤ |w|·sz/2 + (|z| + sz/2)·|w − ŵ|, plus f32 rounding of the projection and the scaling.
            bound += Math.abs(w) * sz / 2 + (Math.abs(z[j]) + sz / 2) * Math.abs(w - q.dequantized[k * little.k + j])
              + 1e-5 * Math.abs(w * z[j]);
          }
          const got = E[k * P + p];
          if (!(Math.abs(got - e) <= bound)) assert.fail(`${projection} INT${bits}: estimate (${k}, ${p}) is ${got}, float64 ${e}, bound ${bound}`);
        }
      }
    }
  }
  assert.throws(() => new LittleConv(be, g, K, { bits: 2 }), /bits must be 8 or 4 with the projection predictor, got 2/);
  const unfitted = new LittleConv(be, g, K);
  assert.throws(() => unfitted.estimate(be.f32(K * P), x, patches), /no weights yet; fit it first/);
  assert.throws(() => unfitted.setWeights(new Float32Array(3), new Float32Array(K)), /W must be \(11, \d+\)/);
});

test("the seernet predictor is the big convolution with INT4/INT2 weights on INT8 input: exact against float64 of the quantized operands", async () => {
  const be = await backend(), rng = new Rng(31);
  const g = patchGeometry(5, 8, 8, 3, 1, 1), K = 7, P = g.OH * g.OW, CRS = 45;
  const x = be.f32(5 * 64), W = new Float32Array(K * CRS), b = new Float32Array(K);
  rng.fillUniform(x, 0, 2);
  for (let i = 0; i < W.length; i++) W[i] = rng.normal();
  rng.fillUniform(b, -1, 1);
  const patches = be.f32(P * CRS);
  be.kernels.im2row(patches, x, g);
  const sx = Math.fround(Math.max(...x) / 127);
  for (const bits of [4, 2] as const) {
    const little = new LittleConv(be, g, K, { predictor: "seernet", bits, k: 3, projection: "patch" });
    assert.equal(little.k, CRS, "no projection: k is the patch length whatever --k says");
    assert.equal(little.projectionAdds, 0);
    assert.equal(little.macs, K * CRS * P);
    little.setWeights(W, b);
    const E = be.f32(K * P);
    little.estimate(E, x, patches);
    const q = quantizeRows(W, K, CRS, bits), L = bits === 4 ? 7 : 1;
    assert.ok(q.q!.every((v) => Math.abs(v) <= L), `INT${bits} levels within ±${L}`);
    let worst = 0;
    for (let k = 0; k < K; k++) for (let p = 0; p < P; p++) {
      let e = b[k], mag = Math.abs(b[k]);
      for (let j = 0; j < CRS; j++) {
        const xq = Math.max(-127, Math.min(127, Math.round(patches[p * CRS + j] / sx))) * sx;
        e += q.dequantized[k * CRS + j] * xq;
        mag += Math.abs(q.dequantized[k * CRS + j] * xq);
      }
      worst = Math.max(worst, Math.abs(E[k * P + p] - e) / mag);
    }
    assert.ok(worst < 1e-5, `INT${bits}: relative error ${worst} against float64 of the quantized operands`);
    assert.throws(() => little.project(x, patches), /seernet predictor has no projection/);
  }
  assert.throws(() => new LittleConv(be, g, K, { predictor: "seernet", bits: 8 }), /bits must be 4 or 2 with the seernet predictor, got 8/);
});

// ---------------------------------------------------------------------------------------------
// The dual-module ResNet-18 (random weights, width 4 or 8: the tests check mechanics, not accuracy)

test("ratio 0 reproduces the dense network's logits bit for bit, and costs exactly the dense operations", async () => {
  const be = await backend(), config = resnet18Small(4), weights = randomResNetWeights(config, 3);
  const net = new DualResNet(be, config, weights, { k: 18 });
  net.fit(digits(0, 6));
  assert.deepEqual(net.calibrate(digits(100, 4), 0), new Array(16).fill(0));
  for (const x of digits(200, 3)) {
    const want = Array.from(net.dense.forward(x));
    assert.deepEqual(Array.from(net.forward(x)), want);
  }
  const r = net.report();
  assert.equal(r.images, 3);
  assert.equal(r.insensitiveRatio, 0);
  assert.equal(r.macsLittle, 0);
  assert.equal(r.macsBig + r.macsDenseOnly, r.macsDenseNetwork);
  assert.equal(r.opsReductionFp32eq, 1);
});

test("calibrated ratios hold within 2 points on held-out images; the fit is near exact when nothing is projected away", async () => {
  const be = await backend(), config = resnet18Small(8), weights = randomResNetWeights(config, 4);
  // A projection to k = C·R·S (nearly) loses nothing: what is left is the INT8 quantization.
  const exact = new DualResNet(be, config, weights, { k: 10_000, projection: "patch" });
  const fitExact = exact.fit(digits(0, 12));
  for (const f of fitExact) assert.ok(f.relativeError < 2e-3, `${f.name}: 1 − R² = ${f.relativeError} with k = C·R·S = ${f.k}`);

  const net = new DualResNet(be, config, weights, { k: 18 });
  const fit = net.fit(digits(0, 40));
  const held = net.fitError(digits(300, 5));
  for (const [i, f] of held.entries()) {
    assert.ok(f.relativeError > 3e-3 && f.relativeError < 0.9, `${f.name}: held-out 1 − R² = ${f.relativeError} (train ${fit[i].relativeError})`);
  }
  const test = digits(500, 24);
  for (const ratio of [0.5, 0.8]) {
    const achieved = net.calibrate(digits(100, 24), ratio);
    // Estimates tie (an all-zero background patch gives each channel exactly its little bias), and a
    // tie block falls on one side of a threshold: a layer's calibrated ratio can miss by a few points.
    for (const a of achieved) assert.ok(Math.abs(a - ratio) < 0.035, `calibration ratio ${a} for ${ratio}`);
    for (const x of test) net.forward(x);
    const r = net.report();
    assert.ok(Math.abs(r.insensitiveRatio - ratio) <= 0.02, `held-out ratio ${r.insensitiveRatio} for ${ratio}`);
    r.layers.forEach((l, i) => assert.ok(Math.abs(l.insensitiveRatio - achieved[i]) <= 0.02,
      `${l.name}: held-out ratio ${l.insensitiveRatio}, calibrated ${achieved[i]} for ${ratio}`));
    net.resetCounts();
  }
});

test("insensitive outputs are skipped (NaN weight rows and patches never read), zero or the little value; sensitive ones are exact", async () => {
  const be = await backend(), config = resnet18Small(4), weights = randomResNetWeights(config, 5);
  const net = new DualResNet(be, config, weights, { k: 18 });
  net.fit(digits(0, 6));
  net.calibrate(digits(100, 6), 0.5);
  const x = digits(400, 1)[0];
  net.dense.forward(x);
  // layer1.1.conv2: its input is layer1.1.conv1's output, its residual layer1.0.conv2's.
  const { dual } = net.layers[3], input = be.f32(dual.conv.geometry.C * 28 * 28), residual = be.f32(dual.K * dual.P);
  input.set(net.dense.blocks[1].conv1.y);
  residual.set(net.dense.blocks[0].conv2.y);
  const K = dual.K, P = dual.P, CRS = dual.CRS;
  const denseY = dual.conv.forward(input, residual, true, NO_WATCH).slice();
  // Channel 1 predicted far below any threshold everywhere: its big weights must never be read.
  const little = dual.little, b = little.bias;
  const savedBias = b[1];
  b[1] = -1e9;
  const w = dual.conv.weight, savedRow = w.slice(CRS, 2 * CRS);
  w.fill(NaN, CRS, 2 * CRS);
  try {
    for (const mode of ["zero", "little"] as const) {
      dual.mode = mode;
      dual.samples = [];                     // also keep the estimates (+ residual) it thresholds
      // Patches of positions without a sensitive output are neither cut nor read: left NaN, they must not show.
      (dual as unknown as { patches: Float32Array }).patches.fill(NaN);
      const y = dual.forward(input, residual).slice();
      const pre = dual.samples[0];
      dual.samples = null;
      let sensitive = 0;
      for (let k = 0; k < K; k++) for (let p = 0; p < P; p++) {
        const i = k * P + p;
        assert.ok(Number.isFinite(y[i]), `${mode}: output (${k}, ${p}) is ${y[i]}`);
        if (pre[i] > dual.threshold) {
          sensitive++;
          // The same sum in another order (one dot product against the GEMM's blocks): f32 rounding apart.
          assert.ok(Math.abs(y[i] - denseY[i]) <= 1e-5 * (1 + Math.abs(denseY[i])), `${mode}: sensitive output (${k}, ${p}) is ${y[i]}, dense ${denseY[i]}`);
        } else {
          assert.equal(y[i], mode === "zero" ? 0 : Math.max(pre[i], 0), `${mode}: insensitive output (${k}, ${p})`);
        }
      }
      assert.ok(sensitive > 0.2 * K * P && sensitive < 0.8 * K * P, `${mode}: ${sensitive} of ${K * P} sensitive`);
      for (let p = 0; p < P; p++) assert.ok(!(pre[P + p] > dual.threshold), "channel 1 is insensitive everywhere");
      let empty = 0;
      for (let p = 0; p < P; p++) {
        let any = false;
        for (let k = 0; k < K; k++) any ||= pre[k * P + p] > dual.threshold;
        if (!any) empty++;
      }
      assert.ok(empty >= 10, `${mode}: only ${empty} of ${P} positions have no sensitive output (their NaN patches test nothing)`);
    }
  } finally {
    w.set(savedRow, CRS);
    b[1] = savedBias;
  }
});

test("the plain TypeScript kernels run the same dual-module network: no decision flips, then the same logits within 1e-5", async () => {
  const config = resnet18Small(4), weights = randomResNetWeights(config, 8), images = digits(200, 2);
  const [fast, ref] = [new DualResNet(await backend(), config, weights, { k: 18, mode: "little" }),
                       new DualResNet(referenceDualBackend, config, weights, { k: 18, mode: "little" })];
  // The same little weights in both (fitted once, on the reference), so only the kernels differ.
  ref.fit(digits(0, 3));
  ref.layers.forEach((l, i) => fast.layers[i].dual.little.setWeights(l.dual.little.weights!.W, l.dual.little.weights!.b));
  // Thresholds pinned layer by layer on these very images, each at the middle of the widest gap
  // between the reference's estimates near the 60 % quantile: no estimate lies near a threshold.
  const margins = ref.layers.map((l, i) => {
    const est = layerEstimates(ref, i, images).sort();
    let best = { gap: -1, at: 0 };
    for (let j = Math.floor(0.4 * est.length); j < Math.floor(0.8 * est.length); j++) {
      if (est[j + 1] - est[j] > best.gap) best = { gap: est[j + 1] - est[j], at: (est[j] + est[j + 1]) / 2 };
    }
    l.dual.threshold = fast.layers[i].dual.threshold = best.at;
    return best.gap / 2;
  });
  // No decision flips: every estimate of the fast kernels is on the reference's side of its threshold.
  fast.layers.forEach((l, i) => {
    const f = layerEstimates(fast, i, images), r = layerEstimates(ref, i, images), t = l.dual.threshold;
    for (let j = 0; j < r.length; j++) {
      assert.ok((f[j] > t) === (r[j] > t), `${l.name}: estimate ${j} is ${f[j]} (fast) and ${r[j]} (reference) around threshold ${t}`);
    }
    assert.ok(Math.abs(f[0] - r[0]) < margins[i], `${l.name}: the margin ${margins[i]} covers the kernels' difference`);
  });
  const logits = [fast, ref].map((net) => { net.resetCounts(); return images.map((x) => Array.from(net.forward(x))); });
  const [a, b] = [fast, ref].map((n) => n.report());
  a.layers.forEach((l, i) => assert.equal(l.insensitiveRatio, b.layers[i].insensitiveRatio, l.name));
  assert.ok(b.insensitiveRatio > 0.3 && b.insensitiveRatio < 0.9, `insensitive ratio ${b.insensitiveRatio}`);
  const scale = Math.max(...logits[1].flat().map(Math.abs));
  logits[0].flat().forEach((v, i) => assert.ok(Math.abs(v - logits[1].flat()[i]) <= 1e-5 * scale, `logit ${i}: ${v} and ${logits[1].flat()[i]}`));
});

/** Layer i's estimates (residual included) on `images`, with the network's current thresholds. */
function layerEstimates(net: DualResNet, i: number, images: Float32Array[]): Float64Array {
  const samples: Float32Array[] = [], dual = net.layers[i].dual;
  dual.samples = samples;
  try {
    for (const x of images) net.forward(x);
  } finally {
    dual.samples = null;
  }
  return Float64Array.from(samples.flatMap((s) => Array.from(s)));
}

test("accounting: per-layer costs add up to the totals, and the reduction follows from them", async () => {
  const be = await backend(), config = resnet18Small(4), weights = randomResNetWeights(config, 6);
  const net = new DualResNet(be, config, weights, { k: 27, projection: "patch", bits: 4, mode: "little" });
  net.fit(digits(0, 6));
  net.calibrate(digits(100, 6), 0.7);
  for (const x of digits(200, 4)) net.forward(x);
  const r = net.report();
  const sum = (f: (l: (typeof r.layers)[number]) => number) => r.layers.reduce((s, l) => s + f(l), 0);
  assert.equal(r.images, 4);
  assert.equal(r.layers.length, 16);
  assert.equal(r.macsDenseNetwork, net.dense.macs);
  assert.equal(r.macsDenseOnly + sum((l) => l.macsDense), r.macsDenseNetwork);
  assert.equal(r.macsBig, sum((l) => l.macsBig));
  assert.equal(r.macsLittle, sum((l) => l.macsLittle));
  assert.equal(r.macsLittleFp32eq, r.macsLittle * 4 / 32);
  assert.equal(r.projectionAdds, sum((l) => l.projectionAdds));
  for (const l of r.layers) {
    assert.equal(l.k, 27);
    assert.equal(l.macsLittle, l.K * 27 * l.positions);
    assert.ok(Math.abs(l.macsBig - (1 - l.insensitiveRatio) * l.macsDense) < 1e-6 * l.macsDense, l.name);
  }
  const ops = r.macsDenseOnly + r.macsBig + r.macsLittleFp32eq;
  assert.equal(r.opsReductionFp32eq, r.macsDenseNetwork / (ops + r.projectionAdds));
  assert.equal(r.opsReductionFp32eqNoProjection, r.macsDenseNetwork / ops);
});

test("a seernet dual ResNet: nothing is fitted, its little module is the big one quantized, its accounting has no projection; it is not saved", async () => {
  const be = await backend(), config = resnet18Small(4), weights = randomResNetWeights(config, 6);
  const net = new DualResNet(be, config, weights, { predictor: "seernet", bits: 2, mode: "zero" });
  const fit = net.fit(digits(0, 3));
  fit.forEach((f) => assert.ok(f.relativeError > 0 && f.relativeError < 1, `${f.name}: INT2 weights estimate with error ${f.relativeError}`));
  net.layers.forEach(({ dual }) => assert.deepEqual(dual.little.weights!.W, dual.conv.weight, "the little weights are the folded big ones"));
  net.calibrate(digits(100, 4), 0.6);
  for (const x of digits(200, 3)) net.forward(x);
  const r = net.report();
  assert.equal(r.projectionAdds, 0);
  assert.equal(r.macsLittleFp32eq, r.macsLittle * 2 / 32);
  for (const l of r.layers) assert.equal(l.macsLittle, l.macsDense, `${l.name}: SeerNet's little module has the big one's multiply-adds`);
  await assert.rejects(saveDualResNet("/tmp/never-written.safetensors", net, weights, 0.6), /seernet predictor is the ResNet's own weights quantized/);
});

test("dual-module ResNet names bad input: image size, ratio, weights of another network, empty image sets", async () => {
  const be = await backend(), config = resnet18Small(4), weights = randomResNetWeights(config, 7);
  const net = new DualResNet(be, config, weights, { k: 9 });
  assert.throws(() => net.fit([]), /fit: no images to fit on/);
  net.fit(digits(0, 2));
  for (const bad of [1, -0.1, NaN]) assert.throws(() => net.calibrate(digits(0, 2), bad), /ratio must be in \[0, 1\)/);
  assert.throws(() => net.calibrate([], 0.5), /no calibration images/);
  assert.throws(() => net.forward(new Float32Array(3 * 28 * 28)), /an image must be a Float32Array of 1×28×28 = 784 floats.*got 2352 floats/);
  assert.throws(() => net.forward([0] as unknown as Float32Array), /got Array/);
  assert.throws(() => new DualResNet(be, config, randomResNetWeights(resnet18Small(8), 1)), /do not match ResNet-18/);
  assert.throws(() => { net.mode = "half" as "zero"; }, /mode must be "zero" or "little"/);
});
