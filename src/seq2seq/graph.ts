// The GNMT training graph: forward and hand-written backward (llm.c style, as src/recurrent/train.ts
// does for the language model) over one batch of B padded sentence pairs, teacher forcing, on the
// project's kernels (every product a GEMM; gate updates, attention and dropout plain loops).
// Checked against finite differences in test/seq2seq-gnmt.test.ts.
//
// Layout: time-major, row n = t·B + b. Sources are padded after their end; the reverse direction of
// the bidirectional layer reads each source reversed within its own length (so padding never enters
// a real position), attention masks padded source positions, and the loss skips padded targets.
// Because GNMT's decoder has no input feeding (layer 0 reads only the embedding), every layer runs
// over the whole sequence at once, attention included.
// Not here: the model's parameters (gnmt.ts), batching and the optimiser (train.ts), decoding.
import type { Runtime } from "../runtime/runtime.js";
import type { Kernels } from "../kernels/index.js";
import * as check from "../kernels/check.js";
import type { Rng } from "../util/random.js";
import type { LstmWeights } from "../recurrent/lstm.js";
import { type GnmtConfig, type GnmtParams, RESIDUAL_FROM, checkConfig, decoderInput, encoderInput, paramCount, viewParams } from "./gnmt.js";

/** One batch: sources (Ts, B) and targets (Tt, B), time-major, padded with 0 past each length. */
export interface PairBatch {
  B: number;
  srcSteps: number;         // Ts: the longest source
  tgtSteps: number;         // Tt: the longest target + 1 (</s>)
  src: Int32Array;          // (Ts, B)
  srcLen: Int32Array;       // (B) ≥ 1
  tgtIn: Int32Array;        // (Tt, B): <s> y1 … yn, then padding
  tgtOut: Int32Array;       // (Tt, B): y1 … yn </s>, then padding
  tgtLen: Int32Array;       // (B) n + 1
}

// ---------------------------------------------------------------------------------------------------
// One LSTM layer over a sequence: buffers for (T, B), forward, backward

/** Backward scratch shared by all layers of a graph (each layer consumes it before the next needs it). */
interface Scratch { dG: Float32Array; dh: Float32Array; dc: Float32Array; biasSum: Float32Array }

class LstmSeq {
  readonly x: Float32Array;     // (T·B, In) input, written by the graph before forward
  readonly dx: Float32Array;    // (T·B, In) after backward: d loss / d x
  readonly dy: Float32Array;    // (T·B, H) written by the graph before backward: d loss / d output
  private readonly h: Float32Array;     // ((T+1)·B, H): block 0 the zero initial state, block t+1 step t's output
  private readonly c: Float32Array;     // ((T+1)·B, H)
  private readonly tanhC: Float32Array; // (T·B, H)
  private readonly gx: Float32Array;    // (T·B, 4H) pre-activations, then the gate activations in place
  private steps = 0;
  private B = 0;

  constructor(rt: Runtime, private readonly k: Kernels, readonly input: number, readonly H: number, T: number, Bmax: number,
              private readonly w: LstmWeights, private readonly g: LstmWeights | null, private readonly s: Scratch) {
    const f32 = (n: number) => rt.heap.f32(n), N = T * Bmax;
    this.x = f32(N * input);
    this.dx = f32(g ? N * input : 0);
    this.dy = f32(g ? N * H : 0);
    this.h = f32((T + 1) * Bmax * H);
    this.c = f32((T + 1) * Bmax * H);
    this.tanhC = f32(N * H);
    this.gx = f32(N * 4 * H);
  }

  /** The outputs h_1..h_steps (steps·B, H) of the last forward. */
  get output(): Float32Array { return this.h.subarray(this.B * this.H, (this.steps + 1) * this.B * this.H); }

