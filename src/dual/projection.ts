// The little module's input projection: sparse random (Achlioptas) matrices, block-diagonal over
// the concatenated input [x | h], their dimension from the Johnson–Lindenstrauss bound, a plain
// reference product, and the projected big weights that start the SGD fit.
//
// Runs at fitting time; the per-step product is the `project` kernel (src/kernels/elementwise.ts),
// which takes exactly the SparseProjection fields below.
import { Rng } from "../util/random.js";
import * as check from "../kernels/check.js";
import { MAX_PROJECT_INPUT } from "../kernels/elementwise.js";

/**
 * Johnson–Lindenstrauss dimension k = floor(4 ln n / (ε²/2 − ε³/3)) for n points (gate rows).
 * n = 6000: 417 at ε = 0.5, 966 at ε = 0.3, 266 at ε = 0.7.
 */
export function jlDim(n: number, eps = 0.5): number {
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`jlDim: n must be an integer ≥ 2, got ${n}`);
  if (!(eps > 0 && eps < 1)) throw new RangeError(`jlDim: eps must be in (0, 1), got ${eps}`);
  return Math.floor(4 * Math.log(n) / (eps * eps / 2 - eps * eps * eps / 3));
}

/**
 * A {−1, 0, +1}·scale matrix (k, n) in compressed rows: row i's +1 columns are
 * indices[offsets[2i] .. offsets[2i+1]) and its −1 columns indices[offsets[2i+1] .. offsets[2i+2]),
 * so y_i = scale · (Σ x[plus] − Σ x[minus]).
 */
export interface SparseProjection {
  k: number;             // output dimension (rows)
  n: number;             // input dimension (columns)
  offsets: Int32Array;   // (2k+1)
  indices: Uint16Array;  // (nonzeros) column indices, ascending within each run
  scale: number;
}

/**
 * Block-diagonal Achlioptas projection over inputs concatenated from `blocks` (e.g. [E, H] for
 * [x | h]): k rows per block, block j's rows reading only block j's columns (absolute indices).
 * Entries +1 and −1 with probability 1/6 each, 0 with 2/3; scale √(3/k) makes E[PᵀP] = I within
 * each block, so Pᵀ(P x) ≈ x (the little module's weights are learned, so the scale is a convention).
 */
export function blockProjection(blocks: number[], k: number, seed: number): SparseProjection {
  const f = "blockProjection";
  if (!Array.isArray(blocks) || blocks.length === 0) throw new RangeError(`${f}: blocks must be a non-empty array of input widths`);
  blocks.forEach((w, j) => check.size(f, `blocks[${j}]`, w, 1));
  check.size(f, "k", k, 1);
  if (!Number.isInteger(seed)) throw new RangeError(`${f}: seed must be an integer, got ${seed}`);

  const rng = new Rng(seed);
  const rows = k * blocks.length;
  const n = blocks.reduce((s, w) => s + w, 0);
  if (n > MAX_PROJECT_INPUT) throw new RangeError(`${f}: the blocks add up to ${n} inputs; projections read at most ${MAX_PROJECT_INPUT} (16-bit indices)`);
  const offsets = new Int32Array(2 * rows + 1);
  const indices: number[] = [];
  const minus: number[] = [];
  let row = 0, start = 0;
  for (const width of blocks) {
    for (let i = 0; i < k; i++, row++) {
      minus.length = 0;
      for (let c = start; c < start + width; c++) {
        const u = rng.int(6);
        if (u === 0) indices.push(c);
        else if (u === 1) minus.push(c);
      }
      offsets[2 * row + 1] = indices.length;
      for (const c of minus) indices.push(c);
      offsets[2 * row + 2] = indices.length;
    }
    start += width;
  }
  return { k: rows, n, offsets, indices: Uint16Array.from(indices), scale: Math.sqrt(3 / k) };
}

/** Throws unless P is well formed: sizes, ascending offsets, column indices in [0, n). */
export function checkProjection(f: string, P: SparseProjection): void {
  if (!Number.isInteger(P.k) || P.k < 1 || !Number.isInteger(P.n) || P.n < 1) {
    throw new RangeError(`${f}: projection sizes must be integers ≥ 1, got k = ${P.k}, n = ${P.n}`);
  }
  if (!(P.offsets instanceof Int32Array) || P.offsets.length !== 2 * P.k + 1) {
    throw new RangeError(`${f}: projection offsets must be an Int32Array of ${2 * P.k + 1} elements`);
  }
  if (!(P.indices instanceof Uint16Array)) throw new TypeError(`${f}: projection indices must be a Uint16Array`);
  if (P.offsets[0] !== 0 || P.offsets[2 * P.k] !== P.indices.length) {
    throw new RangeError(`${f}: projection offsets must run from 0 to indices.length = ${P.indices.length}`);
  }
  for (let i = 1; i <= 2 * P.k; i++) {
    if (P.offsets[i] < P.offsets[i - 1]) throw new RangeError(`${f}: projection offsets[${i}] = ${P.offsets[i]} is below offsets[${i - 1}]`);
  }
  for (let j = 0; j < P.indices.length; j++) {
    const c = P.indices[j];
    if (c < 0 || c >= P.n) throw new RangeError(`${f}: projection indices[${j}] = ${c} is outside [0, ${P.n})`);
  }
  if (!Number.isFinite(P.scale)) throw new RangeError(`${f}: projection scale must be finite, got ${P.scale}`);
}

/** y (k) = P x (n), accumulated in float64: the reference for the `project` kernel. */
export function projectDense<T extends Float32Array | Float64Array = Float64Array>(
  P: SparseProjection, x: ArrayLike<number>, y?: T): T {
  const f = "projectDense";
  if (x.length !== P.n) throw new RangeError(`${f}: x must have ${P.n} elements, got ${x.length}`);
  if (P.offsets.length !== 2 * P.k + 1) throw new RangeError(`${f}: projection offsets must have ${2 * P.k + 1} elements`);
  const out = y ?? (new Float64Array(P.k) as T);
  if (out.length !== P.k) throw new RangeError(`${f}: y must have ${P.k} elements, got ${out.length}`);
  const { offsets, indices } = P;
  for (let i = 0; i < P.k; i++) {
    let s = 0;
    for (let j = offsets[2 * i]; j < offsets[2 * i + 1]; j++) s += x[indices[j]];
    for (let j = offsets[2 * i + 1]; j < offsets[2 * i + 2]; j++) s -= x[indices[j]];
    out[i] = P.scale * s;
  }
  return out;
}

/**
 * W_LL0 (rows, k) = W (rows, n) · Pᵀ: the big weights seen through the projection. Because
 * E[PᵀP] = I, W_LL0 · (P u) = W Pᵀ P u ≈ W u, a starting point for the little module's fit.
 * For a block projection each little row only sums big columns of its own block.
 */
export function projectWeights(P: SparseProjection, W: Float32Array, rows: number): Float32Array {
  const f = "projectWeights";
  checkProjection(f, P);
  check.size(f, "rows", rows);
  check.f32(f, "W", W, rows * P.n);
  const out = new Float32Array(rows * P.k);
  for (let r = 0; r < rows; r++) {
    projectDense(P, W.subarray(r * P.n, (r + 1) * P.n), out.subarray(r * P.k, (r + 1) * P.k));
  }
  return out;
}
