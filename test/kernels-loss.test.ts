import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../src/util/random.js";
import { impls, testRuntimes } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

/** Loss and gradient of one row in float64 straight from the definition (log-sum-exp by max). */
function rowLoss64(z: ArrayLike<number>, target: number, gradScale: number): { loss: number; grad: Float64Array } {
  const m = Math.max(...Array.from(z));
  let s = 0;
  for (let v = 0; v < z.length; v++) s += Math.exp(z[v] - m);
  const grad = new Float64Array(z.length);
  for (let v = 0; v < z.length; v++) grad[v] = gradScale * (Math.exp(z[v] - m) / s - (v === target ? 1 : 0));
  return { loss: m + Math.log(s) - z[target], grad };
}

test("softmaxCrossEntropy matches float64 on odd shapes, extreme and tied logits, with and without gradient", async () => {
  const rng = new Rng(8);
  for (const impl of await impls()) {
    for (const [rows, V] of [[0, 3], [1, 1], [1, 2], [3, 5], [7, 17], [5, 1001], [64, 10000]]) {
      for (const gradScale of [0, 1 / Math.max(rows, 1)]) {
        const z = impl.f32(rows * V), targets = impl.i32(rows);
        rng.fillUniform(z, -8, 8);
        if (rows > 2) { z.fill(3, V, 2 * V); z[2 * V] = 80; z[2 * V + 1] = -80; } // a tied row; a row with far-apart logits
        for (let r = 0; r < rows; r++) targets[r] = rng.int(V);
        const before = Float32Array.from(z);
        let want = 0;
        const grads: Float64Array[] = [];
        for (let r = 0; r < rows; r++) {
          const o = rowLoss64(before.subarray(r * V, (r + 1) * V), targets[r], gradScale);
          want += o.loss; grads.push(o.grad);
        }
        const got = impl.k.softmaxCrossEntropy(z, targets, rows, V, gradScale);
        const what = `${impl.name} ${rows}×${V} gradScale ${gradScale}`;
        assert.ok(Math.abs(got - want) <= 1e-6 * Math.max(1, Math.abs(want)), `${what}: loss ${got} vs ${want}`);
        if (gradScale === 0) { assert.deepEqual(z, before, `${what}: logits untouched`); continue; }
        for (let r = 0; r < rows; r++) {
          for (let v = 0; v < V; v++) {
            const g = z[r * V + v], w = grads[r][v];
            assert.ok(Math.abs(g - w) <= 1e-6 * gradScale, `${what}: grad[${r}, ${v}] ${g} vs ${w}`);
          }
        }
      }
    }
  }
});

test("softmaxCrossEntropy rejects bad targets, sizes and scales before running", async () => {
  for (const impl of await impls()) {
    const z = impl.f32(6), t = impl.i32(2);
    assert.throws(() => impl.k.softmaxCrossEntropy(z, t, 2, 4, 0), /logits must have 8 elements, got 6/);
    t[1] = 3;
    assert.throws(() => impl.k.softmaxCrossEntropy(z, t, 2, 3, 0), /targets\[1\] = 3 is outside \[0, 3\)/);
    t[1] = 0;
    assert.throws(() => impl.k.softmaxCrossEntropy(z, t, 2, 3, -1), /gradScale must be finite and ≥ 0, got -1/);
    assert.throws(() => impl.k.softmaxCrossEntropy(z, t, 2, 0, 0), /V must be an integer ≥ 1, got 0/);
  }
});

test("softmaxCrossEntropy's gradient is the central difference of its loss; a shift of every logit changes nothing", async () => {
  const rows = 3, V = 7, rng = new Rng(3);
  const z = new Float64Array(rows * V).map(() => 3 * rng.normal());
  z[5] += 80; // a dominant logit
  const mean64 = (x: Float64Array, t: ArrayLike<number>) => {
    let s = 0;
    for (let r = 0; r < rows; r++) s += rowLoss64(x.subarray(r * V, (r + 1) * V), t[r], 0).loss;
    return s / rows;
  };
  for (const impl of await impls()) {
    const targets = impl.i32(rows);
    targets.set([0, 4, 6]);
    const logits = impl.f32(rows * V);
    logits.set(z);
    const z32 = Float64Array.from(logits);
    impl.k.softmaxCrossEntropy(logits, targets, rows, V, 1 / rows);
    for (let i = 0; i < rows * V; i++) {
      const up = z32.slice(), down = z32.slice();
      up[i] += 1e-5; down[i] -= 1e-5;
      const fd = (mean64(up, targets) - mean64(down, targets)) / 2e-5;
      assert.ok(Math.abs(logits[i] - fd) < 1e-6, `${impl.name}: dlogits[${i}] ${logits[i]} vs ${fd}`);
    }
    const huge = impl.f32(rows * V);
    huge.set(Array.from(z32, (v) => v + 1e4));
    const want = mean64(Float64Array.from(huge), targets);
    assert.ok(Math.abs(impl.k.softmaxCrossEntropy(huge, targets, rows, V, 0) / rows - want) < 1e-6, `${impl.name}: shifted by 1e4`);
  }
});