  forward(steps: number, B: number): void {
    const { H, k, w } = this, G = 4 * H, N = steps * B, In = this.input;
    this.steps = steps; this.B = B;
    this.h.fill(0, 0, B * H);
    this.c.fill(0, 0, B * H);
    const gx = this.gx.subarray(0, N * G), bias = this.s.biasSum.subarray(0, G);
    for (let r = 0; r < G; r++) bias[r] = w.bias_ih[r] + w.bias_hh[r];
    for (let n = 0; n < N; n++) gx.set(bias, n * G);
    k.gemm(gx, this.x.subarray(0, N * In), w.weight_ih, N, G, In, false, true, true);
    for (let t = 0; t < steps; t++) {
      const gt = gx.subarray(t * B * G, (t + 1) * B * G);
      k.gemm(gt, this.h.subarray(t * B * H, (t + 1) * B * H), w.weight_hh, B, G, H, false, true, true);
      k.lstmTrainForward(gt, block(this.c, t, B * H), block(this.c, t + 1, B * H), block(this.h, t + 1, B * H),
        block(this.tanhC, t, B * H), B, H);
    }
  }

  /** Adds the weight gradients of the last forward given dy; writes dx. */
  backward(): void {
    const { H, k, w, steps, B } = this, g = this.g!, G = 4 * H, N = steps * B, In = this.input;
    const dG = this.s.dG.subarray(0, N * G), dh = this.s.dh.subarray(0, B * H), dc = this.s.dc.subarray(0, B * H);
    dh.fill(0);
    dc.fill(0);
    for (let t = steps - 1; t >= 0; t--) {
      const dGt = dG.subarray(t * B * G, (t + 1) * B * G);
      k.lstmTrainBackward(dGt, dh, dc, block(this.dy, t, B * H), block(this.gx, t, B * G), block(this.c, t, B * H),
        block(this.tanhC, t, B * H), B, H);
      if (t > 0) k.gemm(dh, dGt, w.weight_hh, B, H, G, false, false, false);
    }
    k.gemm(g.weight_ih, dG, this.x.subarray(0, N * In), G, In, N, true, false, true);
    k.gemm(g.weight_hh, dG, this.h.subarray(0, N * H), G, H, N, true, false, true);
    columnSums(this.s.biasSum, dG, N, G);
    for (let r = 0; r < G; r++) { g.bias_ih[r] += this.s.biasSum[r]; g.bias_hh[r] += this.s.biasSum[r]; }
    k.gemm(this.dx.subarray(0, N * In), dG, w.weight_ih, N, In, G, false, false, false);
  }
}

// ---------------------------------------------------------------------------------------------------
// The graph

/** Rows of the classifier per chunk: bounds the logits buffer to CHUNK·V floats. */
const CHUNK = 256;

export interface GraphOptions {
  maxSrc: number;    // longest source (tokens) a batch may hold
  maxTgt: number;    // longest target + 1
  batch: number;     // most pairs per batch
  dropout: number;
  smoothing: number; // label smoothing ε
}

export class GnmtGraph {
  readonly params: GnmtParams;
  readonly grads: GnmtParams | null;
  private readonly k: Kernels;
  private readonly enc: LstmSeq[];   // [layer 0 forward, layer 0 reverse, layer 1, …]
  private readonly dec: LstmSeq[];
  private readonly encOut: Float32Array[]; // per encoder layer l ≥ 1: (Ts·B, H) its output (h, plus the residual)
  private readonly dEncOut: Float32Array[];
  private readonly decOut: Float32Array[]; // per decoder layer: (Tt·B, H)
  private readonly dDecOut: Float32Array[];
  private readonly masks: Float32Array[];  // dropout scales: [0] source embedding, [l] encoder layer l's input; then the decoder's
  private readonly pk: Float32Array;       // (Ts·B, H) keys · W_kᵀ
  private readonly pq: Float32Array;       // (Tt·B, H) z0 · W_qᵀ
  private readonly dpk: Float32Array;
  private readonly dpq: Float32Array;
  readonly alpha: Float32Array;            // (Tt·B, Ts) attention weights of the last forward
  private readonly ctx: Float32Array;      // (Tt·B, H)
  private readonly dctx: Float32Array;
  private readonly attVec: Float64Array;   // (H) g·a/‖a‖
  private readonly dAttVec: Float64Array;
  private readonly u: Float64Array;        // (H) scratch: tanh(pq + pk + bias) of one (t, b, s)
  private readonly dAlpha: Float64Array;   // (Ts) scratch: d loss / d alpha of one (t, b)
  private readonly rows: Int32Array;       // (Tt·B) the rows of real target positions, then their count
  private readonly top: Float32Array;      // (Tt·B, H) those rows of the top decoder output, gathered
  private readonly dTop: Float32Array;
  private readonly logits: Float32Array;   // (CHUNK, V)
  private readonly targets: Int32Array;    // (Tt·B)
  private readonly biasScratch: Float32Array; // (V) column sums of a chunk's logit gradients
  private batch: PairBatch | null = null;
  private count = 0;                       // real target rows of the last forward
  private dropped = false;
  private pending = false;

