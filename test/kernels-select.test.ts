import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { impls, testRuntimes } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

/** The sensitive indices by the definition: lo[g] < a[j] < hi[g] for j in block g. */
function expected(a: ArrayLike<number>, lo: ArrayLike<number>, hi: ArrayLike<number>, blockSize: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < a.length; j++) {
    const g = Math.floor(j / blockSize);
    if (lo[g] < a[j] && a[j] < hi[g]) out.push(j);
  }
  return out;
}

test("selectSensitive lists lo < a < hi per block, in order, on odd sizes", async () => {
  const rng = new Rng(7);
  for (const impl of await impls()) {
    for (const blockSize of [0, 1, 3, 17, 1001]) {
      for (const blocks of [1, 3, 4]) {
        const total = blockSize * blocks;
        const a = impl.f32(total), lo = impl.f32(blocks), hi = impl.f32(blocks);
        rng.fillUniform(a, -4, 4);
        // Edge values in a: they are never sensitive under open bounds, except 0-like finite ones.
        const edges = [NaN, Infinity, -Infinity, 0, -0, 1e30, -1e30];
        for (let j = 0; j < Math.min(total, edges.length); j++) a[(j * 7) % total] = edges[j];
        // Per block: a sigmoid-like half line, a tanh-like band, a ReLU threshold at a value that occurs.
        for (let g = 0; g < blocks; g++) {
          if (g % 3 === 0) { lo[g] = rng.uniform() * 2 - 1; hi[g] = Infinity; }
          else if (g % 3 === 1) { hi[g] = rng.uniform() * 3; lo[g] = -hi[g]; }
          else { lo[g] = blockSize > 0 ? a[g * blockSize] : 0; hi[g] = Infinity; }
        }
        const rowIdx = impl.i32(total + 3).fill(-7);
        const count = impl.k.selectSensitive(rowIdx, a, lo, hi, blockSize, blocks);
        const want = expected(a, lo, hi, blockSize);
        assert.deepEqual(Array.from(rowIdx.subarray(0, count)), want, `${impl.name} ${blocks}×${blockSize}`);
        assert.deepEqual(Array.from(rowIdx.subarray(total)), [-7, -7, -7], `${impl.name} ${blocks}×${blockSize}: nothing written past the list's room`);
      }
    }
  }
});

test("selectSensitive: empty and full selections, and thresholds from the activation rules", async () => {
  const H = 1001, rng = new Rng(8);
  for (const impl of await impls()) {
    const a = impl.f32(4 * H), rowIdx = impl.i32(4 * H), lo = impl.f32(4), hi = impl.f32(4);
    rng.fillUniform(a, -10, 10);
    lo.fill(-Infinity); hi.fill(Infinity);
    assert.equal(impl.k.selectSensitive(rowIdx, a, lo, hi, H, 4), 4 * H, `${impl.name} full`);
    assert.deepEqual(Array.from(rowIdx), Array.from({ length: 4 * H }, (_, j) => j));
    lo.fill(Infinity); hi.fill(-Infinity);
    assert.equal(impl.k.selectSensitive(rowIdx, a, lo, hi, H, 4), 0, `${impl.name} empty (lo > hi)`);
    lo.fill(1); hi.fill(1);
    assert.equal(impl.k.selectSensitive(rowIdx, a, lo, hi, H, 4), 0, `${impl.name} empty (lo = hi)`);

    // The documented conversions agree with the rules on σ, tanh and ReLU (away from the boundary).
    const thetaS = 0.3, thetaT = 0.8, t = 0.5;
    lo.set([Math.log(thetaS / (1 - thetaS)), -Math.atanh(thetaT), t, Math.log(thetaS / (1 - thetaS))]);
    hi.set([Infinity, Math.atanh(thetaT), Infinity, Infinity]);
    const rule = (g: number, v: number): boolean =>
      g === 1 ? Math.abs(Math.tanh(v)) < thetaT : g === 2 ? v > t : 1 / (1 + Math.exp(-v)) > thetaS;
    const count = impl.k.selectSensitive(rowIdx, a, lo, hi, H, 4);
    const want: number[] = [];
    for (let j = 0; j < 4 * H; j++) if (rule(Math.floor(j / H), a[j])) want.push(j);
    assert.deepEqual(Array.from(rowIdx.subarray(0, count)), want, `${impl.name} activation rules`);
  }
});

test("selectSensitive rejects bad arguments before running", async () => {
  for (const impl of await impls()) {
    const a = impl.f32(6), lo = impl.f32(2), hi = impl.f32(2).fill(1);
    assert.throws(() => impl.k.selectSensitive(impl.i32(5), a, lo, hi, 3, 2), /selectSensitive: rowIdx must have at least 6 elements, got 5/);
    assert.throws(() => impl.k.selectSensitive(impl.f32(6) as unknown as Int32Array, a, lo, hi, 3, 2), /rowIdx must be a Int32Array, got Float32Array/);
    assert.throws(() => impl.k.selectSensitive(impl.i32(6), a, impl.f32(3), hi, 3, 2), /lo must have 2 elements, got 3/);
    assert.throws(() => impl.k.selectSensitive(impl.i32(6), impl.f32(5), lo, hi, 3, 2), /a must have 6 elements, got 5/);
    hi[1] = NaN;
    assert.throws(() => impl.k.selectSensitive(impl.i32(6), a, lo, hi, 3, 2), /lo\[1\] = 0 and hi\[1\] = NaN must not be NaN/);
    assert.throws(() => impl.k.selectSensitive(impl.i32(6), a, lo, hi, 1.5, 2), /blockSize must be an integer/);
  }
});
