// The little module of one recurrent layer: a sparse random projection of the layer's input
// [x | h] to [P_x x | P_h h] (2k values), then small quantized weights that estimate every gate
// neuron's pre-activation in two parts, from x and from h:
//   estX = W_LL_x · P_x x + b_LL_x,   estH = W_LL_h · P_h h + b_LL_h        (rows each)
// Two parts because the GRU candidate gate needs them apart; an LSTM just adds them.
// Weights at ≤ 8 bits run on the INT8 kernel (the projected input is quantized per call); 16 and
// 32 bits run on the fp32 kernel with the weights at that precision (the paper's precision sweep).
import type { Runtime } from "../runtime/runtime.js";
import { blockProjection, type SparseProjection } from "./projection.js";
import { BITS, quantizeRows, type Bits } from "./quantize.js";
import * as check from "../kernels/check.js";

/** Fitted little weights in fp32, before quantization. */
export interface LittleWeights {
  Wx: Float32Array; // (rows, k)
  Wh: Float32Array; // (rows, k)
  bx: Float32Array; // (rows)
  bh: Float32Array; // (rows)
}

/** One part (x or h) of the little module at its precision, in the heap. */
interface Part {
  W: Float32Array | null;       // (rows, k) fp32 path
  Wq: Int8Array | null;         // (rows, k) INT8 path
  scales: Float32Array | null;  // (rows)
  b: Float32Array;              // (rows)
  p: Float32Array;              // (k) projected input: a view into the shared projection output
  pq: Int8Array;                // (k) quantized projected input
}

/** The block-diagonal projection [P_x x | P_h h] of a layer input [x | h], held in the heap. */
export class Projector {
  readonly projection: SparseProjection;
  readonly projected: Float32Array;       // (2k) output of the last project()
  private readonly offsets: Int32Array;
  private readonly indices: Int32Array;

  constructor(private readonly rt: Runtime, readonly input: number, readonly hidden: number, readonly k: number, readonly seed: number) {
    check.size("Projector", "k", k, 1);
    this.projection = blockProjection([input, hidden], k, seed);
    this.offsets = copyI32(rt, this.projection.offsets);
    this.indices = copyI32(rt, this.projection.indices);
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
  private readonly x: Part;
  private readonly h: Part;

  constructor(private readonly rt: Runtime, readonly rows: number, readonly input: number, readonly hidden: number,
              readonly k: number, readonly seed: number, readonly bits: Bits, readonly weights: LittleWeights) {
    const name = "LittleModule";
    if (!BITS.includes(bits)) throw new RangeError(`${name}: bits must be one of ${BITS.join(", ")}, got ${bits}`);
    for (const [n, a, len] of [["Wx", weights.Wx, rows * k], ["Wh", weights.Wh, rows * k], ["bx", weights.bx, rows], ["bh", weights.bh, rows]] as const) {
      check.f32(name, n, a, len);
    }
    this.projector = new Projector(rt, input, hidden, k, seed);
    const projected = this.projector.projected, pq = rt.heap.i8(2 * k);
    this.x = this.part(weights.Wx, weights.bx, projected.subarray(0, k), pq.subarray(0, k));
    this.h = this.part(weights.Wh, weights.bh, projected.subarray(k), pq.subarray(k));
    this.bytes = 2 * quantizedBytes(rows, k, bits) + 2 * rows * 4;
  }

  private part(W: Float32Array, b: Float32Array, p: Float32Array, pq: Int8Array): Part {
    const q = quantizeRows(W, this.rows, this.k, this.bits);
    const heap = this.rt.heap;
    if (this.bits <= 8) {
      const Wq = heap.i8(q.q!.length);
      Wq.set(q.q!);
      return { W: null, Wq, scales: heap.copyF32(q.scales), b: heap.copyF32(b), p, pq };
    }
    return { W: heap.copyF32(q.dequantized), Wq: null, scales: null, b: heap.copyF32(b), p, pq };
  }

  /** Estimates both parts of every row's pre-activation from the layer input xh = [x | h]. */
  estimate(estX: Float32Array, estH: Float32Array, xh: Float32Array): void {
    this.projector.project(xh);
    this.apply(estX, this.x);
    this.apply(estH, this.h);
  }

  private apply(out: Float32Array, part: Part): void {
    const kr = this.rt.kernels;
    if (part.Wq) {
      const s = kr.quantize(part.pq, part.p, this.k);
      kr.matvecI8(out, part.Wq, part.scales!, part.pq, s, part.b, this.rows, this.k);
    } else {
      kr.matvec(out, part.W!, part.p, part.b, this.rows, this.k);
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
