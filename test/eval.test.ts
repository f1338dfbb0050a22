// Language-model evaluation end to end on a tiny model trained for two epochs with the trainer's API
// (src/recurrent/train.ts) on a synthetic corpus of a few thousand tokens: train → fit → calibrate →
// evaluate. Exact perplexity against an independent float64 forward, ratio 0 against the dense
// model, achieved ratios on held-out text, sampling, and the errors of bad input.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testRuntimes } from "./helpers.js";
import { lstmStep } from "./reference-rnn.js";
import { Rng } from "../src/util/random.js";
import { type LmConfig, LmInference, viewParams } from "../src/recurrent/lm.js";
import { trainLm, type LmData } from "../src/recurrent/train.js";
import { Vocabulary } from "../src/data/vocabulary.js";
import { evaluateLm, generate, nextWordLoss, perplexity, spreadPieces, timeSteps } from "../src/recurrent/eval.js";
import { checkVocabulary, defaultModel, openLm, testText } from "../src/recurrent/open.js";
import { jsonRows, main as evalMain } from "../src/cli/eval-lm.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const tmp = await mkdtemp(join(tmpdir(), "dualmodule-eval-"));
after(() => rm(tmp, { recursive: true, force: true }));

const V = 24;
const CONFIG: LmConfig = { cell: "lstm", vocab: V, emb: 8, hidden: 16, layers: 1, tied: false };

/** A first-order Markov source: each word has 3 likely successors (80 %), otherwise any word. */
function markovText(n: number, seed: number): Int32Array {
  const table = new Rng(99), next = Array.from({ length: V }, () => [table.int(V), table.int(V), table.int(V)]);
  const rng = new Rng(seed), ids = new Int32Array(n);
  for (let i = 1; i < n; i++) ids[i] = rng.uniform() < 0.8 ? next[ids[i - 1]][rng.int(3)] : rng.int(V);
  return ids;
}

const DATA: LmData = { train: markovText(3000, 1), valid: markovText(1500, 2), test: markovText(1500, 3) };
const MODEL = join(tmp, "tiny.safetensors");

/** Trained once: 2 epochs of 75 windows (bptt 10, batch 4), well under a second. */
let trained: Promise<{ lm: LmInference; params: Float32Array }> | null = null;
async function tinyLm(): Promise<LmInference> { return (await trainTiny()).lm; }
function trainTiny(): Promise<{ lm: LmInference; params: Float32Array }> {
  trained ??= (async () => {
    const [rt] = await testRuntimes();
    const r = await trainLm(rt, {
      config: CONFIG, corpus: "synthetic", epochs: 2, out: MODEL,
      options: { bptt: 10, batch: 4, evalBatch: 2, lr: 20, clip: 0.25, dropout: 0, seed: 3 },
    }, DATA);
    assert.ok(r.testLoss! < Math.log(V) - 0.5, `the tiny model learned something: test loss ${r.testLoss} vs uniform ${Math.log(V)}`);
    return { lm: new LmInference(rt, CONFIG, viewParams(CONFIG, r.params)), params: r.params.slice() };
  })();
  return trained;
}

test("nextWordLoss is −log softmax in float64, stable for huge logits", () => {
  const z = Float32Array.of(1, -2, 0.5, 3);
  const ref = (t: number) => -Math.log(Math.exp(z[t]) / z.reduce((s, v) => s + Math.exp(v), 0));
  for (let t = 0; t < z.length; t++) assert.ok(Math.abs(nextWordLoss(z, t) - ref(t)) < 1e-14);
  const huge = z.map((v) => v + 1e4);
  for (let t = 0; t < z.length; t++) assert.ok(Math.abs(nextWordLoss(huge, t) - ref(t)) < 1e-3, "shifted logits, same loss");
  assert.ok(Math.abs(nextWordLoss(Float32Array.of(5, 5), 0) - Math.log(2)) < 1e-15);
});

