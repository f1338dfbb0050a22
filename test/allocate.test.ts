// Per-layer ratio allocation (src/conv/allocate.ts) and its measurement on a dual ResNet.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type LayerCurve, allocateRatios } from "../src/conv/allocate.js";
import { DualResNet } from "../src/conv/dual.js";
import { referenceDualBackend } from "../src/conv/dual-conv.js";
import { randomResNetWeights, resnet18Small } from "../src/conv/resnet.js";
import { Rng } from "../src/util/random.js";

const R = [0, 0.5, 0.7, 0.9];
const bigMacs = (curves: LayerCurve[], ratios: number[]) => curves.reduce((s, c, l) => s + (1 - ratios[l]) * c.macs, 0);

test("allocateRatios: the cheap layer goes first, the target is met, the damage budget holds, a bump does not stop the search", () => {
  const curves: LayerCurve[] = [
    { macs: 100, ratios: R, damage: [0, 1, 2, 10] },     // sensitive
    { macs: 100, ratios: R, damage: [0, 0.01, 0.02, 0.05] }, // robust
  ];
  const a = allocateRatios(curves, { macs: 150 });
  assert.deepEqual(a.ratios, [0, 0.5], "the robust layer takes the saving, no more than needed");
  assert.ok(Math.abs(a.macs - 150) < 1e-9 && Math.abs(a.damage - 0.01) < 1e-12);
  const b = allocateRatios(curves, { macs: 50 });
  assert.ok(b.macs <= 50 && b.ratios[0] > 0, `more saving than one layer can give: ${b.ratios}`);
  const c = allocateRatios(curves, { macs: 0, damage: 1.5 });
  assert.ok(c.damage <= 1.5 && c.ratios[1] === 0.9 && c.ratios[0] === 0.5, `budget: ${JSON.stringify(c)}`);
  // A layer whose damage rises at 0.5 and falls at 0.7: the search looks past the bump.
  const bump = allocateRatios([{ macs: 100, ratios: R, damage: [0, 5, 0.1, 0.2] }, { macs: 100, ratios: R, damage: [0, 1, 2, 3] }], { macs: 130 });
  assert.deepEqual(bump.ratios, [0.7, 0]);
  // Larger layers save more per step at the same damage.
  assert.deepEqual(allocateRatios([{ macs: 10, ratios: R, damage: [0, 1, 2, 3] }, { macs: 1000, ratios: R, damage: [0, 1, 2, 3] }], { macs: 900 }).ratios, [0, 0.5]);
});

test("allocateRatios on random convex curves: always meets a reachable target, never beats it by more than one step, ratios from the curves", () => {
  const rng = new Rng(4);
  for (let trial = 0; trial < 200; trial++) {
    const layers = 1 + rng.int(6), grid = [0, 0.3, 0.5, 0.7, 0.8, 0.9];
    const curves = Array.from({ length: layers }, () => {
      const s = rng.uniform() * 3;
      return { macs: 1 + rng.int(1000), ratios: grid, damage: grid.map((r) => s * r * r) };
    });
    const total = curves.reduce((t, c) => t + c.macs, 0), target = rng.uniform() * total;
    const a = allocateRatios(curves, { macs: target });
    const reachable = bigMacs(curves, curves.map(() => 0.9)) <= target;
    if (reachable) assert.ok(a.macs <= target + 1e-6, `trial ${trial}: ${a.macs} > ${target}`);
    assert.ok(Math.abs(a.macs - bigMacs(curves, a.ratios)) < 1e-6 * total);
    a.ratios.forEach((r) => assert.ok(grid.includes(r)));
  }
});

test("allocateRatios names bad curves and a missing target", () => {
  assert.throws(() => allocateRatios([], { macs: 1 }), /no layers/);
  assert.throws(() => allocateRatios([{ macs: 1, ratios: [0.1, 0.5], damage: [0, 1] }], { macs: 1 }), /must start at ratio 0 with damage 0/);
  assert.throws(() => allocateRatios([{ macs: 1, ratios: [0, 0.5, 0.4], damage: [0, 1, 2] }], { macs: 1 }), /must ascend within \[0, 1\)/);
  assert.throws(() => allocateRatios([{ macs: 1, ratios: [0, 0.5], damage: [0] }], { macs: 1 }), /as many damages as ratios/);
  assert.throws(() => allocateRatios([{ macs: 1, ratios: [0, 0.5], damage: [0, NaN] }], { macs: 1 }), /damage at ratio 0.5 is NaN/);
  assert.throws(() => allocateRatios([{ macs: 1, ratios: [0], damage: [0] }], {}), /give a target/);
});

test("DualResNet.sensitivity: zero damage at ratio 0, damage grows with the ratio, every layer left dense; per-layer calibration holds", () => {
  const config = { ...resnet18Small(4), imageSize: 12 }, rng = new Rng(8);
  const net = new DualResNet(referenceDualBackend, config, randomResNetWeights(config, 3), { mode: "little" });
  const images = Array.from({ length: 6 }, () => { const x = new Float32Array(144); rng.fillUniform(x, 0, 1); return x; });
  net.fit(images);
  const curves = net.sensitivity(images, [0, 0.5, 0.9]);
  assert.equal(curves.length, 16);
  for (const c of curves) {
    assert.equal(c.damage[0], 0);
    assert.ok(c.damage.every((d) => d >= 0), `KL ≥ 0: ${c.damage}`);
  }
  assert.ok(curves.some((c) => c.damage[2] > 0), "some layer changes the output at 90 %");
  assert.ok(net.layers.every((l) => l.dual.threshold === -Infinity));
  const ratios = net.layers.map((_, i) => (i % 2 ? 0.8 : 0.2));
  const achieved = net.calibrate(images, ratios);
  achieved.forEach((a, i) => assert.ok(Math.abs(a - ratios[i]) < 0.05, `layer ${i}: ${a} for ${ratios[i]}`));
  assert.throws(() => net.calibrate(images, [0.5]), /1 ratios for 16 dual layers/);
  assert.throws(() => net.sensitivity(images, [0.1, 0.5]), /ratios must ascend from 0/);
});

