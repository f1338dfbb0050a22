import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { impls, assertClose, testRuntimes, type Impl } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const SIZES = [0, 1, 3, 17, 1001];
/** The accuracy promised for activations and gate updates, relative to the float64 value. */
const TOL = 2e-7;
/** Results below the float32 normal range are only accurate to a subnormal step. */
const SUBNORMAL = 2 ** -149;

const sigmoid = (v: number): number => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));
const ACTIVATIONS: [name: "sigmoid" | "tanh" | "relu", f: (v: number) => number][] = [
  ["sigmoid", sigmoid], ["tanh", Math.tanh], ["relu", (v) => (v > 0 ? v : Number.isNaN(v) ? NaN : 0)],
];

/** Edge inputs: zeros, tiny, the tanh series switch-over, where exp underflows float32, huge, ±∞. */
const EDGES = [0, 1e-45, 1e-30, 1e-8, 2 ** -10 * (1 - 2 ** -23), 2 ** -10, 2 ** -10 * (1 + 2 ** -23), 0.5, 1, 9, 17,
  30, 87, 88, 100, 103, 104, 110, 200, 1e30, 3.4e38, Infinity].flatMap((v) => [v, -v]);

/** A dense sweep of [−30, 30] (odd length, large enough to be split across threads) and the edges. */
function sweepInputs(): Float32Array {
  const n = 200001, x = new Float32Array(n + EDGES.length + 1);
  for (let i = 0; i < n; i++) x[i] = -30 + (60 * i) / (n - 1);
  x.set(EDGES, n);
  x[x.length - 1] = NaN;
  return x;
}

/** |actual − want| ≤ TOL·|want| (+ a subnormal step); exact where want is NaN, ±0 or ±∞ (the sign of zero kept). */
function assertAccurate(actual: Float32Array, input: ArrayLike<number>, f: (v: number) => number, what: string): void {
  for (let i = 0; i < actual.length; i++) {
    const want = f(input[i]), got = actual[i];
    if (Number.isNaN(want)) { assert.ok(Number.isNaN(got), `${what}: f(${input[i]}) is ${got}, expected NaN`); continue; }
    if (want === 0 || !Number.isFinite(want)) { assert.ok(Object.is(got, want), `${what}: f(${input[i]}) is ${got}, expected ${want}`); continue; }
    const err = Math.abs(got - want);
    if (!(err <= TOL * Math.abs(want) + SUBNORMAL)) {
      assert.fail(`${what}: f(${input[i]}) is ${got}, expected ${want} (relative error ${(err / Math.abs(want)).toExponential(2)})`);
    }
  }
}

function copyTo(impl: Impl, src: ArrayLike<number>): Float32Array { const a = impl.f32(src.length); a.set(src); return a; }

test("sigmoid, tanh and relu match float64 on a dense sweep, the extremes, ±∞ and NaN, out of place and in place", async () => {
  const x0 = sweepInputs();
  for (const impl of await impls()) {
    for (const [name, f] of ACTIVATIONS) {
      const x = copyTo(impl, x0), y = impl.f32(x0.length);
      impl.k[name](y, x, x.length);
      assertAccurate(y, x0, f, `${impl.name} ${name}`);
      assert.deepEqual(x, x0, `${impl.name} ${name} left x alone`);
      impl.k[name](x, x, x.length);
      assert.deepEqual(x, y, `${impl.name} ${name} in place`);
    }
  }
});

test("activations on odd sizes touch exactly their n elements", async () => {
  const rng = new Rng(2);
  for (const impl of await impls()) {
    for (const n of SIZES) {
      for (const [name, f] of ACTIVATIONS) {
        const x = impl.f32(n), yy = impl.f32(n + 1);
        rng.fillUniform(x, -12, 12);
        yy[n] = 42;
        const y = yy.subarray(0, n);
        impl.k[name](y, x, n);
        assertAccurate(y, x, f, `${impl.name} ${name} n=${n}`);
        assert.equal(yy[n], 42, `${impl.name} ${name} n=${n} wrote past y`);
      }
    }
  }
});

