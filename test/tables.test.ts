// `dmi tables lm` end to end on the shipped half-width SOTU LSTM, on a few hundred tokens: every
// table's rows, the dense perplexity against an independent float64 forward, the comparison (here
// against the model itself, so it must match the dense row), the paper-width timing rows, the
// figures, and the errors for bad options. And the GRU path's perplexity (the shipped SOTU GRU)
// against the float64 forward.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main as tablesMain } from "../src/cli/tables-lm.js";
import type { LmTables } from "../src/bench/tables-lm.js";
import { MODELS_DIR, openLm } from "../src/recurrent/open.js";
import { perplexity } from "../src/recurrent/eval.js";
import { viewParams } from "../src/recurrent/lm.js";
import { Runtime } from "../src/runtime/runtime.js";
import { PNG_SIGNATURE } from "./helpers.js";
import { float64Perplexity } from "./reference-lm.js";

const tmp = await mkdtemp(join(tmpdir(), "dualmodule-tables-"));
after(() => rm(tmp, { recursive: true, force: true }));

const MODEL = join(MODELS_DIR, "sotu-lstm-128.safetensors");

test("tables lm: every table from a shipped checkpoint on a few hundred tokens, with the paper-width timing", async () => {
  const out = join(tmp, "tables");
  await tablesMain(["--model", MODEL, "--compare", MODEL, "--out", out, "--test-tokens", "300", "--train-tokens", "3000",
    "--valid-tokens", "1500", "--steps", "5", "--paper-widths", "750", "--threads", "1"]);
  assert.deepEqual((await readdir(out)).sort(), ["figure1.png", "figure2.png", "tables.json", "tables.md"]);
  for (const png of ["figure1.png", "figure2.png"]) assert.deepEqual([...(await readFile(join(out, png))).subarray(0, 8)], PNG_SIGNATURE);
  const t = JSON.parse(await readFile(join(out, "tables.json"), "utf8")) as LmTables;

  assert.deepEqual({ ...t.model, k: undefined }, { file: "sotu-lstm-128.safetensors", cell: "lstm", layers: 1, hidden: 128, corpus: "sotu", testTokens: 300, k: undefined });
  assert.ok(t.dense.cellMs > 0);
  // The dense perplexity is the model's exactly: a float64 forward of the same weights on the same 300 tokens.
  const rt = await Runtime.create({ threads: 1 });
  try {
    const { checkpoint, corpus } = await openLm(rt, MODEL);
    const expected = float64Perplexity(checkpoint.config, viewParams(checkpoint.config, checkpoint.params), corpus.test.subarray(0, 300));
    assert.ok(Math.abs(t.dense.ppl - expected) <= 1e-5 * expected, `dense ppl ${t.dense.ppl}, float64 ${expected}`);
  } finally {
    await rt.close();
  }
  assert.deepEqual(t.ratios.map((r) => r.ratio), [0.1, 0.3, 0.5, 0.7, 0.9]);
  for (const r of t.ratios) {
    assert.ok(Math.abs(r.achieved - r.ratio) < 0.1, `ratio ${r.ratio}: achieved ${r.achieved} on 300 test tokens`);
    assert.equal(r.dppl, r.ppl - t.dense.ppl);
    assert.ok(r.cellMs > 0 && r.speedup === t.dense.cellMs / r.cellMs);
  }
  assert.ok(t.ratios[4].bytesReduction > t.ratios[0].bytesReduction, "more insensitive rows, fewer bytes");
  // INT8 dense, the simplest competitor: a row per byte plus a scale, against four bytes plus a bias.
  const cols = 2 * 128, int8 = t.int8!;
  assert.equal(int8.bytesReduction, ((cols + 1) * 4) / (cols + 8));
  assert.equal(int8.dppl, int8.ppl - t.dense.ppl);
  assert.ok(Math.abs(int8.dppl) < 0.05 * t.dense.ppl && int8.cellMs > 0, `INT8 dense: ${JSON.stringify(int8)}`);
  assert.deepEqual(t.precision.map((p) => p.bits), [32, 16, 8, 4, 2, 1]);
  for (let i = 1; i < t.precision.length; i++) assert.ok(t.precision[i].littleMB < t.precision[i - 1].littleMB);
  assert.deepEqual(t.noise.map((n) => n.sigma), [0.25, 0.5, 1]);
  assert.ok(t.noise.every((n) => n.insensitivePpl > 1 && n.sensitivePpl > 1));
  assert.ok(t.overhead.projection > 0 && t.overhead.little > -1);
  const eps = t.k.filter((r) => r.eps !== null), grid = t.k.filter((r) => r.eps === null);
  assert.deepEqual(eps.map((r) => [r.projection, r.eps]), [["random", 0.3], ["random", 0.5], ["random", 0.7]]);
  assert.ok(eps[2].k <= eps[0].k, "a larger ε gives no larger k");
  // The grid up to the width (128): both projections at each k, the bytes growing with k.
  assert.deepEqual(grid.map((r) => [r.projection, r.k]), [16, 32, 64, 128].flatMap((k) => [["random", k], ["rrr", k]]));
  for (const projection of ["random", "rrr"]) {
    const rows = grid.filter((r) => r.projection === projection);
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i].littleKB > rows[i - 1].littleKB, `${projection}: bytes grow with k`);
  }
  // Compared with itself: the dense PPL is the dense row's, and the dual is the 50 % row's.
  assert.equal(t.compare!.hidden, 128);
  assert.equal(t.compare!.ppl, t.dense.ppl);
  assert.equal(t.compare!.dualPpl, t.ratios[2].ppl);

  // The paper's width: ratio 0 and the five ratios of an LSTM of 750 on random weights, with the peer.
  assert.deepEqual(t.paper.map((r) => `${r.cell} ${r.hidden} ${r.ratio}`), [0, 0.1, 0.3, 0.5, 0.7, 0.9].map((x) => `lstm 750 ${x}`));
  assert.equal(t.paper[0].achieved_ratio, 0);
  assert.ok(t.paper.every((r) => r.weights === "random" && r.threads === 1 && r.dense_ms > 0 && r.dual_ms > 0 && r.ort_ms! > 0));
  const md = await readFile(join(out, "tables.md"), "utf8");
  for (const heading of ["### Insensitive ratio", "### Little-module precision", "### Noise", "### Overhead split", "### k sweep",
    "### Dual-module 128 at 50 % against dense 128", "### LSTM cell step at the paper's widths"]) {
    assert.ok(md.includes(heading), `tables.md has "${heading}"`);
  }
});

