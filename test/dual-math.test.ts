// The little module's mathematics against float64 references: projection, ridge and SGD fits,
// quantization, threshold calibration.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { jlDim, blockProjection, checkProjection, projectDense, projectWeights, type SparseProjection } from "../src/dual/projection.js";
import { RidgeAccumulator, fitError, plainBackend, type GemmBackend } from "../src/dual/ridge.js";
import { fitSgd } from "../src/dual/sgd.js";
import { quantizeRows, type Bits } from "../src/dual/quantize.js";
import { bounds, calibrate, insensitiveFraction, topKBounds, REGIONS, type Region } from "../src/dual/calibrate.js";
import { testRuntimes, label } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

function normals(rng: Rng, n: number, sd = 1, mean = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = mean + sd * rng.normal();
  return a;
}

/** P as a dense (k, n) float64 matrix. */
function dense(P: SparseProjection): Float64Array {
  const D = new Float64Array(P.k * P.n);
  for (let i = 0; i < P.k; i++) {
    for (let j = P.offsets[2 * i]; j < P.offsets[2 * i + 1]; j++) D[i * P.n + P.indices[j]] += P.scale;
    for (let j = P.offsets[2 * i + 1]; j < P.offsets[2 * i + 2]; j++) D[i * P.n + P.indices[j]] -= P.scale;
  }
  return D;
}

function maxAbs(a: ArrayLike<number>): number { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i])); return m; }
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m;
}

// ---------------------------------------------------------------------------------------------
// Projection

test("jlDim follows the Johnson–Lindenstrauss bound", () => {
  assert.equal(jlDim(6000), 417);
  assert.equal(jlDim(6000, 0.5), 417);
  assert.equal(jlDim(6000, 0.3), 966);
  // The paper's table labels 266 with ε = 0.3 and 966 with another ε: 266 belongs to ε = 0.7.
  assert.equal(jlDim(6000, 0.7), 266);
  assert.equal(jlDim(3000), Math.floor(4 * Math.log(3000) / (0.125 - 0.125 / 3)));
  assert.throws(() => jlDim(6000, 0), /eps must be in \(0, 1\), got 0/);
  assert.throws(() => jlDim(6000, 1), /eps must be in \(0, 1\)/);
  assert.throws(() => jlDim(6000, NaN), /eps must be in \(0, 1\)/);
  assert.throws(() => jlDim(1), /n must be an integer ≥ 2/);
});

test("blockProjection is block-diagonal, seeded, Achlioptas-distributed", () => {
  const E = 301, H = 177, k = 60;
  const P = blockProjection([E, H], k, 7);
  checkProjection("test", P);
  assert.equal(P.k, 2 * k);
  assert.equal(P.n, E + H);
  assert.equal(P.scale, Math.sqrt(3 / k));
  let plus = 0, minus = 0;
  for (let i = 0; i < 2 * k; i++) {
    const [lo, hi] = i < k ? [0, E] : [E, E + H];
    for (const [a, b] of [[P.offsets[2 * i], P.offsets[2 * i + 1]], [P.offsets[2 * i + 1], P.offsets[2 * i + 2]]]) {
      for (let j = a; j < b; j++) {
        assert.ok(P.indices[j] >= lo && P.indices[j] < hi, `row ${i} reads column ${P.indices[j]} outside its block`);
        if (j > a) assert.ok(P.indices[j] > P.indices[j - 1], "ascending columns");
      }
    }
    plus += P.offsets[2 * i + 1] - P.offsets[2 * i];
    minus += P.offsets[2 * i + 2] - P.offsets[2 * i + 1];
  }
  // Each sign has probability 1/6 over k(E+H) = 28 680 entries: sd ≈ 63.
  const expected = k * (E + H) / 6;
  assert.ok(Math.abs(plus - expected) < 400 && Math.abs(minus - expected) < 400, `signs ${plus}, ${minus} vs ${expected}`);
  // E[PᵀP] = I: the diagonal averages 1 (off-diagonal terms average 0).
  const D = dense(P);
  let diag = 0, off = 0;
  for (let c = 0; c < E + H; c++) {
    let s = 0, t = 0;
    for (let i = 0; i < 2 * k; i++) { s += D[i * P.n + c] ** 2; t += D[i * P.n + c] * D[i * P.n + (c + 1) % P.n]; }
    diag += s; off += t;
  }
  assert.ok(Math.abs(diag / (E + H) - 1) < 0.02, `mean diag of PᵀP ${diag / (E + H)}`);
  assert.ok(Math.abs(off / (E + H)) < 0.05, `mean off-diagonal of PᵀP ${off / (E + H)}`);

  const again = blockProjection([E, H], k, 7), other = blockProjection([E, H], k, 8);
  assert.deepEqual(again.indices, P.indices);
  assert.deepEqual(again.offsets, P.offsets);
  assert.notDeepEqual(other.indices, P.indices);

  assert.throws(() => blockProjection([], 5, 1), /blocks must be a non-empty array/);
  assert.throws(() => blockProjection([4, 0], 5, 1), /blocks\[1\] must be an integer ≥ 1, got 0/);
  assert.throws(() => blockProjection([4], 0, 1), /k must be an integer ≥ 1/);
  assert.throws(() => blockProjection([4], 2, 0.5), /seed must be an integer/);
});

