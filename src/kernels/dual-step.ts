// One dual-module LSTM step as one kernel: projection → little module (INT8) → selection → big
// rows (fp32 or INT8) → state update. The plain TypeScript twin is the composition of the
// separate kernels' references, in the order DualModel runs them; the WebAssembly version runs
// all phases in one pool call with barriers in shared memory between them (assembly/dual-step.ts).
import * as check from "./check.js";
import type { WasmContext } from "./context.js";
import { elementwiseReference } from "./elementwise.js";
import { matvecReference } from "./matvec.js";
import { quantReference } from "./quant.js";
import { selectReference } from "./select.js";

/**
 * The arrays of one LSTM layer's dual step (H hidden units, R = 4H gate rows, C = E + H inputs,
 * k2 projected values); the kernel keeps them for the life of the plan, so they must not be
 * replaced (contents may change: xh, h, c every step, lo and hi with the thresholds).
 */
export interface LstmDualPlan {
  hidden: number;
  xh: Float32Array;          // (C) [x | h]; h is its tail
  h: Float32Array;           // (H) view of xh's tail
  c: Float32Array;           // (H)
  offsets: Int32Array;       // (k2 + 1 … as project) the ternary projection's layout
  indices: Uint16Array;
  projScale: number;
  p: Float32Array;           // (k2) projection output
  littleW: Int8Array;        // (R, k2) INT8 little weights, one scale per row
  littleScales: Float32Array;
  littleB: Float32Array;     // (R)
  pre: Float32Array;         // (R) pre-activations: estimates, then the sensitive rows recomputed
  lo: Float32Array;          // (4) sensitive iff lo[g] < estimate < hi[g]
  hi: Float32Array;
  rowIdx: Int32Array;        // (R) out: the sensitive rows, ascending, the first `count`
  big: { bits: 32; W: Float32Array } | { bits: 8; Wq: Int8Array; scales: Float32Array };
  b: Float32Array;           // (R) big bias
}

export interface DualStepKernels {
  /**
   * One dual step of an LSTM layer on plan.xh: p = project(xh); pre = little(p); the rows whose
   * estimate lies in their gate's sensitive interval are listed in rowIdx and recomputed by the
   * big module (all of them: the dense product); then c, h update as lstmGates. Returns the count
   * of sensitive rows.
   */
  lstmDualStep(plan: LstmDualPlan): number;
}

/** Sizes of every array of the plan, and the projection's layout (checked once per plan). */
function checkPlan(k: string, plan: LstmDualPlan): void {
  const H = plan.hidden, R = 4 * H, k2 = plan.p.length;
  check.size(k, "hidden", H, 1);
  const C = plan.xh.length;
  check.f32(k, "xh", plan.xh, C);
  if (C <= H) throw new RangeError(`${k}: xh (${C}) must be longer than hidden (${H})`);
  check.f32(k, "h", plan.h, H);
  if (plan.h.buffer !== plan.xh.buffer || plan.h.byteOffset !== plan.xh.byteOffset + 4 * (C - H)) {
    throw new RangeError(`${k}: h must be the view of xh's last ${H} values`);
  }
  check.f32(k, "c", plan.c, H);
  check.size(k, "k2", k2, 1);
  check.i32(k, "offsets", plan.offsets, 2 * k2 + 1);
  if (!(plan.indices instanceof Uint16Array)) check.u16(k, "indices", plan.indices, 0);
  check.indices(k, "indices", plan.indices, C);
  const o = plan.offsets;
  for (let i = 1; i < o.length; i++) if (!(o[i - 1] <= o[i])) throw new RangeError(`${k}: offsets must be non-decreasing (offsets[${i}])`);
  if (o[0] !== 0 || o[2 * k2] !== plan.indices.length) throw new RangeError(`${k}: offsets must run from 0 to indices.length`);
  if (!Number.isFinite(plan.projScale)) throw new RangeError(`${k}: projScale must be finite`);
  check.i8(k, "littleW", plan.littleW, R * k2);
  check.f32(k, "littleScales", plan.littleScales, R);
  check.finite(k, "littleScales", plan.littleScales, true);
  check.f32(k, "littleB", plan.littleB, R);
  check.f32(k, "pre", plan.pre, R);
  check.f32(k, "lo", plan.lo, 4);
  check.f32(k, "hi", plan.hi, 4);
  check.i32(k, "rowIdx", plan.rowIdx, R);
  check.f32(k, "b", plan.b, R);
  if (plan.big.bits === 32) check.f32(k, "big.W", plan.big.W, R * C);
  else {
    check.i8(k, "big.Wq", plan.big.Wq, R * C);
    check.f32(k, "big.scales", plan.big.scales, R);
    check.finite(k, "big.scales", plan.big.scales, true);
  }
}

function checkBounds(k: string, plan: LstmDualPlan): void {
  for (let g = 0; g < 4; g++) {
    if (Number.isNaN(plan.lo[g]) || Number.isNaN(plan.hi[g])) throw new RangeError(`${k}: lo[${g}] and hi[${g}] must not be NaN`);
  }
}

const plans = new WeakSet<LstmDualPlan>();