  constructor(rt: Runtime, readonly config: GnmtConfig, readonly o: GraphOptions, params: Float32Array, grads: Float32Array | null) {
    const kn = "GnmtGraph";
    checkConfig(config, kn);
    check.size(kn, "maxSrc", o.maxSrc, 1);
    check.size(kn, "maxTgt", o.maxTgt, 1);
    check.size(kn, "batch", o.batch, 1);
    if (!(o.dropout >= 0 && o.dropout < 1)) throw new RangeError(`${kn}: dropout must be in [0, 1), got ${o.dropout}`);
    if (!(o.smoothing >= 0 && o.smoothing < 1)) throw new RangeError(`${kn}: smoothing must be in [0, 1), got ${o.smoothing}`);
    if (!rt.heap.owns(params) || (grads && !rt.heap.owns(grads))) throw new TypeError(`${kn}: params and grads must be heap arrays (rt.heap.f32)`);
    check.f32(kn, "params", params, paramCount(config));
    const { hidden: H, vocab: V, encoderLayers: Le, decoderLayers: Ld } = config, B = o.batch, Ts = o.maxSrc, Tt = o.maxTgt;
    const f32 = (n: number) => rt.heap.f32(n), train = grads !== null, T = Math.max(Ts, Tt);
    this.k = rt.kernels;
    this.params = viewParams(config, params);
    this.grads = grads && viewParams(config, grads);
    const s: Scratch = { dG: f32(train ? T * B * 4 * H : 0), dh: f32(B * H), dc: f32(B * H), biasSum: f32(4 * H) };
    const gw = (i: number, which: "encoder" | "decoder") => this.grads ? this.grads[which][i] : null;
    this.enc = this.params.encoder.map((w, i) => new LstmSeq(rt, this.k, i < 2 ? H : encoderInput(config, i - 1), H, Ts, B, w, gw(i, "encoder"), s));
    this.dec = this.params.decoder.map((w, l) => new LstmSeq(rt, this.k, decoderInput(config, l), H, Tt, B, w, gw(l, "decoder"), s));
    const acts = (n: number, T: number, d: boolean) => Array.from({ length: n }, () => f32(d && !train ? 0 : T * B * H));
    this.encOut = acts(Le, Ts, false);
    this.dEncOut = acts(Le, Ts, true);
    this.decOut = acts(Ld, Tt, false);
    this.dDecOut = acts(Ld, Tt, true);
    const drop = o.dropout > 0 && train;
    this.masks = [...this.enc.slice(1).map((l) => f32(drop ? Ts * B * l.input : 0)), ...this.dec.map(() => f32(drop ? Tt * B * H : 0))];
    this.pk = f32(Ts * B * H);
    this.pq = f32(Tt * B * H);
    this.dpk = f32(train ? Ts * B * H : 0);
    this.dpq = f32(train ? Tt * B * H : 0);
    this.alpha = f32(Tt * B * Ts);
    this.ctx = f32(Tt * B * H);
    this.dctx = f32(train ? Tt * B * H : 0);
    this.attVec = new Float64Array(H);
    this.dAttVec = new Float64Array(H);
    this.u = new Float64Array(H);
    this.dAlpha = new Float64Array(Ts);
    this.rows = rt.heap.i32(Tt * B);
    this.top = f32(Tt * B * H);
    this.dTop = f32(train ? Tt * B * H : 0);
    this.logits = f32(CHUNK * V);
    this.targets = rt.heap.i32(Tt * B);
    this.biasScratch = new Float32Array(V);
  }

  /** Real target tokens of the last forward (the loss's denominator). */
  get tokens(): number { return this.count; }

  // -------------------------------------------------------------------------------------------------
  // Forward