test("projectDense and projectWeights match dense float64 products", () => {
  const rng = new Rng(3);
  const P = blockProjection([23, 17], 9, 11), D = dense(P);
  const x = normals(rng, P.n);
  const y = projectDense(P, x);
  const want = new Float64Array(P.k);
  for (let i = 0; i < P.k; i++) for (let c = 0; c < P.n; c++) want[i] += D[i * P.n + c] * x[c];
  assert.ok(maxDiff(y, want) < 1e-12);
  const y32 = projectDense(P, x, new Float32Array(P.k));
  assert.ok(maxDiff(y32, want) < 1e-5);

  const rows = 5, W = normals(rng, rows * P.n);
  const WP = projectWeights(P, W, rows);
  const wantWP = new Float64Array(rows * P.k);
  for (let r = 0; r < rows; r++) for (let i = 0; i < P.k; i++) for (let c = 0; c < P.n; c++) wantWP[r * P.k + i] += W[r * P.n + c] * D[i * P.n + c];
  assert.ok(maxDiff(WP, wantWP) < 1e-5);

  assert.throws(() => projectDense(P, new Float32Array(P.n - 1)), /x must have 40 elements, got 39/);
  assert.throws(() => projectWeights(P, new Float32Array(rows * P.n + 1), rows), /W must have 200 elements/);
  const broken = { ...P, indices: P.indices.map((c) => (c === 5 ? 99 : c)) };
  assert.throws(() => projectWeights(broken, W, rows), /indices\[\d+\] = 99 is outside \[0, 40\)/);
});

// ---------------------------------------------------------------------------------------------
// Ridge

/** Y (N, m) = Z Wᵀ + b (+ noise), computed in float64 and rounded once. */
function linear(rng: Rng, Z: Float32Array, W: Float64Array, b: Float64Array, N: number, d: number, m: number, noise: number): Float32Array {
  const Y = new Float32Array(N * m);
  for (let s = 0; s < N; s++) {
    for (let o = 0; o < m; o++) {
      let v = b[o] + noise * rng.normal();
      for (let i = 0; i < d; i++) v += W[o * d + i] * Z[s * d + i];
      Y[s * m + o] = v;
    }
  }
  return Y;
}

/** Adds (Z, Y) to the accumulator in uneven batches. */
function addInBatches(acc: RidgeAccumulator, Z: Float32Array, Y: Float32Array, N: number, sizes: number[]): void {
  for (let s = 0, i = 0; s < N; i++) {
    const c = Math.min(sizes[i % sizes.length], N - s);
    acc.add(Z.subarray(s * acc.d, (s + c) * acc.d), Y.subarray(s * acc.m, (s + c) * acc.m), c);
    s += c;
  }
}

