// The output layer of a language model for generation: the dense one (every word's logit, the
// reference) and a dual-module one. Not here: perplexity, which always takes the exact full softmax
// (eval.ts), nor the recurrent cells (dual.ts).
//
// Dual-module output layer, per token, from the top layer's output h (H):
//   1. little module: a rank-r preview of every word's logit, in INT8,
//        z = B·(h − μ)            B (r, H), the reduced-rank basis of the decoder under the covariance
//                                 of h on training tokens (dual/reduced-rank.ts), μ the mean of h
//        preview = A·z + c        A = W·Σ·Bᵀ (V, r), c = W·μ + b (V)
//      B's rows are scaled so that B·Σ·Bᵀ = I, which makes A = W·Σ·Bᵀ·(B·Σ·Bᵀ)⁻¹ (the least-squares
//      map from z to the logits, no ridge solve needed) equal to Q·diag(√λ), Q the top-r eigenvectors
//      of W·Σ·Wᵀ: the preview is the best rank-r prediction of the centred logits, plus their mean;
//   2. the candidates (CandidateRule): the N best previews; or those seeds, then every word whose
//      preview is within a calibrated margin of the seeds' best exact logit (auto), or whose preview
//      plus a bound of its error can still beat it (certified);
//   3. big module: their exact logits, reading only their rows of the decoder (matvecRows);
//   4. softmax over the candidates; the rest's probability is bounded through the preview (every
//      other word's preview is at most a threshold); greedy, top-k or nucleus sampling choose
//      among the candidates.
//
// This is SVD-softmax (Shim et al., NeurIPS 2017) with four differences: (a) the preview's basis
// comes from the decoder weights AND the distribution of h (reduced-rank regression under Σ), where
// SVD-softmax takes the plain SVD of W (the same when Σ = I); (b) the preview's two factors are INT8
// with one scale per row, and the exact logits come from the original fp32 rows of W (SVD-softmax
// recomputes the candidates in the rotated basis U·S at full width), so N = V is the dense output
// layer exactly; (c) the rest of the vocabulary is not normalised with its preview logits (which
// would cost an exp per word): its mass is only bounded, and the choice is made among the candidates;
// (d) the count adapts to each token (auto) or is certified for greedy, where SVD-softmax fixes N.
import type { Runtime } from "../runtime/runtime.js";
import type { LmInference } from "./lm.js";
import type { Recurrent } from "./eval.js";
import type { GemmBackend } from "../dual/ridge.js";
import { covariance, reducedRankBasis } from "../dual/reduced-rank.js";
import { quantizeRows } from "../dual/quantize.js";
import * as check from "../kernels/check.js";
import type { Rng } from "../util/random.js";

// ---------------------------------------------------------------------------------------------------
// Candidates and the choice of the next word

/** Words the next one is chosen from, with their exact logits; the dense layer lists the whole vocabulary. */
export interface Candidates {
  count: number;         // N
  ids: Int32Array;       // (≥ N) word ids, ascending in [0, count)
  logits: Float32Array;  // (≥ N) their exact logits, in the order of ids
  /** Upper bound of the probability (temperature 1) left outside the candidates, as the preview
   *  sees it: (V − N)·exp(t − m) / Σ exp(logits − m), t the N-th largest preview, m the largest logit.
   *  0 for the dense layer. */
  restBound: number;
}

/** What produces the candidates for the next word from the top-layer output h (H). */
export interface OutputLayer {
  readonly vocab: number;
  /** The candidates of h (views overwritten by the next call). */
  candidates(h: Float32Array): Candidates;
}

/** The dense output layer: every word, its logit from the full decoder product. */
export class DenseOutputLayer implements OutputLayer {
  readonly vocab: number;
  private readonly all: Candidates;

  constructor(private readonly lm: LmInference) {
    this.vocab = lm.config.vocab;
    this.all = { count: this.vocab, ids: Int32Array.from({ length: this.vocab }, (_, i) => i), logits: lm.logits, restBound: 0 };
  }

  candidates(h: Float32Array): Candidates {
    this.lm.decode(h);
    return this.all;
  }
}

/** The candidate with the largest logit (the lowest id among equals). */
export function greedy(c: Candidates): number {
  let best = 0;
  for (let j = 1; j < c.count; j++) if (c.logits[j] > c.logits[best]) best = j;
  return c.ids[best];
}