test("spreadPieces: about max tokens in equal pieces spread over the split, or all of it", () => {
  const ids = Int32Array.from({ length: 10_000 }, (_, i) => i);
  const starts = (p: Int32Array[]) => p.map((x) => x[0]);
  const spread = spreadPieces(ids, 2500, 1000);
  assert.deepEqual(spread.map((p) => p.length), [833, 833, 833]);
  assert.deepEqual(starts(spread), [0, 3333, 6666]);
  for (const p of spread) assert.equal(p[p.length - 1] - p[0], p.length - 1, "each piece is contiguous");
  const all = spreadPieces(ids, Infinity, 3000);
  assert.deepEqual(all.map((p) => p.length), [2500, 2500, 2500, 2500]);
  assert.deepEqual(starts(all), [0, 2500, 5000, 7500]);
  assert.deepEqual(spreadPieces(ids, 400, 1000).map((p) => [p[0], p.length]), [[0, 400]]);
});

test("perplexity is exact: it matches a float64 forward of the same weights (full softmax, state carried)", async () => {
  const { lm, params } = await trainTiny();
  const ids = DATA.test.subarray(0, 300), p = viewParams(CONFIG, params);
  const { emb: E, hidden: H } = CONFIG;
  let h: Float64Array = new Float64Array(H), c: Float64Array = new Float64Array(H), loss = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    [h, c] = lstmStep(p.layers[0], E, H, p.encoder.subarray(ids[t] * E, (ids[t] + 1) * E), h, c);
    const logits = Array.from({ length: V }, (_, v) => {
      let s = p.decoderBias[v];
      for (let j = 0; j < H; j++) s += p.decoderWeight[v * H + j] * h[j];
      return s;
    });
    const m = Math.max(...logits);
    loss += m + Math.log(logits.reduce((a, z) => a + Math.exp(z - m), 0)) - logits[ids[t + 1]];
  }
  const expected = Math.exp(loss / (ids.length - 1));
  const got = perplexity(lm, lm.stack, ids);
  assert.equal(got.predictions, ids.length - 1);
  assert.ok(Math.abs(got.ppl - expected) <= 1e-5 * expected, `ppl ${got.ppl} vs float64 ${expected}`);
  assert.ok(got.ppl >= 1 && got.ppl < V, `ppl ${got.ppl} is between 1 and the uniform ${V}`);
});

test("train → fit → calibrate → evaluate: ratio 0 is the dense model exactly; achieved ratios within 2 points on test", async () => {
  const [rt] = await testRuntimes();
  const lm = await tinyLm();
  const phases = new Set<string>();
  const ratios = [0, 0.3, 0.5, 0.7, 0.9];
  const r = evaluateLm(rt, lm, DATA, { ratios, chunk: 500, onProgress: (p) => phases.add(p) });
  assert.deepEqual(r.tokens, { train: 3000, valid: 1500, test: 1500 });
  assert.deepEqual([...phases], ["dense", "fit", ...ratios.map((x) => `ratio ${x}`)]);
  assert.ok(r.fit[0].validationR2! > 0.5, `the little module explains most of the pre-activations: validation R² ${r.fit[0].validationR2}`);
  const [zero, ...rest] = r.ratios;
  assert.equal(zero.ppl, r.dense.ppl, "ratio 0: every neuron sensitive, bit for bit the dense model");
  assert.equal(zero.achievedRatio, 0);
  for (const x of rest) {
    assert.ok(Math.abs(x.achievedRatio - x.ratio) <= 0.02, `ratio ${x.ratio}: achieved ${x.achievedRatio} on test`);
    assert.ok(Number.isFinite(x.ppl) && x.ppl >= 1 && x.ppl < V, `ratio ${x.ratio}: ppl ${x.ppl}`);
    assert.ok(x.bytesReduction > 1, `ratio ${x.ratio}: bytes reduction ${x.bytesReduction}`);
  }
  // Reading fewer rows means reading fewer bytes.
  for (let i = 1; i < rest.length; i++) assert.ok(rest[i].bytesReduction > rest[i - 1].bytesReduction);

  // Step times: one positive median for dense and per ratio.
  const times = await timeSteps(lm, r, DATA.test, 50);
  assert.equal(times.dual.length, ratios.length);
  for (const t of [times.dense, ...times.dual]) assert.ok(t > 0 && Number.isFinite(t), `step time ${t}`);

  // Capped: the test split's first tokens (a short train or valid cap is one piece from the start).
  const capped = evaluateLm(rt, lm, DATA, { ratios: [0.5], maxTokens: { train: 600, valid: 400, test: 200 } });
  assert.deepEqual(capped.tokens, { train: 600, valid: 400, test: 200 });
  assert.equal(capped.dense.ppl, perplexity(lm, lm.stack, DATA.test.subarray(0, 200)).ppl);

  // JSON rows carry the issue's fields, one per ratio.
  const rows = jsonRows({ path: MODEL, checkpoint: { config: CONFIG } as never, corpus: { name: "sotu" } as never, lm }, r);
  assert.deepEqual(Object.keys(rows[2]), ["model", "cell", "hidden", "corpus", "split", "ratio", "achieved_ratio", "ppl", "ppl_dense", "bytes_reduction"]);
  assert.deepEqual(rows.map((x) => x.ratio), ratios);
  assert.equal(rows[2].model, "tiny.safetensors");
  assert.equal(rows[2].ppl_dense, r.dense.ppl);

  // Sampling: the same seed gives the same sentences; ratio 0 samples exactly as the dense model.
  const vocab = new Vocabulary(["<unk>", "<eos>", ...Array.from({ length: V - 2 }, (_, i) => `w${i}`)]);
  const o = { sentences: 3, maxWords: 8, temperature: 1 };
  const dense = generate(lm, lm.stack, vocab, new Rng(5), o);
  assert.equal(dense.length, 3);
  assert.ok(dense.every((s) => s.split(" ").length <= 8));
  assert.deepEqual(generate(lm, lm.stack, vocab, new Rng(5), o), dense);
  r.dual.setThresholds(zero.thresholds, 0);
  assert.deepEqual(generate(lm, r.dual, vocab, new Rng(5), o), dense);
});