test("ridge recovers a noiseless linear map", () => {
  const rng = new Rng(9);
  const N = 700, d = 13, m = 6;
  const Z = normals(rng, N * d, 2, 0.5);
  const Wt = Float64Array.from(normals(rng, m * d)), bt = Float64Array.from(normals(rng, m, 3));
  const Y = linear(rng, Z, Wt, bt, N, d, m, 0);
  const acc = new RidgeAccumulator(d, m, { chunk: 64 });
  addInBatches(acc, Z, Y, N, [1, 100, 37, 0, 250]);
  assert.equal(acc.samples, N);
  const { W, b } = acc.solve(0);
  assert.ok(maxDiff(W, Wt) <= 1e-6 * maxAbs(Wt), `W error ${maxDiff(W, Wt)}`);
  assert.ok(maxDiff(b, bt) <= 1e-6 * maxAbs(bt), `b error ${maxDiff(b, bt)}`);
  const err = fitError(W, b, Z, Y, N);
  assert.ok(err.r2All > 1 - 1e-10 && err.mseAll < 1e-10, `R² ${err.r2All}, MSE ${err.mseAll}`);
});

/** Solves A x = B (n, m) by Gaussian elimination with partial pivoting, in place. */
function gaussSolve(A: Float64Array, B: Float64Array, n: number, m: number): void {
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(A[r * n + c]) > Math.abs(A[p * n + c])) p = r;
    for (let j = 0; j < n; j++) [A[c * n + j], A[p * n + j]] = [A[p * n + j], A[c * n + j]];
    for (let j = 0; j < m; j++) [B[c * m + j], B[p * m + j]] = [B[p * m + j], B[c * m + j]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = A[r * n + c] / A[c * n + c];
      for (let j = 0; j < n; j++) A[r * n + j] -= f * A[c * n + j];
      for (let j = 0; j < m; j++) B[r * m + j] -= f * B[c * m + j];
    }
  }
  for (let r = 0; r < n; r++) for (let j = 0; j < m; j++) B[r * m + j] /= A[r * n + r];
}

test("ridge matches a brute-force solve of the regularised normal equations", () => {
  const rng = new Rng(10);
  const N = 300, d = 9, m = 4, lambda = 0.05;
  const Z = normals(rng, N * d, 1.5, -0.7);
  const Y = linear(rng, Z, Float64Array.from(normals(rng, m * d)), new Float64Array(m).fill(1), N, d, m, 0.5);
  // A = [Z 1]ᵀ[Z 1] + λ' diag(1, …, 1, 0), λ' = λ · N · mean input variance (summed below).
  const n = d + 1, A = new Float64Array(n * n), B = new Float64Array(n * m);
  const row = (s: number, i: number): number => (i < d ? Z[s * d + i] : 1);
  for (let s = 0; s < N; s++) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) A[i * n + j] += row(s, i) * row(s, j);
      for (let o = 0; o < m; o++) B[i * m + o] += row(s, i) * Y[s * m + o];
    }
  }
  let variance = 0;
  for (let i = 0; i < d; i++) variance += A[i * n + i] / N - (A[i * n + d] / N) ** 2;
  for (let i = 0; i < d; i++) A[i * n + i] += lambda * N * variance / d;
  gaussSolve(A, B, n, m);

  const acc = new RidgeAccumulator(d, m, { chunk: 50 });
  addInBatches(acc, Z, Y, N, [77]);
  const { W, b } = acc.solve(lambda);
  const wantW = new Float64Array(m * d), wantB = new Float64Array(m);
  for (let o = 0; o < m; o++) { for (let i = 0; i < d; i++) wantW[o * d + i] = B[i * m + o]; wantB[o] = B[d * m + o]; }
  assert.ok(maxDiff(W, wantW) <= 1e-5 * maxAbs(wantW), `W error ${maxDiff(W, wantW)}`);
  assert.ok(maxDiff(b, wantB) <= 1e-5 * maxAbs(wantB), `b error ${maxDiff(b, wantB)}`);

  // The error report against a direct float64 computation.
  const err = fitError(W, b, Z, Y, N);
  let sse = 0, sst = 0;
  for (let o = 0; o < m; o++) {
    let e2 = 0, mean = 0, v = 0;
    for (let s = 0; s < N; s++) mean += Y[s * m + o] / N;
    for (let s = 0; s < N; s++) {
      let p = b[o];
      for (let i = 0; i < d; i++) p += W[o * d + i] * Z[s * d + i];
      e2 += (p - Y[s * m + o]) ** 2; v += (Y[s * m + o] - mean) ** 2;
    }
    assert.ok(Math.abs(err.mse[o] - e2 / N) < 1e-5 * e2 / N, `mse[${o}]`);
    assert.ok(Math.abs(err.r2[o] - (1 - e2 / v)) < 1e-5, `r2[${o}]`);
    sse += e2; sst += v;
  }
  assert.ok(Math.abs(err.mseAll - sse / (N * m)) < 1e-5 * err.mseAll);
  assert.ok(Math.abs(err.r2All - (1 - sse / sst)) < 1e-5);
  assert.ok(err.r2All > 0.5 && err.r2All < 1, `R² ${err.r2All}: noise must show`);
});