export const dualStepReference: DualStepKernels = {
  lstmDualStep(plan) {
    const k = "lstmDualStep";
    if (!plans.has(plan)) { checkPlan(k, plan); plans.add(plan); }
    checkBounds(k, plan);
    const H = plan.hidden, R = 4 * H, C = plan.xh.length, k2 = plan.p.length, big = plan.big;
    elementwiseReference.project(plan.p, plan.xh, plan.offsets, plan.indices, plan.projScale, k2, C);
    const pq = new Int8Array(k2), ps = quantReference.quantize(pq, plan.p, k2);
    quantReference.matvecI8(plan.pre, plan.littleW, plan.littleScales, pq, ps, plan.littleB, R, k2);
    const count = selectReference.selectSensitive(plan.rowIdx, plan.pre, plan.lo, plan.hi, H, 4);
    if (big.bits === 32) {
      if (count === R) matvecReference.matvec(plan.pre, big.W, plan.xh, plan.b, R, C);
      else matvecReference.matvecRows(plan.pre, big.W, plan.xh, plan.b, plan.rowIdx, count, R, C);
    } else {
      const xq = new Int8Array(C), xs = quantReference.quantize(xq, plan.xh, C);
      if (count === R) quantReference.matvecI8(plan.pre, big.Wq, big.scales, xq, xs, plan.b, R, C);
      else quantReference.matvecI8Rows(plan.pre, big.Wq, big.scales, xq, xs, plan.b, plan.rowIdx, count, R, C);
    }
    elementwiseReference.lstmGates(plan.h, plan.c, plan.pre, H);
    return count;
  },
};

// The plan block's i32 slots: keep in step with assembly/dual-step.ts. Slot 6 is unused; the
// projection's scale is a float64 at slots 28–29, the barrier's two i32 at 30–31.
const SLOT = {
  xh: 0, cols: 1, hidden: 2, offsets: 3, indices: 4, k2: 5, p: 7, littleW: 8, littleScales: 9,
  littleB: 10, pq: 11, pre: 12, lo: 13, hi: 14, rowIdx: 15, counts: 16, bigBits: 17, bigW: 18, bigScales: 19,
  b: 20, xhq: 21, xhScale: 22, xw: 23, h: 24, c: 25, barrier: 26, total: 27, projScale64: 28,
} as const;
const SLOTS = 32;

/**
 * Below this many big weights (4H · (E + H)) the fused step runs on the calling thread alone. A
 * worker asleep when the step begins wakes tens of microseconds later, and the fused step's first
 * barrier waits for it where separate kernels would have let the calling thread take its share.
 * Measured on the 2-vCPU AMD EPYC VM, quiet, cold (flush, 1 ms pause): H = 256 (2^19 weights) the
 * little module alone 0.080 ms on 1 thread, 0.121 on 2; H = 512 (2^21) 0.133 / 0.206 alone but
 * 0.568 / 0.496 at 50 %; H ≥ 750 2 threads are faster at every ratio.
 */
export const FUSED_PARALLEL_MIN_WORK = 1 << 21;

/** Bytes of one thread's widened copy of x (assembly/quant.ts widenedBytes) and of its quantized projection. */
const widenedBytes = (n: number) => Math.ceil((n * 2) / 64) * 64;
const padded = (n: number) => Math.ceil(n / 64) * 64;

export function dualStepWasm(ctx: WasmContext): DualStepKernels {
  const blocks = new WeakMap<LstmDualPlan, Int32Array>();

  /** The plan's block in the heap, made (and the plan checked) on first use. */
  const block = (k: string, plan: LstmDualPlan): Int32Array => {
    let s = blocks.get(plan);
    if (s) return s;
    checkPlan(k, plan);
    const threads = ctx.pool.threads, C = plan.xh.length, k2 = plan.p.length, heap = ctx.heap;
    s = heap.i32(SLOTS);
    const at = (name: string, a: ArrayBufferView) => ctx.ptr(k, name, a);
    s[SLOT.xh] = at("xh", plan.xh); s[SLOT.cols] = C; s[SLOT.hidden] = plan.hidden;
    s[SLOT.offsets] = at("offsets", plan.offsets); s[SLOT.indices] = at("indices", plan.indices);
    s[SLOT.k2] = k2; s[SLOT.p] = at("p", plan.p);
    new Float64Array(s.buffer, s.byteOffset + 4 * SLOT.projScale64, 1)[0] = plan.projScale;
    s[SLOT.littleW] = at("littleW", plan.littleW); s[SLOT.littleScales] = at("littleScales", plan.littleScales);
    s[SLOT.littleB] = at("littleB", plan.littleB); s[SLOT.pq] = heap.i8(threads * padded(k2)).byteOffset;
    s[SLOT.pre] = at("pre", plan.pre); s[SLOT.lo] = at("lo", plan.lo); s[SLOT.hi] = at("hi", plan.hi);
    s[SLOT.rowIdx] = at("rowIdx", plan.rowIdx); s[SLOT.counts] = heap.i32(threads).byteOffset;
    s[SLOT.bigBits] = plan.big.bits;
    if (plan.big.bits === 32) s[SLOT.bigW] = at("big.W", plan.big.W);
    else {
      s[SLOT.bigW] = at("big.Wq", plan.big.Wq); s[SLOT.bigScales] = at("big.scales", plan.big.scales);
      s[SLOT.xhq] = heap.i8(C).byteOffset;
    }
    s[SLOT.b] = at("b", plan.b);
    s[SLOT.xw] = heap.u8(threads * widenedBytes(Math.max(k2, C))).byteOffset;
    s[SLOT.h] = at("h", plan.h); s[SLOT.c] = at("c", plan.c);
    s[SLOT.barrier] = s.byteOffset + 4 * 30;
    blocks.set(plan, s);
    return s;
  };

  return {
    lstmDualStep(plan) {
      const k = "lstmDualStep", s = block(k, plan);
      checkBounds(k, plan);
      const R = 4 * plan.hidden, C = plan.xh.length;
      ctx.pool.run("lstm_dual_step", R * C >= FUSED_PARALLEL_MIN_WORK ? ctx.pool.active : 1, s.byteOffset);
      return s[SLOT.total];
    },
  };
}