  /**
   * Teacher-forced forward of one batch. Returns the summed (label-smoothed) cross-entropy over its
   * real target tokens. With `rng` it is a training forward (dropout from rng; backward() may follow,
   * and the gradient is that of the mean loss per target token); without, an evaluation.
   */
  forward(batch: PairBatch, rng?: Rng): number {
    this.checkBatch(batch);
    const train = rng !== undefined;
    if (train && !this.grads) throw new Error("GnmtGraph.forward: this graph is for evaluation only (it has no gradients)");
    this.batch = batch;
    this.dropped = train && this.o.dropout > 0;
    const { B, tgtSteps: Tt } = batch, { hidden: H, encoderLayers: Le, decoderLayers: Ld } = this.config;
    const E = this.params.embedding;
    const keys = this.encode(rng);

    // Decoder layer 0 on the embedded target inputs, then attention from its outputs.
    const d0 = this.dec[0];
    for (let n = 0; n < Tt * B; n++) d0.x.set(E.subarray(batch.tgtIn[n] * H, (batch.tgtIn[n] + 1) * H), n * H);
    this.drop(d0.x, Le, Tt * B * H, rng, this.masks[Le]);
    d0.forward(Tt, B);
    this.decOut[0].set(d0.output);
    this.attend(keys);
    for (let l = 1; l < Ld; l++) {
      const layer = this.dec[l], out = this.decOut[l].subarray(0, Tt * B * H), below = this.decOut[l - 1];
      for (let n = 0; n < Tt * B; n++) {
        layer.x.set(below.subarray(n * H, (n + 1) * H), n * 2 * H);
        layer.x.set(this.ctx.subarray(n * H, (n + 1) * H), n * 2 * H + H);
      }
      this.dropHalf(layer.x, Le + l, Tt * B, H, rng);
      layer.forward(Tt, B);
      out.set(layer.output);
      if (l >= RESIDUAL_FROM) for (let i = 0; i < out.length; i++) out[i] += below[i];
    }

    // Classifier and loss over the real target rows only.
    const top = this.decOut[Ld - 1];
    let M = 0;
    for (let t = 0; t < Tt; t++) {
      for (let b = 0; b < B; b++) {
        if (t >= batch.tgtLen[b]) continue;
        const n = t * B + b;
        this.rows[M] = n;
        this.targets[M] = batch.tgtOut[n];
        this.top.set(top.subarray(n * H, (n + 1) * H), M * H);
        M++;
      }
    }
    this.count = M;
    const loss = this.classify(M, train);
    this.pending = train;
    return loss;
  }

  /** The encoder over the current batch's sources; returns its top outputs, the attention keys (Ts·B, H). */
  private encode(rng: Rng | undefined): Float32Array {
    const batch = this.batch!, { B, srcSteps: Ts } = batch, { hidden: H, encoderLayers: Le } = this.config;
    const E = this.params.embedding;

    // Encoder layer 0: the embedded source, forward and reversed within each length.
    const fwd = this.enc[0], rev = this.enc[1], x0 = fwd.x;
    for (let n = 0; n < Ts * B; n++) x0.set(E.subarray(batch.src[n] * H, (batch.src[n] + 1) * H), n * H);
    this.drop(x0, 0, Ts * B * H, rng, this.masks[0]);
    reverseRows(rev.x, x0, batch.srcLen, Ts, B, H, H, 0);
    fwd.forward(Ts, B);
    rev.forward(Ts, B);
    // Layer 1 reads [forward | reverse (un-reversed)], dropped.
    const x1 = this.enc[2].x, f = fwd.output, r = rev.output;
    for (let n = 0; n < Ts * B; n++) x1.set(f.subarray(n * H, (n + 1) * H), n * 2 * H);
    reverseRows(x1, r, batch.srcLen, Ts, B, H, 2 * H, H);
    this.drop(x1, 1, Ts * B * 2 * H, rng, this.masks[1]);
    for (let l = 1; l < Le; l++) {
      const layer = this.enc[l + 1], out = this.encOut[l].subarray(0, Ts * B * H);
      if (l > 1) {
        layer.x.set(this.encOut[l - 1].subarray(0, Ts * B * H));
        this.drop(layer.x, l, Ts * B * H, rng, this.masks[l]);
      }
      layer.forward(Ts, B);
      out.set(layer.output);
      if (l >= RESIDUAL_FROM) for (let i = 0; i < out.length; i++) out[i] += this.encOut[l - 1][i];
    }
    return this.encOut[Le - 1].subarray(0, Ts * B * H);
  }

