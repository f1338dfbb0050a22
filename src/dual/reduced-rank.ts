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
  // Oversampling: iterating on s > r vectors converges at the rate λ(s+1)/λ(r) instead of λ(r+1)/λ(r).
  const s = Math.min(r + Math.max(8, Math.ceil(r / 8)), m, d);

  // The basis is kept as rows (s, m), so that a block of vectors is contiguous for the products.
  const Q = backend.alloc(s * m), Z = backend.alloc(s * m), T1 = backend.alloc(s * d), T2 = backend.alloc(s * d);
  const small = backend.alloc(s * s);
  try {
    // Z = Q·W·Σ·Wᵀ (rows of Q through the pre-activations' covariance), without forming (m, m).
    const applyCovariance = () => {
      gemm(T1, Q, W, s, d, m, false, false, false);
      gemm(T2, T1, cov, s, d, d, false, false, false);
      gemm(Z, T2, W, s, m, d, false, true, false);
    };
    const rng = new Rng(options.seed ?? 1);
    for (let i = 0; i < Q.length; i++) Q[i] = rng.normal();
    orthonormalizeRows(Q, s, m, backend);
    for (let it = 0; it < iterations; it++) {
      applyCovariance();
      Q.set(Z);
      orthonormalizeRows(Q, s, m, backend);
    }
    // Rayleigh–Ritz: the eigenvectors of Q·C·Qᵀ rotate Q onto C's eigenvectors, largest first.
    applyCovariance();
    gemm(small, Q, Z, s, s, m, false, true, false);
    const { values, vectors } = symmetricEigen(small, s);
    small.set(vectors);
    Z.set(Q);
    gemm(Q, small, Z, s, m, s, true, false, false);
    gemm(T1, Q, W, s, d, m, false, false, false);  // Q·W (s, d), best rows first
    const B = T1.slice(0, r * d);
    for (let i = 0; i < r; i++) {
      const scale = values[i] > 0 ? 1 / Math.sqrt(values[i]) : 0;
      for (let j = 0; j < d; j++) B[i * d + j] *= scale;
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

/**
 * Makes the s rows of Q (s, m) orthonormal in place: block classical Gram–Schmidt, twice ("twice is
 * enough"), the projections on the backend's products and each block's own rows by modified
 * Gram–Schmidt in float64. A direction the data lacks (rank below s) becomes a zero row.
 */
function orthonormalizeRows(Q: Float32Array, s: number, m: number, backend: GemmBackend, block = 32): void {
  const C = backend.alloc(s * block), T = backend.alloc(block * m);
  try {
    for (let j0 = 0; j0 < s; j0 += block) {
      const b = Math.min(block, s - j0), J = Q.subarray(j0 * m, (j0 + b) * m);
      for (let pass = 0; pass < 2 && j0 > 0; pass++) {
        const P = Q.subarray(0, j0 * m), Cj = C.subarray(0, j0 * b), Tj = T.subarray(0, b * m);
        backend.gemm(Cj, P, J, j0, b, m, false, true, false);   // (j0, b) = P·Jᵀ
        backend.gemm(Tj, Cj, P, b, m, j0, true, false, false);  // (b, m) = Cᵀ·P
        for (let i = 0; i < b * m; i++) J[i] -= Tj[i];
      }
      const rows = Array.from({ length: b }, (_, i) => Float64Array.from(J.subarray(i * m, (i + 1) * m)));
      rows.forEach((row, i) => {
        for (let pass = 0; pass < 2; pass++) {
          for (let p = 0; p < i; p++) {
            const q = rows[p];
            let dot = 0;
            for (let t = 0; t < m; t++) dot += q[t] * row[t];
            for (let t = 0; t < m; t++) row[t] -= dot * q[t];
          }
        }
        let norm = 0;
        for (let t = 0; t < m; t++) norm += row[t] * row[t];
        const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
        for (let t = 0; t < m; t++) J[i * m + t] = row[t] *= scale;
      });
    }
  } finally {
    backend.release?.(C);
    backend.release?.(T);
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
