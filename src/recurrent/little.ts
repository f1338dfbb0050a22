// The little module of one recurrent layer: a projection of the layer's input [x | h] to p (2k
// values), then small quantized weights that estimate every gate neuron's pre-activation. An LSTM only
// needs the sum, so its module is one product over all of p:
//   est = [W_LL_x | W_LL_h] · p + b_LL_x + b_LL_h                                   (rows)
// (one pass over the weights, one quantization of p). A GRU's candidate gate needs the x part and
// the h part apart, so its module has two:
//   estX = W_LL_x · p_x + b_LL_x,   estH = W_LL_h · p_h + b_LL_h
// Weights at 5–8 bits run on the INT8 kernel (the projected input is quantized per call), at ≤ 4
// bits on the INT4 kernel over packed nibbles (half the bytes, the same exact integer sums); 16 and
// 32 bits run on the fp32 kernel with the weights at that precision (the paper's precision sweep).
//
// Two projections:
//   "random": the paper's sparse ternary [P_x x | P_h h] (16-bit column lists, additions only);
//   "rrr":    data-aware, the reduced-rank basis of the layer's pre-activations (dual/reduced-rank.ts)
//             in INT8 rows: for an LSTM one (2k, E+H) block over all of [x | h], for a GRU a (k, E)
//             block over x and a (k, H) block over h (its parts must stay apart).
import type { Runtime } from "../runtime/runtime.js";
import { blockProjection, type SparseProjection } from "../dual/projection.js";
import { BITS, quantizeRows, type Bits } from "../dual/quantize.js";
import * as check from "../kernels/check.js";
import { i4RowBytes, packInt4 } from "../kernels/quant.js";
import { interleaveRows } from "./lstm.js";

export type ProjectionKind = "random" | "rrr";
export const PROJECTIONS: ProjectionKind[] = ["random", "rrr"];

/** What the little module needs of a projection: p = project([x | h]), and its cost per call. */
export interface Projector {
  readonly kind: ProjectionKind;
  readonly input: number;              // E
  readonly hidden: number;             // H
  readonly k: number;                  // p has 2k values
  readonly projected: Float32Array;    // (2k) output of the last project()
  project(xh: Float32Array): Float32Array;
  readonly additions: number;          // per call: additions of a sparse projection
  readonly macs: number;               // per call: multiply-adds of a dense one
  readonly bytes: number;              // read per call: indices and offsets, or INT8 rows and scales
}

/** The paper's block-diagonal sparse random projection [P_x x | P_h h], held in the heap. */
export class RandomProjector implements Projector {
  readonly kind = "random";
  readonly projection: SparseProjection;
  readonly projected: Float32Array;
  readonly macs = 0;
  readonly offsets: Int32Array;   // the projection's layout in the heap (kernels' project)
  readonly indices: Uint16Array;

  constructor(private readonly rt: Runtime, readonly input: number, readonly hidden: number, readonly k: number, readonly seed: number) {
    check.size("RandomProjector", "k", k, 1);
    this.projection = blockProjection([input, hidden], k, seed);
    this.offsets = rt.heap.i32(this.projection.offsets.length);
    this.offsets.set(this.projection.offsets);
    this.indices = rt.heap.u16(this.projection.indices.length);
    this.indices.set(this.projection.indices);
    this.projected = rt.heap.f32(2 * k);
  }

  project(xh: Float32Array): Float32Array {
    this.rt.kernels.project(this.projected, xh, this.offsets, this.indices, this.projection.scale,
      2 * this.k, this.input + this.hidden);
    return this.projected;
  }

  get additions(): number { return this.projection.indices.length; }
  get bytes(): number { return this.indices.byteLength + this.offsets.byteLength; }
}

/** One dense block of a data-aware projection: `rows` values of p from a column range of [x | h]. */
export interface ProjectionBlock {
  start: number;       // first column of [x | h] read
  cols: number;        // columns read
  rows: number;        // values of p written (consecutive; blocks in order)
  B: Float32Array;     // (rows, cols) fp32, before quantization
}