test("ridge uses a given backend for its products and returns its scratch", () => {
  const rng = new Rng(12);
  let products = 0, live = 0;
  const backend: GemmBackend = {
    gemm: (...args) => { products++; plainBackend.gemm(...args); },
    alloc: (n) => { live++; return new Float32Array(n); },
    release: () => { live--; },
  };
  const N = 100, d = 5, m = 3;
  const Z = normals(rng, N * d), Y = linear(rng, Z, Float64Array.from(normals(rng, m * d)), new Float64Array(m), N, d, m, 0);
  const acc = new RidgeAccumulator(d, m, { backend, chunk: 32 });
  acc.add(Z, Y, N);
  assert.equal(products, 2 * 4); // ZᵀZ and ZᵀY per chunk of 32
  const plain = new RidgeAccumulator(d, m);
  plain.add(Z, Y, N);
  assert.ok(maxDiff(acc.solve().W, plain.solve().W) < 1e-6);
  assert.ok(live > 0);
  acc.close();
  assert.equal(live, 0);
  assert.throws(() => acc.add(Z, Y, N), /accumulator was closed/);
  products = 0;
  fitError(plain.solve().W, plain.solve().b, Z, Y, N, { backend, chunk: 40 });
  assert.equal(products, 3);
  assert.equal(live, 0);
});

test("the fits give the same results on the runtimes' gemm kernel, and release their scratch", async () => {
  const rng = new Rng(13);
  const N = 300, V = 70, d = 37, m = 53;
  const Z = normals(rng, N * d), valZ = normals(rng, V * d), W0 = Float64Array.from(normals(rng, m * d)), b0 = new Float64Array(m).fill(0.5);
  const Y = linear(rng, Z, W0, b0, N, d, m, 0.3), valY = linear(rng, valZ, W0, b0, V, d, m, 0.3);
  const plain = new RidgeAccumulator(d, m, { chunk: 64 });
  plain.add(Z, Y, N);
  const want = plain.solve();
  const init = { W: new Float32Array(m * d), b: new Float32Array(m) };
  const sgdOptions = { Z, Y, samples: N, d, m, init, valZ, valY, valSamples: V, epochs: 2, batch: 16 };
  const wantSgd = fitSgd(sgdOptions);
  const wantErr = fitError(want.W, want.b, valZ, valY, V);
  for (const rt of await testRuntimes()) {
    const inUse = rt.heap.bytesInUse;
    const backend: GemmBackend = { gemm: rt.kernels.gemm, alloc: (n) => rt.heap.f32(n), release: (a) => rt.heap.release(a) };
    const acc = new RidgeAccumulator(d, m, { backend, chunk: 64 });
    acc.add(Z, Y, N);
    const got = acc.solve();
    acc.close();
    assert.ok(maxDiff(got.W, want.W) < 1e-5 * maxAbs(want.W), `${label(rt)}: ridge W`);
    assert.ok(maxDiff(got.b, want.b) < 1e-5 * maxAbs(want.b), `${label(rt)}: ridge b`);
    const err = fitError(want.W, want.b, valZ, valY, V, { backend });
    assert.ok(Math.abs(err.mseAll - wantErr.mseAll) < 1e-5 * wantErr.mseAll, `${label(rt)}: fitError`);
    const sgd = fitSgd({ ...sgdOptions, backend });
    assert.ok(maxDiff(sgd.W, wantSgd.W) < 1e-4 * maxAbs(wantSgd.W), `${label(rt)}: SGD W`);
    assert.equal(rt.heap.bytesInUse, inUse, `${label(rt)}: scratch released`);
  }
});

