import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { quantizeRows } from "../src/dual/quantize.js";
import { FUSED_PARALLEL_MIN_WORK, type LstmDualPlan } from "../src/kernels/dual-step.js";
import { impls, testRuntimes, assertClose, type Impl } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** A random layer's plan in impl's arrays: a ternary projection of 2k rows (P(±1) = 1/6 each), INT8 little weights, fp32 or INT8 big weights. */
function plan(impl: Impl, rng: Rng, E: number, H: number, k2: number, bits: 32 | 8) {
  const R = 4 * H, C = E + H;
  const f32 = (n: number, s: number) => { const a = impl.f32(n); rng.fillUniform(a, -s, s); return a; };
  const offsets = [0], idx: number[] = [];
  for (let i = 0; i < k2; i++) {
    for (const sign of [1, -1]) {
      for (let c = 0; c < C; c++) if (rng.uniform() < 1 / 6) idx.push(c);
      offsets.push(idx.length);
      void sign;
    }
  }
  const off = impl.i32(offsets.length); off.set(offsets);
  const indices = impl.u16(idx.length); indices.set(idx);
  const lq = quantizeRows(Float32Array.from({ length: R * k2 }, () => rng.normal()), R, k2, 8);
  const littleW = impl.i8(R * k2); littleW.set(lq.q!);
  const littleScales = impl.f32(R); littleScales.set(lq.scales);
  const Wf = Float32Array.from({ length: R * C }, () => (rng.uniform() - 0.5) / Math.sqrt(C));
  let big: LstmDualPlan["big"];
  if (bits === 32) { const W = impl.f32(R * C); W.set(Wf); big = { bits, W }; }
  else {
    const q = quantizeRows(Wf, R, C, 8), Wq = impl.i8(R * C), scales = impl.f32(R);
    Wq.set(q.q!); scales.set(q.scales); big = { bits, Wq, scales };
  }
  const xh = f32(C, 1), p: LstmDualPlan = {
    hidden: H, xh, h: xh.subarray(E), c: f32(H, 1), offsets: off, indices, projScale: 0.43, p: impl.f32(k2),
    littleW, littleScales, littleB: f32(R, 0.2), pre: impl.f32(R), lo: impl.f32(4), hi: impl.f32(4),
    rowIdx: impl.i32(R), big, b: f32(R, 0.1),
  };
  return { plan: p, Wf };
}

/** The step in float64 (up to the INT8 little product's exact sums and the estimates' f32 rounding, which are its definition). */
function expected(P: LstmDualPlan) {
  const H = P.hidden, R = 4 * H, C = P.xh.length, k2 = P.p.length, xh = Float64Array.from(P.xh), c0 = Float64Array.from(P.c);
  const p = new Float64Array(k2);
  for (let i = 0; i < k2; i++) {
    let s = 0;
    for (let q = P.offsets[2 * i]; q < P.offsets[2 * i + 2]; q++) s += q < P.offsets[2 * i + 1] ? xh[P.indices[q]] : -xh[P.indices[q]];
    p[i] = Math.fround(P.projScale * s);
  }
  let amax = 0;
  for (const v of p) amax = Math.max(amax, Math.abs(v));
  const ps = Math.fround(amax / 127) || 1;
  const pq = p.map((v) => (amax === 0 ? 0 : Math.max(-127, Math.min(127, roundHalfEven(Math.fround(v / ps))))));
  const pre = new Float64Array(R), rows: number[] = [];
  for (let r = 0; r < R; r++) {
    let acc = 0;
    for (let c = 0; c < k2; c++) acc += P.littleW[r * k2 + c] * pq[c];
    const est = Math.fround(Math.fround(acc * Math.fround(P.littleScales[r] * ps)) + P.littleB[r]);
    const g = Math.floor(r / H);
    pre[r] = est;
    if (P.lo[g] < est && est < P.hi[g]) rows.push(r);
  }
  const big = P.big;
  let xs = 1;
  const xq = new Float64Array(C);
  if (big.bits === 8) {
    let m = 0;
    for (const v of xh) m = Math.max(m, Math.abs(v));
    xs = Math.fround(m / 127);
    for (let c = 0; c < C; c++) xq[c] = Math.max(-127, Math.min(127, roundHalfEven(Math.fround(xh[c] / xs))));
  }
  for (const r of rows) {
    let s = 0;
    if (big.bits === 32) for (let c = 0; c < C; c++) s += big.W[r * C + c] * xh[c];
    else { for (let c = 0; c < C; c++) s += big.Wq[r * C + c] * xq[c]; s *= big.scales[r] * xs; }
    pre[r] = s + P.b[r];
  }
  const h = new Float64Array(H), c = new Float64Array(H);
  for (let j = 0; j < H; j++) {
    c[j] = sigmoid(pre[H + j]) * c0[j] + sigmoid(pre[j]) * Math.tanh(pre[2 * H + j]);
    h[j] = sigmoid(pre[3 * H + j]) * Math.tanh(c[j]);
  }
  return { rows, h, c, pre };
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v), d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

