import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { impls, assertClose, testRuntimes } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

// Odd shapes (not multiples of 4 or 16), empty, and one large enough to split across threads.
const SHAPES: [number, number][] = [[0, 5], [1, 1], [3, 7], [17, 33], [64, 64], [130, 1001], [513, 259]];

test("matvec matches a float64 reference on odd shapes", async () => {
  const rng = new Rng(1);
  for (const impl of await impls()) {
    for (const [rows, cols] of SHAPES) {
      for (const withBias of [false, true]) {
        const W = impl.f32(rows * cols), x = impl.f32(cols), y = impl.f32(rows);
        const b = withBias ? impl.f32(rows) : null;
        rng.fillUniform(W, -1, 1); rng.fillUniform(x, -1, 1); if (b) rng.fillUniform(b, -1, 1);
        const want = new Float64Array(rows), scale = new Float64Array(rows);
        for (let r = 0; r < rows; r++) {
          let s = b ? b[r] : 0, m = b ? Math.abs(b[r]) : 0;
          for (let c = 0; c < cols; c++) { s += W[r * cols + c] * x[c]; m += Math.abs(W[r * cols + c] * x[c]); }
          want[r] = s; scale[r] = m;
        }
        impl.k.matvec(y, W, x, b, rows, cols);
        assertClose(y, want, scale, 1e-6, `${impl.name} ${rows}×${cols} bias=${withBias}`);
      }
    }
  }
});

