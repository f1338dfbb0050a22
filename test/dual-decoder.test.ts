// The dual-module output layer (src/recurrent/dual-decoder.ts): its top-N selection against a sort,
// its preview against a float64 reduced-rank reference, exactness with every word a candidate, the
// certified rule's guarantee against float64 logits, the calibrated margin, the choice functions,
// and agreement with the dense model on the shipped SOTU LSTM-128.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { EigenvalueDecomposition, Matrix } from "ml-matrix";
import { testRuntimes, label } from "./helpers.js";
import { Rng } from "../src/util/random.js";
import { type LmConfig, LmInference, initParams, paramCount, viewParams } from "../src/recurrent/lm.js";
import { DenseOutputLayer, DualDecoder, candidateSoftmax, fitPreview, greedy, sampleCandidates, topN } from "../src/recurrent/dual-decoder.js";
import { decoderQuality, generate, spreadPieces, timeTokens } from "../src/recurrent/eval.js";
import { Vocabulary } from "../src/data/vocabulary.js";
import { MODELS_DIR, openLm } from "../src/recurrent/open.js";
import type { Runtime } from "../src/runtime/runtime.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const CONFIG: LmConfig = { cell: "lstm", vocab: 40, emb: 12, hidden: 12, layers: 1, tied: false };

function randomLm(rt: Runtime, seed = 5): LmInference {
  const flat = new Float32Array(paramCount(CONFIG));
  initParams(CONFIG, flat, seed);
  // Larger decoder weights and biases than the initialisation's ±0.1, so that logits spread.
  const p = viewParams(CONFIG, flat), rng = new Rng(seed + 1);
  for (let i = 0; i < p.decoderWeight.length; i++) p.decoderWeight[i] *= 20;
  for (let i = 0; i < p.decoderBias.length; i++) p.decoderBias[i] = rng.normal();
  return new LmInference(rt, CONFIG, p);
}

/** n samples of h (H): a correlated Gaussian with a nonzero mean, so that Σ ≠ I matters. */
function samples(n: number, H: number, seed: number): Float32Array {
  const rng = new Rng(seed), mix = Float64Array.from({ length: H * H }, () => rng.normal() / Math.sqrt(H));
  const out = new Float32Array(n * H), g = new Float64Array(H);
  for (let t = 0; t < n; t++) {
    for (let j = 0; j < H; j++) g[j] = rng.normal() * (j < 4 ? 3 : 0.3);
    for (let i = 0; i < H; i++) {
      let s = 0.2 + 0.05 * i;
      for (let j = 0; j < H; j++) s += mix[i * H + j] * g[j];
      out[t * H + i] = s;
    }
  }
  return out;
}

test("topN lists the n largest values and returns the n-th largest", () => {
  const rng = new Rng(3);
  for (const [V, n] of [[1, 1], [7, 3], [100, 1], [100, 17], [100, 100], [1000, 64]]) {
    const x = Float32Array.from({ length: V }, () => Math.round(rng.normal() * 20) / 4); // ties included
    const ids = new Int32Array(V), vals = new Float32Array(V);
    const t = topN(ids, vals, x, n);
    const sorted = Array.from(x).sort((a, b) => b - a);
    assert.equal(t, sorted[n - 1], `V ${V} n ${n}: threshold`);
    const chosen = Array.from(ids.subarray(0, n));
    assert.equal(new Set(chosen).size, n, "distinct indices");
    assert.deepEqual(chosen.map((i) => x[i]).sort((a, b) => b - a), sorted.slice(0, n), `V ${V} n ${n}: the n largest`);
  }
  assert.throws(() => topN(new Int32Array(4), new Float32Array(4), new Float32Array(4), 0), /n must be an integer in \[1, 4\]/);
});

