// A single LSTM layer at batch 1, PyTorch semantics (gate order i, f, g, o).
//
// Weights are stored for dual-module inference: row r of W is [weight_ih[r] | weight_hh[r]], so one
// output neuron is one contiguous read, and the input is kept as one vector xh = [x | h] with h
// updated in place. The big module of a dual-module step is computeRows(): only listed rows are read.
// The big weights are fp32, or INT8 with one scale per row (then [x | h] is quantized per step, as
// in dynamic quantization): a quarter of the bytes to stream, which is what a batch-1 step costs.
// Or, for a pruned layer, fp32 in compressed rows (src/kernels/sparse.ts): only the nonzeros are
// stored and read, each row one contiguous block, so a sensitive row is still one read.
import type { Runtime } from "../runtime/runtime.js";
import * as check from "../kernels/check.js";
import { quantizeRows } from "../dual/quantize.js";
import { type SparseRows, packSparseRows, unpackSparseRows } from "../kernels/sparse.js";
import type { LstmDualPlan } from "../kernels/dual-step.js";

export interface LstmWeights {
  weight_ih: Float32Array; // (4H, E)
  weight_hh: Float32Array; // (4H, H)
  bias_ih: Float32Array;   // (4H)
  bias_hh: Float32Array;   // (4H)
}

/** Precision of a layer's big weights. */
export type BigBits = 32 | 8;

/** The big weights at their precision: fp32 rows, INT8 rows with a scale each and the quantized input, or fp32 compressed rows. */
type BigWeights = { bits: 32; W: Float32Array } | { bits: 8; Wq: Int8Array; scales: Float32Array; xhq: Int8Array }
  | { bits: "sparse"; S: SparseRows };

export class Lstm {
  readonly kind = "lstm";
  readonly gates = 4;
  readonly rows: number;          // 4H gate neurons
  readonly cols: number;          // E + H inputs per neuron
  private readonly big: BigWeights; // (4H, E+H)
  readonly b: Float32Array;       // (4H) = bias_ih + bias_hh
  private readonly biases: [Float32Array, Float32Array]; // bias_ih, bias_hh as given, for weights()
  readonly xh: Float32Array;      // (E+H) = [x | h]
  readonly h: Float32Array;       // (H) view of xh's tail
  readonly c: Float32Array;       // (H)
  readonly pre: Float32Array;     // (4H) gate pre-activations of the current step

  /** `sparse`: hold the fp32 big weights in compressed rows, keeping their nonzeros (a pruned layer). */
  constructor(private readonly rt: Runtime, readonly input: number, readonly hidden: number, weights: LstmWeights,
              readonly bits: BigBits = 32, readonly sparse = false) {
    checkWeights("Lstm", input, hidden, 4, weights);
    if (bits !== 32 && bits !== 8) throw new RangeError(`Lstm: big weights are 32 or 8 bits, got ${bits}`);
    if (sparse && bits !== 32) throw new RangeError("Lstm: sparse big weights are fp32 (bits 32)");
    const E = input, H = hidden, R = 4 * H;
    this.rows = R;
    this.cols = E + H;
    if (sparse) {
      this.big = { bits: "sparse", S: packSparseRows(interleaveRows(weights.weight_ih, weights.weight_hh, R, E, H), R, E + H, rt.heap) };
    } else if (bits === 32) {
      this.big = { bits, W: interleaveRows(weights.weight_ih, weights.weight_hh, R, E, H, rt.heap.f32(R * (E + H))) };
    } else {
      const q = quantizeRows(interleaveRows(weights.weight_ih, weights.weight_hh, R, E, H), R, E + H, 8);
      const Wq = rt.heap.i8(R * (E + H));
      Wq.set(q.q!);
      this.big = { bits, Wq, scales: rt.heap.copyF32(q.scales), xhq: rt.heap.i8(E + H) };
    }
    this.b = rt.heap.f32(R);
    for (let r = 0; r < R; r++) this.b[r] = weights.bias_ih[r] + weights.bias_hh[r];
    this.biases = [weights.bias_ih.slice(), weights.bias_hh.slice()];
    this.xh = rt.heap.f32(E + H);
    this.h = this.xh.subarray(E);
    this.c = rt.heap.f32(H);
    this.pre = rt.heap.f32(R);
  }

  reset(): void { this.h.fill(0); this.c.fill(0); }

  /** One dense step on input x. Returns h (a view that the next step overwrites). */
  step(x: Float32Array): Float32Array {
    this.load(x);
    return this.compute();
  }

  /**
   * A dense step on the input already in xh (stacks write [below | context] there themselves).
   * `perturb`, for experiments, may change the gate pre-activations before the state updates.
   */
  compute(perturb?: (pre: Float32Array) => void): Float32Array {
    const kr = this.rt.kernels, big = this.big;
    if (big.bits === 32) {
      kr.matvec(this.pre, big.W, this.xh, this.b, this.rows, this.cols);
    } else if (big.bits === "sparse") {
      kr.matvecSparse(this.pre, big.S.data, big.S.rowPtr, this.xh, this.b, this.rows, this.cols);
    } else {
      const s = kr.quantize(big.xhq, this.xh, this.cols);
      kr.matvecI8(this.pre, big.Wq, big.scales, big.xhq, s, this.b, this.rows, this.cols);
    }
    perturb?.(this.pre);
    kr.lstmGates(this.h, this.c, this.pre, this.hidden);
    return this.h;
  }

  /** Copies the step's input into xh. */
  load(x: Float32Array): void {
    check.f32("Lstm.step", "x", x, this.input);
    this.xh.set(x);
  }

