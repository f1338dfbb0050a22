// The little module of one recurrent layer: a sparse random projection of the layer's input
// [x | h] to p = [P_x x | P_h h] (2k values), then small quantized weights that estimate every gate
// neuron's pre-activation. An LSTM only needs the sum, so its module is one product over all of p:
//   est = [W_LL_x | W_LL_h] · p + b_LL_x + b_LL_h                                   (rows)
// (one pass over the weights, one quantization of p). A GRU's candidate gate needs the x part and
// the h part apart, so its module has two:
//   estX = W_LL_x · P_x x + b_LL_x,   estH = W_LL_h · P_h h + b_LL_h
// Weights at ≤ 8 bits run on the INT8 kernel (the projected input is quantized per call); 16 and
// 32 bits run on the fp32 kernel with the weights at that precision (the paper's precision sweep).
import type { Runtime } from "../runtime/runtime.js";
import { blockProjection, type SparseProjection } from "../dual/projection.js";
import { BITS, quantizeRows, type Bits } from "../dual/quantize.js";
import * as check from "../kernels/check.js";
import { interleaveRows } from "./lstm.js";

/** Fitted little weights in fp32, before quantization. */
export interface LittleWeights {
  Wx: Float32Array; // (rows, k)
  Wh: Float32Array; // (rows, k)
  bx: Float32Array; // (rows)
  bh: Float32Array; // (rows)
}

/** One product of the little module (the joint one, or the x or h part) at its precision, in the heap. */
interface Part {
  cols: number;                 // 2k joint, k for a part
  W: Float32Array | null;       // (rows, cols) fp32 path
  Wq: Int8Array | null;         // (rows, cols) INT8 path
  scales: Float32Array | null;  // (rows)
  b: Float32Array;              // (rows)
  p: Float32Array;              // (cols) projected input: a view into the shared projection output
  pq: Int8Array;                // (cols) quantized projected input
}

/** The block-diagonal projection [P_x x | P_h h] of a layer input [x | h], held in the heap. */
export class Projector {
  readonly projection: SparseProjection;
  readonly projected: Float32Array;       // (2k) output of the last project()
  private readonly offsets: Int32Array;
  private readonly indices: Uint16Array;

  constructor(private readonly rt: Runtime, readonly input: number, readonly hidden: number, readonly k: number, readonly seed: number) {
    check.size("Projector", "k", k, 1);
    this.projection = blockProjection([input, hidden], k, seed);
    this.offsets = copyI32(rt, this.projection.offsets);
    this.indices = rt.heap.u16(this.projection.indices.length);
    this.indices.set(this.projection.indices);
    this.projected = rt.heap.f32(2 * k);
  }

  project(xh: Float32Array): Float32Array {
    this.rt.kernels.project(this.projected, xh, this.offsets, this.indices, this.projection.scale,
      2 * this.k, this.input + this.hidden);
    return this.projected;
  }

  /** Additions per call: the projection's nonzeros. */
  get ops(): number { return this.projection.indices.length; }
}

export class LittleModule {
  readonly projector: Projector;
  readonly bytes: number;                 // storage of weights and biases at `bits`
  /** The module's products: one for a joint module, the x part and the h part otherwise. */
  private readonly parts: Part[];

  /** `joint`: estimate only the sum of the two parts (an LSTM), in one product. */
  constructor(private readonly rt: Runtime, readonly rows: number, readonly input: number, readonly hidden: number,
              readonly k: number, readonly seed: number, readonly bits: Bits, readonly weights: LittleWeights,
              readonly joint: boolean) {
    const name = "LittleModule";
    if (!BITS.includes(bits)) throw new RangeError(`${name}: bits must be one of ${BITS.join(", ")}, got ${bits}`);
    for (const [n, a, len] of [["Wx", weights.Wx, rows * k], ["Wh", weights.Wh, rows * k], ["bx", weights.bx, rows], ["bh", weights.bh, rows]] as const) {
      check.f32(name, n, a, len);
    }
    this.projector = new Projector(rt, input, hidden, k, seed);
    const p = this.projector.projected, pq = rt.heap.i8(2 * k);
    if (joint) {
      const b = weights.bx.map((v, r) => v + weights.bh[r]);
      this.parts = [this.part(interleaveRows(weights.Wx, weights.Wh, rows, k, k), b, p, pq)];
    } else {
      this.parts = [this.part(weights.Wx, weights.bx, p.subarray(0, k), pq.subarray(0, k)),
                    this.part(weights.Wh, weights.bh, p.subarray(k), pq.subarray(k))];
    }
    this.bytes = this.parts.reduce((n, part) => n + quantizedBytes(rows, part.cols, bits) + rows * 4, 0);
  }

  private part(W: Float32Array, b: Float32Array, p: Float32Array, pq: Int8Array): Part {
    const cols = p.length, q = quantizeRows(W, this.rows, cols, this.bits);
    const heap = this.rt.heap;
    if (this.bits <= 8) {
      const Wq = heap.i8(q.q!.length);
      Wq.set(q.q!);
      return { cols, W: null, Wq, scales: heap.copyF32(q.scales), b: heap.copyF32(b), p, pq };
    }
    return { cols, W: heap.copyF32(q.dequantized), Wq: null, scales: null, b: heap.copyF32(b), p, pq };
  }

  /**
   * Estimates every row's pre-activation from the layer input xh = [x | h]: a joint module writes
   * the whole estimate to `est` (and needs no `estH`); a split one writes the x part to `est` and
   * the h part to `estH`.
   */
  estimate(est: Float32Array, estH: Float32Array | null, xh: Float32Array): void {
    if (this.joint === (estH !== null)) {
      throw new Error(`LittleModule.estimate: a ${this.joint ? "joint" : "split"} module ${this.joint ? "takes no" : "needs an"} estH`);
    }
    this.projector.project(xh);
    this.apply(est, this.parts[0]);
    if (estH) this.apply(estH, this.parts[1]);
  }

  private apply(out: Float32Array, part: Part): void {
    const kr = this.rt.kernels;
    if (part.Wq) {
      const s = kr.quantize(part.pq, part.p, part.cols);
      kr.matvecI8(out, part.Wq, part.scales!, part.pq, s, part.b, this.rows, part.cols);
    } else {
      kr.matvec(out, part.W!, part.p, part.b, this.rows, part.cols);
    }
  }

  /** Work per step: projection additions and little-weight multiply-adds. */
  get projectionOps(): number { return this.projector.ops; }
  get macs(): number { return 2 * this.rows * this.k; }
}

/** Storage of a (rows, k) matrix at `bits` per weight, plus one fp32 scale per row below 32 bits. */
export function quantizedBytes(rows: number, k: number, bits: Bits): number {
  return Math.ceil((rows * k * bits) / 8) + (bits < 32 ? rows * 4 : 0);
}

function copyI32(rt: Runtime, src: Int32Array): Int32Array {
  const a = rt.heap.i32(src.length);
  a.set(src);
  return a;
}