test("k auto: the smallest k of the grid within the validation budget, every smaller one outside it", async () => {
  const [rt] = await testRuntimes();
  const lm = await tinyLm();
  const grid = [1, 2, 4, 8], options = { ratios: [0.5], chunk: 500, maxTokens: { test: 200 } };
  // ratio undefined, as the CLI passes it without --auto-ratio: the default 0.5 holds.
  const loose = evaluateLm(rt, lm, DATA, { ...options, k: "auto", auto: { grid, budget: 10, ratio: undefined } });
  assert.deepEqual(loose.kSearch!.map((c) => c.k), [1], "a loose budget takes the first k");
  assert.equal(loose.fit[0].k, 1);
  const strict = evaluateLm(rt, lm, DATA, { ...options, k: "auto", auto: { grid, budget: 0.002 } });
  const tried = strict.kSearch!, chosen = tried[tried.length - 1];
  assert.ok(tried.length > 1, `a strict budget looks past k 1: ${JSON.stringify(tried)}`);
  assert.deepEqual(tried.map((c) => c.k), grid.slice(0, tried.length));
  assert.equal(strict.fit[0].k, chosen.k);
  for (const c of tried.slice(0, -1)) assert.ok(c.validPpl > c.validDensePpl * 1.002, `k ${c.k} was within the budget but not chosen`);
  if (chosen.k !== grid[grid.length - 1]) assert.ok(chosen.validPpl <= chosen.validDensePpl * 1.002);
  assert.ok(tried.every((c, i) => i === 0 || c.littleBytes > tried[i - 1].littleBytes), "bytes grow with k");
});

