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
