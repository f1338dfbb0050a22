import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { MAX_I8_COLS, i4RowBytes, packInt4 } from "../src/kernels/quant.js";
import { reference } from "../src/kernels/index.js";
import { impls, testRuntimes, type Impl } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const SENTINEL = 12345.5;

test("quantize: symmetric scale, round half to even, identical in every implementation", async () => {
  const rng = new Rng(11);
  for (const impl of await impls()) {
    // Scale 1 exactly: halves must go to the even neighbour, both signs.
    const x = impl.f32(7), q = impl.i8(7);
    x.set([127, 0.5, 1.5, 2.5, -2.5, -3.5, -127]);
    assert.equal(impl.k.quantize(q, x, 7), 1, `${impl.name} scale`);
    assert.deepEqual(Array.from(q), [127, 0, 2, 2, -2, -4, -127], `${impl.name} ties`);

    for (const n of [0, 1, 15, 16, 17, 33, 1001]) {
      const xs = impl.f32(n), qs = impl.i8(n);
      for (let i = 0; i < n; i++) xs[i] = rng.normal() * 3;
      const scale = impl.k.quantize(qs, xs, n);
      const qRef = new Int8Array(n);
      assert.equal(scale, reference.quantize(qRef, xs, n), `${impl.name} n=${n} scale`);
      assert.deepEqual(Array.from(qs), Array.from(qRef), `${impl.name} n=${n} q`);
      let amax = 0;
      for (let i = 0; i < n; i++) amax = Math.max(amax, Math.abs(xs[i]));
      if (n > 0) assert.equal(scale, Math.fround(amax / 127), `${impl.name} n=${n} scale is max|x|/127`);
      for (let i = 0; i < n; i++) {
        assert.ok(Math.abs(qs[i]) <= 127 && Math.abs(xs[i] - qs[i] * scale) <= scale * (0.5 + 1e-5),
          `${impl.name} n=${n}: x[${i}] = ${xs[i]} quantized to ${qs[i]} × ${scale}`);
      }
    }

    const z = impl.f32(19), qz = impl.i8(19).fill(5);
    assert.equal(impl.k.quantize(qz, z, 19), 1, `${impl.name} zero vector scale`);
    assert.ok(qz.every((v) => v === 0), `${impl.name} zero vector q`);
    z[3] = 1e-45; qz.fill(5); // max|x|/127 underflows to 0 in f32
    assert.equal(impl.k.quantize(qz, z, 19), 1, `${impl.name} tiny vector scale`);
    assert.ok(qz.every((v) => v === 0), `${impl.name} tiny vector q`);

    z[3] = NaN;
    assert.throws(() => impl.k.quantize(qz, z, 19), /quantize: x\[3\] = NaN must be finite/);
    assert.throws(() => impl.k.quantize(impl.i8(18), z, 19), /quantize: q must have 19 elements, got 18/);
  }
});

/** Random int8 weights over the full range, per-row scales, an input quantized like the runtime does. */
function problem(impl: Impl, rng: Rng, rows: number, cols: number) {
  const Wq = impl.i8(rows * cols), scales = impl.f32(rows), xq = impl.i8(cols), b = impl.f32(rows);
  for (let i = 0; i < Wq.length; i++) Wq[i] = rng.int(256) - 128;
  for (let r = 0; r < rows; r++) scales[r] = 0.001 + 0.01 * rng.uniform();
  for (let c = 0; c < cols; c++) xq[c] = rng.int(255) - 127;
  rng.fillUniform(b, -1, 1);
  return { Wq, scales, xq, b, xScale: Math.fround(0.003 + 0.01 * rng.uniform()) };
}

/** The exact integer sum, scaled as the interface specifies. */
function expectedI8(Wq: Int8Array, scales: Float32Array, xq: Int8Array, xScale: number, b: Float32Array | null,
                    r: number, cols: number): number {
  let acc = 0;
  for (let c = 0; c < cols; c++) acc += Wq[r * cols + c] * xq[c];
  const v = Math.fround(Math.fround(acc) * Math.fround(scales[r] * xScale));
  return b ? Math.fround(v + b[r]) : v;
}

// Odd column counts (not multiples of 16); [300, 1001] and [513, 259] pass the two-thread threshold.
const SHAPES: [number, number][] = [[0, 5], [1, 1], [3, 15], [17, 17], [40, 33], [300, 1001], [513, 259]];

