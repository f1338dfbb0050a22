// The pool's share claims: every share of a call runs exactly once, whether its worker or the
// calling thread takes it, back to back or after the worker has gone to sleep.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Runtime } from "../src/runtime/runtime.js";
import { Rng } from "../src/util/random.js";

test("2-thread calls give the 1-thread result whichever thread runs each share", async () => {
  const rt = await Runtime.create({ threads: 2, simd: "simd" });
  try {
    const rng = new Rng(5), rows = 67, cols = 1001; // past the two-thread threshold, odd sizes
    const W = rt.heap.f32(rows * cols), x = rt.heap.f32(cols), y = rt.heap.f32(rows), want = new Float32Array(rows);
    for (let call = 0; call < 400; call++) {
      if (call % 50 === 0) {
        rng.fillUniform(W, -1, 1);
        rng.fillUniform(x, -1, 1);
        // The same kernel on the calling thread alone: each row's sum is the same whoever computes it.
        rt.pool.active = 1;
        rt.kernels.matvec(y, W, x, null, rows, cols);
        want.set(y);
        rt.pool.active = 2;
      }
      y.fill(NaN);
      rt.kernels.matvec(y, W, x, null, rows, cols);
      assert.deepEqual(Array.from(y), Array.from(want), `call ${call}`);
      // Now and then the worker falls asleep (past its spin) before the next call.
      if (call % 40 === 39) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await rt.close();
  }
});