/** A data-aware projection: dense blocks in INT8 with one scale per row, the input quantized per block. */
export class DenseProjector implements Projector {
  readonly kind = "rrr";
  readonly projected: Float32Array;
  readonly additions = 0;
  private readonly parts: { block: ProjectionBlock; Bq: Int8Array; scales: Float32Array; zero: Float32Array; xq: Int8Array; out: Float32Array }[];

  constructor(private readonly rt: Runtime, readonly input: number, readonly hidden: number, readonly k: number,
              readonly blocks: ProjectionBlock[]) {
    const f = "DenseProjector", width = input + hidden;
    check.size(f, "k", k, 1);
    let rows = 0;
    blocks.forEach((b, i) => {
      check.size(f, `blocks[${i}].rows`, b.rows, 1);
      check.size(f, `blocks[${i}].cols`, b.cols, 1);
      if (!(Number.isInteger(b.start) && b.start >= 0 && b.start + b.cols <= width)) {
        throw new RangeError(`${f}: blocks[${i}] reads columns [${b.start}, ${b.start + b.cols}), outside [x | h]'s ${width}`);
      }
      check.f32(f, `blocks[${i}].B`, b.B, b.rows * b.cols);
      rows += b.rows;
    });
    if (rows !== 2 * k) throw new RangeError(`${f}: the blocks write ${rows} projected values, expected 2k = ${2 * k}`);
    this.projected = rt.heap.f32(2 * k);
    let at = 0;
    this.parts = blocks.map((block) => {
      const q = quantizeRows(block.B, block.rows, block.cols, 8), Bq = rt.heap.i8(block.rows * block.cols);
      Bq.set(q.q!);
      const out = this.projected.subarray(at, at + block.rows);
      at += block.rows;
      return { block, Bq, scales: rt.heap.copyF32(q.scales), zero: rt.heap.f32(block.rows), xq: rt.heap.i8(block.cols), out };
    });
  }

  project(xh: Float32Array): Float32Array {
    const kr = this.rt.kernels;
    for (const { block, Bq, scales, zero, xq, out } of this.parts) {
      const s = kr.quantize(xq, xh.subarray(block.start, block.start + block.cols), block.cols);
      kr.matvecI8(out, Bq, scales, xq, s, zero, block.rows, block.cols);
    }
    return this.projected;
  }

  get macs(): number { return this.parts.reduce((n, p) => n + p.block.rows * p.block.cols, 0); }
  get bytes(): number { return this.parts.reduce((n, p) => n + p.Bq.byteLength + p.scales.byteLength, 0); }
}

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
  Wq: Int8Array | null;         // (rows, cols) INT8 path (5–8 bits)
  W4: Uint8Array | null;        // (rows, i4RowBytes(cols)) packed INT4 path (≤ 4 bits)
  scales: Float32Array | null;  // (rows)
  b: Float32Array;              // (rows)
  p: Float32Array;              // (cols) projected input: a view into the shared projection output
  pq: Int8Array;                // (cols) quantized projected input
}

export class LittleModule {
  readonly k: number;
  readonly input: number;   // E
  readonly hidden: number;  // H
  /** Bytes read per step: the projection's, and the little weights, scales and biases at `bits`. */
  readonly bytes: number;
  /** The module's products: one for a joint module, the x part and the h part otherwise. */
  private readonly parts: Part[];

