// The compressed-row kernels (src/kernels/sparse.ts, assembly/sparse.ts): packing round trip, every
// row and listed rows against a float64 product of the dense matrix, on random sparsities and odd
// shapes, empty and full row lists, the reference twin and the wasm builds on 1 and 2 threads.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { blockBytes, packSparseRows, rowNonzeros, unpackSparseRows } from "../src/kernels/sparse.js";
import { impls, assertClose, testRuntimes, type Impl } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

// Odd shapes, an empty one, and [600, 1501] at 20 % density, large enough to run on two threads.
const SHAPES: [number, number][] = [[0, 5], [1, 1], [3, 7], [17, 33], [40, 130], [257, 259], [600, 1501]];
const DENSITIES = [0, 0.1, 0.5, 1];
const SENTINEL = 12345.5;

/** A random (rows, cols) matrix with about `density` of its entries nonzero (some rows empty, some full). */
function randomSparse(rng: Rng, rows: number, cols: number, density: number): Float32Array {
  const W = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const d = r % 7 === 3 ? 0 : r % 7 === 5 ? 1 : density; // an empty and a full row now and then
    for (let c = 0; c < cols; c++) if (rng.uniform() < d) W[r * cols + c] = rng.uniform() * 2 - 1 || 0.5;
  }
  return W;
}

function packFor(impl: Impl, W: Float32Array, rows: number, cols: number) {
  // Wasm kernels need heap arrays; u8 comes from an i8 allocation's bytes.
  return packSparseRows(W, rows, cols, {
    u8: (n) => { const a = impl.i8(n); return new Uint8Array(a.buffer, a.byteOffset, n); },
    i32: (n) => impl.i32(n),
  });
}

/** W[r, :]·x + b[r] in float64, and Σ|terms| as the error scale. */
function dot64(W: Float32Array, x: Float32Array, b: Float32Array | null, r: number, cols: number): [number, number] {
  let s = b ? b[r] : 0, m = b ? Math.abs(b[r]) : 0;
  for (let c = 0; c < cols; c++) { s += W[r * cols + c] * x[c]; m += Math.abs(W[r * cols + c] * x[c]); }
  return [s, m];
}

test("packSparseRows: blocks of 6n (+2) bytes, 4-aligned, exact round trip", () => {
  const rng = new Rng(1);
  for (const [rows, cols] of SHAPES) {
    const W = randomSparse(rng, rows, cols, 0.3), S = packSparseRows(W, rows, cols);
    assert.deepEqual(unpackSparseRows(S), W);
    let nnz = 0;
    for (let r = 0; r < rows; r++) {
      let n = 0;
      for (let c = 0; c < cols; c++) if (W[r * cols + c] !== 0) n++;
      assert.equal(rowNonzeros(S.rowPtr, r), n);
      assert.equal(S.rowPtr[r + 1] - S.rowPtr[r], blockBytes(n));
      assert.equal(S.rowPtr[r] % 4, 0);
      nnz += n;
    }
    assert.equal(S.nnz, nnz);
    assert.equal(S.data.length, S.rowPtr[rows]);
  }
  assert.throws(() => packSparseRows(new Float32Array(65537), 1, 65537), /cols must be ≤ 65536/);
});

test("matvecSparse matches a float64 product of the dense matrix on odd shapes and sparsities", async () => {
  const rng = new Rng(2);
  for (const impl of await impls()) {
    for (const [rows, cols] of SHAPES) {
      for (const density of DENSITIES) {
        const withBias = density !== 0.5;
        const W = randomSparse(rng, rows, cols, density), S = packFor(impl, W, rows, cols);
        const x = impl.f32(cols), y = impl.f32(rows), b = withBias ? impl.f32(rows) : null;
        rng.fillUniform(x, -1, 1); if (b) rng.fillUniform(b, -1, 1);
        y.fill(SENTINEL);
        impl.k.matvecSparse(y, S.data, S.rowPtr, x, b, rows, cols);
        const want = new Float64Array(rows), scale = new Float64Array(rows);
        for (let r = 0; r < rows; r++) [want[r], scale[r]] = dot64(W, x, b, r, cols);
        assertClose(y, want, scale, 1e-6, `${impl.name} ${rows}×${cols} density ${density}`);
      }
    }
  }
});

test("matvecSparseRows computes exactly the listed rows (empty, one, half, all) and leaves the others untouched", async () => {
  const rng = new Rng(3);
  for (const impl of await impls()) {
    for (const [rows, cols] of SHAPES) {
      const W = randomSparse(rng, rows, cols, 0.2), S = packFor(impl, W, rows, cols);
      const x = impl.f32(cols), y = impl.f32(rows), b = impl.f32(rows), idx = impl.i32(rows + 3);
      rng.fillUniform(x, -1, 1); rng.fillUniform(b, -1, 1);
      for (const count of [0, Math.min(1, rows), Math.floor(rows / 2), rows]) {
        // A random duplicate-free subset in random order; slack after count is out of range, never read.
        const all = Array.from({ length: rows }, (_, i) => i);
        for (let i = 0; i < count; i++) {
          const j = i + rng.int(rows - i);
          [all[i], all[j]] = [all[j], all[i]];
          idx[i] = all[i];
        }
        idx.fill(-1, count);
        y.fill(SENTINEL);
        impl.k.matvecSparseRows(y, S.data, S.rowPtr, x, count % 2 ? b : null, idx, count, rows, cols);
        const want = new Float64Array(rows).fill(SENTINEL), scale = new Float64Array(rows);
        for (let j = 0; j < count; j++) [want[idx[j]], scale[idx[j]]] = dot64(W, x, count % 2 ? b : null, idx[j], cols);
        assertClose(y, want, scale, 1e-6, `${impl.name} ${rows}×${cols} count=${count}`);
      }
    }
  }
});

test("sparse kernels reject bad layouts, row lists and shapes before running", async () => {
  for (const impl of await impls()) {
    const W = new Float32Array([1, 0, 2, 0, 0, 3]), S = packFor(impl, W, 2, 3);
    const x = impl.f32(3), y = impl.f32(2), idx = impl.i32(2);
    idx[0] = 1; idx[1] = 2;
    assert.throws(() => impl.k.matvecSparseRows(y, S.data, S.rowPtr, x, null, idx, 2, 2, 3), /matvecSparseRows: rowIdx\[1\] = 2 is outside \[0, 2\)/);
    assert.throws(() => impl.k.matvecSparse(y, S.data, S.rowPtr, impl.f32(4), null, 2, 3), /x must have 3 elements, got 4/);
    assert.throws(() => impl.k.matvecSparse(y, S.data, S.rowPtr.subarray(0, 2), x, null, 2, 3), /rowPtr must have 3 elements/);
    // A column index past cols: the layout is checked the first time it is seen.
    const bad = packFor(impl, new Float32Array([0, 0, 0, 5]), 1, 4);
    assert.throws(() => impl.k.matvecSparse(impl.f32(1), bad.data, bad.rowPtr, x, null, 1, 3), /row 0's column index 3 is outside \[0, 3\)/);
    y.fill(SENTINEL);
    x.fill(1);
    impl.k.matvecSparse(y, S.data, S.rowPtr, x, null, 2, 3);
    assert.deepEqual(Array.from(y), [3, 3]);
  }
});