test("lstmGates matches float64 (PyTorch gate order i, f, g, o), edge values included", async () => {
  const rng = new Rng(3);
  for (const impl of await impls()) {
    for (const H of [...SIZES, 4099]) {
      const gates = impl.f32(4 * H), c = impl.f32(H), h = impl.f32(H);
      rng.fillUniform(gates, -8, 8); rng.fillUniform(c, -3, 3);
      // Saturated and non-finite pre-activations in every gate block, and a huge cell state.
      for (let j = 0; j < Math.min(H, EDGES.length); j++) for (let q = 0; q < 4; q++) gates[q * H + j] = EDGES[(j + 7 * q) % EDGES.length];
      if (H > 5) { c[5] = 1e30; gates[2 * H + 4] = NaN; }
      const c0 = Float64Array.from(c), g0 = Float64Array.from(gates);
      impl.k.lstmGates(h, c, gates, H);
      const wantC = new Float64Array(H), scaleC = new Float64Array(H), wantH = new Float64Array(H), scaleH = new Float64Array(H);
      for (let j = 0; j < H; j++) {
        const i = sigmoid(g0[j]), f = sigmoid(g0[H + j]), g = Math.tanh(g0[2 * H + j]), o = sigmoid(g0[3 * H + j]);
        wantC[j] = f * c0[j] + i * g;
        scaleC[j] = Math.abs(f * c0[j]) + Math.abs(i * g);
        wantH[j] = o * Math.tanh(wantC[j]);
        scaleH[j] = Math.abs(wantH[j]) + o * scaleC[j]; // |tanh'| ≤ 1
      }
      if (H > 5) {
        assert.ok(Number.isNaN(c[4]) && Number.isNaN(h[4]), `${impl.name} H=${H}: NaN propagates`);
        wantC[4] = wantH[4] = c[4] = h[4] = scaleC[4] = scaleH[4] = 0;
      }
      assertClose(c, wantC, scaleC, TOL, `${impl.name} lstmGates c H=${H}`);
      assertClose(h, wantH, scaleH, TOL, `${impl.name} lstmGates h H=${H}`);
    }
  }
});

test("gruGates matches float64 (PyTorch gate order r, z, n), h updated in place", async () => {
  const rng = new Rng(4);
  for (const impl of await impls()) {
    for (const H of [...SIZES, 4099]) {
      const gx = impl.f32(3 * H), gh = impl.f32(3 * H), h = impl.f32(H);
      rng.fillUniform(gx, -6, 6); rng.fillUniform(gh, -6, 6); rng.fillUniform(h, -1, 1);
      for (let j = 0; j < Math.min(H, EDGES.length); j++) for (let q = 0; q < 3; q++) gx[q * H + j] = EDGES[(j + 5 * q) % EDGES.length];
      const gx0 = Float64Array.from(gx), gh0 = Float64Array.from(gh), h0 = Float64Array.from(h);
      impl.k.gruGates(h, gx, gh, H);
      const want = new Float64Array(H), scale = new Float64Array(H);
      for (let j = 0; j < H; j++) {
        const r = sigmoid(gx0[j] + gh0[j]), z = sigmoid(gx0[H + j] + gh0[H + j]);
        const n = Math.tanh(gx0[2 * H + j] + r * gh0[2 * H + j]);
        want[j] = (1 - z) * n + z * h0[j];
        scale[j] = Math.abs((1 - z) * n) + Math.abs(z * h0[j]);
      }
      assertClose(h, want, scale, TOL, `${impl.name} gruGates H=${H}`);
    }
  }
});

/** A random ternary projection in the compact layout: P(+1) = P(−1) = 1/6 per entry. */
function ternary(rng: Rng, k: number, n: number): { offsets: number[]; indices: number[] } {
  const offsets = [0], indices: number[] = [];
  for (let i = 0; i < k; i++) {
    const plus: number[] = [], minus: number[] = [];
    for (let c = 0; c < n; c++) {
      const u = rng.uniform();
      if (u < 1 / 6) plus.push(c); else if (u < 1 / 3) minus.push(c);
    }
    if (i === 1) minus.length = 0; // a row with no −1 entries
    if (i === 2) plus.length = 0;  // and one with no +1 entries
    indices.push(...plus); offsets.push(indices.length);
    indices.push(...minus); offsets.push(indices.length);
  }
  return { offsets, indices };
}

function copyI32(impl: Impl, src: number[]): Int32Array { const a = impl.i32(src.length); a.set(src); return a; }
function copyU16(impl: Impl, src: number[]): Uint16Array { const a = impl.u16(src.length); a.set(src); return a; }

test("project matches a float64 sparse ternary product on odd shapes", async () => {
  const rng = new Rng(5);
  for (const impl of await impls()) {
    for (const [k, n] of [[0, 5], [1, 1], [3, 7], [17, 33], [417, 1501]]) {
      const p = ternary(rng, k, n), offsets = copyI32(impl, p.offsets), indices = copyU16(impl, p.indices);
      const x = impl.f32(n), y = impl.f32(k), scale = 0.37;
      rng.fillUniform(x, -1, 1);
      impl.k.project(y, x, offsets, indices, scale, k, n);
      const want = new Float64Array(k), mag = new Float64Array(k);
      for (let i = 0; i < k; i++) {
        for (let q = p.offsets[2 * i]; q < p.offsets[2 * i + 2]; q++) {
          const v = x[p.indices[q]];
          want[i] += q < p.offsets[2 * i + 1] ? v : -v;
          mag[i] += Math.abs(v);
        }
        want[i] *= scale; mag[i] *= scale;
      }
      assertClose(y, want, mag, TOL, `${impl.name} project ${k}×${n}`);
    }
  }
});

