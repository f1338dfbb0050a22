// Checkpoints load from their bytes (what a web page fetches) exactly as from their path.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../src/util/random.js";
import { Stack } from "../src/recurrent/stack.js";
import { DualModel } from "../src/recurrent/dual.js";
import { fitLittleModules } from "../src/recurrent/fit.js";
import { loadDualModel, saveDualModel } from "../src/recurrent/dual-checkpoint.js";
import { loadLm } from "../src/recurrent/lm.js";
import { defaultModel } from "../src/recurrent/open.js";
import { testRuntimes } from "./helpers.js";
import { randomWeights } from "./reference-rnn.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const arrayBufferOf = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

test("loadLm reads a checkpoint from an ArrayBuffer as from its path", async () => {
  const path = defaultModel();
  const fromPath = await loadLm(path), fromBytes = await loadLm(arrayBufferOf(readFileSync(path)));
  assert.deepEqual(fromBytes.config, fromPath.config);
  assert.deepEqual(fromBytes.params, fromPath.params);
  assert.equal(fromBytes.vocabDigest, fromPath.vocabDigest);
  await assert.rejects(loadLm(new Uint8Array(16)), /\(bytes\)/);
});

test("loadDualModel reads a dual-module checkpoint from an ArrayBuffer as from its path", async () => {
  const [rt] = await testRuntimes();
  const rng = new Rng(3), E = 12, H = 16;
  const stack = new Stack(rt, { kind: "lstm", input: E, hidden: H, layers: 1, context: 0, residualFrom: 1 },
    [randomWeights(rng, 4, E, H, 1 / Math.sqrt(H))]);
  const seqs = Array.from({ length: 6 }, () => Array.from({ length: 10 }, () => Float32Array.from({ length: E }, () => rng.normal())));
  const dual = new DualModel(rt, stack, fitLittleModules(rt, stack, seqs, { k: 8 }).littles);
  dual.calibrate(seqs, 0.5);
  const dir = mkdtempSync(join(tmpdir(), "dmi-bytes-")), path = join(dir, "dual.safetensors");
  try {
    await saveDualModel(path, dual);
    const a = await loadDualModel(rt, path), b = await loadDualModel(rt, arrayBufferOf(readFileSync(path)));
    assert.deepEqual(b.thresholds, a.thresholds);
    for (const x of seqs[0]) assert.deepEqual(b.step(x), a.step(x));
  } finally {
    rmSync(dir, { recursive: true });
  }
});
