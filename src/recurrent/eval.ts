// Evaluation of a word-level language model (src/recurrent/lm.ts) at batch 1, dense and dual-module.
// Perplexity is exact: every prediction takes the full softmax over the whole vocabulary, its
// log-sum-exp in float64. The dual-module rows follow the paper's protocol: little modules fitted on
// the training split (through the model's own embeddings), thresholds calibrated on the validation
// split for each insensitive ratio, perplexity measured on the test split, with the achieved ratio
// and the memory-access reduction of the recurrent layers from the dual model's accounting.
// Also: sampling sentences from either model, for the demo; for generation, the dual-module output
// layer's quality against the dense model (greedy agreement, top-5 overlap, KL) and the time of one
// whole prediction (cell, output layer, softmax and choice), cold.
import type { Runtime } from "../runtime/runtime.js";
import type { Stack } from "./stack.js";
import type { LmInference } from "./lm.js";
import { DualModel, type Thresholds } from "./dual.js";
import { fitLittleModules, type FitMethod, type FitReport } from "./fit.js";
import type { ProjectionKind } from "./little.js";
import type { Bits } from "../dual/quantize.js";
import type { Vocabulary } from "../data/vocabulary.js";
import type { Rng } from "../util/random.js";
import * as check from "../kernels/check.js";
import { reference } from "../kernels/index.js";
import { FLUSH_BYTES, median, timeInterleaved, type Variant } from "../util/timing.js";
import { DenseOutputLayer, DualDecoder, candidateSoftmax, greedy, sampleCandidates, topN, type CandidateRule, type Candidates, type OutputLayer } from "./dual-decoder.js";

/** What steps the recurrent layers: the dense Stack or the DualModel around it. */
export type Recurrent = Pick<Stack, "reset" | "step">;

// ---------------------------------------------------------------------------------------------------
// Exact perplexity

const nextWord = new Int32Array(1);

/** −log softmax(logits)[target] in float64 (the loss kernel's plain TypeScript twin, one row). */
export function nextWordLoss(logits: Float32Array, target: number): number {
  nextWord[0] = target;
  return reference.softmaxCrossEntropy(logits, nextWord, 1, logits.length, 0);
}

export interface PerplexityResult {
  ppl: number;
  meanLoss: number;    // nats per prediction
  predictions: number; // tokens − 1: every token but the first is predicted from those before it
  tokenMs: number;     // mean time of one whole prediction (step, decoder, softmax), on a shared machine only a rough figure
}

/**
 * Perplexity of `ids` read as one stream from a zero state (PyTorch's evaluation at batch 1: the
 * state carries across the whole split). `rnn` is lm.stack for the dense model or a DualModel
 * around it. Throws on a non-finite loss, naming the position.
 */
export function perplexity(lm: LmInference, rnn: Recurrent, ids: Int32Array,
                           onProgress?: (done: number, total: number) => void): PerplexityResult {
  const n = ids.length - 1;
  if (n < 1) throw new Error(`perplexity: needs at least 2 tokens, got ${ids.length}`);
  check.indices("perplexity", "ids", ids, lm.config.vocab);
  rnn.reset();
  onProgress?.(0, n);
  let loss = 0;
  const start = performance.now();
  for (let t = 0; t < n; t++) {
    const l = nextWordLoss(lm.decode(rnn.step(lm.embed(ids[t]))), ids[t + 1]);
    if (!Number.isFinite(l)) throw new Error(`perplexity: the loss of token ${t + 1} is ${l} (non-finite logits: is the checkpoint damaged?)`);
    loss += l;
    if (onProgress && ((t + 1) % 256 === 0 || t + 1 === n)) onProgress(t + 1, n);
  }
  const totalMs = performance.now() - start;
  rnn.reset();
  return { ppl: Math.exp(loss / n), meanLoss: loss / n, predictions: n, tokenMs: totalMs / n };
}

// ---------------------------------------------------------------------------------------------------
// Dual-module evaluation

/**
 * About `max` tokens of `ids` (all of them if fewer) in equal pieces of at most `chunk` tokens,
 * spread evenly over it: a fit or a calibration then sees the whole split (all of SOTU's centuries,
 * not only its first years). Each piece is read from a zero state; the few steps after a reset
 * barely change the statistics.
 */
