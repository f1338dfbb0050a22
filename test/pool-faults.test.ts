// The worker pool under faults (issue 21): a kernel that traps in a worker or on the calling thread
// is reported as an Error and the pool keeps working; a worker that dies is detected (between calls
// by its exit event, during one by the bounded wait) and every later call fails clearly instead of
// waiting forever; a closed runtime refuses work; two runtimes in one process do not interfere.
// The traps are provoked through Pool.run with pointers outside the memory, a path only tests take:
// the kernel wrappers check their arguments before they reach the pool.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Runtime } from "../src/runtime/runtime.js";
import { reference } from "../src/kernels/index.js";
import type { KernelWorker } from "../src/runtime/platform.js";
import { Rng } from "../src/util/random.js";
import { enableRelaxedSimd } from "../src/runtime/wasm.js";

enableRelaxedSimd();

const ROWS = 64, COLS = 16;

/** A matvec on the runtime's kernels held to the TypeScript reference. */
function checkMatvec(rt: Runtime, seed: number): void {
  const rng = new Rng(seed);
  const W = rt.heap.f32(ROWS * COLS), x = rt.heap.f32(COLS), y = rt.heap.f32(ROWS), want = new Float32Array(ROWS);
  rng.fillUniform(W, -1, 1);
  rng.fillUniform(x, -1, 1);
  rt.kernels.matvec(y, W, x, null, ROWS, COLS);
  reference.matvec(want, W, x, null, ROWS, COLS);
  for (let i = 0; i < ROWS; i++) assert.ok(Math.abs(y[i] - want[i]) < 1e-4, `row ${i}: ${y[i]} vs ${want[i]}`);
  for (const a of [W, x, y]) rt.heap.release(a);
}

/** Runs matvec_f32 on 2 threads with W placed so that rows from `firstBad` on lie past the memory's end. */
function trapFrom(rt: Runtime, firstBad: number): void {
  const x = rt.heap.f32(COLS), y = rt.heap.f32(ROWS);
  const end = rt.heap.memory.buffer.byteLength, w = end - firstBad * COLS * 4;
  try {
    rt.pool.run("matvec_f32", 2, y.byteOffset, w, x.byteOffset, 0, ROWS, COLS);
  } finally {
    rt.heap.release(x);
    rt.heap.release(y);
  }
}

test("a kernel that traps in a worker, or on the calling thread, is an Error to the caller, and the pool stays usable", async () => {
  const rt = await Runtime.create({ threads: 2, simd: "simd" });
  try {
    checkMatvec(rt, 1);
    // Rows 0–31 (the calling thread's half) are in bounds; rows 32–63 (the worker's) are not. The
    // second half traps in the worker, or on the calling thread when it took that share first.
    assert.throws(() => trapFrom(rt, ROWS / 2), (e: Error) => e.constructor === Error
      && /kernel matvec_f32 failed( in a worker thread|: memory access out of bounds)/.test(e.message));
    checkMatvec(rt, 2);
    // Every row out of bounds: the calling thread traps too, and says which kernel.
    assert.throws(() => trapFrom(rt, 0), (e: Error) => e.constructor === Error && /^kernel matvec_f32 failed: memory access out of bounds/.test(e.message));
    checkMatvec(rt, 3);
  } finally {
    await rt.close();
  }
});

const workersOf = (rt: Runtime) => (rt.pool as unknown as { workers: KernelWorker[] }).workers;

test("a worker that dies between calls is detected: the next call fails at once with a clear error", async () => {
  const rt = await Runtime.create({ threads: 2, simd: "simd" });
  checkMatvec(rt, 4);
  // Terminated behind the pool's back (as if it had crashed): its exit event marks the pool broken.
  await rawWorker(rt).terminate();
  await new Promise((resolve) => setTimeout(resolve, 50));
  const t0 = performance.now();
  assert.throws(() => checkMatvec(rt, 5), /cannot run kernel matvec_f32: pool worker 1 of 1 died \(exit code 1\); create a new Runtime/);
  assert.ok(performance.now() - t0 < 1000);
  await rt.close();
});

/** The Node worker behind the pool's first handle (platform.ts keeps it as `raw` for these tests). */
function rawWorker(rt: Runtime): { terminate(): Promise<number> } {
  const handle = workersOf(rt)[0] as KernelWorker & { raw?: { terminate(): Promise<number> } };
  assert.ok(handle.raw, "the Node platform's worker handle has `raw`");
  return handle.raw;
}

test("a worker that dies during a call is caught by the bounded wait: an error, not a deadlock", async () => {
  const rt = await Runtime.create({ threads: 2, simd: "simd" });
  checkMatvec(rt, 6);
  rt.pool.workerTimeoutMs = 300;
  // Not awaited: the worker is gone before it takes the next kernel, and the caller is already waiting.
  const dying = rawWorker(rt).terminate();
  await new Promise((resolve) => setTimeout(resolve, 20));
  const t0 = performance.now();
  assert.throws(() => checkMatvec(rt, 7), /did not finish kernel matvec_f32 within 300 ms|pool worker 1 of 1 died/);
  assert.ok(performance.now() - t0 < 5000);
  await dying;
  assert.throws(() => checkMatvec(rt, 8), /create a new Runtime/);
  await rt.close();
});

test("a closed runtime refuses work with a clear error; closing twice is harmless", async () => {
  const rt = await Runtime.create({ threads: 2, simd: "simd" });
  checkMatvec(rt, 9);
  await rt.close();
  assert.throws(() => checkMatvec(rt, 10), /cannot run kernel matvec_f32: the runtime is closed; create a new Runtime/);
  await rt.close();
  const one = await Runtime.create({ threads: 1, simd: "simd" });
  await one.close();
  assert.throws(() => checkMatvec(one, 11), /the runtime is closed/);
});

test("two runtimes in one process do not interfere, interleaved or with one of them closed", async () => {
  const a = await Runtime.create({ threads: 2, simd: "simd" }), b = await Runtime.create({ threads: 2, simd: "relaxed" });
  for (let i = 0; i < 50; i++) { checkMatvec(a, 100 + i); checkMatvec(b, 200 + i); }
  assert.throws(() => trapFrom(a, ROWS / 2), /kernel matvec_f32 failed( in a worker thread|: memory access out of bounds)/);
  checkMatvec(b, 300);
  await a.close();
  for (let i = 0; i < 10; i++) checkMatvec(b, 400 + i);
  await b.close();
});
