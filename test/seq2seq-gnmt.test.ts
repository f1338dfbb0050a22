// The GNMT model: every parameter tensor's gradient against central finite differences of the
// graph's own forward (dropout masks and label smoothing on), padding that changes nothing, the
// checkpoint round trip, the batch-1 decoder against the training graph, and beam search (beam 1 is
// greedy; length normalization and coverage on hand-made examples).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testRuntimes } from "./helpers.js";
import type { Runtime } from "../src/runtime/runtime.js";
import { Rng, batchRng } from "../src/util/random.js";
import { Bpe, BOS_ID, EOS_ID } from "../src/seq2seq/bpe.js";
import { type GnmtConfig, initParams, loadNmt, paramCount, paramTable, saveNmt } from "../src/seq2seq/gnmt.js";
import { GnmtGraph } from "../src/seq2seq/graph.js";
import { makeBatch, learningRate, type EncodedPair } from "../src/seq2seq/train.js";
import { NmtModel, beamDecode, coveragePenalty, gnmtScore, greedyDecode, lengthPenalty, topK, type SearchModel } from "../src/seq2seq/translate.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });
const tmp = await mkdtemp(join(tmpdir(), "dualmodule-gnmt-"));
after(() => rm(tmp, { recursive: true, force: true }));

/** A BPE of exactly `size` symbols: the 259 specials and bytes, then single letters. */
function tinyBpe(size: number): Bpe {
  const letters = Array.from({ length: size - 259 }, (_, i) => String.fromCodePoint(0x61 + i));
  return new Bpe(letters, []);
}

function randomPairs(rng: Rng, n: number, V: number, maxLen: number): EncodedPair[] {
  const ids = (len: number) => Int32Array.from({ length: len }, () => 3 + rng.int(V - 3));
  return Array.from({ length: n }, () => {
    const src = ids(1 + rng.int(maxLen));
    src[src.length - 1] = EOS_ID;
    return { src, tgt: ids(1 + rng.int(maxLen)) };
  });
}

const CONFIG: GnmtConfig = { vocab: 11, hidden: 4, encoderLayers: 3, decoderLayers: 3 };

function makeGraph(rt: Runtime, c: GnmtConfig, dropout: number, batch: number, maxLen: number, seed = 3) {
  const params = rt.heap.f32(paramCount(c)), grads = rt.heap.f32(params.length);
  initParams(c, params, seed);
  // Larger weights than the ±0.1 start, so that every path (attention included) carries gradient.
  for (let i = 0; i < params.length; i++) params[i] *= 4;
  const graph = new GnmtGraph(rt, c, { maxSrc: maxLen, maxTgt: maxLen + 1, batch, dropout, smoothing: 0.1 }, params, grads);
  return { params, grads, graph };
}

test("GNMT backward: every parameter tensor's gradient matches central finite differences (dropout and label smoothing on, padded batch)", async () => {
  const [rt] = await testRuntimes();
  const { params, grads, graph } = makeGraph(rt, CONFIG, 0.3, 3, 5);
  const batch = makeBatch(randomPairs(new Rng(5), 3, CONFIG.vocab, 5));
  assert.ok(new Set(batch.srcLen).size > 1 && new Set(batch.tgtLen).size > 1, "the batch must mix lengths");
  const loss = () => graph.forward(batch, batchRng(1, 0, 0));
  grads.fill(0);
  loss();
  const M = graph.tokens;
  graph.backward();
  const gradient = grads.slice(); // training forwards below add the classifier's gradients again
  const rng = new Rng(9);
  let checked = 0;
  for (const s of paramTable(CONFIG)) {
    for (let j = 0; j < Math.min(4, s.size); j++) {
      const at = s.offset + rng.int(s.size), w = params[at], eps = 1e-2;
      params[at] = w + eps; const up = loss();
      params[at] = w - eps; const down = loss();
      params[at] = w;
      const fd = (up - down) / (2 * eps), g = gradient[at] * M;
      assert.ok(Math.abs(fd - g) <= 2e-3 + 2e-2 * Math.abs(fd), `${s.name}[${at - s.offset}]: backward ${g}, finite difference ${fd}`);
      checked++;
    }
  }
  assert.ok(checked > 60);
  // The gradient is not trivially zero where it matters.
  const named = (name: string) => paramTable(CONFIG).find((s) => s.name === name)!;
  for (const name of ["decoder.att_rnn.attn.linear_att", "encoder.rnn_layers.0.weight_ih_l0_reverse", "embedder.weight"]) {
    const s = named(name);
    assert.ok(gradient.subarray(s.offset, s.offset + s.size).some((x) => Math.abs(x) > 1e-6), `${name} has no gradient`);
  }
});

