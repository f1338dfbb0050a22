// Which neurons the big module must compute: the sensitive ones, read off the little module's
// pre-activations. The plain TypeScript twin (the reference) and the WebAssembly version.
import * as check from "./check.js";
import type { WasmContext } from "./context.js";

export interface SelectKernels {
  /**
   * Lists the sensitive elements of a (blocks·blockSize), made of gate blocks of blockSize (e.g. 4
   * blocks of H for an LSTM): element j of block g is sensitive iff lo[g] < a[j] < hi[g] (lo and hi
   * are (blocks), may be ∓∞, never NaN). Writes their indices in ascending order to
   * rowIdx[0 .. count) and returns count; rowIdx (≥ blocks·blockSize) is scratch up to
   * blocks·blockSize, nothing beyond is touched. NaN and ±∞ in a are never sensitive (the
   * inequalities are strict).
   *
   * The paper's rules on the activated little-module output become intervals on a:
   * - sigmoid, sensitive iff σ(a) > θ: lo = logit(θ) = ln(θ/(1 − θ)), hi = +∞;
   * - tanh, sensitive iff |tanh a| < θ: lo = −atanh(θ), hi = atanh(θ);
   * - ReLU, sensitive iff a > t: lo = t, hi = +∞.
   */
  selectSensitive(rowIdx: Int32Array, a: Float32Array, lo: Float32Array, hi: Float32Array,
                  blockSize: number, blocks: number): number;
}

function checkSelect(k: string, rowIdx: unknown, a: unknown, lo: unknown, hi: unknown, blockSize: number, blocks: number): void {
  check.size(k, "blockSize", blockSize);
  check.size(k, "blocks", blocks);
  const total = blockSize * blocks;
  check.f32(k, "a", a, total);
  check.f32(k, "lo", lo, blocks);
  check.f32(k, "hi", hi, blocks);
  if (!(rowIdx instanceof Int32Array)) check.i32(k, "rowIdx", rowIdx, total); // throws the shared type error
  if (rowIdx.length < total) throw new RangeError(`${k}: rowIdx must have at least ${total} elements, got ${rowIdx.length}`);
  for (let g = 0; g < blocks; g++) {
    if (Number.isNaN(lo[g]) || Number.isNaN(hi[g])) {
      throw new RangeError(`${k}: lo[${g}] = ${lo[g]} and hi[${g}] = ${hi[g]} must not be NaN`);
    }
  }
}

export const selectReference: SelectKernels = {
  selectSensitive(rowIdx, a, lo, hi, blockSize, blocks) {
    checkSelect("selectSensitive", rowIdx, a, lo, hi, blockSize, blocks);
    let count = 0;
    for (let j = 0; j < blockSize * blocks; j++) {
      const g = Math.floor(j / blockSize);
      if (lo[g] < a[j] && a[j] < hi[g]) rowIdx[count++] = j;
    }
    return count;
  },
};

export function selectWasm(ctx: WasmContext): SelectKernels {
  return {
    selectSensitive(rowIdx, a, lo, hi, blockSize, blocks) {
      const k = "selectSensitive";
      checkSelect(k, rowIdx, a, lo, hi, blockSize, blocks);
      // Single-threaded: the list must be in order, and one pass over a few thousand floats is cheap.
      return ctx.pool.call("select_sensitive_f32", ctx.ptr(k, "rowIdx", rowIdx), ctx.ptr(k, "a", a),
        ctx.ptr(k, "lo", lo), ctx.ptr(k, "hi", hi), blockSize, blocks);
    },
  };
}
