// Training of the word-level language model of src/recurrent/lm.ts with PyTorch's word_language_model
// recipe: truncated BPTT over windows of T steps of B parallel streams, mean cross-entropy, plain SGD
// with global gradient-norm clipping, dropout, and the learning rate divided by 4 whenever the
// validation loss stops improving. Backward passes are written by hand (llm.c style) and checked
// against finite differences in test/train.test.ts. Every product is a GEMM of the kernel set; the
// gate updates, the loss and the SGD step are kernels too (src/kernels/train.ts, loss.ts), so that
// the whole step runs on the pool's threads.
//
// Layout: a window holds N = T·B rows, row n = t·B + b (time-major, as PyTorch's batchify/get_batch).
// Reads top to bottom: state (LmGraph) → forward → backward → loss → optimiser → data → loop.
import type { Runtime } from "../runtime/runtime.js";
import { type Kernels, reference } from "../kernels/index.js";
import type { TrainKernels } from "../kernels/train.js";
import { gemmPackedSize } from "../kernels/gemm.js";
import * as check from "../kernels/check.js";
import { Rng, batchRng } from "../util/random.js";
import { gateCount } from "./stack.js";
import { type BpttWindow, batchify, bpttWindows } from "../data/batch.js";
import { PruneMasks, checkSchedule, lastMaskUpdate, maskUpdateDue, pruneRecord, sparsityAt,
  type PruneSchedule, type PrunedTrainingInfo } from "./prune.js";
import {
  type LmCheckpoint, type LmConfig, type LmParams, type TrainingInfo,
  checkConfig, initParams, layerInputSize, loadLm, paramCount, saveLm, stateBlocks, viewParams,
} from "./lm.js";

// ---------------------------------------------------------------------------------------------------
// State: activations of one window, allocated once for (T, B); a shorter window uses a prefix

export class LmGraph {
  readonly params: LmParams;
  readonly grads: LmParams | null;  // null for an evaluation-only graph
  readonly inputs: Int32Array;      // (N) token ids
  readonly targets: Int32Array;     // (N) the next token of each row
  readonly x: Float32Array[];       // per site s ≤ L: (N, width_s) input of layer s (s = L: of the decoder), after dropout
  readonly masks: Float32Array[];   // same shapes: the dropout scales (0 or 1/(1−p)) of the last training window
  readonly h: Float32Array[];       // per layer ((T+1)·B, H): block 0 the state carried in, block t+1 the output of step t
  readonly c: Float32Array[];       // per layer ((T+1)·B, H) LSTM cell states, same blocks; empty for GRU
  readonly tanhC: Float32Array[];   // per layer (N, H) LSTM tanh(c_t); empty for GRU
  readonly gx: Float32Array[];      // per layer (N, G·H) W_ih x + biases, then the gate activations in place
  readonly gh: Float32Array[];      // per layer (N, G·H) GRU: W_hh h + b_hh; LSTM: gx itself (one pre-activation)
  readonly logits: Float32Array;    // (N, V); after a training forward: d loss / d logits
  // Backward scratch, shared by the layers: each is consumed before the next layer down needs it.
  private readonly dGx: Float32Array;  // (N, G·H) d loss / d (input pre-activations)
  private readonly dGh: Float32Array;  // (N, G·H) GRU: d loss / d (recurrent pre-activations); LSTM: dGx
  private readonly dX: Float32Array;   // (N, max(E, H)) d loss / d (a layer's or the decoder's input)
  private readonly dY: Float32Array;   // (N, H) d loss / d (a layer's output h_t)
  private readonly dh: Float32Array;   // (B, H) recurrent gradient into h_{t−1}
  private readonly dc: Float32Array;   // (B, H) LSTM recurrent gradient into c_{t−1}
  private readonly ones: Float32Array; // (N) for bias gradients as column sums: 1ᵀ·dG
  private readonly biasSum: Float32Array; // (G·H) LSTM b_ih + b_hh
  // A layer's W_hh packed for the step GEMMs (gemmPacked): W_hhᵀ in its forward, W_hh in its backward.
  // The weights do not change within a window, so one packing serves all T steps.
  private readonly packedHh: Float32Array;
  private readonly k: Kernels;
  /** The kernels this graph runs on (its runtime's). */
  get kernels(): Kernels { return this.k; }
  private readonly G: number;
  private steps = 0;       // length of the last window; its final state starts the next one
  private dropped = false; // the last forward applied dropout masks
  private pending = false; // a training forward awaits its backward