  /**
   * Encodes one source (its ids, </s> included) at batch 1, evaluation mode: the keys (Ts, H) for
   * step-by-step decoding (a view the next call overwrites).
   */
  encodeOne(src: Int32Array): Float32Array {
    const Ts = src.length, one = Int32Array.of(1);
    this.checkBatch({ B: 1, srcSteps: Ts, tgtSteps: 1, src, srcLen: Int32Array.of(Ts), tgtIn: one, tgtOut: one, tgtLen: one });
    this.batch = { B: 1, srcSteps: Ts, tgtSteps: 1, src, srcLen: Int32Array.of(Ts), tgtIn: one, tgtOut: one, tgtLen: one };
    this.dropped = false;
    this.pending = false;
    return this.encode(undefined);
  }

  /** Normalized Bahdanau attention: alpha (Tt·B, Ts) over the keys, ctx (Tt·B, H) = Σ_s alpha·keys. */
  private attend(keys: Float32Array): void {
    const { B, srcSteps: Ts, tgtSteps: Tt, srcLen } = this.batch!, H = this.config.hidden, A = this.params.attention;
    this.k.gemm(this.pk.subarray(0, Ts * B * H), keys, A.linearK, Ts * B, H, H, false, true, false);
    this.k.gemm(this.pq.subarray(0, Tt * B * H), this.decOut[0].subarray(0, Tt * B * H), A.linearQ, Tt * B, H, H, false, true, false);
    let norm = 0;
    for (let i = 0; i < H; i++) norm += A.linearAtt[i] * A.linearAtt[i];
    norm = Math.sqrt(norm);
    for (let i = 0; i < H; i++) this.attVec[i] = (A.scalar[0] * A.linearAtt[i]) / norm;
    const { pq, pk, alpha, ctx, attVec } = this, bias = A.bias;
    for (let t = 0; t < Tt; t++) {
      for (let b = 0; b < B; b++) {
        const n = t * B + b, L = srcLen[b], ao = n * Ts, qo = n * H;
        let max = -Infinity;
        for (let s = 0; s < L; s++) {
          const ko = (s * B + b) * H;
          let score = 0;
          for (let i = 0; i < H; i++) score += Math.tanh(pq[qo + i] + pk[ko + i] + bias[i]) * attVec[i];
          alpha[ao + s] = score;
          if (score > max) max = score;
        }
        let sum = 0;
        for (let s = 0; s < L; s++) sum += (alpha[ao + s] = Math.exp(alpha[ao + s] - max));
        for (let s = 0; s < L; s++) alpha[ao + s] /= sum;
        for (let s = L; s < Ts; s++) alpha[ao + s] = 0;
        ctx.fill(0, qo, qo + H);
        for (let s = 0; s < L; s++) {
          const a = alpha[ao + s], ko = (s * B + b) * H;
          for (let i = 0; i < H; i++) ctx[qo + i] += a * keys[ko + i];
        }
      }
    }
  }

  /**
   * Logits of the M gathered rows in chunks; returns the summed loss. Training: the chunk's logits
   * become d(mean loss)/d logits and the classifier's gradients and dTop are accumulated at once.
   * Label smoothing ε: loss = (1−ε)·(−log p_y) + ε·mean_v(−log p_v) = nll + ε·(z_y − mean_v z_v);
   * its gradient is p − (1−ε)·onehot − ε/V.
   */
  private classify(M: number, train: boolean): number {
    const { vocab: V, hidden: H } = this.config, eps = this.o.smoothing, k = this.k, scale = train ? 1 / Math.max(M, 1) : 0;
    const W = this.params.classifier, bias = this.params.classifierBias;
    let total = 0;
    for (let r0 = 0; r0 < M; r0 += CHUNK) {
      const C = Math.min(CHUNK, M - r0), logits = this.logits.subarray(0, C * V), x = this.top.subarray(r0 * H, (r0 + C) * H);
      const targets = this.targets.subarray(r0, r0 + C);
      for (let r = 0; r < C; r++) logits.set(bias, r * V);
      k.gemm(logits, x, W, C, V, H, false, true, true);
      let smooth = 0;
      if (eps > 0) {
        for (let r = 0; r < C; r++) {
          let sum = 0;
          for (let v = r * V; v < (r + 1) * V; v++) sum += logits[v];
          smooth += logits[r * V + targets[r]] - sum / V;
        }
      }
      total += k.softmaxCrossEntropy(logits, targets, C, V, scale) + eps * smooth;
      if (!train) continue;
      if (eps > 0) {
        const spread = (eps * scale) / V;
        for (let v = 0; v < C * V; v++) logits[v] -= spread;
        for (let r = 0; r < C; r++) logits[r * V + targets[r]] += eps * scale;
      }
      const g = this.grads!;
      k.gemm(g.classifier, logits, x, V, H, C, true, false, true);
      columnSums(this.biasScratch, logits, C, V);
      for (let v = 0; v < V; v++) g.classifierBias[v] += this.biasScratch[v];
      k.gemm(this.dTop.subarray(r0 * H, (r0 + C) * H), logits, W, C, H, V, false, false, false);
    }
    return total;
  }