export function spreadPieces(ids: Int32Array, max: number, chunk: number): Int32Array[] {
  const n = Math.min(max, ids.length), count = Math.ceil(n / chunk), size = Math.floor(n / count);
  return Array.from({ length: count }, (_, i) => {
    const start = Math.floor((i * ids.length) / count);
    return ids.subarray(start, start + size);
  });
}

/** Step inputs (embeddings) of each piece: what fitLittleModules and DualModel.calibrate take. */
export function stepSequences(lm: LmInference, pieces: Int32Array[]): Float32Array[][] {
  return pieces.map((p) => Array.from(p, (id) => lm.embed(id).slice()));
}

export interface LmSplits { train: Int32Array; valid: Int32Array; test: Int32Array }

export interface LmEvalOptions {
  ratios: number[];     // insensitive ratios, each in [0, 1)
  /** At most this many tokens of each split: test's first ones, pieces spread over train and valid
   *  (spreadPieces). The defaults bound the fit's and the calibration's memory. */
  maxTokens?: Partial<Record<keyof LmSplits, number>>;
  k?: number | "auto";  // little module: projected size (default from eps); "auto": the smallest of K_GRID within `auto`'s budget
  /** For k "auto": the ratio and relative validation-perplexity budget (defaults 0.5 and 1 %), and the validation tokens scored. */
  auto?: { ratio?: number; budget?: number; tokens?: number; grid?: number[] };
  eps?: number;         // Johnson–Lindenstrauss ε (default 0.5)
  bits?: Bits;          // little-weight precision (default 8)
  method?: FitMethod;   // default "ridge"
  projection?: ProjectionKind; // default "random" (the paper's)
  seed?: number;        // projection seed (default 1)
  chunk?: number;       // tokens per piece of the fitting and calibration slices (default 1000)
  onProgress?: (phase: string, done: number, total: number) => void;
}

export const DEFAULT_MAX_TOKENS: Record<keyof LmSplits, number> = { train: 20_000, valid: 10_000, test: Infinity };

export interface RatioResult {
  ratio: number;          // requested
  achievedRatio: number;  // insensitive gate neurons on the test tokens
  gateRatios: number[][]; // per layer and gate
  ppl: number;
  bytesReduction: number; // dense bytes / (big + little bytes) of the recurrent layers per step
  thresholds: Thresholds; // calibrated on valid: dual.setThresholds(thresholds, ratio) restores them
  tokenMs: number;
}

/** One candidate of a k "auto" search: its validation perplexity at the search's ratio. */
export interface KCandidate { k: number; validPpl: number; validDensePpl: number; validationR2: number | null; littleBytes: number }

/** Projected sizes `k auto` tries, smallest first (those above a layer's width are skipped). */
export const K_GRID = [16, 32, 64, 128, 256, 512, 1024];

export interface LmEvalResult {
  tokens: Record<keyof LmSplits, number>; // used from each split
  dense: PerplexityResult;
  fit: FitReport[];
  /** For k "auto": every candidate tried, in order; the chosen one is the last. */
  kSearch: KCandidate[] | null;
  ratios: RatioResult[];
  dual: DualModel;        // calibrated to the last ratio
}

export function checkRatios(ratios: number[], where: string): void {
  if (ratios.length === 0) throw new Error(`${where}: no ratios given`);
  for (const r of ratios) if (!(r >= 0 && r < 1)) throw new RangeError(`${where}: ratio ${r} is outside [0, 1)`);
}