  /** `joint`: estimate only the sum of the two parts (an LSTM), in one product. */
  constructor(private readonly rt: Runtime, readonly rows: number, readonly projector: Projector, readonly bits: Bits,
              readonly weights: LittleWeights, readonly joint: boolean) {
    const name = "LittleModule", k = projector.k;
    if (!BITS.includes(bits)) throw new RangeError(`${name}: bits must be one of ${BITS.join(", ")}, got ${bits}`);
    for (const [n, a, len] of [["Wx", weights.Wx, rows * k], ["Wh", weights.Wh, rows * k], ["bx", weights.bx, rows], ["bh", weights.bh, rows]] as const) {
      check.f32(name, n, a, len);
    }
    this.k = k;
    this.input = projector.input;
    this.hidden = projector.hidden;
    const p = projector.projected, pq = rt.heap.i8(2 * k);
    if (joint) {
      const b = weights.bx.map((v, r) => v + weights.bh[r]);
      this.parts = [this.part(interleaveRows(weights.Wx, weights.Wh, rows, k, k), b, p, pq)];
    } else {
      this.parts = [this.part(weights.Wx, weights.bx, p.subarray(0, k), pq.subarray(0, k)),
                    this.part(weights.Wh, weights.bh, p.subarray(k), pq.subarray(k))];
    }
    this.bytes = projector.bytes + this.parts.reduce((n, part) => n + quantizedBytes(rows, part.cols, bits) + rows * 4, 0);
  }

  private part(W: Float32Array, b: Float32Array, p: Float32Array, pq: Int8Array): Part {
    const cols = p.length, q = quantizeRows(W, this.rows, cols, this.bits);
    const heap = this.rt.heap;
    if (this.bits <= 4) {
      const W4 = heap.u8(this.rows * i4RowBytes(cols));
      packInt4(W4, q.q!, this.rows, cols);
      return { cols, W: null, Wq: null, W4, scales: heap.copyF32(q.scales), b: heap.copyF32(b), p, pq };
    }
    if (this.bits <= 8) {
      const Wq = heap.i8(q.q!.length);
      Wq.set(q.q!);
      return { cols, W: null, Wq, W4: null, scales: heap.copyF32(q.scales), b: heap.copyF32(b), p, pq };
    }
    return { cols, W: heap.copyF32(q.dequantized), Wq: null, W4: null, scales: null, b: heap.copyF32(b), p, pq };
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

  /**
   * The heap arrays a fused dual step reads (src/kernels/dual-step.ts): those of a joint INT8
   * module (5–8 bits) over the random projection; null for any other module.
   */
  get fusedArrays(): { offsets: Int32Array; indices: Uint16Array; scale: number; p: Float32Array;
                       Wq: Int8Array; scales: Float32Array; b: Float32Array } | null {
    const part = this.parts[0], proj = this.projector;
    if (!this.joint || !part.Wq || !part.scales || !(proj instanceof RandomProjector)) return null;
    return { offsets: proj.offsets, indices: proj.indices, scale: proj.projection.scale, p: part.p, Wq: part.Wq, scales: part.scales, b: part.b };
  }

  private apply(out: Float32Array, part: Part): void {
    const kr = this.rt.kernels;
    if (part.W4) {
      const s = kr.quantize(part.pq, part.p, part.cols);
      kr.matvecI4(out, part.W4, part.scales!, part.pq, s, part.b, this.rows, part.cols);
    } else if (part.Wq) {
      const s = kr.quantize(part.pq, part.p, part.cols);
      kr.matvecI8(out, part.Wq, part.scales!, part.pq, s, part.b, this.rows, part.cols);
    } else {
      kr.matvec(out, part.W!, part.p, part.b, this.rows, part.cols);
    }
  }

  /** Work per step: the projection's additions, and multiply-adds of a dense projection and the little weights. */
  get projectionOps(): number { return this.projector.additions; }
  get macs(): number { return this.projector.macs + 2 * this.rows * this.k; }
}

/**
 * Storage of a (rows, k) matrix at `bits` per weight, plus one fp32 scale per row below 32 bits:
 * 4 bits as the packed int4 rows the kernel reads (i4RowBytes); 1 and 2 bits at their nominal
 * size (the paper's precision sweep; they run on the int4 kernel), 16 bits likewise.
 */
export function quantizedBytes(rows: number, k: number, bits: Bits): number {
  if (bits === 4) return rows * (i4RowBytes(k) + 4);
  return Math.ceil((rows * k * bits) / 8) + (bits < 32 ? rows * 4 : 0);
}