test("GNMT forward: a pair's loss is the same alone and inside a padded batch of longer pairs", async () => {
  const [rt] = await testRuntimes();
  const { graph } = makeGraph(rt, CONFIG, 0, 3, 6);
  const pairs = randomPairs(new Rng(11), 3, CONFIG.vocab, 6);
  pairs[0] = { src: Int32Array.of(4, 5, EOS_ID), tgt: Int32Array.of(6) };
  const together = graph.forward(makeBatch(pairs));
  let apart = 0;
  for (const p of pairs) apart += graph.forward(makeBatch([p]));
  assert.ok(Math.abs(together - apart) < 1e-4 * Math.abs(apart), `batched ${together}, one by one ${apart}`);
});

test("GNMT checkpoint: F32 round trip is exact, F16 within half precision; the batch-1 decoder reproduces the training graph's loss", async () => {
  const [rt] = await testRuntimes();
  const c: GnmtConfig = { vocab: 262, hidden: 8, encoderLayers: 2, decoderLayers: 4 };
  const params = rt.heap.f32(paramCount(c));
  initParams(c, params, 1);
  for (let i = 0; i < params.length; i++) params[i] *= 3;
  const bpe = tinyBpe(262);
  const training = { corpus: "test", seed: 1, epoch: 0, step: 0, epochs: 1, batch: 2, maxLength: 10, lr: 1e-3, dropout: 0, smoothing: 0,
    bestValidBleu: null, history: [], clip: 5, schedule: { lr: 1e-3, warmup: 1, remain: 0.5, decays: 1, factor: 0.5 } };
  const f32 = join(tmp, "m32.safetensors"), f16 = join(tmp, "m16.safetensors");
  await saveNmt(f32, { config: c, params, bpe, training });
  await saveNmt(f16, { config: c, params, bpe, training }, "F16");
  const back = await loadNmt(f32), half = await loadNmt(f16);
  assert.deepEqual(back.config, c);
  assert.deepEqual(Array.from(back.params), Array.from(params));
  assert.equal(back.bpe.size, 262);
  for (let i = 0; i < params.length; i++) assert.ok(Math.abs(half.params[i] - params[i]) <= 1e-3 * Math.abs(params[i]) + 1e-7);

  // Teacher-forced: Σ −log p over the target from the step-by-step decoder = the graph's loss (no smoothing).
  const graph = new GnmtGraph(rt, c, { maxSrc: 6, maxTgt: 6, batch: 1, dropout: 0, smoothing: 0 }, params, null);
  const pair = { src: Int32Array.of(260, 261, 259, EOS_ID), tgt: Int32Array.of(261, 260, 259, 261) };
  const expected = graph.forward(makeBatch([pair]));
  const m = new NmtModel(rt, c, params, bpe);
  m.start(pair.src);
  let sum = 0, prev = BOS_ID;
  for (const y of [...pair.tgt, EOS_ID]) { sum -= m.step(prev)[y]; prev = y; }
  assert.ok(Math.abs(sum - expected) < 1e-4 * expected, `decoder ${sum}, graph ${expected}`);
  let attention = 0;
  for (let s = 0; s < pair.src.length; s++) attention += m.attention[s];
  assert.ok(Math.abs(attention - 1) < 1e-9);
});