/** Dense perplexity on test, then per ratio: calibrate on valid, perplexity on test. */
export function evaluateLm(rt: Runtime, lm: LmInference, splits: LmSplits, options: LmEvalOptions): LmEvalResult {
  checkRatios(options.ratios, "evaluateLm");
  const chunk = options.chunk ?? 1000, say = options.onProgress;
  const max = (s: keyof LmSplits) => {
    const m = options.maxTokens?.[s] ?? DEFAULT_MAX_TOKENS[s];
    if (!(m >= 2)) throw new RangeError(`evaluateLm: at most ${m} ${s} tokens is too few (at least 2)`);
    if (splits[s].length < 2) throw new Error(`evaluateLm: the ${s} split has ${splits[s].length} tokens, at least 2 are needed`);
    return m;
  };
  // Test: one stream from its start (perplexity carries the state); train and valid: spread pieces.
  const test = splits.test.subarray(0, max("test"));
  const train = spreadPieces(splits.train, max("train"), chunk), valid = spreadPieces(splits.valid, max("valid"), chunk);
  const tokens = { train: count(train), valid: count(valid), test: test.length };

  // A few untimed tokens first compile the hot paths, so that the dense pass does not pay for that alone.
  perplexity(lm, lm.stack, test.subarray(0, 100));
  const dense = perplexity(lm, lm.stack, test, say && ((d, t) => say("dense", d, t)));

  const validSeqs = stepSequences(lm, valid), trainSeqs = stepSequences(lm, train);
  const fitWith = (k: number | undefined) => {
    say?.("fit", 0, tokens.train);
    return fitLittleModules(rt, lm.stack, trainSeqs, {
      k, eps: options.eps, bits: options.bits, method: options.method, projection: options.projection, seed: options.seed,
      validation: validSeqs, onProgress: say && ((_what, d, t) => say("fit", d, t)),
    });
  };
  let kSearch: KCandidate[] | null = null, fitted;
  if (options.k === "auto") {
    // The smallest k whose validation perplexity at the search ratio stays within the budget, scored
    // on the valid split's first tokens (a stream, as test is), thresholds calibrated as usual.
    const given = options.auto ?? {};
    // Unset fields (a CLI passes `undefined` for an option not given) keep their defaults.
    const a = { ratio: given.ratio ?? 0.5, budget: given.budget ?? 0.01, tokens: given.tokens ?? 5000, grid: given.grid };
    checkRatios([a.ratio], "evaluateLm auto.ratio");
    if (!(a.budget >= 0)) throw new RangeError(`evaluateLm: auto.budget must be ≥ 0, got ${a.budget}`);
    const scored = splits.valid.subarray(0, Math.max(2, a.tokens));
    const validDensePpl = perplexity(lm, lm.stack, scored).ppl;
    const width = Math.min(...lm.stack.layers.map((cell) => Math.min(cell.input, cell.hidden)));
    kSearch = [];
    const grid = (a.grid ?? K_GRID).filter((k) => k <= width);
    for (const k of grid.length > 0 ? grid : [width]) {
      fitted = fitWith(k);
      const trial = new DualModel(rt, lm.stack, fitted.littles);
      trial.setThresholds(trial.calibrate(validSeqs, a.ratio), a.ratio);
      const validPpl = perplexity(lm, trial, scored, say && ((d, t) => say(`k ${k}`, d, t))).ppl;
      kSearch.push({ k, validPpl, validDensePpl, validationR2: mean(fitted.report.map((r) => r.validationR2 ?? NaN)),
        littleBytes: fitted.littles.reduce((n, m) => n + m.bytes, 0) });
      if (validPpl <= validDensePpl * (1 + a.budget)) break;
    }
  } else {
    fitted = fitWith(options.k);
  }
  const { littles, report: fit } = fitted!;
  const dual = new DualModel(rt, lm.stack, littles);
  const ratios = options.ratios.map((ratio): RatioResult => {
    const thresholds = dual.calibrate(validSeqs, ratio);
    dual.accounting.reset();
    const r = perplexity(lm, dual, test, say && ((d, t) => say(`ratio ${ratio}`, d, t)));
    const a = dual.accounting.report();
    return {
      ratio, achievedRatio: a.insensitiveRatio, gateRatios: a.layers.map((l) => l.gates), ppl: r.ppl,
      bytesReduction: a.memoryReduction, thresholds, tokenMs: r.tokenMs,
    };
  });
  return { tokens, dense, fit, kSearch, ratios, dual };
}

function count(pieces: Int32Array[]): number { return pieces.reduce((n, p) => n + p.length, 0); }
function mean(a: number[]): number { return a.reduce((s, v) => s + v, 0) / a.length; }

export interface StepTimes { dense: number; dual: number[] } // median ms of one recurrent step, dual per ratio

