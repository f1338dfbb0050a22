// What every fast kernel wrapper needs: the heap (to turn arrays into pointers, refusing arrays that
// live elsewhere) and the pool (to dispatch, on as many threads as the work pays for).
import type { Heap } from "../runtime/heap.js";
import type { Pool } from "../runtime/pool.js";

/** Below this many multiply-adds a kernel runs on the calling thread: waking workers would cost more. */
export const PARALLEL_MIN_WORK = 1 << 16;

export class WasmContext {
  constructor(readonly heap: Heap, readonly pool: Pool) {}

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