test("the preview equals a float64 reduced-rank prediction of the logits (fp32 factors), and the INT8 one stays close", async () => {
  for (const rt of await testRuntimes()) {
    const lm = randomLm(rt), { vocab: V, hidden: H } = CONFIG, n = 600, hs = samples(n, H, 11);
    // Reference in float64: μ, Σ, the top-r eigenvectors Q of W·Σ·Wᵀ, preview = Q·Qᵀ·W·(h − μ) + W·μ + b.
    const W = Array.from({ length: V }, (_, v) => Array.from(lm.decoderWeight.subarray(v * H, (v + 1) * H)));
    const mu = Array.from({ length: H }, (_, j) => { let s = 0; for (let t = 0; t < n; t++) s += hs[t * H + j]; return s / n; });
    const S = new Matrix(H, H);
    for (let i = 0; i < H; i++) for (let j = 0; j < H; j++) {
      let s = 0;
      for (let t = 0; t < n; t++) s += (hs[t * H + i] - mu[i]) * (hs[t * H + j] - mu[j]);
      S.set(i, j, s / n);
    }
    const Wm = new Matrix(W), C = Wm.mmul(S).mmul(Wm.transpose());
    const e = new EigenvalueDecomposition(C, { assumeSymmetric: true });
    const order = e.realEigenvalues.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).map(([, i]) => i);
    for (const r of [3, 6, H]) {
      const Q = new Matrix(V, r);
      order.slice(0, r).forEach((src, k) => { for (let v = 0; v < V; v++) Q.set(v, k, e.eigenvectorMatrix.get(v, src)); });
      const P = Q.mmul(Q.transpose()).mmul(Wm);
      const f = fitPreview(rt, lm, hs, n, r, 2);
      const dual = new DualDecoder(rt, lm, f, 5);
      const h = rt.heap.f32(H);
      let worst = 0, worstQ = 0, scale = 0;
      for (let t = 0; t < 20; t++) {
        h.set(hs.subarray(t * H, (t + 1) * H));
        const centred = Array.from({ length: H }, (_, j) => h[j] - mu[j]);
        const pq = dual.previewLogits(h);
        for (let v = 0; v < V; v++) {
          let ref = lm.decoderBias[v];
          for (let j = 0; j < H; j++) ref += P.get(v, j) * centred[j] + W[v][j] * mu[j];
          let z = 0;
          for (let i = 0; i < r; i++) {
            let zi = f.shift[i];
            for (let j = 0; j < H; j++) zi += f.B[i * H + j] * h[j];
            z += f.A[v * r + i] * zi;
          }
          const fp32 = z + f.c[v];
          scale = Math.max(scale, Math.abs(ref));
          worst = Math.max(worst, Math.abs(fp32 - ref));
          worstQ = Math.max(worstQ, Math.abs(pq[v] - ref));
        }
      }
      assert.ok(worst <= 2e-3 * scale, `${label(rt)} r ${r}: fp32 factors within ${worst} of the float64 preview (scale ${scale})`);
      assert.ok(worstQ <= 0.03 * scale, `${label(rt)} r ${r}: INT8 preview within ${worstQ} (scale ${scale})`);
      rt.heap.release(h);
    }
  }
});

test("with every word a candidate the dual output layer is the dense one: logits, softmax, greedy and sampling", async () => {
  for (const rt of await testRuntimes()) {
    const lm = randomLm(rt), { vocab: V, hidden: H } = CONFIG;
    const dual = new DualDecoder(rt, lm, fitPreview(rt, lm, samples(300, H, 4), 300, 4), V);
    const dense = new DenseOutputLayer(lm), h = rt.heap.f32(H), rng = new Rng(8);
    const p = new Float64Array(V), q = new Float64Array(V);
    for (let t = 0; t < 10; t++) {
      for (let j = 0; j < H; j++) h[j] = rng.normal();
      const c = dual.candidates(h);
      assert.equal(c.count, V);
      assert.deepEqual(Array.from(c.ids.subarray(0, V)), Array.from({ length: V }, (_, i) => i));
      assert.equal(c.restBound, 0);
      const d = dense.candidates(h);
      assert.deepEqual(c.logits.subarray(0, V), d.logits, `${label(rt)}: the candidates' logits are the decoder's, bit for bit`);
      assert.equal(candidateSoftmax(q, c), candidateSoftmax(p, d));
      assert.deepEqual(q, p);
      assert.equal(greedy(c), greedy(d));
      for (const o of [{ temperature: 1 }, { temperature: 0.7, topK: 5 }, { temperature: 1.2, topP: 0.8 }]) {
        assert.equal(sampleCandidates(c, o, new Rng(t)), sampleCandidates(d, o, new Rng(t)));
      }
    }
    // generate() through either layer: the same sentences from the same seed.
    const vocab = new Vocabulary(["<unk>", "<eos>", ...Array.from({ length: V - 2 }, (_, i) => `w${i}`)]);
    const o = { sentences: 3, maxWords: 10, temperature: 1, topP: 0.95 };
    assert.deepEqual(generate(lm, lm.stack, vocab, new Rng(2), o, dual), generate(lm, lm.stack, vocab, new Rng(2), o));
    // And the quality measures say so.
    const ids = Int32Array.from({ length: 60 }, () => rng.int(V));
    const qd = decoderQuality(lm, lm.stack, dual, ids);
    assert.equal(qd.greedyAgreement, 1);
    assert.equal(qd.top5Overlap, 1);
    assert.ok(Math.abs(qd.kl) < 1e-12 && qd.denseMassOutside < 1e-12, `KL ${qd.kl}, mass outside ${qd.denseMassOutside}`);
    rt.heap.release(h);
  }
});