/**
 * probs[0..N) = softmax(logits / temperature) over the candidates, in float64; returns the log of
 * the normaliser Σ exp(logits / temperature) (for KL and log-probabilities).
 */
export function candidateSoftmax(probs: Float64Array, c: Candidates, temperature = 1): number {
  if (probs.length < c.count) throw new RangeError(`candidateSoftmax: probs holds ${probs.length} values, the candidates are ${c.count}`);
  let max = -Infinity;
  for (let j = 0; j < c.count; j++) if (c.logits[j] > max) max = c.logits[j];
  let sum = 0;
  for (let j = 0; j < c.count; j++) sum += probs[j] = Math.exp((c.logits[j] - max) / temperature);
  for (let j = 0; j < c.count; j++) probs[j] /= sum;
  return max / temperature + Math.log(sum);
}

export interface SampleOptions {
  temperature: number; // > 0
  topK?: number;       // keep only the k most probable candidates (0 or absent: all)
  topP?: number;       // nucleus: the fewest most probable candidates whose mass reaches p (absent or 1: all)
}

/**
 * A draw from the candidates' softmax(logits / temperature), truncated to top-k and nucleus if
 * asked. Without truncation, the draw walks the candidates in id order, so two layers whose
 * distributions agree closely make the same choice from the same generator state.
 */