  constructor(rt: Runtime, readonly config: LmConfig, readonly T: number, readonly B: number,
              params: Float32Array, grads: Float32Array | null, readonly dropout: number) {
    const k = "LmGraph";
    checkConfig(config, k);
    check.size(k, "T", T, 1);
    check.size(k, "B", B, 1);
    if (!(dropout >= 0 && dropout < 1)) throw new RangeError(`${k}: dropout must be in [0, 1), got ${dropout}`);
    if (!rt.heap.owns(params) || (grads && !rt.heap.owns(grads))) throw new TypeError(`${k}: params and grads must be heap arrays (rt.heap.f32)`);
    const { vocab: V, emb: E, hidden: H, layers: L } = config, G = gateCount(config.cell), N = T * B;
    const lstm = config.cell === "lstm", f32 = (n: number) => rt.heap.f32(n);
    this.k = rt.kernels;
    this.G = G;
    this.params = viewParams(config, params);
    this.grads = grads && viewParams(config, grads);
    this.inputs = rt.heap.i32(N);
    this.targets = rt.heap.i32(N);
    const width = (s: number) => (s < L ? layerInputSize(config, s) : H);
    this.x = Array.from({ length: L + 1 }, (_, s) => f32(N * width(s)));
    this.masks = Array.from({ length: L + 1 }, (_, s) => f32(dropout > 0 ? N * width(s) : 0));
    this.h = Array.from({ length: L }, () => f32((T + 1) * B * H));
    this.c = Array.from({ length: L }, () => f32(lstm ? (T + 1) * B * H : 0));
    this.tanhC = Array.from({ length: L }, () => f32(lstm ? N * H : 0));
    this.gx = Array.from({ length: L }, () => f32(N * G * H));
    this.gh = lstm ? this.gx : Array.from({ length: L }, () => f32(N * G * H));
    this.logits = f32(N * V);
    const scratch = (n: number) => f32(grads ? n : 0);
    this.dGx = scratch(N * G * H);
    this.dGh = lstm ? this.dGx : scratch(N * G * H);
    this.dX = scratch(N * Math.max(E, H));
    this.dY = scratch(N * H);
    this.dh = scratch(B * H);
    this.dc = scratch(B * H);
    this.ones = scratch(N).fill(1);
    this.biasSum = f32(G * H);
    this.packedHh = f32(Math.max(gemmPackedSize(G * H, H), grads ? gemmPackedSize(H, G * H) : 0));
  }

  /** Zero state: the start of an epoch or of an evaluation. */
  resetState(): void {
    const BH = this.B * this.config.hidden;
    for (let l = 0; l < this.config.layers; l++) {
      this.h[l].fill(0, 0, BH);
      if (this.c[l].length) this.c[l].fill(0, 0, BH);
    }
    this.steps = 0;
  }

  /** Copies of the state the next window starts from: per layer (S, B, H), h then c for LSTM. */
  getState(): Float32Array[] {
    const BH = this.B * this.config.hidden, from = this.steps * BH;
    return this.h.map((h, l) => {
      const s = new Float32Array(stateBlocks(this.config.cell) * BH);
      s.set(h.subarray(from, from + BH));
      if (this.c[l].length) s.set(this.c[l].subarray(from, from + BH), BH);
      return s;
    });
  }

  /** Sets the state the next window starts from (as returned by getState). */
  setState(state: Float32Array[]): void {
    const BH = this.B * this.config.hidden, S = stateBlocks(this.config.cell);
    if (state.length !== this.config.layers) throw new Error(`LmGraph.setState: ${this.config.layers} layers, got ${state.length} states`);
    state.forEach((s, l) => {
      check.f32("LmGraph.setState", `state[${l}]`, s, S * BH);
      this.h[l].set(s.subarray(0, BH));
      if (S === 2) this.c[l].set(s.subarray(BH));
    });
    this.steps = 0;
  }

