// Translating with a trained GNMT at batch 1: the encoder (the training graph in evaluation mode),
// the decoder as two recurrent stacks of src/recurrent/ (layer 0, then attention, then the layers
// that read [below | context]), so that either can be wrapped in a DualModel; greedy decoding and
// beam search with GNMT's length normalization and coverage penalty (Wu et al. 2016, eq. 14).
// Not here: the dual-module fit and calibration (dual.ts), training (train.ts).
import type { Runtime } from "../runtime/runtime.js";
import { Stack } from "../recurrent/stack.js";
import { type Lstm, interleaveRows } from "../recurrent/lstm.js";
import { BOS_ID, EOS_ID, type Bpe } from "./bpe.js";
import { GnmtGraph } from "./graph.js";
import { type GnmtConfig, type GnmtParams, RESIDUAL_FROM, paramCount, viewParams } from "./gnmt.js";

/** Maximum target length in tokens (the paper's and NVIDIA's 80). */
export const MAX_DECODE = 80;
/** Longest source the translator encodes (tokens, </s> included); longer inputs are cut (translateLine says so). */
export const MAX_SOURCE = 200;

/** What steps the decoder's recurrent layers: a dense Stack, or a DualModel around it. */
export interface StepRunner { step(x: Float32Array): Float32Array; reset(): void }

/** The decoder's recurrent part: layer 0 alone, then the layers that read [below | context]. */
export interface DecoderStacks { first: Stack; rest: Stack }

export class NmtModel {
  readonly params: GnmtParams;          // views of `flat`
  private readonly flat: Float32Array;  // a heap copy of the weights
  readonly stacks: DecoderStacks;
  private readonly encoder: GnmtGraph;  // batch 1, evaluation only
  private runners: { first: StepRunner; rest: StepRunner };
  private readonly pk: Float32Array;    // (MAX_SOURCE, H) keys · W_kᵀ of the current source
  private keys: Float32Array = new Float32Array(0); // (Ts, H) the encoder's outputs of the current source
  private readonly q: Float32Array;     // (H) query projection
  private readonly attVec: Float64Array; // (H) g·a/‖a‖
  readonly attention: Float64Array;     // (MAX_SOURCE) the last step's attention weights (first Ts)
  private readonly restInput: Float32Array; // (2H) [layer 0 output | context]
  private readonly logits: Float32Array;    // (V)
  readonly logProbs: Float64Array;          // (V) the last step's log-probabilities
  private srcLen = 0;

  constructor(private readonly rt: Runtime, readonly config: GnmtConfig, params: Float32Array, readonly bpe: Bpe) {
    if (params.length !== paramCount(config)) throw new RangeError(`NmtModel: ${paramCount(config)} parameters expected, got ${params.length}`);
    if (bpe.size !== config.vocab) throw new Error(`NmtModel: the BPE has ${bpe.size} symbols, the model's vocabulary ${config.vocab}`);
    const flat = this.flat = rt.heap.copyF32(params), H = config.hidden;
    this.params = viewParams(config, flat);
    this.encoder = new GnmtGraph(rt, config, { maxSrc: MAX_SOURCE, maxTgt: 1, batch: 1, dropout: 0, smoothing: 0 }, flat, null);
    const d = this.params.decoder, Ld = config.decoderLayers;
    this.stacks = {
      first: new Stack(rt, { kind: "lstm", input: H, hidden: H, layers: 1, context: 0, residualFrom: 1 }, [d[0]]),
      rest: new Stack(rt, { kind: "lstm", input: H, hidden: H, layers: Ld - 1, context: H, residualFrom: RESIDUAL_FROM - 1 }, d.slice(1)),
    };
    this.runners = { ...this.stacks };
    this.pk = rt.heap.f32(MAX_SOURCE * H);
    this.q = rt.heap.f32(H);
    this.attVec = new Float64Array(H);
    this.setAttention();
    this.attention = new Float64Array(MAX_SOURCE);
    this.restInput = rt.heap.f32(2 * H);
    this.logits = rt.heap.f32(config.vocab);
    this.logProbs = new Float64Array(config.vocab);
  }