export function sampleCandidates(c: Candidates, o: SampleOptions, rng: Rng, scratch = new Float64Array(c.count)): number {
  if (!(o.temperature > 0)) throw new RangeError(`sampleCandidates: temperature must be > 0, got ${o.temperature}`);
  const topK = o.topK ?? 0, topP = o.topP ?? 1;
  if (!(Number.isInteger(topK) && topK >= 0)) throw new RangeError(`sampleCandidates: topK must be an integer ≥ 0, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`sampleCandidates: topP must be in (0, 1], got ${topP}`);
  const p = scratch.length >= c.count ? scratch : new Float64Array(c.count);
  candidateSoftmax(p, c, o.temperature);
  let order: number[] | null = null, total = 1;
  if ((topK > 0 && topK < c.count) || topP < 1) {
    order = Array.from({ length: c.count }, (_, j) => j).sort((a, b) => p[b] - p[a] || c.ids[a] - c.ids[b]);
    let keep = topK > 0 ? Math.min(topK, c.count) : c.count, mass = 0;
    for (let j = 0; j < keep; j++) {
      mass += p[order[j]];
      if (mass >= topP) { keep = j + 1; break; }
    }
    order.length = keep;
    total = order.reduce((s, j) => s + p[j], 0);
  }
  let u = rng.uniform() * total;
  const n = order ? order.length : c.count;
  for (let i = 0; i < n; i++) {
    const j = order ? order[i] : i;
    u -= p[j];
    if (u < 0) return c.ids[j];
  }
  return c.ids[order ? order[n - 1] : n - 1]; // rounding left u a hair above 0
}

// ---------------------------------------------------------------------------------------------------
// The preview: fitted from top-layer outputs on training tokens

/** The preview's factors in fp32, before quantization (see the file header). */
export interface PreviewFactors {
  rank: number;        // r
  B: Float32Array;     // (r, H) reduced-rank basis of the decoder under Σ, rows of unit variance
  shift: Float32Array; // (r) −B·μ, so that z = B·h + shift is centred
  A: Float32Array;     // (V, r) W·Σ·Bᵀ
  c: Float32Array;     // (V) W·μ + b
  mean: Float32Array;  // (H) μ, the mean of h
}

/** The top layer's output after every step of each piece, read from a zero state: (n, H) and n. */
export function topLayerOutputs(lm: LmInference, rnn: Recurrent, pieces: Int32Array[]): { hs: Float32Array; n: number } {
  const H = lm.config.hidden, n = pieces.reduce((s, p) => s + p.length, 0);
  const hs = new Float32Array(n * H);
  let t = 0;
  for (const piece of pieces) {
    rnn.reset();
    for (const id of piece) hs.set(rnn.step(lm.embed(id)), H * t++);
  }
  rnn.reset();
  return { hs, n };
}

/**
 * The rank-r preview of lm's decoder for top-layer outputs like hs (n, H): the reduced-rank basis of
 * W under their covariance, A = W·Σ·Bᵀ, and the mean folded into the offsets. r ≤ min(V, H).
 */
export function fitPreview(rt: Runtime, lm: LmInference, hs: Float32Array, n: number, rank: number, seed = 1): PreviewFactors {
  const f = "fitPreview", { vocab: V, hidden: H } = lm.config;
  check.size(f, "rank", rank, 1);
  if (rank > Math.min(V, H)) throw new RangeError(`${f}: rank ${rank} exceeds min(vocab, hidden) = ${Math.min(V, H)}`);
  check.size(f, "n", n, 2);
  check.f32(f, "hs", hs, n * H);
  const backend: GemmBackend = { gemm: rt.kernels.gemm, alloc: (m) => rt.heap.f32(m), release: (a) => rt.heap.release(a) };
  const W = lm.decoderWeight, cov = covariance(hs, n, H, backend);
  const heapB = rt.heap.f32(rank * H), CB = rt.heap.f32(H * rank), A = rt.heap.f32(V * rank);
  try {
    const { B } = reducedRankBasis(W, V, H, cov, rank, backend, { seed });
    heapB.set(B);
    rt.kernels.gemm(CB, cov, heapB, H, rank, H, false, true, false); // Σ·Bᵀ (H, r)
    rt.kernels.gemm(A, W, CB, V, rank, H, false, false, false);      // W·Σ·Bᵀ (V, r)
    const mu = new Float64Array(H);
    for (let t = 0; t < n; t++) for (let j = 0; j < H; j++) mu[j] += hs[t * H + j];
    for (let j = 0; j < H; j++) mu[j] /= n;
    const shift = new Float32Array(rank), c = new Float32Array(V);
    for (let i = 0; i < rank; i++) {
      let s = 0;
      for (let j = 0; j < H; j++) s += B[i * H + j] * mu[j];
      shift[i] = -s;
    }
    for (let v = 0; v < V; v++) {
      let s = lm.decoderBias[v];
      for (let j = 0; j < H; j++) s += W[v * H + j] * mu[j];
      c[v] = s;
    }
    return { rank, B: B.slice(), shift, A: A.slice(), c, mean: Float32Array.from(mu) };
  } finally {
    for (const a of [cov, heapB, CB, A]) rt.heap.release(a);
  }
}

// ---------------------------------------------------------------------------------------------------
// The dual-module output layer

/**
 * Which words the big module computes exactly. The two adaptive rules start from the seeds, the
 * `minCandidates` best previews (exact logits; the least count, there for top-k choices and
 * sampling), m the best of their exact logits, and add:
 * - "auto" (calibrated): every word whose preview exceeds m − δ, δ the margin that kept the greedy
 *   choice on a `quantile` of held-out tokens; the count follows each token's evidence (an
 *   uncertain preview adds many words, a peaked one none);
 * - "certified": every word whose preview plus a bound of its preview error exceeds m, the bound
 *   ‖W_v − Â_v·B̂‖·‖h − μ‖ + ‖Â_v‖·‖B̂·(h − μ) − ẑ‖ (Cauchy–Schwarz on the rank-r residual and on
 *   the INT8 rounding of z) plus a slack for float rounding: the greedy choice is the dense layer's
 *   at every token, at whatever count that takes;
 * - a number N: the N largest previews, every token (SVD-softmax's rule).
 */
export type CandidateRule = number | "auto" | "certified";

/**
 * Defaults of the commands: the fixed 64. On the LSTM-750 and the LSTM-256 the calibrated rule's
 * margin over 64 seeds came out 0, so auto kept the same words at a little more cost; with 32 seeds
 * it lost agreement on the 256 (docs/language-models.md, "The whole token").
 */
export const DUAL_DECODER_DEFAULTS: { rank: number; candidates: CandidateRule; minCandidates: number; quantile: number } =
  { rank: 64, candidates: 64, minCandidates: 64, quantile: 0.999 };

/** A count above the vocabulary is every word. */
export function clampRule(rule: CandidateRule, vocab: number): CandidateRule {
  return typeof rule === "number" ? Math.min(rule, vocab) : rule;
}

export interface DualDecoderOptions {
  rank: number;               // r: preview rank, ≤ min(V, H)
  candidates: CandidateRule;  // a number N must be ≤ V
  quantile?: number;          // "auto": the fraction of held-out tokens whose greedy choice the margin keeps (default DUAL_DECODER_DEFAULTS.quantile)
  minCandidates?: number;     // "auto", "certified": the seeds' count (default DUAL_DECODER_DEFAULTS.minCandidates, at most V)
  seed?: number;              // subspace iteration's start (default 1)
}

/** The words the rule "certified" bounds its preview errors with (see CandidateRule). */
interface Certificate {
  residualNorms: Float64Array; // (V) ‖W_v − Â_v·B̂‖
  aNorms: Float64Array;        // (V) ‖Â_v‖
  B: Float64Array;             // (r, H) B̂, the INT8 basis dequantized
  x: Float64Array;             // (H) scratch: h − μ
}

/** Float rounding the certified bound leaves room for, relative to the largest logit (fp32 sums of H terms). */
const CERTIFIED_SLACK = 1e-3;

export class DualDecoder implements OutputLayer {
  readonly vocab: number;
  readonly rank: number;
  /** Bytes read per token by the preview: INT8 factors, scales, offsets. */
  readonly previewBytes: number;
  private currentRule: CandidateRule = 1;
  /** "auto": the calibrated margin δ (logit units); "auto" and "certified": the seeds' count. */
  margin = 0;
  minCandidates = 1;
  /** Exact rows computed since the last resetCounts() and the tokens they were computed for. */
  private rows = 0;
  private tokens = 0;
  private certificate: Certificate | null = null;
  private readonly H: number;
  private readonly Bq: Int8Array;       // (r, H)
  private readonly bScales: Float32Array; // (r)
  private readonly shift: Float32Array; // (r)
  private readonly Aq: Int8Array;       // (V, r)
  private readonly aScales: Float32Array; // (V)
  private readonly c: Float32Array;     // (V)
  private readonly hq: Int8Array;       // (H)
  private readonly z: Float32Array;     // (r)
  private readonly zq: Int8Array;       // (r)
  private zScale = 1;                   // of zq, from the last preview
  readonly preview: Float32Array;       // (V) of the last call
  private readonly score: Float32Array; // (V) "certified": preview + error bound
  private readonly exact: Float32Array; // (V) exact logits, only the candidates' rows written
  private readonly rowIdx: Int32Array;  // (V) candidate ids, the first N
  private readonly extraIdx: Int32Array; // (V) words a margin or bound cannot rule out
  private readonly seen: Uint8Array;    // (V) 1 for the seeds while the extra words are listed
  private readonly heapVal: Float32Array; // (V) min-heap of the N best previews
  private readonly lo: Float32Array;    // (1) selection threshold
  private readonly hi: Float32Array;    // (1) +∞
  private readonly out: Candidates;

  constructor(private readonly rt: Runtime, private readonly lm: LmInference, readonly factors: PreviewFactors,
              candidates: CandidateRule, margin = 0, minCandidates = 1) {
    const f = "DualDecoder", { vocab: V, hidden: H } = lm.config, r = factors.rank;
    this.vocab = V;
    this.rank = r;
    this.H = H;
    check.f32(f, "factors.B", factors.B, r * H);
    check.f32(f, "factors.A", factors.A, V * r);
    check.f32(f, "factors.shift", factors.shift, r);
    check.f32(f, "factors.c", factors.c, V);
    check.f32(f, "factors.mean", factors.mean, H);
    const b = quantizeRows(factors.B, r, H, 8), a = quantizeRows(factors.A, V, r, 8), heap = rt.heap;
    this.Bq = heap.i8(r * H);
    this.Bq.set(b.q!);
    this.bScales = heap.copyF32(b.scales);
    this.shift = heap.copyF32(factors.shift);
    this.Aq = heap.i8(V * r);
    this.Aq.set(a.q!);
    this.aScales = heap.copyF32(a.scales);
    this.c = heap.copyF32(factors.c);
    this.hq = heap.i8(H);
    this.z = heap.f32(r);
    this.zq = heap.i8(r);
    this.preview = heap.f32(V);
    this.score = heap.f32(V);
    this.exact = heap.f32(V);
    this.rowIdx = heap.i32(V);
    this.extraIdx = heap.i32(V);
    this.seen = new Uint8Array(V);
    this.lo = heap.f32(1);
    this.hi = heap.copyF32(Float32Array.of(Infinity));
    this.heapVal = new Float32Array(V);
    this.previewBytes = b.bytes + a.bytes + 4 * (r + V);
    this.out = { count: 0, ids: this.rowIdx, logits: new Float32Array(V), restBound: 0 };
    this.setRule(candidates, margin, minCandidates);
  }

  /**
   * Fits the preview of rank r on the top-layer outputs of `pieces` (training text) read by `rnn`.
   * The rule "auto" calibrates its margin on `heldOut` (validation text), or without it on a
   * quarter of the pieces held out of the fit (half of a single piece).
   */
  static fit(rt: Runtime, lm: LmInference, rnn: Recurrent, pieces: Int32Array[], o: DualDecoderOptions, heldOut?: Int32Array[]): DualDecoder {
    const calibrated = o.candidates === "auto";
    let fitPieces = pieces, held = heldOut ?? [];
    if (calibrated && !heldOut) {
      // Every fourth piece (every second of 2 or 3; one piece is cut in two), so that both parts see the whole text.
      const cut = pieces.length === 1 ? [pieces[0].subarray(0, pieces[0].length >> 1), pieces[0].subarray(pieces[0].length >> 1)] : pieces;
      const stride = Math.min(4, cut.length);
      fitPieces = cut.filter((_, i) => i % stride !== stride - 1);
      held = cut.filter((_, i) => i % stride === stride - 1);
    }
    const { hs, n } = topLayerOutputs(lm, rnn, fitPieces);
    const d = new DualDecoder(rt, lm, fitPreview(rt, lm, hs, n, o.rank, o.seed), o.candidates, 0,
      Math.min(o.minCandidates ?? DUAL_DECODER_DEFAULTS.minCandidates, lm.config.vocab));
    if (calibrated) {
      const h = topLayerOutputs(lm, rnn, held);
      d.margin = d.calibrateMargin(h.hs, h.n, o.quantile ?? DUAL_DECODER_DEFAULTS.quantile);
    }
    return d;
  }

  get rule(): CandidateRule { return this.currentRule; }

  /** The rule, and for "auto" its margin (default: the one calibrated) and least count. */
  setRule(rule: CandidateRule, margin = this.margin, minCandidates = this.minCandidates): void {
    if (typeof rule === "number") {
      check.size("DualDecoder", "candidates", rule, 1);
      if (rule > this.vocab) throw new RangeError(`DualDecoder: candidates must be ≤ vocab = ${this.vocab}, got ${rule}`);
    } else if (rule !== "auto" && rule !== "certified") {
      throw new RangeError(`DualDecoder: candidates must be a count, "auto" or "certified", got ${JSON.stringify(rule)}`);
    }
    if (!(margin >= 0 && Number.isFinite(margin))) throw new RangeError(`DualDecoder: margin must be a finite number ≥ 0, got ${margin}`);
    check.size("DualDecoder", "minCandidates", minCandidates, 1);
    if (minCandidates > this.vocab) throw new RangeError(`DualDecoder: minCandidates must be ≤ vocab = ${this.vocab}, got ${minCandidates}`);
    if (rule === "certified" && !this.certificate) this.certificate = this.certify();
    this.currentRule = rule;
    this.margin = margin;
    this.minCandidates = minCandidates;
    this.resetCounts();
  }

  /** Mean count of exact rows per token since the last resetCounts() (or the rule's change). */
  get meanCandidates(): number { return this.tokens === 0 ? 0 : this.rows / this.tokens; }
  resetCounts(): void { this.rows = 0; this.tokens = 0; }

  /** The preview logits of every word (V), INT8 products: z = B·h − B·μ, then A·z + c. */
  previewLogits(h: Float32Array): Float32Array {
    const kr = this.rt.kernels, { vocab: V, H, rank: r } = this;
    const s = kr.quantize(this.hq, h, H);
    kr.matvecI8(this.z, this.Bq, this.bScales, this.hq, s, this.shift, r, H);
    this.zScale = kr.quantize(this.zq, this.z, r);
    kr.matvecI8(this.preview, this.Aq, this.aScales, this.zq, this.zScale, this.c, V, r);
    return this.preview;
  }

  candidates(h: Float32Array): Candidates {
    const V = this.vocab, H = this.H, ids = this.rowIdx, out = this.out, kr = this.rt.kernels, rule = this.currentRule;
    const W = this.lm.decoderWeight, b = this.lm.decoderBias, preview = this.previewLogits(h);
    let count: number, threshold: number; // every word left out has a preview ≤ threshold
    if (typeof rule === "number") {
      count = rule;
      threshold = topN(ids, this.heapVal, preview, count);
      kr.matvecRows(this.exact, W, h, b, ids, count, V, H);
    } else {
      // The seeds: the minCandidates best previews, exact. m, the best of their exact logits: another
      // word can beat it only if its preview, raised by its error (the calibrated margin or the
      // certified bound), exceeds it.
      const seeds = this.minCandidates, extra = this.extraIdx, seen = this.seen;
      const t = topN(ids, this.heapVal, preview, seeds);
      kr.matvecRows(this.exact, W, h, b, ids, seeds, V, H);
      let m = -Infinity;
      for (let j = 0; j < seeds; j++) { m = Math.max(m, this.exact[ids[j]]); seen[ids[j]] = 1; }
      let found: number;
      if (rule === "auto") {
        this.lo[0] = m - this.margin;
        found = kr.selectSensitive(extra, preview, this.lo, this.hi, V, 1);
      } else {
        this.lo[0] = m - CERTIFIED_SLACK * (1 + Math.abs(m));
        this.boundedPreview(h);
        found = kr.selectSensitive(extra, this.score, this.lo, this.hi, V, 1);
      }
      count = seeds;
      for (let j = 0; j < found; j++) if (!seen[extra[j]]) ids[count++] = extra[j];
      for (let j = 0; j < seeds; j++) seen[ids[j]] = 0;
      // Left out: previews at most the seeds' least and below lo (a certified score is ≥ its preview).
      threshold = Math.min(t, this.lo[0]);
      if (count > seeds) kr.matvecRows(this.exact, W, h, b, ids.subarray(seeds), count - seeds, V, H);
    }
    ids.subarray(0, count).sort();
    let max = -Infinity;
    for (let j = 0; j < count; j++) {
      const l = out.logits[j] = this.exact[ids[j]];
      if (l > max) max = l;
    }
    let sum = 0;
    for (let j = 0; j < count; j++) sum += Math.exp(out.logits[j] - max);
    out.count = count;
    out.restBound = count === V ? 0 : Math.min(1, ((V - count) * Math.exp(threshold - max)) / sum);
    this.rows += count;
    this.tokens++;
    return out;
  }

  /** "certified": score = preview + the bound of each word's preview error at h (see CandidateRule). */
  private boundedPreview(h: Float32Array): void {
    const { residualNorms, aNorms, B, x } = this.certificate!, { H, rank: r, vocab: V } = this, mu = this.factors.mean;
    let xx = 0;
    for (let j = 0; j < H; j++) { x[j] = h[j] - mu[j]; xx += x[j] * x[j]; }
    let ee = 0;
    for (let i = 0; i < r; i++) {
      let s = 0;
      for (let j = 0; j < H; j++) s += B[i * H + j] * x[j];
      const e = s - this.zScale * this.zq[i];
      ee += e * e;
    }
    const xNorm = Math.sqrt(xx), eNorm = Math.sqrt(ee);
    for (let v = 0; v < V; v++) this.score[v] = this.preview[v] + residualNorms[v] * xNorm + aNorms[v] * eNorm;
  }

  /** The row norms the certified bound takes: of W − Â·B̂ (the preview's residual) and of Â. */
  private certify(): Certificate {
    const { vocab: V, H, rank: r } = this, heap = this.rt.heap, W = this.lm.decoderWeight;
    const A = heap.f32(V * r), B = heap.f32(r * H), AB = heap.f32(V * H);
    try {
      for (let v = 0; v < V; v++) for (let i = 0; i < r; i++) A[v * r + i] = this.aScales[v] * this.Aq[v * r + i];
      for (let i = 0; i < r; i++) for (let j = 0; j < H; j++) B[i * H + j] = this.bScales[i] * this.Bq[i * H + j];
      this.rt.kernels.gemm(AB, A, B, V, H, r, false, false, false);
      const residualNorms = new Float64Array(V), aNorms = new Float64Array(V);
      for (let v = 0; v < V; v++) {
        let s = 0, a = 0;
        for (let j = 0; j < H; j++) { const d = W[v * H + j] - AB[v * H + j]; s += d * d; }
        for (let i = 0; i < r; i++) a += A[v * r + i] * A[v * r + i];
        // The gemm's own rounding (fp32 sums of r terms) on top, so that the norm stays an upper bound.
        residualNorms[v] = Math.sqrt(s) * (1 + 1e-5);
        aNorms[v] = Math.sqrt(a);
      }
      return { residualNorms, aNorms, B: Float64Array.from(B), x: new Float64Array(H) };
    } finally {
      for (const t of [A, B, AB]) heap.release(t);
    }
  }

  /**
   * The margin that keeps the greedy choice on a `quantile` of the top-layer outputs hs (n, H):
   * for each, the best exact logit among the seeds minus the preview of the dense layer's greedy
   * word (the margin that token needed; 0 when that word is a seed), then their quantile (1: the
   * largest).
   */
  calibrateMargin(hs: Float32Array, n: number, quantile: number): number {
    const f = "calibrateMargin", { H } = this;
    check.size(f, "n", n, 1);
    check.f32(f, "hs", hs, n * H);
    if (!(quantile > 0 && quantile <= 1)) throw new RangeError(`${f}: quantile must be in (0, 1], got ${quantile}`);
    const needed = new Float64Array(n), h = this.rt.heap.f32(H), seeds = this.minCandidates, ids = new Int32Array(seeds);
    try {
      for (let t = 0; t < n; t++) {
        h.set(hs.subarray(t * H, (t + 1) * H));
        const logits = this.lm.decode(h), preview = this.previewLogits(h), chosen = argmax(logits);
        topN(ids, this.heapVal, preview, seeds);
        let m = -Infinity, seed = false;
        for (const v of ids) { m = Math.max(m, logits[v]); seed ||= v === chosen; }
        // A word is kept when it is a seed or its preview exceeds m − δ.
        needed[t] = seed ? 0 : Math.max(0, m - preview[chosen]);
      }
    } finally {
      this.rt.heap.release(h);
    }
    needed.sort();
    const q = needed[Math.min(n - 1, Math.ceil(quantile * n) - 1)];
    return q * (1 + 1e-6) + 1e-6; // strictly above: the rule keeps previews > m − δ
  }
}

/** The index of the largest value of x (the lowest among equals). */
function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/**
 * Writes the indices of the n largest values of x (V) to ids[0..n), in no particular order, and
 * returns the n-th largest value (every index left out has a value ≤ it). A min-heap of n values
 * (vals is its scratch, ≥ n): one comparison per element once it is full.
 */
export function topN(ids: Int32Array, vals: Float32Array, x: Float32Array, n: number): number {
  const V = x.length;
  if (!(Number.isInteger(n) && n >= 1 && n <= V)) throw new RangeError(`topN: n must be an integer in [1, ${V}], got ${n}`);
  if (ids.length < n || vals.length < n) throw new RangeError(`topN: ids and vals need ≥ ${n} elements`);
  if (n === V) {
    let min = Infinity;
    for (let i = 0; i < V; i++) { ids[i] = i; if (x[i] < min) min = x[i]; }
    return min;
  }
  for (let i = 0; i < n; i++) { ids[i] = i; vals[i] = x[i]; }
  for (let i = (n >> 1) - 1; i >= 0; i--) siftDown(ids, vals, i, n);
  for (let i = n; i < V; i++) {
    if (x[i] > vals[0]) { vals[0] = x[i]; ids[0] = i; siftDown(ids, vals, 0, n); }
  }
  return vals[0];
}

function siftDown(ids: Int32Array, vals: Float32Array, i: number, n: number): void {
  const v = vals[i], id = ids[i];
  for (;;) {
    let c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && vals[c + 1] < vals[c]) c++;
    if (vals[c] >= v) break;
    vals[i] = vals[c]; ids[i] = ids[c];
    i = c;
  }
  vals[i] = v; ids[i] = id;
}
