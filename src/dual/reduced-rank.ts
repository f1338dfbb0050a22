// The data-aware alternative to the paper's random projection: the r input directions that best
// predict a layer's pre-activations y = W·u + b (reduced-rank regression under the inputs'
// covariance Σ, Izenman 1975). The best rank-r linear predictor of y from u is Q·Qᵀ·W·u, Q the top-r
// eigenvectors of W·Σ·Wᵀ (the pre-activations' own covariance), so the projection is B = Qᵀ·W (r, d);
// the little weights are then fitted on B·u by ridge as for the random projection.
//
// Rows come in order of the variance they explain, each scaled to unit variance on the data, so the
// first k rows are the best k and the projected values share one quantization scale well.
// Found by subspace iteration on the GEMM backend (the products are large: m·d·r), with the small
// r×r eigenproblem of the Rayleigh–Ritz step solved by ml-matrix.
import { EigenvalueDecomposition, Matrix } from "ml-matrix";
import * as check from "../kernels/check.js";
import { Rng } from "../util/random.js";
import type { GemmBackend } from "./ridge.js";

export interface ReducedRankBasis {
  B: Float32Array;         // (r, d) projection rows, best first, each scaled to unit variance of B·u
  variance: Float64Array;  // (r) variance of y explained by each row, descending
}

/**
 * The top-r reduced-rank basis of y = W·u for inputs of covariance `cov`. W (m, d) and cov (d, d)
 * must be arrays the backend's product accepts. r ≤ min(m, d).
 */
export function reducedRankBasis(W: Float32Array, m: number, d: number, cov: Float32Array, r: number, backend: GemmBackend,
                                 options: { iterations?: number; seed?: number } = {}): ReducedRankBasis {
  const f = "reducedRankBasis";
  check.size(f, "m", m, 1);
  check.size(f, "d", d, 1);
  check.size(f, "r", r, 1);
  if (r > Math.min(m, d)) throw new RangeError(`${f}: rank r = ${r} exceeds min(m, d) = ${Math.min(m, d)}; a projection to more than that predicts no better`);
  check.f32(f, "W", W, m * d);
  check.f32(f, "cov", cov, d * d);
  const iterations = options.iterations ?? 6, { gemm } = backend;
  check.size(f, "iterations", iterations, 0);
  // Oversampling: iterating on s > r columns converges at the rate λ(s+1)/λ(r) instead of λ(r+1)/λ(r).
  const s = Math.min(r + Math.max(8, Math.ceil(r / 8)), m, d);

  const Q = backend.alloc(m * s), Z = backend.alloc(m * s), T1 = backend.alloc(d * s), T2 = backend.alloc(d * s);
  const small = backend.alloc(s * s), B = new Float32Array(r * d);
  try {
    // Z = W·Σ·Wᵀ·Q, as three products so that the (m, m) covariance is never formed.
    const applyCovariance = () => {
      gemm(T1, W, Q, d, s, m, true, false, false);
      gemm(T2, cov, T1, d, s, d, false, false, false);
      gemm(Z, W, T2, m, s, d, false, false, false);
    };
    const rng = new Rng(options.seed ?? 1);
    for (let i = 0; i < Q.length; i++) Q[i] = rng.normal();
    orthonormalizeColumns(Q, m, s);
    for (let it = 0; it < iterations; it++) {
      applyCovariance();
      Q.set(Z);
      orthonormalizeColumns(Q, m, s);
    }
    // Rayleigh–Ritz: the eigenvectors of Qᵀ·C·Q rotate Q onto C's eigenvectors, largest first.
    applyCovariance();
    gemm(small, Q, Z, s, s, m, true, false, false);
    const { values, vectors } = symmetricEigen(small, s);
    small.set(vectors);
    Z.set(Q);
    gemm(Q, Z, small, m, s, s, false, false, false);
    gemm(T1, Q, W, s, d, m, true, false, false);  // T1 now holds Qᵀ·W (s, d), best rows first
    B.set(T1.subarray(0, r * d));
    for (let i = 0; i < r; i++) {
      const s = values[i] > 0 ? 1 / Math.sqrt(values[i]) : 0;
      for (let j = 0; j < d; j++) B[i * d + j] *= s;
    }
    return { B, variance: values.slice(0, r) };
  } finally {
    for (const a of [Q, Z, T1, T2, small]) backend.release?.(a);
  }
}

/**
 * The covariance (d, d) of n samples U (n, d), centred, accumulated in float64 from the backend's
 * products over chunks of samples. The result is allocated by the backend (release it there).
 */
export function covariance(U: Float32Array, n: number, d: number, backend: GemmBackend, chunk = 256): Float32Array {
  const f = "covariance";
  check.size(f, "n", n, 1);
  check.size(f, "d", d, 1);
  if (!(U instanceof Float32Array) || U.length !== n * d) throw new RangeError(`${f}: U must be a Float32Array of ${n}·${d} values`);
  const sum = new Float64Array(d * d), mean = new Float64Array(d);
  const part = backend.alloc(d * d), rows = backend.alloc(chunk * d);
  try {
    for (let s = 0; s < n; s += chunk) {
      const c = Math.min(chunk, n - s), block = rows.subarray(0, c * d);
      block.set(U.subarray(s * d, (s + c) * d));
      backend.gemm(part, block, block, d, d, c, true, false, false);
      for (let i = 0; i < d * d; i++) sum[i] += part[i];
      for (let i = 0; i < c * d; i++) mean[i % d] += block[i];
    }
  } finally {
    backend.release?.(rows);
  }
  for (let j = 0; j < d; j++) mean[j] /= n;
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) part[i * d + j] = sum[i * d + j] / n - mean[i] * mean[j];
  return part;
}

/** Makes the r columns of Q (m, r) orthonormal in place: modified Gram–Schmidt, twice, in float64. */
function orthonormalizeColumns(Q: Float32Array, m: number, r: number): void {
  const cols = Array.from({ length: r }, (_, j) => {
    const c = new Float64Array(m);
    for (let i = 0; i < m; i++) c[i] = Q[i * r + j];
    return c;
  });
  for (let j = 0; j < r; j++) {
    const c = cols[j];
    for (let pass = 0; pass < 2; pass++) {
      for (let p = 0; p < j; p++) {
        const q = cols[p];
        let dot = 0;
        for (let i = 0; i < m; i++) dot += q[i] * c[i];
        for (let i = 0; i < m; i++) c[i] -= dot * q[i];
      }
    }
    let norm = 0;
    for (let i = 0; i < m; i++) norm += c[i] * c[i];
    // A direction the data lacks (rank below r) stays zero: it explains no variance.
    const s = norm > 0 ? 1 / Math.sqrt(norm) : 0;
    for (let i = 0; i < m; i++) Q[i * r + j] = c[i] *= s;
  }
}

/** Eigenvalues (descending) and eigenvectors (columns of the (r, r) row-major result) of a symmetric matrix. */
function symmetricEigen(A: Float32Array, r: number): { values: Float64Array; vectors: Float64Array } {
  const M = new Matrix(r, r);
  for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) M.set(i, j, (A[i * r + j] + A[j * r + i]) / 2);
  const e = new EigenvalueDecomposition(M, { assumeSymmetric: true });
  const order = e.realEigenvalues.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).map(([, i]) => i);
  const V = e.eigenvectorMatrix, vectors = new Float64Array(r * r);
  order.forEach((src, dst) => { for (let i = 0; i < r; i++) vectors[i * r + dst] = V.get(i, src); });
  return { values: Float64Array.from(order, (i) => e.realEigenvalues[i]), vectors };
}