test("matvec rejects bad arguments before running", async () => {
  for (const impl of await impls()) {
    const W = impl.f32(12), x = impl.f32(4), y = impl.f32(3);
    assert.throws(() => impl.k.matvec(y, W, impl.f32(5), null, 3, 4), /x must have 4 elements, got 5/);
    assert.throws(() => impl.k.matvec(y, W.subarray(0, 11), x, null, 3, 4), /W must have 12 elements/);
    assert.throws(() => impl.k.matvec(y, W, x, null, -1, 4), /rows must be an integer/);
    assert.throws(() => impl.k.matvec(y, new Int32Array(12) as unknown as Float32Array, x, null, 3, 4), /W must be a Float32Array, got Int32Array/);
  }
  const [rt] = await testRuntimes();
  assert.throws(() => rt.kernels.matvec(rt.heap.f32(3), new Float32Array(12), rt.heap.f32(4), null, 3, 4),
    /W must be allocated in the runtime's heap/);
});

/** A random duplicate-free subset of [0, rows) in random order, written into the front of a larger buffer. */
function randomRows(rng: Rng, idx: Int32Array, rows: number, count: number): void {
  const all = Array.from({ length: rows }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + rng.int(rows - i);
    [all[i], all[j]] = [all[j], all[i]];
    idx[i] = all[i];
  }
  idx.fill(-1, count); // slack beyond count must never be read
}

/** W[r, c0:c1]·x[c0:c1] + b[r] in float64, and Σ|terms| as the error scale. */
function dot64(W: Float32Array, x: Float32Array, b: Float32Array | null, r: number, cols: number, c0: number, c1: number): [number, number] {
  let s = b ? b[r] : 0, m = b ? Math.abs(b[r]) : 0;
  for (let c = c0; c < c1; c++) { s += W[r * cols + c] * x[c]; m += Math.abs(W[r * cols + c] * x[c]); }
  return [s, m];
}

const SENTINEL = 12345.5;

// Shapes where count·cols passes the two-thread threshold: [300, 1001], [513, 259].
const SPARSE_SHAPES: [number, number][] = [[1, 1], [3, 15], [17, 17], [40, 33], [300, 1001], [513, 259]];

test("matvecRows computes exactly the listed rows and leaves the others untouched", async () => {
  const rng = new Rng(2);
  for (const impl of await impls()) {
    for (const [rows, cols] of SPARSE_SHAPES) {
      for (const count of [0, 1, Math.floor(rows / 2), rows]) {
        const withBias = count % 2 === 1;
        const W = impl.f32(rows * cols), x = impl.f32(cols), y = impl.f32(rows), idx = impl.i32(rows + 3);
        const b = withBias ? impl.f32(rows) : null;
        rng.fillUniform(W, -1, 1); rng.fillUniform(x, -1, 1); if (b) rng.fillUniform(b, -1, 1);
        randomRows(rng, idx, rows, count);
        const listed = new Set(idx.subarray(0, count));
        // Unlisted rows are NaN: any use of them would poison a listed result.
        for (let r = 0; r < rows; r++) if (!listed.has(r)) W.fill(NaN, r * cols, (r + 1) * cols);
        y.fill(SENTINEL);
        impl.k.matvecRows(y, W, x, b, idx, count, rows, cols);
        const want = new Float64Array(rows).fill(SENTINEL), scale = new Float64Array(rows).fill(0);
        for (const r of listed) [want[r], scale[r]] = dot64(W, x, b, r, cols, 0, cols);
        assertClose(y, want, scale, 1e-6, `${impl.name} ${rows}×${cols} count=${count}`);
      }
    }
  }
});

test("matvecSplit and matvecRowsSplit give the two partial sums on either side of the split", async () => {
  const rng = new Rng(3);
  for (const impl of await impls()) {
    for (const [rows, cols] of SPARSE_SHAPES) {
      for (const split of [0, rng.int(cols + 1), cols]) {
        const W = impl.f32(rows * cols), x = impl.f32(cols), b1 = impl.f32(rows), b2 = impl.f32(rows);
        const y1 = impl.f32(rows), y2 = impl.f32(rows), idx = impl.i32(rows);
        rng.fillUniform(W, -1, 1); rng.fillUniform(x, -1, 1); rng.fillUniform(b1, -1, 1); rng.fillUniform(b2, -1, 1);
        const count = rng.int(rows + 1);
        randomRows(rng, idx, rows, count);
        for (const sparse of [false, true]) {
          const bias2 = sparse ? null : b2; // exercise a null bias on one side
          y1.fill(SENTINEL); y2.fill(SENTINEL);
          if (sparse) impl.k.matvecRowsSplit(y1, y2, W, x, b1, bias2, idx, count, rows, cols, split);
          else impl.k.matvecSplit(y1, y2, W, x, b1, bias2, rows, cols, split);
          const want1 = new Float64Array(rows).fill(SENTINEL), want2 = new Float64Array(rows).fill(SENTINEL);
          const scale1 = new Float64Array(rows), scale2 = new Float64Array(rows);
          for (const r of sparse ? idx.subarray(0, count) : Array.from({ length: rows }, (_, i) => i)) {
            [want1[r], scale1[r]] = dot64(W, x, b1, r, cols, 0, split);
            [want2[r], scale2[r]] = dot64(W, x, bias2, r, cols, split, cols);
          }
          const what = `${impl.name} ${rows}×${cols} split=${split} ${sparse ? `count=${count}` : "dense"}`;
          assertClose(y1, want1, scale1, 1e-6, `${what} y1`);
          assertClose(y2, want2, scale2, 1e-6, `${what} y2`);
        }
      }
    }
  }
});

test("row-sparse and split matvecs reject bad row lists and splits before running", async () => {
  for (const impl of await impls()) {
    const W = impl.f32(12), x = impl.f32(4), y = impl.f32(3), y2 = impl.f32(3), idx = impl.i32(2);
    idx[0] = 2; idx[1] = 3;
    assert.throws(() => impl.k.matvecRows(y, W, x, null, idx, 2, 3, 4), /matvecRows: rowIdx\[1\] = 3 is outside \[0, 3\)/);
    idx[1] = -1;
    assert.throws(() => impl.k.matvecRows(y, W, x, null, idx, 2, 3, 4), /rowIdx\[1\] = -1 is outside/);
    assert.throws(() => impl.k.matvecRows(y, W, x, null, idx, 3, 3, 4), /count must be ≤ rowIdx.length = 2, got 3/);
    assert.throws(() => impl.k.matvecRows(y, W, x, null, new Float32Array(2) as unknown as Int32Array, 1, 3, 4),
      /rowIdx must be a Int32Array, got Float32Array/);
    assert.throws(() => impl.k.matvecRowsSplit(y, y2, W, x, null, null, idx, 2, 3, 4, 1), /matvecRowsSplit: rowIdx\[1\]/);
    assert.throws(() => impl.k.matvecSplit(y, y2, W, x, null, null, 3, 4, 5), /split must be an integer in \[0, cols = 4\], got 5/);
    assert.throws(() => impl.k.matvecSplit(y, impl.f32(2), W, x, null, null, 3, 4, 2), /y2 must have 3 elements, got 2/);
    // A rejected call writes nothing.
    y.fill(SENTINEL);
    assert.throws(() => impl.k.matvecRows(y, W, x, null, idx, 2, 3, 4));
    assert.deepEqual(Array.from(y), [SENTINEL, SENTINEL, SENTINEL]);
    // The slack after count is not looked at.
    idx[0] = 1;
    impl.k.matvecRows(y, W, x, null, idx, 1, 3, 4);
    assert.deepEqual(Array.from(y), [SENTINEL, 0, SENTINEL]);
  }
});