test("certified: no word left out can beat the best candidate (float64 logits), so greedy is the dense choice at every position", async () => {
  for (const rt of await testRuntimes()) {
    const lm = randomLm(rt), { vocab: V, hidden: H } = CONFIG;
    for (const rank of [1, 3, 8]) {
      const dual = new DualDecoder(rt, lm, fitPreview(rt, lm, samples(300, H, 4), 300, rank), "certified");
      const h = rt.heap.f32(H), rng = new Rng(rank);
      let counted = 0;
      for (let t = 0; t < 40; t++) {
        // Inside and far outside the fitted distribution (the bound must hold for any h).
        const spread = t % 4 === 0 ? 10 : 1;
        for (let j = 0; j < H; j++) h[j] = spread * rng.normal();
        const c = dual.candidates(h), inside = new Set(c.ids.subarray(0, c.count));
        const exact = Array.from({ length: V }, (_, v) => {
          let s = lm.decoderBias[v];
          for (let j = 0; j < H; j++) s += lm.decoderWeight[v * H + j] * h[j];
          return s;
        });
        const best = Math.max(...Array.from(c.ids.subarray(0, c.count), (v) => exact[v]));
        for (let v = 0; v < V; v++) if (!inside.has(v)) assert.ok(exact[v] < best, `${label(rt)} r ${rank}: word ${v} (${exact[v]}) left out beats ${best}`);
        assert.equal(greedy(c), greedy(new DenseOutputLayer(lm).candidates(h)));
        counted += c.count;
      }
      // It must also leave words out, or the guarantee says nothing.
      if (rank === 8) assert.ok(counted / 40 < 0.8 * V, `${label(rt)}: mean ${counted / 40} candidates of ${V}`);
      const ids = Int32Array.from({ length: 80 }, () => rng.int(V));
      assert.equal(decoderQuality(lm, lm.stack, dual, ids).greedyAgreement, 1, `${label(rt)} r ${rank}`);
      rt.heap.release(h);
    }
  }
});

test("auto: the calibrated margin keeps the greedy choice on the tokens it was calibrated on, grows with the quantile, and counts rows", async () => {
  const [rt] = await testRuntimes();
  const lm = randomLm(rt), { vocab: V, hidden: H } = CONFIG, n = 200, hs = samples(n, H, 9);
  const dual = new DualDecoder(rt, lm, fitPreview(rt, lm, samples(300, H, 4), 300, 2), "auto");
  const m50 = dual.calibrateMargin(hs, n, 0.5), m90 = dual.calibrateMargin(hs, n, 0.9), all = dual.calibrateMargin(hs, n, 1);
  assert.ok(0 <= m50 && m50 <= m90 && m90 <= all && all > 0, `margins ${m50} ${m90} ${all}`);
  const dense = new DenseOutputLayer(lm), h = rt.heap.f32(H);
  const agreement = (margin: number) => {
    dual.setRule("auto", margin);
    let agree = 0;
    for (let t = 0; t < n; t++) {
      h.set(hs.subarray(t * H, (t + 1) * H));
      if (greedy(dual.candidates(h)) === greedy(dense.candidates(h))) agree++;
    }
    return agree / n;
  };
  assert.equal(agreement(all), 1);
  const mean = dual.meanCandidates;
  assert.ok(mean >= 1 && mean < V, `mean ${mean}`);
  assert.ok(agreement(m50) >= 0.5);
  assert.ok(dual.meanCandidates <= mean, "a smaller margin computes fewer rows");
  assert.ok(agreement(0) < 1, "no margin: only the words whose preview exceeds the best one's exact logit, sometimes not the right one");
  // A least count: the 6 best previews at every token, whatever the margin.
  dual.setRule("auto", 0, 6);
  for (let t = 0; t < 20; t++) {
    h.set(hs.subarray(t * H, (t + 1) * H));
    const c = dual.candidates(h), sixth = Array.from(dual.preview).sort((x, y) => y - x)[5];
    const kept = new Set(c.ids.subarray(0, c.count));
    assert.ok(c.count >= 6);
    dual.preview.forEach((p, v) => { if (p >= sixth) assert.ok(kept.has(v), `word ${v} (preview ${p} ≥ ${sixth}) kept`); });
  }
  assert.throws(() => dual.setRule("auto", 0, V + 1), /minCandidates must be ≤ vocab = 40/);
  // A margin wider than any logit's spread: every word, the dense layer exactly.
  dual.setRule("auto", 1e6);
  h.set(hs.subarray(0, H));
  const c = dual.candidates(h);
  assert.equal(c.count, V);
  assert.deepEqual(c.logits.subarray(0, V), dense.candidates(h).logits);
  assert.throws(() => dual.setRule("auto", -1), /margin must be a finite number ≥ 0/);
  assert.throws(() => dual.setRule("most" as never), /candidates must be a count, "auto" or "certified"/);
  assert.throws(() => dual.calibrateMargin(hs, n, 0), /quantile must be in \(0, 1\]/);
  rt.heap.release(h);
});

