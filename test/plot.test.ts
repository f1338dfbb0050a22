import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderPng, renderSvg } from "../src/plot/render.js";
import { insensitiveRegionsSpec, sensitivityMapSpec } from "../src/plot/figures.js";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

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