test("matvecI8 equals the exact integer product, scaled in f32", async () => {
  const rng = new Rng(12);
  for (const impl of await impls()) {
    for (const [rows, cols] of SHAPES) {
      for (const withBias of [false, true]) {
        const p = problem(impl, rng, rows, cols), y = impl.f32(rows);
        const b = withBias ? p.b : null;
        impl.k.matvecI8(y, p.Wq, p.scales, p.xq, p.xScale, b, rows, cols);
        for (let r = 0; r < rows; r++) {
          assert.equal(y[r], expectedI8(p.Wq, p.scales, p.xq, p.xScale, b, r, cols), `${impl.name} ${rows}×${cols} bias=${withBias} row ${r}`);
        }
      }
    }
  }
});

test("matvecI8 stays exact at the extremes (-128 · -128 everywhere, sums past 2^24)", async () => {
  for (const impl of await impls()) {
    const rows = 5, cols = 4099;
    const Wq = impl.i8(rows * cols).fill(-128), xq = impl.i8(cols).fill(-128), scales = impl.f32(rows).fill(1), y = impl.f32(rows);
    xq[cols - 1] = 1; // the scalar tail counts too: Σ = 4098·16384 − 128
    impl.k.matvecI8(y, Wq, scales, xq, 1, null, rows, cols);
    assert.deepEqual(Array.from(y), new Array(rows).fill(Math.fround(4098 * 16384 - 128)), impl.name);
  }
});

test("matvecI8Rows computes exactly the listed rows and leaves the others untouched", async () => {
  const rng = new Rng(13);
  for (const impl of await impls()) {
    for (const [rows, cols] of SHAPES) {
      for (const count of [0, 1, Math.floor(rows / 2), rows]) {
        if (count > rows) continue;
        const p = problem(impl, rng, rows, cols), y = impl.f32(rows).fill(SENTINEL), idx = impl.i32(rows + 2).fill(-1);
        const order = Array.from({ length: rows }, (_, i) => i);
        for (let i = 0; i < count; i++) {
          const j = i + rng.int(rows - i);
          [order[i], order[j]] = [order[j], order[i]];
          idx[i] = order[i];
        }
        const b = count % 2 === 1 ? p.b : null;
        impl.k.matvecI8Rows(y, p.Wq, p.scales, p.xq, p.xScale, b, idx, count, rows, cols);
        const listed = new Set(idx.subarray(0, count));
        for (let r = 0; r < rows; r++) {
          const want = listed.has(r) ? expectedI8(p.Wq, p.scales, p.xq, p.xScale, b, r, cols) : SENTINEL;
          assert.equal(y[r], want, `${impl.name} ${rows}×${cols} count=${count} row ${r}`);
        }
      }
    }
  }
});

test("int8 kernels reject bad scales, row lists and sizes before running", async () => {
  for (const impl of await impls()) {
    const Wq = impl.i8(12), xq = impl.i8(4), y = impl.f32(3).fill(SENTINEL), scales = impl.f32(3).fill(0.5);
    const idx = impl.i32(2);
    idx[0] = 0; idx[1] = 3;
    assert.throws(() => impl.k.matvecI8Rows(y, Wq, scales, xq, 1, null, idx, 2, 3, 4), /matvecI8Rows: rowIdx\[1\] = 3 is outside \[0, 3\)/);
    assert.throws(() => impl.k.matvecI8Rows(y, Wq, scales, xq, 1, null, idx, 3, 3, 4), /count must be ≤ rowIdx.length = 2, got 3/);
    for (const bad of [NaN, Infinity, 0, -1]) {
      assert.throws(() => impl.k.matvecI8(y, Wq, scales, xq, bad, null, 3, 4), /matvecI8: xScale must be finite and > 0/);
      // Scales are constants (checked the first time a kernel sees them), so each bad value gets a new array.
      const badScales = impl.f32(3).fill(0.5);
      badScales[1] = bad;
      assert.throws(() => impl.k.matvecI8(y, Wq, badScales, xq, 1, null, 3, 4), /matvecI8: scales\[1\] = .* must be finite and > 0/);
    }
    assert.throws(() => impl.k.matvecI8(y, impl.f32(12) as unknown as Int8Array, scales, xq, 1, null, 3, 4), /Wq must be a Int8Array, got Float32Array/);
    assert.throws(() => impl.k.matvecI8(impl.f32(0), impl.i8(0), impl.f32(0), impl.i8(MAX_I8_COLS + 1), 1, null, 0, MAX_I8_COLS + 1),
      /cols must be ≤ 131071/);
    assert.ok(y.every((v) => v === SENTINEL), `${impl.name}: a rejected call wrote y`);
  }
});