test("beam search with beam 1 is greedy decoding on a random GNMT", async () => {
  const [rt] = await testRuntimes();
  const c: GnmtConfig = { vocab: 270, hidden: 8, encoderLayers: 2, decoderLayers: 4 };
  const params = rt.heap.f32(paramCount(c));
  initParams(c, params, 4);
  for (let i = 0; i < params.length; i++) params[i] *= 5;
  const m = new NmtModel(rt, c, params, tinyBpe(270));
  const rng = new Rng(2);
  for (let k = 0; k < 5; k++) {
    const src = Int32Array.from({ length: 3 + k }, () => 259 + rng.int(11));
    src[src.length - 1] = EOS_ID;
    m.start(src);
    const greedy = greedyDecode(m, 12);
    m.start(src);
    const beam1 = beamDecode(m, { beam: 1, alpha: 0.6, beta: 0.1, maxLength: 12 });
    assert.deepEqual(Array.from(beam1), Array.from(greedy));
  }
});

/** A decoder whose log-probabilities depend only on the tokens so far (a table), with no attention. */
function tableModel(table: Map<string, number[]>, V: number): SearchModel & { prefix: number[] } {
  const m = {
    prefix: [] as number[], sourceLength: 0, attention: [] as number[],
    step(token: number) {
      if (token !== BOS_ID) m.prefix.push(token);
      const p = table.get(m.prefix.join(",")) ?? Array.from({ length: V }, (_, v) => (v === EOS_ID ? 0.9 : 0.1 / (V - 1)));
      return p.map(Math.log);
    },
    saveState: () => Float32Array.from(m.prefix),
    loadState(s: Float32Array) { m.prefix = Array.from(s); },
  };
  return m;
}

test("beam search: GNMT length normalization turns the choice from the short to the long hypothesis (hand example)", () => {
  // Tokens 0 <pad>, 1 <s>, 2 </s>, 3 "a". First step: </s> 0.40, "a" 0.35; after "a": </s> 0.9.
  //   [</s>]:      log 0.40 = −0.916, length 1
  //   [a, </s>]:   log 0.35 + log 0.9 = −1.155, length 2, lp = ((5 + 2)/6)^α
  // α = 0: −0.916 > −1.155, the short one wins. α = 2: lp = 1.361, −1.155/1.361 = −0.849 > −0.916.
  const V = 4, table = new Map([["", [0.1, 0.15, 0.40, 0.35]], ["3", [0.02, 0.03, 0.9, 0.05]]]);
  const run = (alpha: number) => { const m = tableModel(table, V); return Array.from(beamDecode(m, { beam: 2, alpha, beta: 0, maxLength: 5 })); };
  assert.deepEqual(run(0), []);
  assert.deepEqual(run(2), [3]);
  assert.ok(Math.abs(lengthPenalty(7, 0.6) - 2 ** 0.6) < 1e-12);
  assert.equal(lengthPenalty(1, 0.6), 1);
  // Coverage: β Σ log min(Σ_j p_ij, 1); full coverage costs nothing, half coverage of 2 positions 2β log ½.
  assert.equal(coveragePenalty([1.3, 1], 2, 0.2), 0);
  assert.ok(Math.abs(coveragePenalty([0.5, 0.5], 2, 0.2) - 0.4 * Math.log(0.5)) < 1e-12);
  assert.ok(Math.abs(gnmtScore(-2, 7, [0.5, 1], 2, { alpha: 1, beta: 1 }) - (-1 + Math.log(0.5))) < 1e-12);
  assert.deepEqual(topK([0.1, 0.5, 0.5, 0.2, 0.9], 3), [4, 1, 2]);
});

test("the learning rate warms up exponentially from 1 %, holds, then halves in equal intervals", () => {
  const s = { lr: 1, warmup: 10, remain: 0.5, decays: 4, factor: 0.5 };
  assert.ok(Math.abs(learningRate(s, 0, 100) - 0.01) < 1e-12);
  assert.ok(Math.abs(learningRate(s, 5, 100) - 0.1) < 1e-12);
  assert.equal(learningRate(s, 10, 100), 1);
  assert.equal(learningRate(s, 49, 100), 1);
  assert.equal(learningRate(s, 50, 100), 0.5);
  assert.equal(learningRate(s, 62, 100), 0.25);
  assert.equal(learningRate(s, 99, 100), 0.0625);
});