test("bad input: ratios, splits, vocabulary, checkpoint and corpus are named in the error", async () => {
  const [rt] = await testRuntimes();
  const lm = await tinyLm();
  for (const bad of [1, -0.1, 1.5, NaN]) {
    assert.throws(() => evaluateLm(rt, lm, DATA, { ratios: [0.5, bad] }), new RegExp(`ratio ${bad} is outside \\[0, 1\\)`));
  }
  assert.throws(() => evaluateLm(rt, lm, DATA, { ratios: [] }), /no ratios given/);
  assert.throws(() => evaluateLm(rt, lm, { ...DATA, valid: new Int32Array(1) }, { ratios: [0.5] }), /the valid split has 1 tokens/);
  assert.throws(() => perplexity(lm, lm.stack, Int32Array.of(3)), /at least 2 tokens/);
  assert.throws(() => perplexity(lm, lm.stack, Int32Array.of(3, V)), /perplexity: ids\[1\] = 24 is outside \[0, 24\)/);

  const words = (n: number) => new Vocabulary(["<unk>", "<eos>", ...Array.from({ length: n - 2 }, (_, i) => `w${i}`)]);
  checkVocabulary({ config: CONFIG }, { name: "sotu", vocab: words(V) }, "m.safetensors");
  checkVocabulary({ config: CONFIG, vocabDigest: words(V).digest }, { name: "sotu", vocab: words(V) }, "m.safetensors");
  assert.throws(() => checkVocabulary({ config: CONFIG }, { name: "sotu", vocab: words(10) }, "m.safetensors"),
    /m\.safetensors has a vocabulary of 24 words, corpus sotu one of 10/);
  // Same size, one word changed: only the digest tells.
  const renamed = new Vocabulary([...words(V).words.slice(0, -1), "other"]);
  assert.throws(() => checkVocabulary({ config: CONFIG, vocabDigest: words(V).digest }, { name: "sotu", vocab: renamed }, "m.safetensors"),
    /m\.safetensors was trained on other words than corpus sotu's 24 \(vocabulary digests differ\)/);

  await tinyLm(); // writes MODEL, trained on corpus "synthetic"
  await assert.rejects(openLm(rt, MODEL), /trained on corpus "synthetic", which is not one of sotu, brown; pass --corpus/);
  await assert.rejects(openLm(rt, join(tmp, "missing.safetensors")), /missing\.safetensors: it does not exist/);
  const junk = join(tmp, "junk.safetensors");
  await writeFile(junk, "not a checkpoint");
  await assert.rejects(openLm(rt, junk), /junk\.safetensors/);

  // A text file to measure on: words outside the vocabulary are <unk>; empty or binary files are refused.
  const opened = { corpus: { vocab: words(V), test: DATA.test } } as never;
  assert.equal((await testText(opened)).ids, DATA.test);
  const text = join(tmp, "speech.txt");
  await writeFile(text, "W3 w4 zebra.\n");
  assert.deepEqual(await testText(opened, text), { name: "text speech.txt", ids: Int32Array.of(5, 6, 0, 0, 1) }); // w3 w4 <unk> <unk>(".") <eos>
  await writeFile(text, "");
  await assert.rejects(testText(opened, text), /text file .*speech\.txt is empty/);
  await writeFile(text, Uint8Array.of(0x50, 0x4b, 3, 4, 0, 0));
  await assert.rejects(testText(opened, text), /speech\.txt is not text/);

  // The command line refuses bad options before any work.
  await assert.rejects(evalMain([]), /--model FILE is required/);
  await assert.rejects(evalMain(["--model", MODEL, "--ratios", "0.5,1"]), /--ratios: ratio 1 is outside \[0, 1\)/);
  await assert.rejects(evalMain(["--model", MODEL, "--ratios", "0.5,x"]), /--ratios: "x" is not a number/);
  await assert.rejects(evalMain(["--model", MODEL, "--bits", "3"]), /--bits must be one of 1, 2, 4, 8, 16, 32/);
  await assert.rejects(evalMain(["--model", MODEL, "--json", join(tmp, "no", "out.json")]), /--json .*folder .* does not exist/);
});

test("the default model is the smallest SOTU LSTM in the models folder; none is an error with the command to make one", async () => {
  const dir = join(tmp, "models");
  await rm(dir, { recursive: true, force: true });
  assert.throws(() => defaultModel(dir), /no default model: .* has no sotu-lstm-<H>\.safetensors; pass --model FILE, or train one with `dmi train lm/);
  await mkdir(dir);
  for (const f of ["sotu-lstm-650.safetensors", "sotu-lstm-256.safetensors", "sotu-gru-128.safetensors", "sotu-lstm-64.safetensors.tmp"]) {
    await writeFile(join(dir, f), "");
  }
  assert.equal(defaultModel(dir), join(dir, "sotu-lstm-256.safetensors"));
});