  // -------------------------------------------------------------------------------------------------
  // Forward

  /**
   * One window of `input` (steps, B) tokens and their next tokens `target` (steps, B), e.g. a
   * window of bpttWindows (src/data/batch.ts). Returns the mean cross-entropy per token.
   * With `rng` it is a training window: dropout masks are drawn from rng and the logits are replaced
   * by the loss gradient for backward(). Without, it is evaluated (no dropout, logits kept).
   * The state starts from the previous window's last one, detached (truncated BPTT).
   */
  forward(input: Int32Array, target: Int32Array, rng?: Rng): number {
    const kn = "LmGraph.forward", { B, config: c } = this, { vocab: V, hidden: H, layers: L } = c;
    if (!(input instanceof Int32Array) || input.length % B !== 0) throw new TypeError(`${kn}: input must be an Int32Array of (steps, ${B})`);
    const steps = input.length / B, N = steps * B, train = rng !== undefined;
    check.size(kn, "steps", steps, 1);
    if (steps > this.T) throw new RangeError(`${kn}: a window of ${steps} steps exceeds T = ${this.T} (the graph's allocation)`);
    check.i32(kn, "target", target, N);
    check.indices(kn, "input", input, V);
    check.indices(kn, "target", target, V);
    if (train && !this.grads) throw new Error(`${kn}: this graph is for evaluation only (it has no gradients)`);

    // The previous window's last state starts this one; no gradient will flow back into it.
    const BH = B * H, last = this.steps * BH;
    if (this.steps > 0) {
      for (let l = 0; l < L; l++) {
        this.h[l].copyWithin(0, last, last + BH);
        if (this.c[l].length) this.c[l].copyWithin(0, last, last + BH);
      }
    }
    this.inputs.set(input);
    this.targets.set(target);
    this.dropped = train && this.dropout > 0;

    // Embedding lookup, then dropout: x[0] (N, E).
    const E = c.emb, enc = this.params.encoder, x0 = this.x[0];
    for (let n = 0; n < N; n++) {
      const src = this.inputs[n] * E;
      for (let e = 0; e < E; e++) x0[n * E + e] = enc[src + e];
    }
    this.drop(0, N * E, rng);
    // Each layer over the window; its outputs, after dropout, are the next site's input.
    for (let l = 0; l < L; l++) {
      this.layerForward(l, steps);
      this.x[l + 1].set(this.h[l].subarray(BH, BH + N * H));
      this.drop(l + 1, N * H, rng);
    }
    // Decoder: logits (N, V) = bias + x[L] (N, H) · decoder.weightᵀ (H, V).
    const logits = this.logits.subarray(0, N * V);
    fillRows(logits, this.params.decoderBias, N);
    this.k.gemm(logits, this.x[L].subarray(0, N * H), this.params.decoderWeight, N, V, H, false, true, true);

    this.steps = steps;
    this.pending = train;
    return this.k.softmaxCrossEntropy(logits, this.targets.subarray(0, N), N, V, train ? 1 / N : 0) / N;
  }

  /** Inverted dropout on the first n values of site s's input (training windows with p > 0 only). */
  private drop(s: number, n: number, rng: Rng | undefined): void {
    if (!this.dropped) return;
    const x = this.x[s], mask = this.masks[s], p = this.dropout, keep = 1 / (1 - p);
    for (let i = 0; i < n; i++) {
      const m = rng!.uniform() < p ? 0 : keep;
      mask[i] = m;
      x[i] *= m;
    }
  }