  /**
   * The big module of a dual-module step: `pre` already holds the little module's estimates; the
   * listed (sensitive) rows are recomputed exactly, then the state updates as usual.
   */
  computeRows(rowIdx: Int32Array, count: number): Float32Array {
    const kr = this.rt.kernels, big = this.big;
    if (big.bits === 32) {
      kr.matvecRows(this.pre, big.W, this.xh, this.b, rowIdx, count, this.rows, this.cols);
    } else if (big.bits === "sparse") {
      kr.matvecSparseRows(this.pre, big.S.data, big.S.rowPtr, this.xh, this.b, rowIdx, count, this.rows, this.cols);
    } else {
      const s = kr.quantize(big.xhq, this.xh, this.cols);
      kr.matvecI8Rows(this.pre, big.Wq, big.scales, big.xhq, s, this.b, rowIdx, count, this.rows, this.cols);
    }
    kr.lstmGates(this.h, this.c, this.pre, this.hidden);
    return this.h;
  }

  /** The layer's arrays that a fused dual step reads and writes (kernels' lstmDualStep); null for compressed rows. */
  get dualArrays(): Pick<LstmDualPlan, "xh" | "h" | "c" | "pre" | "big" | "b"> | null {
    const big = this.big;
    if (big.bits === "sparse") return null;
    return { xh: this.xh, h: this.h, c: this.c, pre: this.pre, b: this.b,
             big: big.bits === 32 ? { bits: 32, W: big.W } : { bits: 8, Wq: big.Wq, scales: big.scales } };
  }

  /** The big weights (4H, E+H) in fp32: the stored ones, or a dequantized copy of the INT8 ones, or a dense copy of the compressed rows (pruned weights as zeros). */
  get W(): Float32Array {
    const big = this.big;
    if (big.bits === 32) return big.W;
    if (big.bits === "sparse") return unpackSparseRows(big.S);
    const W = new Float32Array(this.rows * this.cols);
    for (let r = 0; r < this.rows; r++) {
      const s = big.scales[r], o = r * this.cols;
      for (let c = 0; c < this.cols; c++) W[o + c] = s * big.Wq[o + c];
    }
    return W;
  }

  /** The weights under PyTorch's names (copies; INT8 weights dequantized). */
  weights(): LstmWeights {
    const [weight_ih, weight_hh] = splitRows(this.W, this.rows, this.input, this.hidden);
    return { weight_ih, weight_hh, bias_ih: this.biases[0].slice(), bias_hh: this.biases[1].slice() };
  }

  /**
   * Bytes the big module reads for `count` rows (weights and bias, and an INT8 row's scale). For
   * compressed rows: the average row's block (nonzeros as values and indices) plus its row pointer
   * and bias, since only the count is known here; rowBytes counts given rows exactly.
   */
  bigBytes(count: number): number {
    const big = this.big;
    if (big.bits === "sparse") return count === this.rows ? this.sparseBytes() : (count * this.sparseBytes()) / this.rows;
    return count * (this.bits === 32 ? (this.cols + 1) * 4 : this.cols + 8);
  }

  /** Exact bytes the big module reads for the rows rowIdx[0..count): bigBytes except for compressed rows, where each row's own block counts. */
  rowBytes(rowIdx: Int32Array, count: number): number {
    const big = this.big;
    if (big.bits !== "sparse") return this.bigBytes(count);
    let bytes = 0;
    for (let j = 0; j < count; j++) bytes += big.S.rowPtr[rowIdx[j] + 1] - big.S.rowPtr[rowIdx[j]];
    return bytes + 8 * count; // + its row pointer and bias
  }

  /** Nonzero weights stored (every weight for dense rows). */
  get nonzeros(): number { return this.big.bits === "sparse" ? this.big.S.nnz : this.rows * this.cols; }

  /** All compressed rows: blocks, one row pointer (int32) and one bias (fp32) per row. */
  private sparseBytes(): number { return (this.big as { S: SparseRows }).S.data.length + 8 * this.rows; }
}

/** Sizes, and PyTorch-named weights of `gates`·H rows, for a layer of kind `k`. */
export function checkWeights(k: string, input: number, hidden: number, gates: number, w: LstmWeights): void {
  check.size(k, "input", input, 1);
  check.size(k, "hidden", hidden, 1);
  const R = gates * hidden;
  check.f32(k, "weight_ih", w.weight_ih, R * input);
  check.f32(k, "weight_hh", w.weight_hh, R * hidden);
  check.f32(k, "bias_ih", w.bias_ih, R);
  check.f32(k, "bias_hh", w.bias_hh, R);
}

/** (R, A) and (R, B) into one matrix W (R, A+B) whose row r is [a[r] | b[r]]. */
export function interleaveRows(a: Float32Array, b: Float32Array, R: number, A: number, B: number,
                               W: Float32Array = new Float32Array(R * (A + B))): Float32Array {
  for (let r = 0; r < R; r++) {
    W.set(a.subarray(r * A, (r + 1) * A), r * (A + B));
    W.set(b.subarray(r * B, (r + 1) * B), r * (A + B) + A);
  }
  return W;
}

/** The inverse of interleaveRows: (R, A+B) into (R, A) and (R, B). */
export function splitRows(W: Float32Array, R: number, A: number, B: number): [Float32Array, Float32Array] {
  const a = new Float32Array(R * A), b = new Float32Array(R * B);
  for (let r = 0; r < R; r++) {
    a.set(W.subarray(r * (A + B), r * (A + B) + A), r * A);
    b.set(W.subarray(r * (A + B) + A, (r + 1) * (A + B)), r * B);
  }
  return [a, b];
}