  /** Inverted dropout on x[0..n) with a fresh mask for `site` (training forwards with p > 0 only). */
  private drop(x: Float32Array, site: number, n: number, rng: Rng | undefined, mask = this.masks[site]): void {
    if (!this.dropped) return;
    const p = this.o.dropout, keep = 1 / (1 - p);
    for (let i = 0; i < n; i++) {
      const m = rng!.uniform() < p ? 0 : keep;
      mask[i] = m;
      x[i] *= m;
    }
  }

  /** Dropout on the first H of each of n rows of width 2H (the output below; the context is not dropped). */
  private dropHalf(x: Float32Array, site: number, n: number, H: number, rng: Rng | undefined): void {
    if (!this.dropped) return;
    const p = this.o.dropout, keep = 1 / (1 - p), mask = this.masks[site];
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < H; i++) {
        const m = rng!.uniform() < p ? 0 : keep;
        mask[r * H + i] = m;
        x[r * 2 * H + i] *= m;
      }
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Backward

  /** Adds the gradient of the last training forward's mean loss per target token to `grads` (zero them before). */
  backward(): void {
    if (!this.pending) throw new Error("GnmtGraph.backward: no training forward to differentiate (call forward with an rng first, once per backward)");
    this.pending = false;
    const batch = this.batch!, { B, srcSteps: Ts, tgtSteps: Tt } = batch;
    const { hidden: H, encoderLayers: Le, decoderLayers: Ld } = this.config, NT = Tt * B * H, NS = Ts * B * H;

    // Decoder, top down: dTop scattered to its rows; residuals pass the gradient straight down.
    const dTopLayer = this.dDecOut[Ld - 1];
    dTopLayer.fill(0, 0, NT);
    for (let m = 0; m < this.count; m++) dTopLayer.set(this.dTop.subarray(m * H, (m + 1) * H), this.rows[m] * H);
    this.dctx.fill(0, 0, NT);
    for (let l = Ld - 1; l >= 1; l--) {
      const layer = this.dec[l], dOut = this.dDecOut[l], dBelow = this.dDecOut[l - 1];
      layer.dy.set(dOut.subarray(0, NT));
      if (l >= RESIDUAL_FROM) dBelow.set(dOut.subarray(0, NT)); else dBelow.fill(0, 0, NT);
      layer.backward();
      const mask = this.masks[Le + l];
      for (let n = 0; n < Tt * B; n++) {
        for (let i = 0; i < H; i++) {
          const d = layer.dx[n * 2 * H + i];
          dBelow[n * H + i] += this.dropped ? d * mask[n * H + i] : d;
          this.dctx[n * H + i] += layer.dx[n * 2 * H + H + i];
        }
      }
    }
    const dKeys = this.dEncOut[Le - 1];
    dKeys.fill(0, 0, NS);
    this.attendBackward(this.encOut[Le - 1].subarray(0, NS), dKeys.subarray(0, NS), this.dDecOut[0].subarray(0, NT));
    const d0 = this.dec[0];
    d0.dy.set(this.dDecOut[0].subarray(0, NT));
    d0.backward();
    this.embeddingBackward(d0.dx, batch.tgtIn, Tt * B, this.masks[Le], null);

    // Encoder, top down to layer 1, then the bidirectional layer.
    for (let l = Le - 1; l >= 1; l--) {
      const layer = this.enc[l + 1], dOut = this.dEncOut[l];
      layer.dy.set(dOut.subarray(0, NS));
      if (l === 1) { layer.backward(); break; }
      const dBelow = this.dEncOut[l - 1];
      if (l >= RESIDUAL_FROM) dBelow.set(dOut.subarray(0, NS)); else dBelow.fill(0, 0, NS);
      layer.backward();
      const mask = this.masks[l];
      for (let i = 0; i < NS; i++) dBelow[i] += this.dropped ? layer.dx[i] * mask[i] : layer.dx[i];
    }
    const dx1 = this.enc[2].dx, mask1 = this.masks[1];
    if (this.dropped) for (let i = 0; i < Ts * B * 2 * H; i++) dx1[i] *= mask1[i];
    const fwd = this.enc[0], rev = this.enc[1];
    for (let n = 0; n < Ts * B; n++) fwd.dy.set(dx1.subarray(n * 2 * H, n * 2 * H + H), n * H);
    reverseRows(rev.dy, dx1, batch.srcLen, Ts, B, H, H, 0, 2 * H, H);
    fwd.backward();
    rev.backward();
    // d(embedded source) = forward's dx + reverse's dx un-reversed; rev.x is free scratch now.
    reverseRows(rev.x, rev.dx, batch.srcLen, Ts, B, H, H, 0);
    for (let i = 0; i < NS; i++) fwd.dx[i] += rev.x[i];
    this.embeddingBackward(fwd.dx, batch.src, Ts * B, this.masks[0], batch);
  }