/** Bytes for packed int4 weights, allocated where the implementation accepts them. */
function bytes(impl: Impl, n: number): Uint8Array {
  const a = impl.i8(n);
  return new Uint8Array(a.buffer, a.byteOffset, n);
}

// Columns around the 32-column groups of the int4 layout; [300, 1001] passes the two-thread threshold.
const I4_SHAPES: [number, number][] = [[0, 5], [1, 1], [3, 15], [5, 16], [6, 17], [9, 31], [7, 32], [40, 33], [300, 1001]];

test("matvecI4 equals the exact integer product of the unpacked weights", async () => {
  const rng = new Rng(14);
  for (const impl of await impls()) {
    for (const [rows, cols] of I4_SHAPES) {
      for (const withBias of [false, true]) {
        const p = problem(impl, rng, rows, cols), y = impl.f32(rows).fill(SENTINEL);
        const q = new Int8Array(rows * cols);
        for (let i = 0; i < q.length; i++) q[i] = rng.int(16) - 8;
        const W4 = bytes(impl, rows * i4RowBytes(cols));
        packInt4(W4, q, rows, cols);
        const b = withBias ? p.b : null;
        impl.k.matvecI4(y, W4, p.scales, p.xq, p.xScale, b, rows, cols);
        for (let r = 0; r < rows; r++) {
          assert.equal(y[r], expectedI8(q, p.scales, p.xq, p.xScale, b, r, cols), `${impl.name} ${rows}×${cols} bias=${withBias} row ${r}`);
        }
      }
    }
  }
});

test("packInt4 lays out 32-column groups as low and high nibbles and rejects values outside int4", () => {
  const q = new Int8Array(34);
  for (let c = 0; c < 34; c++) q[c] = (c % 15) - 7;
  const W4 = new Uint8Array(i4RowBytes(34));
  assert.equal(W4.length, 32);
  packInt4(W4, q, 1, 34);
  // Byte 1 holds column 1 (-6 → 0xA) low and column 17 (-5 → 0xB) high; byte 17 holds column 33
  // (-4 → 0xC) low and padding high.
  assert.equal(W4[1], 0xba);
  assert.equal(W4[17], 0x0c);
  assert.equal(W4[18], 0);
  q[5] = 8;
  assert.throws(() => packInt4(W4, q, 1, 34), /packInt4: q\[5\] = 8 is outside the int4 range \[-8, 7\]/);
  assert.throws(() => packInt4(new Uint8Array(31), q, 1, 34), /packInt4: W4 must have 32 elements, got 31/);
});

test("matvecI4 rejects a wrongly sized weight buffer", async () => {
  for (const impl of await impls()) {
    const y = impl.f32(2), scales = impl.f32(2).fill(1), xq = impl.i8(33);
    assert.throws(() => impl.k.matvecI4(y, bytes(impl, 2 * 17), scales, xq, 1, null, 2, 33), /matvecI4: W4 must have 64 elements, got 34/);
    assert.throws(() => impl.k.matvecI4(y, impl.i8(64) as unknown as Uint8Array, scales, xq, 1, null, 2, 33), /W4 must be a Uint8Array, got Int8Array/);
  }
});

test("matvecI8 beyond limits.i8Cols is an error naming the limit (its widened-x scratch is sized once)", async () => {
  const { Runtime } = await import("../src/runtime/runtime.js");
  const rt = await Runtime.create({ threads: 2, simd: "simd", limits: { i8Cols: 32 } });
  try {
    const y = rt.heap.f32(2), Wq = rt.heap.i8(2 * 33), scales = rt.heap.f32(2).fill(1), xq = rt.heap.i8(33);
    assert.throws(() => rt.kernels.matvecI8(y, Wq, scales, xq, 1, null, 2, 33), /matvecI8: i8Cols 33 exceeds 32, the limit its scratch was sized for/);
    Wq.fill(1); xq.fill(2);
    rt.kernels.matvecI8(y, Wq.subarray(0, 64), scales, xq.subarray(0, 32), 1, null, 2, 32);
    assert.deepEqual(Array.from(y), [64, 64]);
  } finally {
    await rt.close();
  }
});
