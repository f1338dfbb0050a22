// `dmi tables lm` end to end on the shipped half-width SOTU LSTM, on a few hundred tokens: every
// table's rows (timed on 1 and 2 threads with their spread, the ratio-0 control and onnxruntime's step; the
// reduced-rank little module at a given k), the dense perplexity against an independent float64 forward, the comparison (here
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

test("tables lm: every table from a shipped checkpoint on a few hundred tokens, timed on 1 and 2 threads, with the paper-width timing", async () => {
  const out = join(tmp, "tables");
  await tablesMain(["--model", MODEL, "--compare", MODEL, "--out", out, "--test-tokens", "300", "--train-tokens", "3000",
    "--valid-tokens", "1500", "--steps", "5", "--repeats", "3", "--paper-widths", "750", "--threads", "1,2", "--projection", "rrr", "--k", "32"]);
  assert.deepEqual((await readdir(out)).sort(), ["figure1.png", "figure2.png", "tables.json", "tables.md"]);
  for (const png of ["figure1.png", "figure2.png"]) assert.deepEqual([...(await readFile(join(out, png))).subarray(0, 8)], PNG_SIGNATURE);
  const t = JSON.parse(await readFile(join(out, "tables.json"), "utf8")) as LmTables;
  const md = await readFile(join(out, "tables.md"), "utf8");

  // The options reach the fit: the ratio sweep's little modules are the reduced-rank ones at the k asked for, and the header says so.
  const { file, cell, layers, hidden, corpus, testTokens, projection, kRule, k } = t.model;
  assert.deepEqual({ file, cell, layers, hidden, corpus, testTokens, projection, kRule, k },
    { file: "sotu-lstm-128.safetensors", cell: "lstm", layers: 1, hidden: 128, corpus: "sotu", testTokens: 300, projection: "rrr", kRule: "given", k: [32] });
  assert.equal(t.model.kSearch, null);
  // Its bytes: the rrr row of the k sweep at k 32 is the same fit, so the same bytes.
  assert.equal(t.model.littleKB, t.k.find((r) => r.projection === "rrr" && r.k === 32)!.littleKB);
  assert.ok(md.includes(`Little module: rrr projection, k = 32 per layer (given (--k)), INT8 weights, ${t.model.littleKB.toFixed(1)} KB per step`), md.slice(0, 400));
  assert.deepEqual(t.machine.threads, [1, 2]);
  assert.equal(t.machine.repeats, 3);

  // The dense perplexity is the model's exactly: a float64 forward of the same weights on the same 300 tokens.
  const rt = await Runtime.create({ threads: 1 });
  try {
    const { checkpoint, corpus: c } = await openLm(rt, MODEL);
    const expected = float64Perplexity(checkpoint.config, viewParams(checkpoint.config, checkpoint.params), c.test.subarray(0, 300));
    assert.ok(Math.abs(t.dense.ppl - expected) <= 1e-5 * expected, `dense ppl ${t.dense.ppl}, float64 ${expected}`);
  } finally {
    await rt.close();
  }

  // Every timed row, per thread count: a spread that is one (min ≤ median ≤ max), and speedups from the same data.
  const dense = (n: number) => t.dense.cell.find((x) => x.threads === n)!.ms;
  const ortF32 = (n: number) => t.ort!.f32.find((x) => x.threads === n)!.ms;
  const rows = [t.dense.cell, t.ort!.f32, t.ort!.int8, t.int8!.cell, ...t.ratios.map((r) => r.cell)];
  for (const cells of rows) {
    assert.deepEqual(cells.map((x) => x.threads), [1, 2]);
    for (const x of cells) {
      assert.ok(x.ms.min > 0 && x.ms.min <= x.ms.median && x.ms.median <= x.ms.max, JSON.stringify(x.ms));
      assert.equal(x.speedup, dense(x.threads).median / x.ms.median);
      assert.equal(x.speedupOrt, ortF32(x.threads).median / x.ms.median);
    }
  }
  assert.ok(t.dense.cell.every((x) => x.speedup === 1) && t.ort!.f32.every((x) => x.speedupOrt === 1));
  // onnxruntime's graphs of the trained cell were checked against our step before they were timed.
  assert.deepEqual(t.ort!.checks.map((c) => c.threads), [1, 2]);
  for (const { checks } of t.ort!.checks) {
    assert.deepEqual(checks.map((c) => c.name), ["ort f32 (LSTM op)", "ort f32 (Gemm)", "ort int8"]);
    assert.ok(checks.every((c) => c.max_error <= c.tolerance && c.tolerance <= 0.05));
  }

  // Ratio 0 first (the control: the dense computation through the dual step, its PPL the dense one's), then the five ratios.
  assert.deepEqual(t.ratios.map((r) => r.ratio), [0, 0.1, 0.3, 0.5, 0.7, 0.9]);
  assert.ok(Math.abs(t.ratios[0].ppl - t.dense.ppl) <= 1e-4 * t.dense.ppl, `ratio 0 ppl ${t.ratios[0].ppl}, dense ${t.dense.ppl}`);
  assert.equal(t.ratios[0].achieved, 0);
  assert.ok(t.ratios[0].bytesReduction <= 1, "ratio 0 reads every row");
  for (const r of t.ratios.slice(1)) {
    assert.ok(Math.abs(r.achieved - r.ratio) < 0.1, `ratio ${r.ratio}: achieved ${r.achieved} on 300 test tokens`);
    assert.ok(r.tokenMs! > 0);
  }
  for (const r of [...t.ratios, t.int8!, ...t.k]) {
    assert.equal(r.dppl, r.ppl - t.dense.ppl);
    assert.ok(Math.abs(r.dpplPercent - (100 * (r.ppl - t.dense.ppl)) / t.dense.ppl) < 1e-9, `ΔPPL % ${r.dpplPercent} of ppl ${r.ppl}`);
  }
  // The control per thread count: dense and ratio 0 as timed, flagged exactly when their ranges do not overlap.
  assert.deepEqual(t.control.map((c) => c.threads), [1, 2]);
  for (const c of t.control) {
    assert.deepEqual(c.dense, dense(c.threads));
    assert.deepEqual(c.ratio0, t.ratios[0].cell.find((x) => x.threads === c.threads)!.ms);
    assert.equal(c.differs, c.dense.max < c.ratio0.min || c.ratio0.max < c.dense.min);
    assert.ok(md.includes(`Control, ${c.threads} thread`));
  }
  // The highest ratio within 1 % of the dense PPL, recomputed.
  const within = t.ratios.filter((r) => r.ratio > 0 && (100 * (r.ppl - t.dense.ppl)) / t.dense.ppl <= 1).map((r) => r.ratio);
  assert.equal(t.best?.ratio ?? null, within.length > 0 ? within[within.length - 1] : null);
  if (t.best) assert.deepEqual(t.best.cell, t.ratios.find((r) => r.ratio === t.best!.ratio)!.cell);
  assert.ok(md.includes(`Highest ratio with ΔPPL ≤ 1 %: ${t.best ? t.best.ratio.toFixed(2) : "none of the ratios"}`));
  for (const column of ["ΔPPL %", "cell ms, 1 thr", "x dense, 2 thr", "x ORT, 2 thr"]) assert.ok(md.includes(column), `tables.md has "${column}"`);
  for (const row of ["| dense |", "| ORT f32 |", "| ORT INT8 |", "| dense INT8 |", "| 0.00 | 0.000 |"]) assert.ok(md.includes(row), `tables.md has "${row}"`);

  assert.ok(t.ratios[5].bytesReduction > t.ratios[1].bytesReduction, "more insensitive rows, fewer bytes");
  // INT8 dense, the simplest competitor: a row per byte plus a scale, against four bytes plus a bias.
  const cols = 2 * 128, int8 = t.int8!;
  assert.equal(int8.bytesReduction, ((cols + 1) * 4) / (cols + 8));
  assert.ok(Math.abs(int8.dppl) < 0.05 * t.dense.ppl, `INT8 dense: ${JSON.stringify(int8)}`);
  assert.deepEqual(t.precision.map((p) => p.bits), [32, 16, 8, 4, 2, 1]);
  for (let i = 1; i < t.precision.length; i++) assert.ok(t.precision[i].littleMB < t.precision[i - 1].littleMB);
  assert.deepEqual(t.noise.map((n) => n.sigma), [0.25, 0.5, 1]);
  assert.ok(t.noise.every((n) => n.insensitivePpl > 1 && n.sensitivePpl > 1));
  assert.ok(t.overhead.projection > 0 && t.overhead.little > -1);
  const eps = t.k.filter((r) => r.eps !== null), grid = t.k.filter((r) => r.eps === null);
  assert.deepEqual(eps.map((r) => [r.projection, r.eps]), [["random", 0.3], ["random", 0.5], ["random", 0.7]]);
  assert.ok(eps[2].k <= eps[0].k, "a larger ε gives no larger k");
  // The grid up to the width (128): both projections at each k, the bytes growing with k; each time a spread, on the most threads.
  assert.deepEqual(grid.map((r) => [r.projection, r.k]), [16, 32, 64, 128].flatMap((k) => [["random", k], ["rrr", k]]));
  for (const projection of ["random", "rrr"]) {
    const rows = grid.filter((r) => r.projection === projection);
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i].littleKB > rows[i - 1].littleKB, `${projection}: bytes grow with k`);
  }
  for (const r of t.k) {
    assert.equal(r.threads, 2);
    assert.ok(r.dualMs.min <= r.dualMs.median && r.dualMs.median <= r.dualMs.max);
    assert.equal(r.speedup, r.denseMs.median / r.dualMs.median);
  }
  // Compared with itself: the dense PPL is the dense row's, and the dual is the 50 % row's.
  const cmp = t.compare!;
  assert.equal(cmp.hidden, 128);
  assert.equal(cmp.ppl, t.dense.ppl);
  assert.equal(cmp.dualPpl, t.ratios[3].ppl);
  assert.ok(cmp.cellMs.min <= cmp.cellMs.median && cmp.cellMs.median <= cmp.cellMs.max && cmp.threads === 2);

  // The paper's width: ratio 0 and the five ratios of an LSTM of 750 on random weights, with the peer, per thread count.
  assert.deepEqual(t.paper.map((r) => `${r.cell} ${r.hidden} ${r.threads} ${r.ratio}`),
    [1, 2].flatMap((n) => [0, 0.1, 0.3, 0.5, 0.7, 0.9].map((x) => `lstm 750 ${n} ${x}`)));
  assert.equal(t.paper[0].achieved_ratio, 0);
  assert.ok(t.paper.every((r) => r.weights === "random" && r.dense_ms > 0 && r.dual_ms > 0 && r.ort_ms! > 0));
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
  await assert.rejects(tablesMain(["--model", MODEL, "--out", tmp, "--projection", "pca"]), /--projection must be one of random, rrr, got "pca"/);
  await assert.rejects(tablesMain(["--model", MODEL, "--out", tmp, "--threads", "0"]), /--threads: 0 is not a whole number ≥ 1/);
  await assert.rejects(tablesMain(["--model", MODEL, "--out", tmp, "--threads", "1,x"]), /--threads: "x" is not a number/);
  await assert.rejects(tablesMain(["--model", MODEL, "--out", tmp, "--threads", "2,2"]), /--threads: 2,2 names a thread count twice/);
  await assert.rejects(tablesMain(["--model", MODEL, "--out", tmp, "--k", "0"]), /--k must be an integer ≥ 1 or auto, got "0"/);
  await assert.rejects(tablesMain(["--model", MODEL, "--out", tmp, "--k", "3.5"]), /--k must be an integer ≥ 1 or auto, got "3.5"/);
  await assert.rejects(tablesMain(["--model", MODEL, "--out", tmp, "--repeats", "2"]), /--repeats must be an integer ≥ 3/);
  // Known only once the model is open, still before any work: k above the layer's width.
  await assert.rejects(tablesMain(["--model", MODEL, "--out", tmp, "--k", "200", "--threads", "1"]), /--k 200 is more than the layer's width 128: take k ≤ 128/);
});
