// The reduced-rank projection against an independent float64 computation: the exact top-r
// eigenvectors of W·Σ·Wᵀ (full decomposition), and the optimal rank-r prediction error they give.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EigenvalueDecomposition, Matrix } from "ml-matrix";
import { reducedRankBasis } from "../src/dual/reduced-rank.js";
import { plainBackend } from "../src/dual/ridge.js";
import { Rng } from "../src/util/random.js";

/** A random W (m, d) and a covariance with a decaying spectrum (so that a rank-r subspace is distinct). */
function problem(m: number, d: number, seed: number): { W: Float32Array; cov: Float32Array; C: Matrix } {
  const rng = new Rng(seed), W = new Float32Array(m * d), A = new Float64Array(d * d);
  for (let i = 0; i < W.length; i++) W[i] = rng.normal();
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) A[i * d + j] = rng.normal() * Math.pow(0.7, j);
  const cov = new Float32Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) {
    let s = 0;
    for (let t = 0; t < d; t++) s += A[i * d + t] * A[j * d + t];
    cov[i * d + j] = s;
  }
  const Wm = new Matrix(m, d), S = new Matrix(d, d);
  for (let i = 0; i < m; i++) for (let j = 0; j < d; j++) Wm.set(i, j, W[i * d + j]);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) S.set(i, j, cov[i * d + j]);
  return { W, cov, C: Wm.mmul(S).mmul(Wm.transpose()) };
}

test("reducedRankBasis spans the top-r eigenvectors of W·Σ·Wᵀ and explains their variance", () => {
  for (const [m, d, r] of [[12, 7, 3], [20, 9, 1], [9, 9, 5], [16, 6, 6]]) {
    const { W, cov, C } = problem(m, d, m * 31 + r);
    const { B, variance } = reducedRankBasis(W, m, d, cov, r, plainBackend, { iterations: 8 });
    const e = new EigenvalueDecomposition(C, { assumeSymmetric: true });
    const exact = [...e.realEigenvalues].sort((a, b) => b - a);
    for (let i = 0; i < r; i++) {
      assert.ok(Math.abs(variance[i] - exact[i]) <= 1e-4 * exact[0], `m ${m} d ${d} r ${r}: eigenvalue ${i} ${variance[i]} vs ${exact[i]}`);
    }
    // Optimal prediction: with Z = B·u, the best linear predictor of y = W·u leaves exactly the
    // eigenvalues beyond r unexplained: trace(C) − trace(C_yz C_zz⁻¹ C_zy).
    const Bm = new Matrix(r, d), Wm = new Matrix(m, d), S = new Matrix(d, d);
    for (let i = 0; i < r; i++) for (let j = 0; j < d; j++) Bm.set(i, j, B[i * d + j]);
    for (let i = 0; i < m; i++) for (let j = 0; j < d; j++) Wm.set(i, j, W[i * d + j]);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) S.set(i, j, cov[i * d + j]);
    const Czz = Bm.mmul(S).mmul(Bm.transpose()), Cyz = Wm.mmul(S).mmul(Bm.transpose());
    const explained = Cyz.mmul(solveSymmetric(Czz, Cyz.transpose())).trace();
    const total = C.trace(), optimal = exact.slice(0, r).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(explained - optimal) <= 1e-4 * total, `m ${m} d ${d} r ${r}: explained ${explained}, optimal ${optimal}`);
    // Unit variance per projected value: diag(B·Σ·Bᵀ) = 1.
    for (let i = 0; i < r; i++) assert.ok(Math.abs(Czz.get(i, i) - 1) <= 1e-3, `row ${i} variance ${Czz.get(i, i)}`);
  }
});

test("reducedRankBasis refuses a rank above min(m, d) and wrong shapes", () => {
  const { W, cov } = problem(6, 4, 1);
  assert.throws(() => reducedRankBasis(W, 6, 4, cov, 5, plainBackend), /rank r = 5 exceeds min\(m, d\) = 4/);
  assert.throws(() => reducedRankBasis(W.subarray(1), 6, 4, cov, 2, plainBackend), /W/);
});

function solveSymmetric(A: Matrix, Bm: Matrix): Matrix {
  const e = new EigenvalueDecomposition(A, { assumeSymmetric: true });
  const V = e.eigenvectorMatrix, inv = Matrix.zeros(A.rows, A.rows);
  e.realEigenvalues.forEach((v, i) => inv.set(i, i, v > 1e-12 ? 1 / v : 0));
  return V.mmul(inv).mmul(V.transpose()).mmul(Bm);
}