  /**
   * New weights of the same config (training's validation after each epoch): the heap copy, and the
   * decoder cells' interleaved big weights and summed biases, rewritten in place.
   */
  setParams(params: Float32Array): void {
    this.flat.set(params);
    const cells = [...this.stacks.first.layers, ...this.stacks.rest.layers] as Lstm[];
    cells.forEach((cell, l) => {
      const w = this.params.decoder[l];
      interleaveRows(w.weight_ih, w.weight_hh, cell.rows, cell.input, cell.hidden, cell.W);
      for (let r = 0; r < cell.rows; r++) cell.b[r] = w.bias_ih[r] + w.bias_hh[r];
    });
    this.setAttention();
  }

  /** Steps the decoder with these (the dense stacks by default; DualModels around them for dual-module decoding). */
  useRunners(first: StepRunner = this.stacks.first, rest: StepRunner = this.stacks.rest): void { this.runners = { first, rest }; }

  /** attVec = g·a/‖a‖ from the attention's parameters. */
  private setAttention(): void {
    const a = this.params.attention, H = this.config.hidden;
    let norm = 0;
    for (let i = 0; i < H; i++) norm += a.linearAtt[i] * a.linearAtt[i];
    for (let i = 0; i < H; i++) this.attVec[i] = (a.scalar[0] * a.linearAtt[i]) / Math.sqrt(norm);
  }

  /** Source ids of a line: its BPE ids and </s>, cut to MAX_SOURCE. */
  sourceIds(line: string): { ids: Int32Array; cut: boolean } {
    const ids = this.bpe.encode(line), cut = ids.length + 1 > MAX_SOURCE;
    const out = new Int32Array(Math.min(ids.length, MAX_SOURCE - 1) + 1);
    out.set(ids.subarray(0, out.length - 1));
    out[out.length - 1] = EOS_ID;
    return { ids: out, cut };
  }

  /** Encodes a source (ids ending in </s>) and resets the decoder: the next step reads <s>. */
  start(src: Int32Array): void {
    const H = this.config.hidden, Ts = src.length;
    this.keys = this.encoder.encodeOne(src);
    this.rt.kernels.gemm(this.pk.subarray(0, Ts * H), this.keys, this.params.attention.linearK, Ts, H, H, false, true, false);
    this.srcLen = Ts;
    this.runners.first.reset();
    this.runners.rest.reset();
  }

  get sourceLength(): number { return this.srcLen; }

  /** One decoder step on the previous token: logProbs (V) and attention (first Ts) hold the result. */
  step(token: number): Float64Array {
    const { hidden: H, vocab: V } = this.config, p = this.params, kr = this.rt.kernels, Ts = this.srcLen;
    const h0 = this.runners.first.step(p.embedding.subarray(token * H, (token + 1) * H));
    kr.matvec(this.q, p.attention.linearQ, h0, null, H, H);
    const bias = p.attention.bias, att = this.attention, pk = this.pk, q = this.q, a = this.attVec;
    let max = -Infinity;
    for (let s = 0; s < Ts; s++) {
      let score = 0;
      for (let i = 0; i < H; i++) score += Math.tanh(q[i] + pk[s * H + i] + bias[i]) * a[i];
      att[s] = score;
      if (score > max) max = score;
    }
    let sum = 0;
    for (let s = 0; s < Ts; s++) sum += (att[s] = Math.exp(att[s] - max));
    const x = this.restInput;
    x.set(h0);
    x.fill(0, H);
    for (let s = 0; s < Ts; s++) {
      const w = (att[s] /= sum);
      for (let i = 0; i < H; i++) x[H + i] += w * this.keys[s * H + i];
    }
    const top = this.runners.rest.step(x);
    kr.matvec(this.logits, p.classifier, top, p.classifierBias, V, H);
    let m = -Infinity, z = 0;
    for (let v = 0; v < V; v++) if (this.logits[v] > m) m = this.logits[v];
    for (let v = 0; v < V; v++) z += Math.exp(this.logits[v] - m);
    const lse = m + Math.log(z);
    for (let v = 0; v < V; v++) this.logProbs[v] = this.logits[v] - lse;
    return this.logProbs;
  }