  /** Layer l over `steps` steps: input x[l], outputs into h[l] blocks 1..steps. */
  private layerForward(l: number, steps: number): void {
    const { B, G, config: c } = this, H = c.hidden, GH = G * H, N = steps * B, El = layerInputSize(c, l);
    const W = this.params.layers[l], gx = this.gx[l].subarray(0, N * GH), gh = this.gh[l], h = this.h[l];
    const lstm = c.cell === "lstm";
    // Input projections of every step at once; the biases go in first and the GEMM adds onto them.
    // LSTM adds both biases to gx (gates see their sum); GRU keeps b_hh apart, inside r ⊙ (W_hn h + b_hn).
    if (lstm) {
      for (let r = 0; r < GH; r++) this.biasSum[r] = W.bias_ih[r] + W.bias_hh[r];
      fillRows(gx, this.biasSum, N);
    } else {
      fillRows(gx, W.bias_ih, N);
      fillRows(gh.subarray(0, N * GH), W.bias_hh, N);
    }
    this.k.gemm(gx, this.x[l].subarray(0, N * El), W.weight_ih, N, GH, El, false, true, true);
    const packed = this.packedHh.subarray(0, gemmPackedSize(GH, H));
    this.k.packB(packed, W.weight_hh, GH, H, true);
    for (let t = 0; t < steps; t++) {
      const hPrev = block(h, t, B * H), ght = block(gh, t, B * GH);
      this.k.gemmPacked(ght, hPrev, packed, B, GH, H, false, true);
      if (lstm) this.k.lstmTrainForward(block(gx, t, B * GH), block(this.c[l], t, B * H), block(this.c[l], t + 1, B * H),
        block(h, t + 1, B * H), block(this.tanhC[l], t, B * H), B, H);
      else this.k.gruTrainForward(block(gx, t, B * GH), ght, hPrev, block(h, t + 1, B * H), B, H);
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Backward

  /** Adds the gradient of the last training window's mean loss to `grads` (zero them before). */
  backward(): void {
    if (!this.pending) throw new Error("LmGraph.backward: no training forward to differentiate (call forward with an rng first, once per backward)");
    this.pending = false;
    const { B, config: c } = this, g = this.grads!, { vocab: V, emb: E, hidden: H, layers: L } = c;
    const N = this.steps * B, dlogits = this.logits.subarray(0, N * V), ones = this.ones.subarray(0, N);
    // Decoder: d weight (V, H) += dlogitsᵀ · x[L], d bias += 1ᵀ · dlogits, d x[L] = dlogits · weight.
    const xL = this.x[L].subarray(0, N * H), dX = this.dX.subarray(0, N * H), dY = this.dY.subarray(0, N * H);
    this.k.gemm(g.decoderWeight, dlogits, xL, V, H, N, true, false, true);
    this.k.gemm(g.decoderBias, ones, dlogits, 1, V, N, false, false, true);
    this.k.gemm(dX, dlogits, this.params.decoderWeight, N, H, V, false, false, false);
    this.undrop(dY, dX, L, N * H);
    for (let l = L - 1; l >= 0; l--) {
      this.layerBackward(l);
      if (l > 0) this.undrop(dY, dX, l, N * H);
    }
    // Embedding: scatter-add d x[0] (after dropout's mask) into the rows of the input tokens.
    const gEnc = g.encoder, mask = this.masks[0];
    for (let n = 0; n < N; n++) {
      const dst = this.inputs[n] * E;
      for (let e = 0; e < E; e++) gEnc[dst + e] += this.dropped ? this.dX[n * E + e] * mask[n * E + e] : this.dX[n * E + e];
    }
  }

  /** dY (n) = dX (n) through site s's dropout: masked by the same scales as the forward. */
  private undrop(dY: Float32Array, dX: Float32Array, s: number, n: number): void {
    if (!this.dropped) { dY.set(dX.subarray(0, n)); return; }
    const mask = this.masks[s];
    for (let i = 0; i < n; i++) dY[i] = dX[i] * mask[i];
  }

  /** Layer l: from dY (its outputs' gradient) to its weight gradients and dX (its input's, (N, E_l)). */
  private layerBackward(l: number): void {
    const { B, G, config: c } = this, H = c.hidden, GH = G * H, steps = this.steps, N = steps * B;
    const El = layerInputSize(c, l), W = this.params.layers[l], gW = this.grads!.layers[l], lstm = c.cell === "lstm";
    const h = this.h[l], gx = this.gx[l], dGx = this.dGx.subarray(0, N * GH), dGh = this.dGh.subarray(0, N * GH);
    const dh = this.dh, dc = this.dc;
    dh.fill(0);  // nothing flows in from beyond the window
    dc.fill(0);
    const packed = this.packedHh.subarray(0, gemmPackedSize(H, GH));
    this.k.packB(packed, W.weight_hh, H, GH, false);
    for (let t = steps - 1; t >= 0; t--) {
      const dyt = block(this.dY, t, B * H);
      if (lstm) {
        this.k.lstmTrainBackward(block(dGx, t, B * GH), dh, dc, dyt, block(gx, t, B * GH), block(this.c[l], t, B * H),
          block(this.tanhC[l], t, B * H), B, H);
        if (t > 0) this.k.gemmPacked(dh, block(dGx, t, B * GH), packed, B, H, GH, false, false);
      } else {
        this.k.gruTrainBackward(block(dGx, t, B * GH), block(dGh, t, B * GH), dh, dyt, block(gx, t, B * GH),
          block(this.gh[l], t, B * GH), block(h, t, B * H), B, H);
        if (t > 0) this.k.gemmPacked(dh, block(dGh, t, B * GH), packed, B, H, GH, false, true);
      }
    }
    // Weight gradients of the whole window at once: dW_ih += dGxᵀ·x, dW_hh += dGhᵀ·h_{t−1}, biases 1ᵀ·dG.
    const ones = this.ones.subarray(0, N);
    this.k.gemm(gW.weight_ih, dGx, this.x[l].subarray(0, N * El), GH, El, N, true, false, true);
    this.k.gemm(gW.weight_hh, dGh, h.subarray(0, N * H), GH, H, N, true, false, true);
    this.k.gemm(gW.bias_ih, ones, dGx, 1, GH, N, false, false, true);
    this.k.gemm(gW.bias_hh, ones, dGh, 1, GH, N, false, false, true);
    this.k.gemm(this.dX.subarray(0, N * El), dGx, W.weight_ih, N, El, GH, false, false, false);
  }
}

/** Block t of `size` elements of `a`: the rows of step t. */
function block(a: Float32Array, t: number, size: number): Float32Array { return a.subarray(t * size, (t + 1) * size); }

/** Every row of a (rows, bias.length) is bias: the starting value of a GEMM that accumulates. */
function fillRows(a: Float32Array, bias: Float32Array, rows: number): void {
  for (let r = 0; r < rows; r++) a.set(bias, r * bias.length);
}

// ---------------------------------------------------------------------------------------------------
// Optimiser

/**
 * Plain SGD with global gradient-norm clipping (torch.nn.utils.clip_grad_norm_, then p ← p − lr·g):
 * the gradient is scaled by min(1, clip / (‖g‖ + 1e-6)); clip = 0 turns clipping off.
 * Returns ‖g‖ before clipping.
 */
export function sgdStep(params: Float32Array, grads: Float32Array, lr: number, clip: number, k: TrainKernels = reference): number {
  if (params.length !== grads.length) throw new RangeError(`sgdStep: params has ${params.length} elements, grads ${grads.length}`);
  const norm = Math.sqrt(k.sumSquares(grads, grads.length)), step = lr * (clip > 0 ? Math.min(1, clip / (norm + 1e-6)) : 1);
  k.sgdUpdate(params, grads, step, params.length);
  return norm;
}

/**
 * One training step of the recipe on window w: zeroed gradients, forward with dropout drawn from rng,
 * backward, pruned weights' gradients masked, clipped SGD. What `dmi bench train` times.
 */
export function trainStep(graph: LmGraph, params: Float32Array, grads: Float32Array, w: BpttWindow, rng: Rng, lr: number, clip: number,
                          masks: PruneMasks | null = null): { loss: number; gradNorm: number } {
  grads.fill(0);
  const loss = graph.forward(w.input, w.target, rng);
  graph.backward();
  masks?.maskGrads(grads);
  return { loss, gradNorm: sgdStep(params, grads, lr, clip, graph.kernels) };
}

// ---------------------------------------------------------------------------------------------------
// Evaluation

/** Mean cross-entropy per token over `windows` (of data batchified for g.B), from a zero state. */
export async function evaluate(g: LmGraph, windows: BpttWindow[], onWindow?: (done: number, total: number) => void): Promise<number> {
  if (windows.length === 0) throw new Error(`evaluate: the data has too few tokens for one window of batch ${g.B}`);
  g.resetState();
  let sum = 0, tokens = 0;
  for (let i = 0; i < windows.length; i++) {
    const w = windows[i], n = w.input.length;
    sum += g.forward(w.input, w.target) * n;
    tokens += n;
    onWindow?.(i + 1, windows.length);
    await yieldToEvents();
  }
  return sum / tokens;
}

/** Lets pending events (a SIGINT handler) run between windows of a long synchronous loop. */
function yieldToEvents(): Promise<void> { return new Promise((resolve) => setImmediate(resolve)); }

// ---------------------------------------------------------------------------------------------------
// Loop: epochs of training windows, validation, the learning-rate rule, checkpoints, resume

export interface TrainOptions {
  bptt: number;      // T: steps per window (truncated BPTT)
  batch: number;     // B: parallel streams in training
  evalBatch: number; // parallel streams in evaluation
  lr: number;        // initial learning rate
  clip: number;      // global gradient-norm bound (0: none)
  dropout: number;   // p on the embedding, between layers and on the output
  seed: number;      // initialisation and dropout masks
}

/** PyTorch's word_language_model defaults (its --dropout default is also 0.2). */
export const TRAIN_DEFAULTS: TrainOptions = { bptt: 35, batch: 20, evalBatch: 10, lr: 20, clip: 0.25, dropout: 0.2, seed: 1 };

export interface LmData { train: Int32Array; valid: Int32Array; test: Int32Array } // token ids of each split

export interface RunOptions {
  config: LmConfig;
  corpus: string;
  options: TrainOptions;
  epochs: number;             // total, including any already done by a resumed run
  out: string;                // the best checkpoint by validation loss; the resumable one beside it
  dtype?: "F32" | "F16";      // of `out` (the resumable checkpoint is always F32); default F32
  maxWindows?: number;        // per epoch, in training and in each evaluation: quick runs
  resume?: LmCheckpoint;      // a resumable checkpoint to continue from
  testEachEpoch?: boolean;    // also the test loss after every epoch (a learning curve; not used for any decision)
  vocabDigest?: string;       // recorded in the checkpoints (Vocabulary.digest), so that evaluation can check it
  init?: Float32Array;        // starting weights (paramCount(config)) instead of the initialisation: the dense model to prune
  /** Automated gradual pruning of the recurrent weights (src/recurrent/prune.ts), steps counted from this run's first window. */
  prune?: PruneSchedule & { from: string };
}

export interface BatchInfo { epoch: number; batch: number; batches: number; tokens: number; loss: number; gradNorm: number; lr: number }
export interface EpochReport {
  epoch: number; trainLoss: number; validLoss: number; testLoss: number | null; lr: number; improved: boolean; seconds: number;
  /** Pruning: the masks' sparsity at the epoch's end, and whether the ramp is over (only then is an epoch a candidate for the best). */
  pruning?: { sparsity: number; ramping: boolean };
}

export interface RunHooks {
  onEpochStart?(epoch: number, firstBatch: number, batches: number, tokensPerBatch: number): void;
  onBatch?(info: BatchInfo): void;
  onEvaluate?(split: "valid" | "test", done: number, total: number): void;
  onEpoch?(report: EpochReport): void;
  /** Checked after every training window and after each epoch's checkpoints. */
  stopRequested?(): boolean;
}

export interface RunResult {
  epoch: number;                // completed epochs
  lr: number;
  bestValidLoss: number | null;
  testLoss: number | null;      // of the best checkpoint; null when stopped early
  stopped: boolean;
  params: Float32Array;         // heap: the best weights when finished, the current ones when stopped
}

/** The resumable checkpoint that goes with the best one at `out`. */
export function resumePath(out: string): string { return out.replace(/(\.safetensors)?$/, ".resume.safetensors"); }

/**
 * Trains as PyTorch's word_language_model main.py: per epoch, the training windows from a zero
 * state, then the validation loss; the best weights by validation loss are saved to `out`, otherwise
 * the learning rate is divided by 4. A resumable checkpoint (current weights, lr, position, carried
 * state) is written after every epoch and when a stop is requested. Finally the test loss of the best
 * checkpoint.
 *
 * With `prune` (usually from `init`, a trained dense model: pruning a converged model, then
 * fine-tuning it), the recurrent weight masks follow the AGP schedule, counted in windows of this
 * run; masked gradients keep pruned weights at zero. While the sparsity is still rising an epoch is
 * neither a candidate for the best checkpoint nor a reason to lower the learning rate: the loss
 * rises with the sparsity. On resume the masks are re-derived from the saved weights (prune.ts).
 */
export async function trainLm(rt: Runtime, run: RunOptions, data: LmData, hooks: RunHooks = {}): Promise<RunResult> {
  const { config, options: o } = run, r = run.resume, maxWindows = run.maxWindows ?? Infinity;
  checkConfig(config, "trainLm");
  check.size("trainLm", "epochs", run.epochs);
  if (r) checkResumable(r, run);
  const params = rt.heap.f32(paramCount(config)), grads = rt.heap.f32(params.length);
  if (r) params.set(r.params);
  else if (run.init) params.set(run.init);
  else initParams(config, params, o.seed);
  const prune = run.prune, masks = prune ? new PruneMasks(config) : null;
  if (prune) checkSchedule(prune, "trainLm");
  const graph = new LmGraph(rt, config, o.bptt, o.batch, params, grads, o.dropout);
  const evalGraph = new LmGraph(rt, config, o.bptt, o.evalBatch, params, null, 0);
  const windows = (ids: Int32Array, B: number) => [...bpttWindows(batchify(ids, B), o.bptt)].slice(0, maxWindows);
  const train = windows(data.train, o.batch), valid = windows(data.valid, o.evalBatch), test = windows(data.test, o.evalBatch);
  if (train.length === 0) throw new Error(`trainLm: ${data.train.length} training tokens are too few for one window of batch ${o.batch}`);

  let epoch = r?.training.epoch ?? 0, lr = r?.training.lr ?? o.lr, best = r?.training.bestValidLoss ?? null;
  // Pruning: the SGD step count of this run, the masks' current sparsity, and the ramp's bounds.
  const stepOf = (e: number, b: number) => e * train.length + b;
  let sparsity = 0;
  if (prune) {
    const end = prune.start + prune.steps, total = stepOf(run.epochs, 0);
    if (end >= total) {
      throw new Error(`trainLm: the pruning ramp ends at window ${end} but ${run.epochs} epochs of ${train.length} windows have ${total}; ` +
        "give more epochs or fewer --prune-steps (the run must also fine-tune at the final sparsity)");
    }
    const last = lastMaskUpdate(prune, stepOf(epoch, r?.resume?.batch ?? 0) - 1);
    if (last !== null) masks!.update(params, sparsity = sparsityAt(prune, last)); // the resumed run's masks, re-derived
  }
  const info = (): TrainingInfo => {
    const t: PrunedTrainingInfo = { corpus: run.corpus, seed: o.seed, epoch, lr, bestValidLoss: best, dropout: o.dropout,
      clip: o.clip, bptt: o.bptt, batch: o.batch, epochs: run.epochs };
    if (prune) t.prune = { ...prune, sparsity, matrices: masks!.sparsity() };
    return t;
  };
  let lossSum = 0, lossTokens = 0; // of the current epoch's windows so far
  const saveResume = (batch: number) => saveLm(resumePath(run.out), { config, params, training: info(), vocabDigest: run.vocabDigest,
    resume: { batch, state: graph.getState(), lossSum, lossTokens } });
  const stopped = (): RunResult => ({ epoch, lr, bestValidLoss: best, testLoss: null, stopped: true, params });
  let first = r?.resume?.batch ?? 0;
  if (first > 0) {
    graph.setState(r!.resume!.state);
    lossSum = r!.resume!.lossSum ?? 0;
    lossTokens = r!.resume!.lossTokens ?? 0;
  }

  while (epoch < run.epochs) {
    if (hooks.stopRequested?.()) return stopped();
    const start = performance.now();
    if (first === 0) {
      graph.resetState();
      lossSum = lossTokens = 0;
    }
    hooks.onEpochStart?.(epoch + 1, first, train.length, o.bptt * o.batch);
    for (let b = first; b < train.length; b++) {
      const w = train[b], tokens = w.input.length;
      if (prune && maskUpdateDue(prune, stepOf(epoch, b))) masks!.update(params, sparsity = sparsityAt(prune, stepOf(epoch, b)));
      const { loss, gradNorm } = trainStep(graph, params, grads, w, batchRng(o.seed, epoch, b), lr, o.clip, masks);
      lossSum += loss * tokens;
      lossTokens += tokens;
      hooks.onBatch?.({ epoch: epoch + 1, batch: b + 1, batches: train.length, tokens, loss, gradNorm, lr });
      await yieldToEvents();
      if (hooks.stopRequested?.() && b + 1 < train.length) {
        await saveResume(b + 1);
        return stopped();
      }
    }
    first = 0;
    const validLoss = await evaluate(evalGraph, valid, (d, t) => hooks.onEvaluate?.("valid", d, t));
    const seconds = (performance.now() - start) / 1000;
    const testLoss = run.testEachEpoch ? await evaluate(evalGraph, test, (d, t) => hooks.onEvaluate?.("test", d, t)) : null;
    epoch++;
    // While the pruning ramp runs, the loss rises with the sparsity: no best, no lower rate yet.
    const ramping = prune !== undefined && stepOf(epoch, 0) <= prune.start + prune.steps;
    const improved = !ramping && (best === null || validLoss < best);
    if (improved) {
      best = validLoss;
      await saveLm(run.out, { config, params, training: info(), vocabDigest: run.vocabDigest }, run.dtype);
    } else if (!ramping) {
      lr /= 4;
    }
    await saveResume(0);
    hooks.onEpoch?.({ epoch, trainLoss: lossSum / lossTokens, validLoss, testLoss, lr, improved, seconds,
      ...(prune ? { pruning: { sparsity, ramping } } : {}) });
  }

  params.set((await loadLm(run.out)).params);
  const testLoss = await evaluate(evalGraph, test, (d, t) => hooks.onEvaluate?.("test", d, t));
  return { epoch, lr, bestValidLoss: best, testLoss, stopped: false, params };
}

/** A resumed run must be the same model, corpus and recipe, or it would not continue the same training. */
function checkResumable(r: LmCheckpoint, run: RunOptions): void {
  const t = r.training, o = run.options;
  const saved = { config: r.config, corpus: t.corpus, seed: t.seed, bptt: t.bptt, batch: t.batch, dropout: t.dropout, clip: t.clip };
  const now = { config: run.config, corpus: run.corpus, seed: o.seed, bptt: o.bptt, batch: o.batch, dropout: o.dropout, clip: o.clip };
  // Keys in a fixed order: a config built in code may list its fields in another order than the file's.
  const canonical = (v: unknown) => JSON.stringify(v, v !== null && typeof v === "object" ? Object.keys(v).sort() : undefined);
  for (const key of Object.keys(saved) as (keyof typeof saved)[]) {
    const a = canonical(saved[key]), b = canonical(now[key]);
    if (a !== b) throw new Error(`trainLm: cannot resume: the checkpoint has ${key} ${a}, this run ${b}; drop the conflicting option or start afresh without --resume`);
  }
  if (!r.resume) throw new Error("trainLm: cannot resume from a checkpoint without a resume state; use the .resume.safetensors file beside it");
  const p = pruneRecord(r, "to resume"), q = run.prune;
  const schedule = (s: PruneSchedule | null | undefined) => (s ? JSON.stringify([s.initial, s.final, s.start, s.steps, s.every]) : "none");
  if (schedule(p) !== schedule(q)) {
    throw new Error(`trainLm: cannot resume: the checkpoint's pruning schedule [initial, final, start, steps, every] is ${schedule(p)}, ` +
      `this run's ${schedule(q)}; resume with the same --prune options`);
  }
}
