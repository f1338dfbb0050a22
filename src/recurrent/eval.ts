// Evaluation of a word-level language model (src/recurrent/lm.ts) at batch 1, dense and dual-module.
// Perplexity is exact: every prediction takes the full softmax over the whole vocabulary, its
// log-sum-exp in float64. The dual-module rows follow the paper's protocol: little modules fitted on
// the training split (through the model's own embeddings), thresholds calibrated on the validation
// split for each insensitive ratio, perplexity measured on the test split, with the achieved ratio
// and the memory-access reduction of the recurrent layers from the dual model's accounting.
// Also: sampling sentences from either model, for the demo.
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
import { timeInterleaved, type Variant } from "../util/timing.js";

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
    const a = { ratio: 0.5, budget: 0.01, tokens: 5000, ...options.auto };
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
}

/**
 * Sentences sampled from the model, one after the other from a zero state that first reads
 * "<eos>". Draws come from `rng` alone, so two models given generators of the same seed make the
 * same choices wherever their distributions agree closely.
 */
export function generate(lm: LmInference, rnn: Recurrent, vocab: Vocabulary, rng: Rng, o: GenerateOptions): string[] {
  if (!(o.temperature > 0)) throw new RangeError(`generate: temperature must be > 0, got ${o.temperature}`);
  rnn.reset();
  const sentences: string[] = [];
  const eos = vocab.eosId; // not always 1: an imported corpus numbers its words in order of appearance
  let token = eos;
  for (let s = 0; s < o.sentences; s++) {
    const words: string[] = [];
    for (let w = 0; w < o.maxWords; w++) {
      token = sample(lm.decode(rnn.step(lm.embed(token))), o.temperature, rng);
      if (token === eos) break;
      words.push(vocab.word(token));
    }
    sentences.push(words.join(" "));
    token = eos; // a sentence cut at maxWords still ends before the next one starts
  }
  rnn.reset();
  return sentences;
}

/** A draw from softmax(logits / temperature), in float64. */
function sample(logits: Float32Array, temperature: number, rng: Rng): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp((logits[i] - max) / temperature);
  let u = rng.uniform() * sum;
  for (let i = 0; i < logits.length; i++) {
    u -= Math.exp((logits[i] - max) / temperature);
    if (u < 0) return i;
  }
  return logits.length - 1; // rounding left u a hair above 0
}