  /** A copy of the decoder's recurrent state (h and c of every layer). */
  saveState(into?: Float32Array): Float32Array {
    const cells = [...this.stacks.first.layers, ...this.stacks.rest.layers], H = this.config.hidden;
    const s = into ?? new Float32Array(cells.length * 2 * H);
    cells.forEach((cell, l) => { s.set(cell.h, 2 * l * H); s.set((cell as { c: Float32Array }).c, (2 * l + 1) * H); });
    return s;
  }

  loadState(s: Float32Array): void {
    const cells = [...this.stacks.first.layers, ...this.stacks.rest.layers], H = this.config.hidden;
    cells.forEach((cell, l) => { cell.h.set(s.subarray(2 * l * H, (2 * l + 1) * H)); (cell as { c: Float32Array }).c.set(s.subarray((2 * l + 1) * H, (2 * l + 2) * H)); });
  }

  /**
   * Teacher-forced dense run of one pair: the step inputs of each stack ([embedding] for the first,
   * [layer 0 output | context] for the rest), for fitting and calibrating little modules.
   */
  stepInputs(src: Int32Array, tgtIn: Int32Array): { first: Float32Array[]; rest: Float32Array[] } {
    const saved = this.runners;
    this.useRunners();
    this.start(src);
    const H = this.config.hidden, first: Float32Array[] = [], rest: Float32Array[] = [];
    for (const token of tgtIn) {
      first.push(this.params.embedding.slice(token * H, (token + 1) * H));
      this.step(token);
      rest.push(this.restInput.slice());
    }
    this.runners = saved;
    return { first, rest };
  }
}

// ---------------------------------------------------------------------------------------------------
// Search

export interface BeamOptions {
  beam: number;      // 5
  alpha: number;     // length normalization exponent α (NVIDIA: 0.6)
  beta: number;      // coverage penalty weight β (NVIDIA: 0.1)
  maxLength: number; // target tokens, </s> included (80)
}
export const BEAM_DEFAULTS: BeamOptions = { beam: 5, alpha: 0.6, beta: 0.1, maxLength: MAX_DECODE };

/** GNMT's length penalty lp(Y) = ((5 + |Y|) / 6)^α. */
export function lengthPenalty(length: number, alpha: number): number { return ((5 + length) / 6) ** alpha; }

/** GNMT's coverage penalty β·Σ_i log(min(Σ_j p_ij, 1)) over source positions (an unattended position adds nothing rather than −∞). */
export function coveragePenalty(coverage: ArrayLike<number>, n: number, beta: number): number {
  if (beta === 0) return 0;
  let s = 0;
  for (let i = 0; i < n; i++) if (coverage[i] > 0) s += Math.log(Math.min(coverage[i], 1));
  return beta * s;
}

/** The score beam search ranks by: log P / lp + cp. */
export function gnmtScore(logProb: number, length: number, coverage: ArrayLike<number>, n: number, o: Pick<BeamOptions, "alpha" | "beta">): number {
  return logProb / lengthPenalty(length, o.alpha) + coveragePenalty(coverage, n, o.beta);
}

/** The decoder as search sees it (NmtModel, or a test's hand-made one). */
export interface SearchModel {
  readonly sourceLength: number;
  readonly attention: ArrayLike<number>;
  step(token: number): ArrayLike<number>;
  saveState(into?: Float32Array): Float32Array;
  loadState(s: Float32Array): void;
}

