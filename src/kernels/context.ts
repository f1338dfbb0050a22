// What every fast kernel wrapper needs: the heap (to turn arrays into pointers, refusing arrays that
// live elsewhere) and the pool (to dispatch, on as many threads as the work pays for).
import type { Heap } from "../runtime/heap.js";
import type { Pool } from "../runtime/pool.js";

/** Below this many multiply-adds a kernel runs on the calling thread: waking workers would cost more. */
export const PARALLEL_MIN_WORK = 1 << 16;

/**
 * The largest shapes the wrappers' scratch buffers are sized for, allocated once when the kernels
 * are made (RuntimeOptions.limits): a larger shape is an error naming the limit, never a silent
 * reallocation on the hot path.
 */
export interface KernelLimits {
  /** Output channels K of a dual-module convolution (convSensitive's per-thread cursors). */
  convChannels: number;
  /** Output positions OH·OW of a dual-module convolution (im2rowSensitive's per-thread marks). */
  convPositions: number;
  /** Columns of an INT8 matrix-vector product (its per-thread copy of x widened to 16 bits). */
  i8Cols: number;
}

/** Enough for ResNet-18 at ImageNet's 224×224 at any width up to 8×, and INT8 rows of 32768 inputs: a few hundred KiB per thread. */
export const DEFAULT_LIMITS: KernelLimits = { convChannels: 4096, convPositions: 224 * 224, i8Cols: 32768 };

export class WasmContext {
  constructor(readonly heap: Heap, readonly pool: Pool, readonly limits: KernelLimits = DEFAULT_LIMITS) {}

  /** Throws if `value` outgrows the scratch sized for limits[limit]. */
  within(kernel: string, limit: keyof KernelLimits, value: number): void {
    if (value > this.limits[limit]) {
      throw new RangeError(`${kernel}: ${limit} ${value} exceeds ${this.limits[limit]}, the limit its scratch was sized for: `
        + `create the Runtime with { limits: { ${limit}: ${value} } } or more`);
    }
  }

  /** The byte offset of a heap array (0 for null): only after the shared checks have passed. */
  ptr(kernel: string, name: string, a: ArrayBufferView | null): number {
    if (a === null) return 0;
    if (!this.heap.owns(a)) {
      throw new TypeError(`${kernel}: ${name} must be allocated in the runtime's heap (runtime.heap.f32(n) and friends), not a plain typed array`);
    }
    return a.byteOffset;
  }

  threadsFor(work: number): number {
    return work < PARALLEL_MIN_WORK ? 1 : this.pool.active;
  }
}