test("ridge fails clearly on bad input", () => {
  const acc = new RidgeAccumulator(3, 2);
  assert.throws(() => acc.solve(), /no samples were added/);
  assert.throws(() => acc.add(new Float32Array(5), new Float32Array(4), 2), /Z must have 6 elements, got 5/);
  assert.throws(() => acc.add(new Float32Array(6), new Float64Array(4) as unknown as Float32Array, 2), /Y must be a Float32Array/);
  assert.throws(() => new RidgeAccumulator(0, 2), /d must be an integer ≥ 1/);
  // Input 2 is always zero: its variance is exactly 0, so the system is singular without λ.
  const rng = new Rng(1);
  const Z = new Float32Array(3 * 20).map((_, i) => (i % 3 === 2 ? 0 : rng.normal()));
  acc.add(Z, normals(rng, 2 * 20), 20);
  assert.throws(() => acc.solve(0), /not positive definite at pivot 2 .*use a larger λ/);
  assert.throws(() => acc.solve(-1), /lambda must be finite and ≥ 0/);
  const { W } = acc.solve(1e-4);
  assert.equal(W[2], 0); // the regularised weight of an input that never varies
  const flat = new RidgeAccumulator(2, 1);
  flat.add(new Float32Array(8).fill(3), new Float32Array(4), 4);
  assert.throws(() => flat.solve(), /inputs do not vary/);
});

// ---------------------------------------------------------------------------------------------
// SGD