/**
 * Time of one recurrent step, dense and at each ratio of `r` (its thresholds), fair on a shared
 * machine: medians of interleaved rounds (every round steps each variant once on the same token of
 * `ids`), so that a busy spell falls on all of them alike. The variants share the recurrent state,
 * which changes the masks a little but not what a step costs; the weights stay cached between
 * steps (no decoder in between).
 */
export async function timeSteps(lm: LmInference, r: LmEvalResult, ids: Int32Array, rounds = 1000): Promise<StepTimes> {
  const xs = Array.from(ids.subarray(0, rounds), (id) => lm.embed(id).slice());
  const x = (round: number) => xs[round % xs.length];
  const variants: Variant[] = [
    { run: (round) => lm.stack.step(x(round)) },
    ...r.ratios.map((q): Variant => ({ prepare: () => r.dual.setThresholds(q.thresholds, q.ratio), run: (round) => r.dual.step(x(round)) })),
  ];
  lm.stack.reset();
  const [dense, ...dual] = await timeInterleaved(variants, { warmup: 50, rounds });
  lm.stack.reset();
  return { dense, dual };
}

// ---------------------------------------------------------------------------------------------------
// Sampling

export interface GenerateOptions {
  sentences: number;
  maxWords: number;     // a sentence without "<eos>" by then is cut there
  temperature: number;  // > 0; softmax(logits / temperature)
  topK?: number;        // sample among the k most probable words only (0 or absent: all)
  topP?: number;        // nucleus: among the fewest most probable words whose mass reaches p (absent or 1: all)
}

/**
 * Sentences sampled from the model, one after the other from a zero state that first reads
 * "<eos>". Draws come from `rng` alone, so two models given generators of the same seed make the
 * same choices wherever their distributions agree closely. `out` is the output layer the words are
 * chosen through: the dense decoder (default) or a DualDecoder's candidates.
 */
export function generate(lm: LmInference, rnn: Recurrent, vocab: Vocabulary, rng: Rng, o: GenerateOptions,
                         out: OutputLayer = new DenseOutputLayer(lm)): string[] {
  if (!(o.temperature > 0)) throw new RangeError(`generate: temperature must be > 0, got ${o.temperature}`);
  rnn.reset();
  const sentences: string[] = [];
  const eos = vocab.eosId; // not always 1: an imported corpus numbers its words in order of appearance
  const scratch = new Float64Array(out.vocab);
  let token = eos;
  for (let s = 0; s < o.sentences; s++) {
    const words: string[] = [];
    for (let w = 0; w < o.maxWords; w++) {
      token = sampleCandidates(out.candidates(rnn.step(lm.embed(token))), o, rng, scratch);
      if (token === eos) break;
      words.push(vocab.word(token));
    }
    sentences.push(words.join(" "));
    token = eos; // a sentence cut at maxWords still ends before the next one starts
  }
  rnn.reset();
  return sentences;
}

// ---------------------------------------------------------------------------------------------------
// The whole token: the dual-module output layer's quality and the time of one prediction

/** Per layer of lm.stack, the arrays that hold its state (h, and c for an LSTM): the dense and the dual model share them. */
function stateArrays(lm: LmInference): Float32Array[] {
  return lm.stack.layers.flatMap((cell) => (cell.kind === "lstm" ? [cell.h, cell.c] : [cell.h]));
}

export interface DecoderQuality {
  positions: number;
  greedyAgreement: number;  // fraction of positions where the two models' greedy choices are the same word
  top5Overlap: number;      // mean |top-5 of one ∩ top-5 of the other| / 5
  /** Mean KL(candidate ‖ dense) in nats, temperature 1: the candidate distribution (softmax over the
   *  candidates' exact logits) against the dense model's full softmax. The other direction is
   *  infinite (the candidates leave words out); with a dense cell this is −log P_dense(candidates). */
  kl: number;
  denseMassOutside: number; // mean probability the dense model puts outside the candidates
  restBound: number;        // mean of the candidates' own bound of that mass (through the preview)
  candidates: number;       // mean count of words with exact logits per position
}

/**
 * The dual model (`rnn`, lm.stack or a DualModel around it, with the output layer `out`) against the
 * dense model (lm.stack, full decoder), both reading `ids` from a zero state; position t compares
 * the predictions of word t + 1. The two share the stack's state arrays, so each step swaps its own
 * state in and out.
 */
