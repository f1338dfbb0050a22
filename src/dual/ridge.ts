// Closed-form fit of the little module: ridge regression of the big module's pre-activations Y on
// the projected inputs Z, Y ≈ Z·Wᵀ + b, from statistics accumulated in one pass over the data.
// Also the fit's error report (MSE and R² per output) and the product backend both fits share.
//
// The objective (mean squared error between little and big pre-activations) is linear least
// squares, so the normal equations give its exact optimum; SGD (sgd.ts) is the paper's alternative.

import * as check from "../kernels/check.js";
import { gemmReference } from "../kernels/gemm.js";

// ---------------------------------------------------------------------------------------------
// Matrix product backend

/**
 * C (M, N) = op(A) (M, K) · op(B) (K, N), overwriting C or adding to it. op(A) = Aᵀ when transA,
 * A then stored (K, M); likewise B stored (N, K) when transB. Row-major, float32: the signature of
 * the `gemm` kernel (src/kernels/gemm.ts).
 */
export type Gemm = (C: Float32Array, A: Float32Array, B: Float32Array, M: number, N: number, K: number,
                    transA: boolean, transB: boolean, accumulate: boolean) => void;

/**
 * A fast product and an allocator for the arrays it accepts (for the wasm kernels: runtime.heap.f32
 * and runtime.heap.release), used for scratch buffers that live as long as their owner.
 */
export interface GemmBackend {
  gemm: Gemm;
  alloc(length: number): Float32Array;
  release?(a: Float32Array): void;
}

/** The plain-loop backend: the kernel's TypeScript reference (float64 sums) over ordinary arrays. */
export const plainBackend: GemmBackend = { gemm: gemmReference.gemm, alloc: (n) => new Float32Array(n) };

/** Options shared by the fits: a fast product (default: plain loops) and the chunk size it runs on. */
export interface FitOptions {
  backend?: GemmBackend;
  /** Samples per product (scratch is sized for it; larger batches are split). Default 256. */
  chunk?: number;
}

function chunkOf(f: string, options: FitOptions): number {
  const chunk = options.chunk ?? 256;
  check.size(f, "chunk", chunk, 1);
  return chunk;
}

/** E (c, m) = Zc (c, d) · Wᵀ + b, with W (m, d) and b (m). */
export function predict(gemm: Gemm, E: Float32Array, Zc: Float32Array, W: Float32Array, b: Float32Array,
                        c: number, d: number, m: number): void {
  gemm(E, Zc, W, c, m, d, false, true, false);
  for (let s = 0; s < c; s++) for (let o = 0; o < m; o++) E[s * m + o] += b[o];
}

// ---------------------------------------------------------------------------------------------
// Ridge regression

/**
 * Accumulates [Z 1]ᵀ[Z 1] and [Z 1]ᵀY in float64 over any number of batches; solve() returns the
 * ridge solution. Each chunk's ZᵀZ and ZᵀY come from the backend's float32 product and are added
 * into the float64 totals, so precision does not degrade with the number of samples.
 */
export class RidgeAccumulator {
  /** Samples added so far. */
  samples = 0;
  private readonly zz: Float64Array;   // (d, d) Σ z zᵀ
  private readonly zy: Float64Array;   // (d, m) Σ z yᵀ
  private readonly zSum: Float64Array; // (d) Σ z
  private readonly ySum: Float64Array; // (m) Σ y
  private readonly backend: GemmBackend;
  private readonly chunk: number;
  private scratch: { zz: Float32Array; zy: Float32Array; z: Float32Array; y: Float32Array } | null;

  constructor(readonly d: number, readonly m: number, options: FitOptions = {}) {
    const f = "RidgeAccumulator";
    check.size(f, "d", d, 1);
    check.size(f, "m", m, 1);
    this.chunk = chunkOf(f, options);
    this.backend = options.backend ?? plainBackend;
    this.zz = new Float64Array(d * d);
    this.zy = new Float64Array(d * m);
    this.zSum = new Float64Array(d);
    this.ySum = new Float64Array(m);
    const a = this.backend.alloc;
    this.scratch = { zz: a(d * d), zy: a(d * m), z: a(this.chunk * d), y: a(this.chunk * m) };
  }