  /** Scatter-adds dx (n rows of H), through the site's dropout mask, into the embedding rows of `ids` (sources: real positions only). */
  private embeddingBackward(dx: Float32Array, ids: Int32Array, n: number, mask: Float32Array, src: PairBatch | null): void {
    const H = this.config.hidden, gE = this.grads!.embedding;
    for (let r = 0; r < n; r++) {
      if (src && Math.floor(r / src.B) >= src.srcLen[r % src.B]) continue;
      const o = ids[r] * H;
      for (let i = 0; i < H; i++) gE[o + i] += this.dropped ? dx[r * H + i] * mask[r * H + i] : dx[r * H + i];
    }
  }

  /** From dctx: dKeys (+=), dz0 (+=, the query's gradient) and the attention's parameter gradients. */
  private attendBackward(keys: Float32Array, dKeys: Float32Array, dz0: Float32Array): void {
    const { B, srcSteps: Ts, tgtSteps: Tt, srcLen } = this.batch!, H = this.config.hidden, A = this.params.attention, gA = this.grads!.attention;
    const { pq, pk, alpha, dctx, attVec, dAttVec, u, dAlpha } = this, bias = A.bias, k = this.k;
    const dpq = this.dpq.subarray(0, Tt * B * H), dpk = this.dpk.subarray(0, Ts * B * H);
    dpq.fill(0);
    dpk.fill(0);
    dAttVec.fill(0);
    for (let t = 0; t < Tt; t++) {
      for (let b = 0; b < B; b++) {
        const n = t * B + b, L = srcLen[b], ao = n * Ts, qo = n * H;
        // d alpha_s = dctx·keys_s; d score_s = alpha_s (d alpha_s − Σ alpha d alpha); keys get alpha·dctx.
        let dot = 0;
        for (let s = 0; s < L; s++) {
          const ko = (s * B + b) * H, a = alpha[ao + s];
          let da = 0;
          for (let i = 0; i < H; i++) { da += dctx[qo + i] * keys[ko + i]; dKeys[ko + i] += a * dctx[qo + i]; }
          dAlpha[s] = da;
          dot += a * da;
        }
        for (let s = 0; s < L; s++) {
          const ko = (s * B + b) * H, dScore = alpha[ao + s] * (dAlpha[s] - dot);
          if (dScore === 0) continue;
          for (let i = 0; i < H; i++) u[i] = Math.tanh(pq[qo + i] + pk[ko + i] + bias[i]);
          for (let i = 0; i < H; i++) {
            dAttVec[i] += dScore * u[i];
            const du = dScore * attVec[i] * (1 - u[i] * u[i]);
            dpq[qo + i] += du;
            dpk[ko + i] += du;
            gA.bias[i] += du;
          }
        }
      }
    }
    // attVec = g·a/‖a‖: d a = (g/‖a‖)(d attVec − â(â·d attVec)), d g = â·d attVec.
    let norm = 0;
    for (let i = 0; i < H; i++) norm += A.linearAtt[i] * A.linearAtt[i];
    norm = Math.sqrt(norm);
    let proj = 0;
    for (let i = 0; i < H; i++) proj += (A.linearAtt[i] / norm) * dAttVec[i];
    gA.scalar[0] += proj;
    for (let i = 0; i < H; i++) gA.linearAtt[i] += (A.scalar[0] / norm) * (dAttVec[i] - (A.linearAtt[i] / norm) * proj);
    // pq = z0·W_qᵀ, pk = keys·W_kᵀ.
    k.gemm(gA.linearQ, dpq, this.decOut[0].subarray(0, Tt * B * H), H, H, Tt * B, true, false, true);
    k.gemm(dz0, dpq, A.linearQ, Tt * B, H, H, false, false, true);
    k.gemm(gA.linearK, dpk, keys, H, H, Ts * B, true, false, true);
    k.gemm(dKeys, dpk, A.linearK, Ts * B, H, H, false, false, true);
  }