test("project rejects a malformed layout before running", async () => {
  for (const impl of await impls()) {
    const x = impl.f32(4), y = impl.f32(2);
    const run = (offsets: number[], indices: number[], scale = 1) =>
      impl.k.project(y, x, copyI32(impl, offsets), copyU16(impl, indices), scale, 2, 4);
    run([0, 1, 2, 2, 3], [0, 3, 1]); // valid
    assert.throws(() => run([0, 1, 2, 3], [0, 1, 2]), /offsets must have 5 elements, got 4/);
    assert.throws(() => run([1, 1, 2, 2, 3], [0, 3, 1]), /offsets\[0\] must be 0, got 1/);
    assert.throws(() => run([0, 2, 1, 2, 3], [0, 3, 1]), /offsets must be non-decreasing, but offsets\[2\] = 1 < offsets\[1\] = 2/);
    assert.throws(() => run([0, 1, 2, 2, 3], [0, 3, 1, 2]), /offsets\[4\] must equal indices.length = 4, got 3/);
    assert.throws(() => run([0, 1, 2, 2, 3], [0, 4, 1]), /indices\[1\] = 4 is outside \[0, 4\)/);
    assert.throws(() => run([0, 1, 2, 2, 3], [0, 65535, 1]), /indices\[1\] = 65535 is outside/);
    assert.throws(() => impl.k.project(impl.f32(1), impl.f32(65537), copyI32(impl, [0, 0, 0]), copyU16(impl, []), 1, 1, 65537),
      /n = 65537 columns exceed the 65536 that 16-bit indices address/);
    assert.throws(() => run([0, 1, 2, 2, 3], [0, 3, 1], NaN), /scale must be finite, got NaN/);
    assert.throws(() => impl.k.project(y, x, copyI32(impl, [0, 0, 0, 0, 0]), new Float32Array(0) as unknown as Uint16Array, 1, 2, 4),
      /indices must be a Uint16Array, got Float32Array/);
  }
});

test("sum matches float64 on odd sizes, and is exact on integers", async () => {
  const rng = new Rng(6);
  for (const impl of await impls()) {
    for (const n of [...SIZES, 1024, 1025, 100003]) {
      const x = impl.f32(n);
      rng.fillUniform(x, -1, 1);
      let want = 0, mag = 0;
      for (let i = 0; i < n; i++) { want += x[i]; mag += Math.abs(x[i]); }
      const got = impl.k.sum(x, n);
      // Float32 lanes add at most 32 values per block before the float64 total, then 5 more steps.
      assert.ok(Math.abs(got - want) <= 40 * 2 ** -24 * mag, `${impl.name} sum n=${n}: ${got}, expected ${want}`);
    }
    const ones = impl.f32((1 << 20) + 3).fill(1);
    assert.equal(impl.k.sum(ones, ones.length), ones.length, `${impl.name} sum of ones`);
    ones[12345] = Infinity;
    assert.equal(impl.k.sum(ones, ones.length), Infinity, `${impl.name} sum with ∞`);
  }
});

test("elementwise kernels reject bad arguments before running", async () => {
  for (const impl of await impls()) {
    const x = impl.f32(5), y = impl.f32(5);
    assert.throws(() => impl.k.sigmoid(y, impl.f32(4), 5), /sigmoid: x must have 5 elements, got 4/);
    assert.throws(() => impl.k.relu(y, x, -1), /relu: n must be an integer/);
    assert.throws(() => impl.k.tanh(new Int32Array(5) as unknown as Float32Array, x, 5), /tanh: y must be a Float32Array, got Int32Array/);
    assert.throws(() => impl.k.lstmGates(impl.f32(2), impl.f32(2), impl.f32(7), 2), /lstmGates: gates must have 8 elements, got 7/);
    assert.throws(() => impl.k.gruGates(impl.f32(2), impl.f32(6), impl.f32(5), 2), /gruGates: gh must have 6 elements, got 5/);
    assert.throws(() => impl.k.sum(x, 6), /sum: x must have 6 elements, got 5/);
  }
  const [rt] = await testRuntimes();
  assert.throws(() => rt.kernels.sigmoid(rt.heap.f32(3), new Float32Array(3), 3), /x must be allocated in the runtime's heap/);
});