test("candidates: the N best previews, exact logits, sampling limited to them; bad arguments named", async () => {
  const [rt] = await testRuntimes();
  const lm = randomLm(rt), { vocab: V, hidden: H } = CONFIG;
  const dual = new DualDecoder(rt, lm, fitPreview(rt, lm, samples(300, H, 4), 300, H), 6);
  const h = rt.heap.f32(H), rng = new Rng(1);
  for (let j = 0; j < H; j++) h[j] = rng.normal();
  const c = dual.candidates(h), exact = lm.decode(h).slice(), preview = dual.preview.slice();
  const ids = Array.from(c.ids.subarray(0, 6));
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "ascending ids");
  const sixth = Array.from(preview).sort((a, b) => b - a)[5];
  for (const i of ids) assert.ok(preview[i] >= sixth);
  ids.forEach((i, j) => assert.equal(c.logits[j], exact[i]));
  assert.ok(c.restBound > 0 && c.restBound <= 1);
  for (let s = 0; s < 50; s++) assert.ok(ids.includes(sampleCandidates(c, { temperature: 2 }, rng)));
  const top1 = sampleCandidates(c, { temperature: 1, topK: 1 }, rng);
  assert.equal(top1, greedy(c), "top-k 1 is greedy");
  assert.throws(() => dual.setRule(V + 1), /candidates must be ≤ vocab = 40/);
  assert.throws(() => fitPreview(rt, lm, samples(10, H, 1), 10, H + 1), /rank 13 exceeds min\(vocab, hidden\) = 12/);
  assert.throws(() => sampleCandidates(c, { temperature: 1, topP: 0 }, rng), /topP must be in \(0, 1\]/);
  rt.heap.release(h);
});

test("on the shipped SOTU LSTM-128: rank 32 and 64 candidates agree with the dense model's greedy choice", async () => {
  const [rt] = await testRuntimes();
  const opened = await openLm(rt, join(MODELS_DIR, "sotu-lstm-128.safetensors"));
  const { lm, corpus } = opened;
  const dual = DualDecoder.fit(rt, lm, lm.stack, spreadPieces(corpus.train, 4000, 1000), { rank: 32, candidates: 64 });
  const q = decoderQuality(lm, lm.stack, dual, corpus.test.subarray(0, 400));
  assert.equal(q.positions, 399);
  assert.ok(q.greedyAgreement >= 0.97, `greedy agreement ${q.greedyAgreement}`);
  assert.ok(q.top5Overlap >= 0.9, `top-5 overlap ${q.top5Overlap}`);
  assert.ok(q.kl > 0 && q.kl < 1, `KL ${q.kl}`);
  // A larger preview and more candidates do not agree less.
  dual.setRule(256);
  const wider = decoderQuality(lm, lm.stack, dual, corpus.test.subarray(0, 400));
  assert.ok(wider.greedyAgreement >= q.greedyAgreement && wider.kl < q.kl, JSON.stringify({ q, wider }));
  assert.equal(wider.candidates, 256);
  // The calibrated rule (its margin on validation text) and the certified one.
  const auto = DualDecoder.fit(rt, lm, lm.stack, spreadPieces(corpus.train, 4000, 1000), { rank: 32, candidates: "auto", quantile: 0.999 },
    spreadPieces(corpus.valid, 2000, 500));
  const qa = decoderQuality(lm, lm.stack, auto, corpus.test.subarray(0, 400));
  assert.ok(auto.margin > 0 && qa.greedyAgreement >= 0.99 && qa.candidates >= 32 && qa.candidates < 1000, JSON.stringify({ margin: auto.margin, qa }));
  auto.setRule("certified");
  const qc = decoderQuality(lm, lm.stack, auto, corpus.test.subarray(0, 400));
  assert.equal(qc.greedyAgreement, 1, "certified: the dense greedy choice at every position");
  assert.ok(qc.candidates < 0.5 * lm.config.vocab, `certified: ${qc.candidates} rows per position`);

  // Token times: positive parts for dense and for each ratio (here the dense cell at ratio 0).
  const r = { ratios: [{ ratio: 0, thresholds: [] }], dual: { setThresholds() {}, reset: () => lm.stack.reset(), step: (x: Float32Array) => lm.stack.step(x) } };
  const times = await timeTokens(rt, lm, r, dual, corpus.test.subarray(0, 50), { rounds: 8, warmup: 2 });
  assert.equal(times.dual.length, 1);
  for (const s of [times.dense, times.dual[0]]) {
    for (const [k, v] of Object.entries(s)) assert.ok(v > 0 && Number.isFinite(v), `${k} ${v}`);
  }
  assert.equal(times.threads, rt.threads);
});