/** Greedy decoding from <s>: the argmax token until </s> or maxLength tokens. Returns the ids without </s>. */
export function greedyDecode(m: SearchModel, maxLength = MAX_DECODE): Int32Array {
  const out: number[] = [];
  let token = BOS_ID;
  for (let t = 0; t < maxLength; t++) {
    const lp = m.step(token);
    token = argmax(lp);
    if (token === EOS_ID) break;
    out.push(token);
  }
  return Int32Array.from(out);
}

interface Hypothesis { tokens: number[]; logProb: number; coverage: Float64Array; state: Float32Array | null; score: number; done: boolean }

/**
 * Beam search: each live hypothesis proposes its `beam` best next tokens; the `beam` best of those
 * proposals and the finished hypotheses by GNMT score survive; a proposal ending in </s> is
 * finished. Stops when no live hypothesis survives or at maxLength tokens. Beam 1 is greedy decoding
 * (a hypothesis's proposals share length and coverage, so they rank by log-probability alone).
 * Returns the best hypothesis's ids without </s>.
 */
export function beamDecode(m: SearchModel, o: BeamOptions = BEAM_DEFAULTS): Int32Array {
  const n = m.sourceLength;
  let beam: Hypothesis[] = [{ tokens: [], logProb: 0, coverage: new Float64Array(n), state: m.saveState(), score: 0, done: false }];
  for (let t = 0; t < o.maxLength && beam.some((h) => !h.done); t++) {
    const pool: Hypothesis[] = beam.filter((h) => h.done);
    for (const h of beam) {
      if (h.done) continue;
      m.loadState(h.state!);
      const lp = m.step(h.tokens.length ? h.tokens[h.tokens.length - 1] : BOS_ID);
      const coverage = h.coverage.slice();
      for (let i = 0; i < n; i++) coverage[i] += m.attention[i];
      const state = m.saveState();
      for (const token of topK(lp, o.beam)) {
        const logProb = h.logProb + lp[token], length = h.tokens.length + 1;
        pool.push({ tokens: [...h.tokens, token], logProb, coverage, state, score: gnmtScore(logProb, length, coverage, n, o), done: token === EOS_ID });
      }
    }
    pool.sort((a, b) => b.score - a.score);
    beam = pool.slice(0, o.beam);
  }
  const best = beam.reduce((a, b) => (b.score > a.score ? b : a));
  return Int32Array.from(best.done ? best.tokens.slice(0, -1) : best.tokens);
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** The k largest entries' indices, best first (ties: the lower index first). */
export function topK(x: ArrayLike<number>, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < x.length; i++) {
    if (idx.length === k && x[i] <= x[idx[k - 1]]) continue;
    let j = idx.length;
    while (j > 0 && x[idx[j - 1]] < x[i]) j--;
    idx.splice(j, 0, i);
    if (idx.length > k) idx.pop();
  }
  return idx;
}

// ---------------------------------------------------------------------------------------------------
// Lines

export type Decode = "greedy" | "beam";

export interface LineResult { text: string; warning: string | null }

/**
 * One input line to one output line. An empty (or all-space) line gives an empty line without
 * running the model; a character the BPE never saw is encoded as its UTF-8 bytes; a source longer
 * than MAX_SOURCE tokens is cut there and the warning says so.
 */
export function translateLine(m: NmtModel, line: string, decode: Decode, beam: BeamOptions = BEAM_DEFAULTS): LineResult {
  if (line.trim() === "") return { text: "", warning: null };
  const { ids, cut } = m.sourceIds(line);
  m.start(ids);
  const out = decode === "greedy" ? greedyDecode(m, beam.maxLength) : beamDecode(m, beam);
  return { text: m.bpe.decode(out), warning: cut ? `the line has more than ${MAX_SOURCE - 1} tokens; only its first ${MAX_SOURCE - 1} were translated` : null };
}
