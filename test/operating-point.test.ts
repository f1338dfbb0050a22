// The CNN's operating point is chosen on validation scores: the largest operation reduction within
// the allowed top-1 drop, checked on constructed points.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chooseOperatingPoint } from "../src/conv/eval.js";

test("chooseOperatingPoint: the largest FP32-equivalent reduction among points within the drop", () => {
  const p = (name: string, top1: number, ops: number) => ({ name, top1, top1_dense: 0.9, ops_reduction_fp32eq: ops });
  const points = [p("dense", 0.9, 1), p("50", 0.899, 1.8), p("70", 0.895, 2.4), p("80", 0.8949, 2.9), p("90", 0.8, 4)];
  // 0.5 points: 70 % drops exactly 0.5 (allowed), 80 % drops 0.51 (not).
  assert.equal(chooseOperatingPoint(points, 0.5)?.name, "70");
  assert.equal(chooseOperatingPoint(points, 0.6)?.name, "80");
  assert.equal(chooseOperatingPoint(points, 0)?.name, "dense");
  assert.equal(chooseOperatingPoint(points, 20)?.name, "90");
  assert.equal(chooseOperatingPoint([p("bad", 0.5, 3)], 0.5), null);
  // A point better than dense is within any drop.
  assert.equal(chooseOperatingPoint([p("dense", 0.9, 1), { name: "up", top1: 0.92, top1_dense: 0.9, ops_reduction_fp32eq: 2 }], 0)?.name, "up");
});