test("the GRU path's perplexity (shipped SOTU GRU-256) is a float64 forward's of the same weights", async () => {
  const rt = await Runtime.create({ threads: 1 });
  try {
    const { checkpoint, corpus, lm } = await openLm(rt, join(MODELS_DIR, "sotu-gru-256.safetensors"));
    assert.equal(checkpoint.config.cell, "gru");
    const ids = corpus.test.subarray(0, 120);
    const expected = float64Perplexity(checkpoint.config, viewParams(checkpoint.config, checkpoint.params), ids);
    const got = perplexity(lm, lm.stack, ids).ppl;
    assert.ok(Math.abs(got - expected) <= 1e-5 * expected, `ppl ${got}, float64 ${expected}`);
  } finally {
    await rt.close();
  }
});

test("tables lm: bad options are named before any work", async () => {
  await assert.rejects(tablesMain(["--out", tmp]), /--model FILE and --out DIR are required/);
  await assert.rejects(tablesMain(["--model", MODEL, "--out", tmp, "--paper-widths", "640"]),
    /--paper-widths: 640 is not one of the paper's widths \(750, 1500\); or pass none/);
  await assert.rejects(tablesMain(["--model", MODEL, "--out", tmp, "--compare", join(tmp, "missing.safetensors")]), /--compare .*missing\.safetensors: no such file/);
  await assert.rejects(tablesMain(["--model", MODEL, "--out", tmp, "--steps", "2"]), /--steps must be an integer ≥ 5/);
});