test("SGD from the projected big weights approaches the ridge optimum", () => {
  const rng = new Rng(21);
  const E = 30, H = 30, k = 12, m = 8, N = 3000, V = 1000;
  const n = E + H, P = blockProjection([E, H], k, 4), d = P.k;
  const Wbig = normals(rng, m * n, 1 / Math.sqrt(n)), bBig = normals(rng, m, 0.5);
  const sample = (count: number): { Z: Float32Array; Y: Float32Array } => {
    const U = normals(rng, count * n);
    const Z = new Float32Array(count * d), Y = new Float32Array(count * m);
    for (let s = 0; s < count; s++) {
      const u = U.subarray(s * n, (s + 1) * n);
      projectDense(P, u, Z.subarray(s * d, (s + 1) * d));
      for (let o = 0; o < m; o++) {
        let v = bBig[o];
        for (let c = 0; c < n; c++) v += Wbig[o * n + c] * u[c];
        Y[s * m + o] = v;
      }
    }
    return { Z, Y };
  };
  const train = sample(N), val = sample(V);

  const acc = new RidgeAccumulator(d, m);
  acc.add(train.Z, train.Y, N);
  const ridge = acc.solve(1e-6);
  const ridgeMse = fitError(ridge.W, ridge.b, val.Z, val.Y, V).mseAll;

  const init = { W: projectWeights(P, Wbig, m), b: bBig };
  const options = { ...train, samples: N, d, m, init, valZ: val.Z, valY: val.Y, valSamples: V, epochs: 12, batch: 32, seed: 3 };
  const epochs: number[] = [];
  const sgd = fitSgd({ ...options, onEpoch: (e) => epochs.push(e.epoch) });
  const initMse = sgd.history[0].valMse;
  assert.ok(Math.abs(initMse - fitError(init.W, init.b, val.Z, val.Y, V).mseAll) < 1e-6 * initMse);
  const sgdMse = fitError(sgd.W, sgd.b, val.Z, val.Y, V).mseAll;
  assert.deepEqual(epochs, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.ok(ridgeMse < 0.8 * initMse, `ridge ${ridgeMse} vs initial ${initMse}`);
  assert.ok(sgdMse < 0.8 * initMse, `SGD ${sgdMse} vs initial ${initMse}`);
  assert.ok(sgdMse < 1.02 * ridgeMse, `SGD ${sgdMse} vs ridge ${ridgeMse}`);
  assert.equal(sgdMse.toPrecision(6), Math.min(...sgd.history.map((h) => h.valMse)).toPrecision(6), "the best epoch is returned");
  for (let i = 1; i < sgd.history.length; i++) {
    const h = sgd.history[i], before = sgd.history[i - 1];
    const improvedBefore = before.valMse < Math.min(...sgd.history.slice(0, i - 1).map((e) => e.valMse));
    if (i > 1) assert.equal(h.lr, improvedBefore ? before.lr : before.lr / 4, `lr of epoch ${i}`);
  }
  // Seeded: the same run again gives the same weights.
  assert.deepEqual(fitSgd(options).W, sgd.W);
  assert.throws(() => fitSgd({ ...options, lr: 2 }), /lr must be in \(0, 2\)/);
  assert.throws(() => fitSgd({ ...options, valSamples: V + 1 }), /valZ must have/);
  assert.throws(() => fitSgd({ ...options, epochs: 0 }), /epochs must be an integer ≥ 1/);
});

// ---------------------------------------------------------------------------------------------
// Quantization

test("quantizeRows: levels, error bounds and sizes at every width", () => {
  const rng = new Rng(31);
  const rows = 7, cols = 13;
  const W = normals(rng, rows * cols);
  W.fill(0, 2 * cols, 3 * cols);                       // row 2: zeros
  W.fill(0, 4 * cols, 5 * cols); W[4 * cols + 6] = -2.5; // row 4: one nonzero
  for (const bits of [1, 2, 4, 8, 16, 32] as Bits[]) {
    const r = quantizeRows(W, rows, cols, bits);
    assert.equal(r.bits, bits);
    assert.equal(r.scales.length, rows);
    assert.equal(r.dequantized.length, rows * cols);
    assert.equal(r.bytes, bits === 32 ? rows * cols * 4 : Math.ceil(rows * cols * bits / 8) + 4 * rows);
    assert.equal(r.q === null, bits > 8);
    if (bits === 32) { assert.deepEqual(r.dequantized, W); continue; }
    const L = bits === 1 ? 1 : 2 ** (bits - 1) - 1;
    assert.equal(r.scales[2], 1);
    for (let c = 0; c < cols; c++) assert.equal(r.dequantized[2 * cols + c], 0);
    if (bits >= 2) assert.ok(Math.abs(r.dequantized[4 * cols + 6] + 2.5) < 1e-6 * 2.5, `${bits} bits: the row maximum is exact`);
    for (let row = 0; row < rows; row++) {
      const s = r.scales[row];
      let mean = 0, max = 0;
      for (let c = 0; c < cols; c++) { mean += Math.abs(W[row * cols + c]) / cols; max = Math.max(max, Math.abs(W[row * cols + c])); }
      if (max > 0) assert.ok(Math.abs(s - (bits === 1 ? mean : max / L)) < 1e-6 * s, `${bits} bits: scale of row ${row}`);
      for (let c = 0; c < cols; c++) {
        const i = row * cols + c, w = W[i], deq = r.dequantized[i];
        if (r.q) {
          const q = r.q[i];
          assert.ok(Math.abs(q) <= L, `${bits} bits: level ${q}`);
          if (bits === 1 && max > 0) assert.equal(q, w >= 0 ? 1 : -1);
          assert.equal(deq, Math.fround(s * q));
        }
        if (bits >= 2) assert.ok(Math.abs(w - deq) <= s / 2 * (1 + 1e-6), `${bits} bits: |${w} − ${deq}| > ${s}/2`);
      }
    }
  }
  assert.throws(() => quantizeRows(W, rows, cols, 3 as Bits), /bits must be one of 1, 2, 4, 8, 16, 32, got 3/);
  assert.throws(() => quantizeRows(W, rows, cols + 1, 8), /W must have 98 elements, got 91/);
  const bad = Float32Array.from(W); bad[5] = NaN;
  assert.throws(() => quantizeRows(bad, rows, cols, 8), /W\[5\] = NaN must be finite/);
  assert.equal(quantizeRows(new Float32Array(0), 0, 4, 8).bytes, 0);
});

// ---------------------------------------------------------------------------------------------
// Calibration

test("bounds turn post-activation thresholds into sensitive pre-activation intervals", () => {
  assert.deepEqual(bounds("sigmoid", 0.5), { lo: 0, hi: Infinity });
  assert.deepEqual(bounds("sigmoid", 0), { lo: -Infinity, hi: Infinity });
  const t = bounds("tanh", Math.tanh(2));
  assert.ok(Math.abs(t.hi - 2) < 1e-12 && t.lo === -t.hi);
  assert.deepEqual(bounds("relu", 0.25), { lo: 0.25, hi: Infinity });
  // The interval agrees with the paper's rule on the post-activation output.
  const rng = new Rng(41);
  for (let i = 0; i < 1000; i++) {
    const a = 4 * rng.normal(), theta = rng.uniform();
    const s = bounds("sigmoid", theta), h = bounds("tanh", theta);
    assert.equal(s.lo < a && a < s.hi, 1 / (1 + Math.exp(-a)) > theta, `sigmoid a=${a} θ=${theta}`);
    assert.equal(h.lo < a && a < h.hi, Math.abs(Math.tanh(a)) < theta, `tanh a=${a} θ=${theta}`);
  }
  assert.throws(() => bounds("sigmoid", 1.5), /theta must be in \[0, 1\] for sigmoid, got 1.5/);
  assert.throws(() => bounds("tanh", -0.1), /theta must be in \[0, 1\] for tanh/);
  assert.throws(() => bounds("softmax" as Region, 0.5), /region must be one of sigmoid, tanh, relu, got softmax/);
});

/** The insensitive counts a threshold can produce on `keys` (lower keys insensitive first). */
function reachable(keys: Float64Array): number[] {
  const s = Float64Array.from(keys).sort(), out = [0];
  for (let j = 1; j <= s.length; j++) if (j === s.length || s[j - 1] < s[j]) out.push(j);
  return out;
}

test("calibrate hits the ratio within 1/n on random data for every region", () => {
  const rng = new Rng(42);
  for (const region of REGIONS) {
    for (const n of [1, 2, 999, 4000]) {
      const a = normals(rng, n, 3, 0.5);
      for (const ratio of [0, 0.1, 0.25, 0.5, 0.77, 0.9, 0.999]) {
        const c = calibrate(region, a, ratio);
        const got = insensitiveFraction(c, a);
        assert.equal(got, c.achieved);
        assert.ok(Math.abs(got - ratio) <= 0.5 / n + 1e-12, `${region} n=${n} ratio ${ratio}: got ${got}`);
        assert.equal(c.target, ratio);
        if (ratio === 0) assert.deepEqual([c.lo, c.hi, c.theta], region === "tanh" ? [-Infinity, Infinity, 1] : [-Infinity, Infinity, region === "sigmoid" ? 0 : -Infinity]);
        if (region === "tanh") assert.equal(c.lo, -c.hi);
        // θ maps back to the same interval (away from saturation).
        if (region !== "relu") {
          const b = bounds(region, c.theta);
          assert.ok(b.lo === c.lo || Math.abs(b.lo - c.lo) < 1e-9 * Math.max(1, Math.abs(c.lo)), `${region} θ round trip`);
        }
      }
    }
  }
  assert.equal(calibrate("relu", Float32Array.of(-1, 2, 3, -4), 0.5).theta, -1);
});

test("calibrate picks the nearest reachable ratio when values tie", () => {
  const rng = new Rng(43);
  for (const region of REGIONS) {
    // Few distinct values: ties everywhere.
    const a = new Float32Array(501).map(() => rng.int(9) - 4);
    const keys = Float64Array.from(a, (v) => (region === "tanh" ? -Math.abs(v) : v));
    const counts = reachable(keys);
    for (const ratio of [0, 0.05, 0.3, 0.5, 0.61, 0.95]) {
      const c = calibrate(region, a, ratio);
      const target = ratio * a.length;
      const best = Math.min(...counts.map((j) => Math.abs(j - target)));
      const count = Math.round(c.achieved * a.length);
      assert.ok(counts.includes(count), `${region}: ${count} is reachable`);
      assert.equal(Math.abs(count - target), best, `${region} ratio ${ratio}: ${count} of ${a.length}`);
      assert.equal(insensitiveFraction(c, a), c.achieved);
      assert.deepEqual(calibrate(region, a, ratio), c, "deterministic");
    }
  }
  // All equal: nothing or everything; the smaller wins a tie.
  assert.equal(calibrate("sigmoid", new Float32Array(10).fill(2), 0.5).achieved, 0);
  assert.equal(calibrate("sigmoid", new Float32Array(10).fill(2), 0.6).achieved, 1);
});

test("calibrate and insensitiveFraction reject bad arguments", () => {
  const a = Float32Array.of(1, 2, 3);
  assert.throws(() => calibrate("sigmoid", a, 1), /ratio must be in \[0, 1\), got 1/);
  assert.throws(() => calibrate("tanh", a, -0.1), /ratio must be in \[0, 1\)/);
  assert.throws(() => calibrate("relu", a, NaN), /ratio must be in \[0, 1\), got NaN/);
  assert.throws(() => calibrate("relu", new Float32Array(0), 0.5), /samples is empty/);
  assert.throws(() => calibrate("relu", Float32Array.of(1, NaN), 0.5), /samples\[1\] = NaN must be finite/);
  assert.throws(() => calibrate("gelu" as Region, a, 0.5), /region must be one of/);
  assert.throws(() => insensitiveFraction({ lo: 0, hi: 1 }, new Float32Array(0)), /samples is empty/);
  assert.throws(() => topKBounds("tanh", a, 0.5, new Uint8Array(2)), /mask must be a Uint8Array of 3 elements/);
  assert.throws(() => topKBounds("tanh", a, 1), /ratio must be in \[0, 1\)/);
});

test("topKBounds marks exactly floor(ratio · n) of the most saturated pre-activations", () => {
  const rng = new Rng(44);
  for (const region of REGIONS) {
    for (const n of [1, 7, 1500]) {
      for (const ties of [false, true]) {
        const pre = ties ? new Float32Array(n).map(() => rng.int(5) - 2) : normals(rng, n, 2);
        const key = (v: number): number => (region === "tanh" ? -Math.abs(v) : v);
        for (const ratio of [0, 0.3, 0.5, 0.9]) {
          const mask = new Uint8Array(n), scratch = new Float32Array(n + 3);
          const b = topKBounds(region, pre, ratio, mask, scratch);
          const want = Math.floor(ratio * n);
          assert.equal(b.count, want);
          assert.equal(mask.reduce((s, v) => s + (1 - v), 0), want, `${region} n=${n} ratio ${ratio} ties=${ties}`);
          // Every insensitive key is ≤ every sensitive key, and ties split by index.
          let maxIn = -Infinity, minOut = Infinity, lastTieIn = -1, firstTieOut = n;
          for (let i = 0; i < n; i++) {
            if (mask[i] === 0) maxIn = Math.max(maxIn, key(pre[i])); else minOut = Math.min(minOut, key(pre[i]));
          }
          assert.ok(maxIn <= minOut);
          for (let i = 0; i < n; i++) {
            if (key(pre[i]) !== b.lo) continue;
            if (mask[i] === 0) lastTieIn = i; else firstTieOut = Math.min(firstTieOut, i);
          }
          if (want > 0) assert.ok(lastTieIn < firstTieOut, "ties go insensitive by index");
          // Without ties the bounds alone select the same elements.
          if (!ties) for (let i = 0; i < n; i++) assert.equal(mask[i], b.lo < pre[i] && pre[i] < b.hi ? 1 : 0);
          assert.deepEqual(topKBounds(region, pre, ratio), b, "same bounds without mask and scratch");
        }
      }
    }
  }
});