export function decoderQuality(lm: LmInference, rnn: Recurrent, out: OutputLayer, ids: Int32Array,
                               onProgress?: (done: number, total: number) => void): DecoderQuality {
  const n = ids.length - 1, V = lm.config.vocab;
  if (n < 1) throw new Error(`decoderQuality: needs at least 2 tokens, got ${ids.length}`);
  check.indices("decoderQuality", "ids", ids, V);
  const live = stateArrays(lm), dualState = live.map((a) => new Float32Array(a.length)), denseState = live.map((a) => new Float32Array(a.length));
  const swap = (save: Float32Array[], load: Float32Array[]) => live.forEach((a, i) => { save[i].set(a); a.set(load[i]); });
  const q = new Float64Array(V), top = new Int32Array(5), dualTop = new Int32Array(5), vals = new Float32Array(V);
  let agree = 0, overlap = 0, kl = 0, outside = 0, bound = 0, counted = 0;
  rnn.reset();
  lm.stack.reset();
  for (let t = 0; t < n; t++) {
    // The dual model: its state is live.
    const c = out.candidates(rnn.step(lm.embed(ids[t])));
    candidateSoftmax(q, c);
    const choice = greedy(c), k = Math.min(5, c.count);
    topN(top, vals, c.logits.subarray(0, c.count), k);
    for (let j = 0; j < k; j++) dualTop[j] = c.ids[top[j]];
    swap(dualState, denseState);
    // The dense model.
    const logits = lm.decode(lm.stack.step(lm.embed(ids[t])));
    swap(denseState, dualState);
    let max = -Infinity, best = 0;
    for (let v = 0; v < V; v++) if (logits[v] > max) { max = logits[v]; best = v; }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[v] - max);
    const logZ = max + Math.log(sum);
    let inside = 0, d = 0;
    for (let j = 0; j < c.count; j++) {
      const l = logits[c.ids[j]];
      inside += Math.exp(l - logZ);
      if (q[j] > 0) d += q[j] * (Math.log(q[j]) - (l - logZ));
    }
    topN(top, vals, logits, Math.min(5, V));
    let shared = 0;
    for (let a = 0; a < k; a++) for (let b = 0; b < Math.min(5, V); b++) if (dualTop[a] === top[b]) shared++;
    if (choice === best) agree++;
    overlap += shared / Math.min(5, V);
    kl += d;
    outside += Math.max(0, 1 - inside);
    bound += c.restBound;
    counted += c.count;
    if (onProgress && ((t + 1) % 256 === 0 || t + 1 === n)) onProgress(t + 1, n);
  }
  rnn.reset();
  lm.stack.reset();
  return { positions: n, greedyAgreement: agree / n, top5Overlap: overlap / n, kl: kl / n, denseMassOutside: outside / n, restBound: bound / n, candidates: counted / n };
}

export interface DecoderEvalOptions {
  rank: number;        // preview rank r
  candidates: CandidateRule;
  quantile?: number;   // the calibrated rule's (DualDecoderOptions)
  trainTokens?: number; // training tokens the preview's covariance is taken over (default DEFAULT_MAX_TOKENS.train)
  chunk?: number;      // tokens per piece (default 1000)
  seed?: number;
  onProgress?: (phase: string, done: number, total: number) => void;
}

export interface DecoderEvalResult {
  decoder: DualDecoder;
  quality: DecoderQuality[]; // per ratio of the LmEvalResult: its dual cell with the dual output layer
}

/**
 * The dual-module output layer fitted on train (top-layer outputs of the dense model), then, per
 * ratio of `r` (its thresholds), the quality of generation with the dual cell and the dual output
 * layer against the dense model, over the same test tokens as perplexity.
 */
