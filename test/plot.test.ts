import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderPng, renderSvg } from "../src/plot/render.js";
import { featureMapsSpec, insensitiveRegionsSpec, outputHistogramSpec, sensitivityMapSpec, type FeatureMap } from "../src/plot/figures.js";
import { Rng } from "../src/util/random.js";
import { PNG_SIGNATURE } from "./helpers.js";

test("figure 1 states each gate's insensitive rule in post-activation terms and shades it", async () => {
  const svg = await renderSvg(insensitiveRegionsSpec([
    { gate: "f", region: "sigmoid", bounds: { lo: -1.5, hi: Infinity } },
    { gate: "g", region: "tanh", bounds: { lo: -0.8, hi: 0.9 } },
  ], "regions"));
  assert.match(svg, /insensitive where σ\(a\) ≤ 0\.182/);          // σ(−1.5)
  assert.match(svg, /insensitive where tanh a ≤ -0\.664 or ≥ 0\.716/); // tanh(−0.8), tanh(0.9)
  assert.match(svg, /gate f \(sigmoid\)/);
});

test("figure 2 checks the mask size and renders to a PNG of the scaled size, written atomically", async () => {
  const H = 6, steps = 35, gates = ["i", "f", "g", "o"];
  const mask = Uint8Array.from({ length: steps * 4 * H }, (_, i) => i % 3 === 0 ? 1 : 0);
  assert.throws(() => sensitivityMapSpec([{ label: "a", steps, mask: mask.subarray(1) }], gates, H, 4, "t"),
    /a: the mask has 839 entries, 35 steps × 24 rows need 840/);
  const spec = sensitivityMapSpec([{ label: "a", steps, mask }, { label: "b", steps, mask }], gates, H, 4, "t");
  const dir = mkdtempSync(join(tmpdir(), "dmi-plot-")), path = join(dir, "map.png");
  try {
    await renderPng(spec, path, 2);
    const png = readFileSync(path);
    assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
    const width = png.readUInt32BE(16), svgWidth = Number(/<svg[^>]* width="([\d.]+)"/.exec(await renderSvg(spec))![1]);
    assert.equal(width, Math.round(2 * svgWidth));
    assert.deepEqual(readdirSync(dir), ["map.png"]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

/** Renders a spec to a PNG in a fresh temporary directory and returns the file's bytes. */
async function pngOf(spec: Parameters<typeof renderPng>[0]): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), "dmi-plot-")), path = join(dir, "figure.png");
  try {
    await renderPng(spec, path, 1);
    return readFileSync(path);
  } finally {
    rmSync(dir, { recursive: true });
  }
}

type Bin = { series: string; bin: number; x0: number; x1: number; count: number };
const binsOf = (spec: object) => (spec as { datasets: { bins: Bin[] } }).datasets.bins;

test("figure 3 bins both series over shared edges spanning min..max, the maximum in the last bin", async () => {
  const spec = outputHistogramSpec(Float32Array.of(0, 1, 2, 3), Float32Array.of(-1, 0.5, 0.5, 2), 1, "t", 4);
  const big = binsOf(spec).filter((b) => b.series === "big (exact)"), little = binsOf(spec).filter((b) => b.series === "little (estimate)");
  assert.deepEqual(big.map((b) => [b.x0, b.x1]), [[-1, 0], [0, 1], [1, 2], [2, 3]]);
  assert.deepEqual(little.map((b) => [b.x0, b.x1]), big.map((b) => [b.x0, b.x1]));
  assert.deepEqual(big.map((b) => b.count), [0, 1, 1, 2]);
  assert.deepEqual(little.map((b) => b.count), [1, 2, 0, 1]);
  const svg = await renderSvg(spec);
  assert.match(svg, /threshold 1\.000/);
  assert.match(svg, /at or below the threshold: big 50\.0 %, little 75\.0 % of 4 outputs/);
});