  /** Adds a batch: Z (batch, d) projected inputs, Y (batch, m) big-module pre-activations. */
  add(Z: Float32Array, Y: Float32Array, batch: number): void {
    const f = "RidgeAccumulator.add";
    const { d, m } = this;
    check.size(f, "batch", batch, 0);
    check.f32(f, "Z", Z, batch * d);
    check.f32(f, "Y", Y, batch * m);
    const s = this.scratch;
    if (!s) throw new Error(`${f}: the accumulator was closed`);
    for (let start = 0; start < batch; start += this.chunk) {
      const c = Math.min(this.chunk, batch - start);
      // Copied so that the backend's product sees arrays it accepts (heap arrays for wasm).
      const z = s.z.subarray(0, c * d), y = s.y.subarray(0, c * m);
      z.set(Z.subarray(start * d, (start + c) * d));
      y.set(Y.subarray(start * m, (start + c) * m));
      this.backend.gemm(s.zz, z, z, d, d, c, true, false, false);
      this.backend.gemm(s.zy, z, y, d, m, c, true, false, false);
      addInto(this.zz, s.zz);
      addInto(this.zy, s.zy);
      for (let r = 0; r < c; r++) {
        for (let i = 0; i < d; i++) this.zSum[i] += z[r * d + i];
        for (let o = 0; o < m; o++) this.ySum[o] += y[r * m + o];
      }
      this.samples += c;
    }
  }

  /**
   * The ridge solution W (m, d), b (m) minimising Σ‖y − W z − b‖² + λ' ‖W‖² (b unregularised).
   * λ is relative: λ' = λ · N · mean variance of the inputs, so one default suits any input scale.
   * Eliminating b leaves the centred system (Cov(z) + λ·mean diag·I) Wᵀ = Cov(z, y), solved by
   * Cholesky in float64; then b = ȳ − W z̄.
   */
  solve(lambda = 1e-4): { W: Float32Array; b: Float32Array } {
    const f = "RidgeAccumulator.solve";
    const { d, m } = this;
    const N = this.samples;
    if (N === 0) throw new Error(`${f}: no samples were added`);
    if (!(lambda >= 0 && Number.isFinite(lambda))) throw new RangeError(`${f}: lambda must be finite and ≥ 0, got ${lambda}`);

    const zMean = this.zSum.map((v) => v / N), yMean = this.ySum.map((v) => v / N);
    const A = new Float64Array(d * d);
    let trace = 0;
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) A[i * d + j] = this.zz[i * d + j] / N - zMean[i] * zMean[j];
      trace += A[i * d + i];
    }
    if (!(trace > 0)) throw new Error(`${f}: the inputs do not vary over the ${N} samples: nothing to fit`);
    const ridge = lambda * trace / d;
    for (let i = 0; i < d; i++) A[i * d + i] += ridge;

    const X = new Float64Array(d * m); // Cov(z, y) (d, m), overwritten by Wᵀ
    for (let i = 0; i < d; i++) {
      for (let o = 0; o < m; o++) X[i * m + o] = this.zy[i * m + o] / N - zMean[i] * yMean[o];
    }
    const L = cholesky(A, d);
    if (typeof L === "number") {
      throw new Error(`${f}: the input covariance is not positive definite at pivot ${L} with λ = ${lambda} `
        + `(too few samples or collinear inputs); use a larger λ, e.g. ${Math.max(lambda * 100, 1e-6)}`);
    }
    solveCholesky(L, X, d, m);

    const W = new Float32Array(m * d), b = new Float32Array(m);
    for (let o = 0; o < m; o++) {
      let s = yMean[o];
      for (let i = 0; i < d; i++) { W[o * d + i] = X[i * m + o]; s -= X[i * m + o] * zMean[i]; }
      b[o] = s;
    }
    return { W, b };
  }

  /** Returns the scratch buffers to the backend's allocator; the accumulator cannot add afterwards. */
  close(): void {
    const s = this.scratch;
    if (!s) return;
    this.scratch = null;
    if (this.backend.release) for (const a of [s.zz, s.zy, s.z, s.y]) this.backend.release(a);
  }
}

function addInto(total: Float64Array, part: Float32Array): void {
  for (let i = 0; i < total.length; i++) total[i] += part[i];
}

/** Lower Cholesky factor L (n, n) of a symmetric A (only its lower triangle is read), or the failing pivot. */
function cholesky(A: Float64Array, n: number): Float64Array | number {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const li = i * n;
    for (let j = 0; j <= i; j++) {
      const lj = j * n;
      let s = A[li + j];
      for (let p = 0; p < j; p++) s -= L[li + p] * L[lj + p];
      if (i === j) {
        if (!(s > 0) || !Number.isFinite(s)) return i;
        L[li + i] = Math.sqrt(s);
      } else {
        L[li + j] = s / L[lj + j];
      }
    }
  }
  return L;
}

