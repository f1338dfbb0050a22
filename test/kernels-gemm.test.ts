import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { impls, assertClose, testRuntimes, type Impl } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

// [M, N, K]: single elements, odd sizes (not multiples of the 4×8 tile), a vector on either side,
// empty ones, and shapes that cross the kernel's K (256) and N (1024) blocks and are split over two
// threads: by columns (batch 20: M < N) and by rows (M ≥ N).
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [7, 13, 5], [33, 17, 65], [130, 1, 257], [1, 300, 70], [5, 9, 0], [0, 4, 3],
  [20, 1100, 300], [67, 45, 530],
];

/** float64 op(A)·op(B) (+ C0), and Σ|terms| per element as the error scale. */
function expected(C0: Float32Array, A: Float32Array, B: Float32Array, M: number, N: number, K: number,
                  transA: boolean, transB: boolean, accumulate: boolean): { want: Float64Array; scale: Float64Array } {
  const want = new Float64Array(M * N), scale = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = accumulate ? C0[i * N + j] : 0, m = Math.abs(s);
      for (let p = 0; p < K; p++) {
        const t = (transA ? A[p * M + i] : A[i * K + p]) * (transB ? B[j * K + p] : B[p * N + j]);
        s += t; m += Math.abs(t);
      }
      want[i * N + j] = s; scale[i * N + j] = m;
    }
  }
  return { want, scale };
}

function random(impl: Impl, rng: Rng, n: number): Float32Array {
  const a = impl.f32(n);
  rng.fillUniform(a, -1, 1);
  return a;
}

test("gemm matches a float64 reference for every transpose, with and without accumulate", async () => {
  const rng = new Rng(7);
  for (const impl of await impls()) {
    for (const [M, N, K] of SHAPES) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          for (const accumulate of [false, true]) {
            const A = random(impl, rng, M * K), B = random(impl, rng, K * N), C = random(impl, rng, M * N);
            const { want, scale } = expected(C, A, B, M, N, K, transA, transB, accumulate);
            impl.k.gemm(C, A, B, M, N, K, transA, transB, accumulate);
            assertClose(C, want, scale, 1e-6,
              `${impl.name} ${M}×${N}×${K} transA=${transA} transB=${transB} accumulate=${accumulate}`);
          }
        }
      }
    }
  }
});

test("gemm with K = 0 zeroes C, or leaves it when accumulating", async () => {
  for (const impl of await impls()) {
    const C = impl.f32(6).fill(3);
    impl.k.gemm(C, impl.f32(0), impl.f32(0), 2, 3, 0, false, false, true);
    assert.deepEqual([...C], [3, 3, 3, 3, 3, 3], impl.name);
    impl.k.gemm(C, impl.f32(0), impl.f32(0), 2, 3, 0, true, true, false);
    assert.deepEqual([...C], [0, 0, 0, 0, 0, 0], impl.name);
  }
});

test("gemm rejects bad arguments before running", async () => {
  for (const impl of await impls()) {
    const A = impl.f32(6), B = impl.f32(12), C = impl.f32(8); // (2, 3) · (3, 4) = (2, 4)
    impl.k.gemm(C, A, B, 2, 4, 3, false, false, false);
    assert.throws(() => impl.k.gemm(C, A, impl.f32(11), 2, 4, 3, false, false, false), /gemm: B must have 12 elements, got 11/);
    assert.throws(() => impl.k.gemm(C.subarray(1), A, B, 2, 4, 3, false, false, false), /C must have 8 elements, got 7/);
    assert.throws(() => impl.k.gemm(C, A, B, 2, 4, 2.5, false, false, false), /K must be an integer/);
    assert.throws(() => impl.k.gemm(C, A, B, -2, 4, 3, false, false, false), /M must be an integer/);
    assert.throws(() => impl.k.gemm(C, A, B, 2, 4, 3, 1 as unknown as boolean, false, false), /transA must be a boolean, got number/);
    assert.throws(() => impl.k.gemm(C, new Int32Array(6) as unknown as Float32Array, B, 2, 4, 3, false, false, false),
      /A must be a Float32Array, got Int32Array/);
    const big = impl.f32(20);
    assert.throws(() => impl.k.gemm(big.subarray(0, 8), big.subarray(6, 12), B, 2, 4, 3, false, false, false), /C must not overlap A/);
  }
  const [rt] = await testRuntimes();
  assert.throws(() => rt.kernels.gemm(rt.heap.f32(8), new Float32Array(6), rt.heap.f32(12), 2, 4, 3, false, false, false),
    /A must be allocated in the runtime's heap/);
});

test("the pool dispatches what the kernel module exports, and names those exports when asked for another", async () => {
  const [rt] = await testRuntimes();
  assert.throws(() => rt.pool.run("gemm_f64", 1), /the kernel module exports no function gemm_f64 \(it has [a-z0-9_, ]*gemm_f32,/);
});