test("figure 3 counts every value of 100k once per series and renders to a PNG", async () => {
  const rng = new Rng(3), n = 100_000, big = new Float32Array(n), little = new Float32Array(n);
  for (let i = 0; i < n; i++) { big[i] = rng.normal(); little[i] = big[i] + 0.3 * rng.normal(); }
  const spec = outputHistogramSpec(big, little, -0.123, "t");
  const bins = binsOf(spec);
  assert.equal(bins.length, 2 * 60);
  let lo = Infinity, hi = -Infinity;
  for (const v of [...big, ...little]) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  for (const series of ["big (exact)", "little (estimate)"]) {
    const s = bins.filter((b) => b.series === series);
    assert.equal(s.reduce((sum, b) => sum + b.count, 0), n, series);
    assert.equal(s[0].x0, lo);
    assert.equal(s[59].x1, hi);
    for (let k = 1; k < 60; k++) assert.equal(s[k].x0, s[k - 1].x1); // contiguous
  }
  assert.ok(JSON.stringify(spec).length < 20_000, "the spec holds counts, not the values");
  assert.match(await renderSvg(spec), /threshold −0\.123/);
  const png = await pngOf(spec);
  assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
  assert.ok(png.readUInt32BE(16) > 400 && png.readUInt32BE(20) > 200);
});

test("figure 3 rejects empty, mismatched or non-finite inputs and bad bin counts", () => {
  const four = new Float32Array(4);
  assert.throws(() => outputHistogramSpec(four, new Float32Array(3), 0, "t"), /big has 4 values and little 3; pass the same, nonzero number/);
  assert.throws(() => outputHistogramSpec(new Float32Array(0), new Float32Array(0), 0, "t"), RangeError);
  assert.throws(() => outputHistogramSpec(four, Float32Array.of(0, NaN, 0, 0), 0, "t"), /little\[1\] is NaN/);
  assert.throws(() => outputHistogramSpec(four, four, -Infinity, "t"), /threshold is -Infinity/);
  assert.throws(() => outputHistogramSpec(four, four, 0, "t", 0), /bins is 0/);
  // All values equal: one bin of width 1 around them, not a division by zero.
  assert.deepEqual(binsOf(outputHistogramSpec(four, four, 0, "t", 1)).map((b) => [b.x0, b.x1, b.count]), [[-0.5, 0.5, 4], [-0.5, 0.5, 4]]);
});

test("figure 4 checks map sizes, shares one colour domain across real-valued rows, and renders to a PNG", async () => {
  const H = 5, W = 7, rng = new Rng(11), maps: FeatureMap[] = [];
  for (let c = 0; c < 3; c++) {
    const big = new Float32Array(H * W), little = new Float32Array(H * W);
    rng.fillUniform(big, -1, 1);
    rng.fillUniform(little, -3, 2);
    maps.push({ row: "big", channel: c, height: H, width: W, data: big },
      { row: "little", channel: c, height: H, width: W, data: little },
      { row: "sensitive", channel: c, height: H, width: W, data: little.map((v) => (v > 0 ? 1 : 0)) });
  }
  assert.throws(() => featureMapsSpec([...maps, { row: "big", channel: 9, height: H, width: W, data: new Float32Array(H * W - 1) }], "t"),
    /big, channel 9: data has 34 entries, 5×7 needs 35/);
  assert.throws(() => featureMapsSpec([...maps, { row: "big", channel: 9, height: W, width: H, data: new Float32Array(H * W) }], "t"),
    /big, channel 9 is 7×5, the first map 5×7/);
  assert.throws(() => featureMapsSpec([...maps, maps[0]], "t"), /big, channel 0 is given twice/);
  assert.throws(() => featureMapsSpec([], "t"), /no maps/);
  const spec = featureMapsSpec(maps, "t");
  type Row = { data: { values: unknown[] }; spec: { encoding: { color: { scale: { domain: number[] } } } } };
  const rows = (spec as unknown as { vconcat: Row[] }).vconcat;
  assert.deepEqual(rows.map((r) => r.data.values.length), [3 * H * W, 3 * H * W, 3 * H * W]);
  const all = maps.filter((m) => m.row !== "sensitive").flatMap((m) => [...m.data]);
  const shared = [Math.min(...all), Math.max(...all)];
  assert.deepEqual(rows.map((r) => r.spec.encoding.color.scale.domain), [shared, shared, [0, 1]]);
  assert.match(await renderSvg(spec), /channel 2/);
  const png = await pngOf(spec);
  assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
  assert.ok(png.length > 1000 && png.readUInt32BE(16) > 3 * W);
});
