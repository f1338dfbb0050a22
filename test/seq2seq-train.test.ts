// Translation end to end on a tiny made-up corpus (number words, English → Spanish): train → greedy
// and beam decoding → BLEU → the dual-module decoder at ratios 0 and 0.5; an interrupted and resumed
// run ends on the uninterrupted run's weights; `dmi translate` on empty, unknown-character and
// over-long lines; `dmi tables nmt`'s files.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testRuntimes } from "./helpers.js";
import { Rng } from "../src/util/random.js";
import { parsePairs, type ParallelCorpus } from "../src/data/pairs.js";
import { learnSharedBpe } from "../src/seq2seq/bpe.js";
import { type GnmtConfig, loadNmt } from "../src/seq2seq/gnmt.js";
import { encodePairs, resumePath, trainNmt, type NmtRunOptions } from "../src/seq2seq/train.js";
import { NmtModel, MAX_SOURCE } from "../src/seq2seq/translate.js";
import { DualDecoder, evaluateNmt, stepSequences, translateSplit } from "../src/seq2seq/dual.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });
const tmp = await mkdtemp(join(tmpdir(), "dualmodule-nmt-"));
after(() => rm(tmp, { recursive: true, force: true }));

const EN = ["one", "two", "three", "four", "five"], ES = ["uno", "dos", "tres", "cuatro", "cinco"];
const rng = new Rng(1);
const LINES = Array.from({ length: 48 }, () => {
  const w = Array.from({ length: 1 + rng.int(3) }, () => rng.int(5));
  return `${w.map((x) => EN[x]).join(" ")}.\t${w.map((x) => ES[x]).join(" ")}.`;
});
const PAIRS = parsePairs(LINES.join("\n"), "tiny");
const CORPUS: ParallelCorpus = { name: "tiny", path: "tiny", languages: ["en", "es"], split: { block: 100, period: 50 },
  pairs: { train: PAIRS, valid: PAIRS.slice(0, 8), test: PAIRS.slice(0, 16) } };
const BPE = learnSharedBpe(CORPUS, 360);
const CONFIG: GnmtConfig = { vocab: BPE.size, hidden: 16, encoderLayers: 2, decoderLayers: 4 };
const run = (out: string, epochs: number): NmtRunOptions => ({
  config: CONFIG, corpus: "tiny", epochs, out, dtype: "F32",
  options: { batch: 8, maxLength: 40, clip: 5, dropout: 0.1, smoothing: 0.1, seed: 1, schedule: { lr: 2e-2, warmup: 10, remain: 0.7, decays: 2, factor: 0.5 } },
});
const DATA = { bpe: BPE, train: PAIRS, valid: PAIRS.slice(0, 8) };

test("tiny GNMT end to end: training lowers the loss, greedy and beam translations score BLEU, the dual decoder at ratio 0 is the dense one and at 0.5 reaches about half", async () => {
  const [rt] = await testRuntimes();
  const out = join(tmp, "tiny.safetensors"), epochs: number[] = [];
  const result = await trainNmt(rt, run(out, 40), DATA, { onEpoch: (r) => epochs.push(r.trainLoss) });
  assert.equal(result.stopped, false);
  assert.ok(epochs[39] < 0.4 * epochs[0], `training loss ${epochs[0]} → ${epochs[39]}`);
  const m = new NmtModel(rt, CONFIG, result.params, BPE), test = encodePairs(BPE, CORPUS.pairs.test);
  const greedy = translateSplit(m, test, CORPUS.pairs.test, "greedy"), beam = translateSplit(m, test, CORPUS.pairs.test, "beam");
  assert.ok(greedy.bleu.score > 5 && beam.bleu.score > 5, `BLEU greedy ${greedy.bleu.score}, beam ${beam.bleu.score}`);
  assert.match(greedy.bleu.signature, /tok:13a\|smooth:exp/);
  for (const h of greedy.hyps) assert.match(h, /^((uno|dos|tres|cuatro|cinco)\s?)+\.?$/, `not a number sentence: ${JSON.stringify(h)}`);

  const dual = DualDecoder.fit(rt, m, stepSequences(m, encodePairs(BPE, PAIRS.slice(0, 32))));
  const calibration = stepSequences(m, encodePairs(BPE, PAIRS.slice(32)));
  const { rows, dense } = await evaluateNmt(rt, dual, calibration, test, CORPUS.pairs.test,
    { ratios: [0, 0.5], decodes: ["greedy", "beam"], beam: { beam: 5, alpha: 0.6, beta: 0.1, maxLength: 20 }, rounds: 20, model: "tiny", split: "test" });
  assert.equal(dense.get("greedy")!.score, greedy.bleu.score);
  assert.equal(rows.length, 4);
  for (const r of rows) {
    assert.deepEqual(Object.keys(r).sort(), ["achieved_ratio", "bleu", "bleu_dense", "decode", "dense_ms", "dual_ms", "model", "ratio", "split", "threads"]);
    assert.ok(r.dense_ms > 0 && r.dual_ms > 0);
    if (r.ratio === 0) { assert.equal(r.achieved_ratio, 0); assert.equal(r.bleu, r.bleu_dense); }
    else assert.ok(Math.abs(r.achieved_ratio - 0.5) < 0.1, `achieved ${r.achieved_ratio} at 0.5`);
  }
});