export function evaluateDecoder(rt: Runtime, lm: LmInference, r: Pick<LmEvalResult, "dual" | "ratios" | "tokens">, splits: LmSplits,
                                o: DecoderEvalOptions): DecoderEvalResult {
  const pieces = spreadPieces(splits.train, o.trainTokens ?? DEFAULT_MAX_TOKENS.train, o.chunk ?? 1000);
  o.onProgress?.("output layer fit", 0, 1);
  const decoder = DualDecoder.fit(rt, lm, lm.stack, pieces, { rank: o.rank, candidates: o.candidates, quantile: o.quantile, seed: o.seed },
    spreadPieces(splits.valid, 5000, o.chunk ?? 1000)); // the calibrated rule's margin: on valid, as the cell's thresholds
  o.onProgress?.("output layer fit", 1, 1);
  const test = splits.test.subarray(0, r.tokens.test);
  const quality = r.ratios.map((q) => {
    r.dual.setThresholds(q.thresholds, q.ratio);
    return decoderQuality(lm, r.dual, decoder, test, o.onProgress && ((d, t) => o.onProgress!(`agreement ${q.ratio}`, d, t)));
  });
  return { decoder, quality };
}

/** Median milliseconds of one whole prediction and of its parts. */
export interface TokenSplit {
  token: number;  // cell + output + select, median of the whole
  cell: number;   // embedding and the recurrent step
  output: number; // the output layer: the full decoder, or the preview, the choice of candidates and their exact logits
  select: number; // the greedy choice and the softmax over the candidates (all words for the dense layer)
}

export interface TokenTimes { threads: number; dense: TokenSplit; dual: TokenSplit[] } // dual per ratio

/**
 * Time of one whole prediction at batch 1, caches flushed before each (the weights come from
 * memory, as for a user generating one token at a time): dense cell with the full decoder, and at
 * each ratio of `r` the dual cell with `out` (the dual output layer). Variants in interleaved
 * rounds, medians; each run is split into its parts by the clock between them.
 */
export async function timeTokens(rt: Runtime, lm: LmInference, r: { dual: Recurrent & Pick<DualModel, "setThresholds">; ratios: Pick<RatioResult, "ratio" | "thresholds">[] },
                                 out: OutputLayer, ids: Int32Array,
                                 o: { rounds?: number; warmup?: number } = {}): Promise<TokenTimes> {
  const rounds = o.rounds ?? 100, warmup = o.warmup ?? 5, dense = new DenseOutputLayer(lm);
  const probs = new Float64Array(lm.config.vocab), chosen = rt.heap.i32(1);
  const flushArray = rt.heap.f32(FLUSH_BYTES / 4);
  // Selection: over the whole vocabulary the softmax is ten thousand exponentials, so the dense
  // layer takes the fastest we have, the loss kernel in WebAssembly (in place: it leaves softmax −
  // onehot(choice) in the logits, the choice already made); over N candidates, plain TypeScript.
  const select = (c: Candidates) => {
    if (c.count === lm.config.vocab && c.logits === lm.logits) {
      chosen[0] = greedy(c);
      rt.kernels.softmaxCrossEntropy(c.logits, chosen, 1, c.count, 1);
    } else {
      candidateSoftmax(probs, c);
      greedy(c);
    }
  };
  const parts = Array.from({ length: 1 + r.ratios.length }, () => ({ cell: [] as number[], output: [] as number[], select: [] as number[] }));
  const token = (i: number, rnn: Recurrent, layer: OutputLayer) => (round: number) => {
    const t0 = performance.now();
    const h = rnn.step(lm.embed(ids[round % ids.length]));
    const t1 = performance.now();
    const c = layer.candidates(h);
    const t2 = performance.now();
    select(c);
    const t3 = performance.now();
    if (round >= warmup) { parts[i].cell.push(t1 - t0); parts[i].output.push(t2 - t1); parts[i].select.push(t3 - t2); }
  };
  const variants: Variant[] = [
    { run: token(0, lm.stack, dense) },
    ...r.ratios.map((q, i): Variant => ({ prepare: () => r.dual.setThresholds(q.thresholds, q.ratio), run: token(i + 1, r.dual, out) })),
  ];
  lm.stack.reset();
  try {
    const totals = await timeInterleaved(variants, { warmup, rounds, flush: () => { rt.kernels.sum(flushArray, flushArray.length); } });
    const split = (i: number): TokenSplit => ({ token: totals[i], cell: median(parts[i].cell), output: median(parts[i].output), select: median(parts[i].select) });
    return { threads: rt.threads, dense: split(0), dual: r.ratios.map((_, i) => split(i + 1)) };
  } finally {
    rt.heap.release(flushArray);
    rt.heap.release(chosen);
    lm.stack.reset();
  }
}