// Odd everywhere; the last is large enough that 2 threads split the step (R·C ≥ FUSED_PARALLEL_MIN_WORK).
const SHAPES: [number, number, number][] = [[7, 5, 3], [130, 97, 66], [1791, 257, 67]];
// Per gate: every estimate sensitive (the dense product), none, and about half (an interval around 0).
const BOUNDS: [string, number, number][] = [["all", -Infinity, Infinity], ["none", 0, 0], ["half", -0.6, 0.6]];

test("lstmDualStep: the test's largest shape is split between threads", () => {
  const [E, H] = SHAPES[SHAPES.length - 1];
  assert.ok(4 * H * (E + H) >= FUSED_PARALLEL_MIN_WORK);
});

test("lstmDualStep: every implementation computes the float64 step (rows exactly), on 1 and 2 threads, fp32 and INT8 big weights", async () => {
  for (const impl of await impls()) {
    for (const [E, H, k2] of SHAPES) {
      for (const bits of [32, 8] as const) {
        const { plan: P } = plan(impl, new Rng(E * 1000 + H + bits), E, H, k2, bits);
        const xh0 = P.xh.slice(), c0 = P.c.slice();
        for (const [name, lo, hi] of BOUNDS) {
          P.xh.set(xh0); P.c.set(c0); P.pre.fill(0); P.rowIdx.fill(-1);
          P.lo.fill(lo); P.hi.fill(hi);
          const want = expected(P);
          const what = `${impl.name} E=${E} H=${H} k2=${k2} big ${bits} ${name}`;
          const count = impl.k.lstmDualStep(P);
          assert.equal(count, want.rows.length, `${what}: count`);
          assert.deepEqual(Array.from(P.rowIdx.subarray(0, count)), want.rows, `${what}: rows`);
          if (name === "half") assert.ok(count > 0 && count < 4 * H, `${what}: ${count} rows is not a partial selection`);
          const tol = bits === 32 ? 1e-5 : 1e-4; // INT8 big: xh's quantization levels may round apart
          assertClose(P.pre, want.pre, 1, tol, `${what}: pre`);
          assertClose(P.c, want.c, 1, tol, `${what}: c`);
          assertClose(P.h, want.h, 1, tol, `${what}: h`);
        }
      }
    }
  }
});

test("lstmDualStep rejects a plan with a wrong size or a NaN bound before running", async () => {
  for (const impl of await impls()) {
    const { plan: P } = plan(impl, new Rng(3), 7, 5, 3, 32);
    assert.throws(() => impl.k.lstmDualStep({ ...P, littleB: impl.f32(3) }), /littleB/);
    assert.throws(() => impl.k.lstmDualStep({ ...P, h: impl.f32(5) }), /h must be the view of xh/);
    P.lo[2] = NaN;
    assert.throws(() => impl.k.lstmDualStep(P), /NaN/);
  }
});
