// The training kernels (src/kernels/train.ts) and the packed-B GEMM (src/kernels/gemm.ts packB,
// gemmPacked): every build and thread count against the TypeScript twins on odd shapes, thread shares
// that start mid-row, and empty ones.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { reference } from "../src/kernels/index.js";
import { gemmPackedSize } from "../src/kernels/gemm.js";
import { impls, testRuntimes, type Impl } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

// (B, H): empty, single, odd (a thread's share ends mid-row), the trainer's batch at an odd width.
const STEP_SHAPES: [number, number][] = [[0, 4], [3, 0], [1, 1], [1, 3], [3, 7], [5, 33], [20, 75]];

function random(impl: Impl | null, n: number, rng: Rng, lo: number, hi: number): Float32Array {
  const a = impl ? impl.f32(n) : new Float32Array(n);
  rng.fillUniform(a, lo, hi);
  return a;
}

/** |a − b| ≤ 2e-7 · max(1, |b|) elementwise: the float32 rounding of one float64 result, twice at most. */
function assertClose(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < b.length; i++) {
    if (!(Math.abs(a[i] - b[i]) <= 2.5e-7 * Math.max(1, Math.abs(b[i])))) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

/**
 * Runs `kernel` on every implementation with the same random inputs (`spec`: name → [gates, lo, hi],
 * each array (B, gates·H)) and compares every array afterwards (outputs and in-place updates) with the twin's.
 */
async function compareStep(name: string, spec: Record<string, [number, number, number]>,
                           run: (k: Impl["k"], a: Record<string, Float32Array>, B: number, H: number) => void): Promise<void> {
  for (const [B, H] of STEP_SHAPES) {
    const make = (impl: Impl | null) => {
      const rng = new Rng(B * 1000 + H);
      return Object.fromEntries(Object.entries(spec).map(([k, [g, lo, hi]]) => [k, random(impl, B * g * H, rng, lo, hi)]));
    };
    const want = make(null);
    run(reference, want, B, H);
    for (const impl of await impls()) {
      const got = make(impl);
      run(impl.k, got, B, H);
      for (const key of Object.keys(spec)) assertClose(got[key], want[key], `${name} ${impl.name} B=${B} H=${H} ${key}`);
    }
  }
}

test("LSTM step kernels, forward and backward, match the TypeScript twin on every build and thread count", async () => {
  await compareStep("lstmTrainForward", { gates: [4, -6, 6], cPrev: [1, -3, 3], c: [1, 0, 0], h: [1, 0, 0], tanhC: [1, 0, 0] },
    (k, a, B, H) => k.lstmTrainForward(a.gates, a.cPrev, a.c, a.h, a.tanhC, B, H));
  // Activations in (0, 1) and (−1, 1) as the forward leaves them.
  await compareStep("lstmTrainBackward",
    { dG: [4, 0, 0], dh: [1, -1, 1], dc: [1, -1, 1], dy: [1, -1, 1], gates: [4, -1, 1], cPrev: [1, -3, 3], tanhC: [1, -1, 1] },
    (k, a, B, H) => k.lstmTrainBackward(a.dG, a.dh, a.dc, a.dy, a.gates, a.cPrev, a.tanhC, B, H));
});

test("GRU step kernels, forward and backward, match the TypeScript twin on every build and thread count", async () => {
  await compareStep("gruTrainForward", { gx: [3, -6, 6], gh: [3, -6, 6], hPrev: [1, -1, 1], h: [1, 0, 0] },
    (k, a, B, H) => k.gruTrainForward(a.gx, a.gh, a.hPrev, a.h, B, H));
  await compareStep("gruTrainBackward",
    { dGx: [3, 0, 0], dGh: [3, 0, 0], dh: [1, -1, 1], dy: [1, -1, 1], gates: [3, -1, 1], gh: [3, -4, 4], hPrev: [1, -1, 1] },
    (k, a, B, H) => k.gruTrainBackward(a.dGx, a.dGh, a.dh, a.dy, a.gates, a.gh, a.hPrev, B, H));
});

test("sumSquares within 1e-12 of the twin; sgdUpdate equal to it bit for bit", async () => {
  for (const n of [0, 1, 3, 9, 1001, 100_003]) {
    const rng = new Rng(n);
    const g0 = random(null, n, rng, -2, 2), p0 = random(null, n, rng, -1, 1), step = 0.3 + rng.uniform();
    const want = reference.sumSquares(g0, n), pWant = p0.slice();
    reference.sgdUpdate(pWant, g0, step, n);
    for (const impl of await impls()) {
      const g = impl.f32(n), p = impl.f32(n);
      g.set(g0); p.set(p0);
      const got = impl.k.sumSquares(g, n);
      assert.ok(Math.abs(got - want) <= 1e-12 * Math.max(1, want), `${impl.name} n=${n}: ${got} vs ${want}`);
      impl.k.sgdUpdate(p, g, step, n);
      assert.deepEqual(p, pWant, `${impl.name} n=${n}: sgdUpdate`);
    }
  }
  assert.throws(() => reference.sgdUpdate(new Float32Array(2), new Float32Array(2), NaN, 2), /step must be finite/);
  assert.throws(() => reference.sgdUpdate(new Float32Array(2), new Float32Array(3), 1, 2), /g must have 2 elements, got 3/);
});

test("gemmPacked on packB's panels equals gemm bit for bit (wasm) and the float64 product (all), every transpose", async () => {
  const shapes: [number, number, number][] = [[0, 5, 3], [3, 0, 2], [2, 3, 0], [1, 1, 1], [5, 9, 7], [20, 33, 300], [7, 300, 20]];
  for (const [M, N, K] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        for (const accumulate of [false, true]) {
          const rng = new Rng(M * 7 + N * 3 + K);
          const A0 = random(null, M * K, rng, -1, 1), B0 = random(null, K * N, rng, -1, 1), C0 = random(null, M * N, rng, -1, 1);
          const want = new Float64Array(M * N);
          for (let i = 0; i < M; i++) {
            for (let j = 0; j < N; j++) {
              let s = accumulate ? C0[i * N + j] : 0;
              for (let p = 0; p < K; p++) s += A0[transA ? p * M + i : i * K + p] * B0[transB ? j * K + p : p * N + j];
              want[i * N + j] = s;
            }
          }
          for (const impl of await impls()) {
            const what = `${impl.name} ${M}×${N}×${K} transA ${transA} transB ${transB} accumulate ${accumulate}`;
            const A = impl.f32(M * K), B = impl.f32(K * N), P = impl.f32(gemmPackedSize(N, K)), C = impl.f32(M * N), D = impl.f32(M * N);
            A.set(A0); B.set(B0); C.set(C0); D.set(C0);
            impl.k.packB(P, B, N, K, transB);
            impl.k.gemmPacked(C, A, P, M, N, K, transA, accumulate);
            for (let i = 0; i < M * N; i++) {
              if (!(Math.abs(C[i] - want[i]) <= 1e-5 * (K + 1))) assert.fail(`${what}: C[${i}] ${C[i]} vs ${want[i]}`);
            }
            if (impl.name === "reference") continue;
            impl.k.gemm(D, A, B, M, N, K, transA, transB, accumulate);
            assert.deepEqual(C, D, `${what}: the same bits as gemm`);
          }
        }
      }
    }
  }
  assert.throws(() => reference.packB(new Float32Array(8), new Float32Array(6), 3, 2, false), /P must have 16 elements, got 8/);
});
