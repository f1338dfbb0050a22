// The language model's loss: softmax cross-entropy of each row of logits against its target word,
// and its gradient in place. At a 10 000-word vocabulary this is every token's largest elementwise
// job (ten thousand exponentials), so it runs in WebAssembly across the pool.
import * as check from "./check.js";
import type { WasmContext } from "./context.js";

export interface LossKernels {
  /**
   * Σ over rows of −log softmax(logits[r])[targets[r]], in float64, each row stabilised by its
   * maximum; logits is (rows, V), targets (rows) in [0, V). With gradScale > 0, logits is
   * overwritten by gradScale · (softmax − onehot(target)): the gradient of gradScale · the sum
   * (gradScale = 1/rows for the mean). gradScale = 0 leaves logits unchanged.
   */
  softmaxCrossEntropy(logits: Float32Array, targets: Int32Array, rows: number, V: number, gradScale: number): number;
}

function checkLoss(k: string, logits: unknown, targets: unknown, rows: number, V: number, gradScale: number): void {
  check.size(k, "rows", rows);
  check.size(k, "V", V, 1);
  check.f32(k, "logits", logits, rows * V);
  check.i32(k, "targets", targets, rows);
  check.indices(k, "targets", targets as Int32Array, V);
  if (!(gradScale >= 0 && Number.isFinite(gradScale))) throw new RangeError(`${k}: gradScale must be finite and ≥ 0, got ${gradScale}`);
}

export const lossReference: LossKernels = {
  softmaxCrossEntropy(logits, targets, rows, V, gradScale) {
    checkLoss("softmaxCrossEntropy", logits, targets, rows, V, gradScale);
    let sum = 0;
    for (let r = 0; r < rows; r++) {
      const o = r * V, target = o + targets[r];
      let m = -Infinity;
      for (let v = o; v < o + V; v++) if (logits[v] > m) m = logits[v];
      const zt = logits[target];
      let s = 0;
      for (let v = o; v < o + V; v++) {
        const e = Math.exp(logits[v] - m);
        s += e;
        if (gradScale > 0) logits[v] = e;
      }
      if (gradScale > 0) {
        const scale = gradScale / s;
        for (let v = o; v < o + V; v++) logits[v] *= scale;
        logits[target] -= gradScale;
      }
      sum += m + Math.log(s) - zt;
    }
    return sum;
  },
};

/** Work per logit in multiply-add units of ctx.threadsFor: a float64 exponential and two passes. */
const LOGIT_WORK = 10;

export function lossWasm(ctx: WasmContext): LossKernels {
  // One float64 partial sum per thread (heap arrays are 64-byte aligned).
  const partialsBlock = ctx.heap.f32(2 * ctx.pool.threads);
  const partials = new Float64Array(partialsBlock.buffer, partialsBlock.byteOffset, ctx.pool.threads);
  return {
    softmaxCrossEntropy(logits, targets, rows, V, gradScale) {
      const k = "softmaxCrossEntropy";
      checkLoss(k, logits, targets, rows, V, gradScale);
      partials.fill(0); // threads beyond the ones that run leave their slot at 0
      ctx.pool.run("softmax_xent_f32", ctx.threadsFor(rows * V * LOGIT_WORK), ctx.ptr(k, "partials", partialsBlock),
        ctx.ptr(k, "logits", logits), ctx.ptr(k, "targets", targets), rows, V, gradScale);
      let s = 0;
      for (let t = 0; t < partials.length; t++) s += partials[t];
      return s;
    },
  };
}