/** X (n, m) ← (L Lᵀ)⁻¹ X, column block by column block so that each block stays in cache. */
function solveCholesky(L: Float64Array, X: Float64Array, n: number, m: number): void {
  const BLOCK = 128;
  for (let c0 = 0; c0 < m; c0 += BLOCK) {
    const c1 = Math.min(m, c0 + BLOCK);
    for (let i = 0; i < n; i++) {           // L Y = X
      const xi = i * m;
      for (let j = 0; j < i; j++) {
        const l = L[i * n + j], xj = j * m;
        if (l !== 0) for (let c = c0; c < c1; c++) X[xi + c] -= l * X[xj + c];
      }
      const inv = 1 / L[i * n + i];
      for (let c = c0; c < c1; c++) X[xi + c] *= inv;
    }
    for (let i = n - 1; i >= 0; i--) {      // Lᵀ X = Y
      const xi = i * m;
      for (let j = i + 1; j < n; j++) {
        const l = L[j * n + i], xj = j * m;
        if (l !== 0) for (let c = c0; c < c1; c++) X[xi + c] -= l * X[xj + c];
      }
      const inv = 1 / L[i * n + i];
      for (let c = c0; c < c1; c++) X[xi + c] *= inv;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Error report

export interface FitError {
  samples: number;
  mse: Float64Array;  // (m) mean over samples of (ŷ − y)²
  r2: Float64Array;   // (m) 1 − SSE / SST; NaN for an output that is constant over the samples
  mseAll: number;     // mean over samples and outputs
  r2All: number;      // 1 − Σ SSE / Σ SST, each output about its own mean
}

/** The error of Y ≈ Z·Wᵀ + b over `batch` samples: Z (batch, d), Y (batch, m), W (m, d), b (m). */
export function fitError(W: Float32Array, b: Float32Array, Z: Float32Array, Y: Float32Array, batch: number,
                         options: FitOptions = {}): FitError {
  const f = "fitError";
  check.size(f, "batch", batch, 1);
  if (!(b instanceof Float32Array) || b.length < 1) throw new RangeError(`${f}: b must be a non-empty Float32Array`);
  const m = b.length, d = W.length / m;
  if (!Number.isInteger(d) || d < 1) throw new RangeError(`${f}: W must have m × d elements with m = b.length = ${m}, got ${W.length}`);
  check.f32(f, "Z", Z, batch * d);
  check.f32(f, "Y", Y, batch * m);
  const chunk = chunkOf(f, options), backend = options.backend ?? plainBackend;

  const sse = new Float64Array(m), ySum = new Float64Array(m), ySq = new Float64Array(m);
  const Wc = backend.alloc(m * d), bc = backend.alloc(m), z = backend.alloc(chunk * d), E = backend.alloc(chunk * m);
  try {
    Wc.set(W); bc.set(b);
    for (let start = 0; start < batch; start += chunk) {
      const c = Math.min(chunk, batch - start);
      const zc = z.subarray(0, c * d), Ec = E.subarray(0, c * m);
      zc.set(Z.subarray(start * d, (start + c) * d));
      predict(backend.gemm, Ec, zc, Wc, bc, c, d, m);
      for (let s = 0; s < c; s++) {
        for (let o = 0; o < m; o++) {
          const y = Y[(start + s) * m + o], e = Ec[s * m + o] - y;
          sse[o] += e * e; ySum[o] += y; ySq[o] += y * y;
        }
      }
    }
  } finally {
    if (backend.release) for (const a of [Wc, bc, z, E]) backend.release(a);
  }

  const mse = new Float64Array(m), r2 = new Float64Array(m);
  let sseAll = 0, sstAll = 0;
  for (let o = 0; o < m; o++) {
    const sst = Math.max(0, ySq[o] - ySum[o] * ySum[o] / batch);
    mse[o] = sse[o] / batch;
    r2[o] = sst > 0 ? 1 - sse[o] / sst : NaN;
    sseAll += sse[o]; sstAll += sst;
  }
  return { samples: batch, mse, r2, mseAll: sseAll / (batch * m), r2All: sstAll > 0 ? 1 - sseAll / sstAll : NaN };
}