  private checkBatch(b: PairBatch): void {
    const kn = "GnmtGraph.forward", o = this.o, V = this.config.vocab;
    if (!(b.B >= 1 && b.B <= o.batch)) throw new RangeError(`${kn}: a batch of ${b.B} pairs; this graph holds 1..${o.batch}`);
    if (!(b.srcSteps >= 1 && b.srcSteps <= o.maxSrc)) throw new RangeError(`${kn}: a source of ${b.srcSteps} tokens; this graph holds 1..${o.maxSrc}`);
    if (!(b.tgtSteps >= 1 && b.tgtSteps <= o.maxTgt)) throw new RangeError(`${kn}: a target of ${b.tgtSteps} steps; this graph holds 1..${o.maxTgt}`);
    check.i32(kn, "src", b.src, b.srcSteps * b.B);
    check.i32(kn, "tgtIn", b.tgtIn, b.tgtSteps * b.B);
    check.i32(kn, "tgtOut", b.tgtOut, b.tgtSteps * b.B);
    check.indices(kn, "src", b.src, V);
    check.indices(kn, "tgtIn", b.tgtIn, V);
    check.indices(kn, "tgtOut", b.tgtOut, V);
    for (let i = 0; i < b.B; i++) {
      if (!(b.srcLen[i] >= 1 && b.srcLen[i] <= b.srcSteps)) throw new RangeError(`${kn}: srcLen[${i}] = ${b.srcLen[i]} is outside 1..${b.srcSteps}`);
      if (!(b.tgtLen[i] >= 1 && b.tgtLen[i] <= b.tgtSteps)) throw new RangeError(`${kn}: tgtLen[${i}] = ${b.tgtLen[i]} is outside 1..${b.tgtSteps}`);
    }
  }
}

/** Block t of `size` elements of `a`: the rows of step t. */
function block(a: Float32Array, t: number, size: number): Float32Array { return a.subarray(t * size, (t + 1) * size); }

/** out (cols) = Σ over rows of a (rows, cols): a bias gradient (a plain loop: a GEMM with one output row is slower). */
function columnSums(out: Float32Array, a: Float32Array, rows: number, cols: number): void {
  out.fill(0, 0, cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[c] += a[o + c];
  }
}

/**
 * dst row (t, b) at column `dstCol` ← src row (L_b − 1 − t, b) at column `srcCol` (H values) for
 * t < L_b, zeros past L_b: each row's sequence reversed within its own length (its own inverse).
 */
function reverseRows(dst: Float32Array, src: Float32Array, len: Int32Array, T: number, B: number, H: number,
                     dstWidth: number, dstCol: number, srcWidth = H, srcCol = 0): void {
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      const d = (t * B + b) * dstWidth + dstCol;
      if (t >= len[b]) { dst.fill(0, d, d + H); continue; }
      const s = ((len[b] - 1 - t) * B + b) * srcWidth + srcCol;
      dst.set(src.subarray(s, s + H), d);
    }
  }
}