test("an interrupted tiny GNMT run resumed from its checkpoint ends on the uninterrupted run's weights", async () => {
  const [rt] = await testRuntimes();
  const whole = await trainNmt(rt, run(join(tmp, "whole.safetensors"), 2), DATA);
  const out = join(tmp, "parts.safetensors");
  let batches = 0;
  const first = await trainNmt(rt, run(out, 2), DATA, { onBatch: () => batches++, stopRequested: () => batches >= 9 });
  assert.equal(first.stopped, true);
  const resumed = await trainNmt(rt, { ...run(out, 2), resume: await loadNmt(resumePath(out)) }, DATA);
  assert.equal(resumed.stopped, false);
  assert.deepEqual(Array.from(resumed.params), Array.from(whole.params));
});

test("dmi translate: one output line per input line; empty lines stay empty, unknown characters pass, over-long lines are cut with a note", async () => {
  const [rt] = await testRuntimes();
  const model = join(tmp, "cli.safetensors");
  await trainNmt(rt, run(model, 2), DATA);
  const long = Array.from({ length: MAX_SOURCE + 50 }, () => "one").join(" ");
  const input = ["one two.", "", "three ☃ four.", long, "   "].join("\n") + "\n";
  const r = spawnSync(process.execPath, [join(import.meta.dirname, "../src/cli/dmi.js"), "translate", "--model", model, "--greedy", "--threads", "1"],
    { input, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split("\n");
  assert.equal(lines.length, 6, JSON.stringify(r.stdout));
  assert.equal(lines[1], "");
  assert.equal(lines[4], "");
  assert.match(r.stderr, new RegExp(`line 4: the line has more than ${MAX_SOURCE - 1} tokens`));
  assert.doesNotMatch(r.stderr, /line [1235]:/);
  const bad = spawnSync(process.execPath, [join(import.meta.dirname, "../src/cli/dmi.js"), "translate", "--model", join(tmp, "none.safetensors")], { input: "", encoding: "utf8" });
  assert.notEqual(bad.status, 0);
});

test("dmi tables nmt writes Table 3 (both decodes, each ratio, the achieved ratio and times) and the decoder stack's rows beside onnxruntime", async () => {
  const [rt] = await testRuntimes();
  // A src<TAB>tgt file of the same number sentences, long enough for the Bible's block split to have a
  // test split (lines 4900–4999). The model trains briefly on the tiny pairs; its checkpoint names the file,
  // which the command reads for its fitting, calibration and test pairs.
  const gen = new Rng(3), file = join(tmp, "numbers.tsv");
  await writeFile(file, Array.from({ length: 5000 }, () => {
    const w = Array.from({ length: 1 + gen.int(3) }, () => gen.int(5));
    return `${w.map((x) => EN[x]).join(" ")}.\t${w.map((x) => ES[x]).join(" ")}.`;
  }).join("\n") + "\n");
  const model = join(tmp, "numbers.safetensors");
  await trainNmt(rt, { ...run(model, 1), corpus: file, maxBatches: 5, maxValid: 4 }, DATA);
  const out = join(tmp, "tables");
  const r = spawnSync(process.execPath, [join(import.meta.dirname, "../src/cli/dmi.js"), "tables", "nmt", "--model", model, "--out", out,
    "--threads", "1", "--ratios", "0.5", "--max-sentences", "4", "--fit-pairs", "40", "--calibration-pairs", "10", "--paper-shapes", "none", "--steps", "10"],
    { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const json = JSON.parse(await readFile(join(out, "nmt.json"), "utf8"));
  assert.deepEqual(json.table3.map((row: { decode: string; ratio: number }) => [row.decode, row.ratio]), [["greedy", 0.5], ["beam", 0.5]]);
  for (const row of json.table3) assert.ok(Math.abs(row.achieved_ratio - 0.5) < 0.15 && row.dense_ms > 0 && row.threads === 1);
  assert.deepEqual(json.stack.map((row: { hidden: number; ratio: number }) => [row.hidden, row.ratio]), [[16, 0], [16, 0.5]]);
  assert.ok(json.stack.every((row: { ort_ms: number }) => row.ort_ms > 0));
  assert.match(await readFile(join(out, "nmt.md"), "utf8"), /# Table 3: GNMT decoder[\s\S]*BLEU\|nrefs:1/);
});
