// One Runtime per process is the usual case: it owns the shared memory, the heap over it, the
// worker pool and the fast kernels. Settings are normalised here once and passed down as arguments.
import { Heap } from "./heap.js";
import { defaultThreads, usableThreads } from "./platform.js";
import { Pool } from "./pool.js";
import { compileKernels, createMemory, instantiateKernels, pickVariant, type SimdVariant } from "./wasm.js";
import { DEFAULT_LIMITS, type KernelLimits, WasmContext } from "../kernels/context.js";
import { type Kernels, wasmKernels } from "../kernels/index.js";

export interface RuntimeOptions {
  /** Threads that split each large kernel, the calling one included. Default: one per core. */
  threads?: number;
  /** Which kernel build: 'auto' takes relaxed SIMD when the runtime validates it. Default 'auto'. */
  simd?: SimdVariant | "auto";
  /** The largest shapes the kernels' scratch serves, allocated once at start-up. Default DEFAULT_LIMITS. */
  limits?: Partial<KernelLimits>;
}

/** Bytes below this offset belong to the kernel module itself (it has no data, but keep a margin). */
const RESERVED_BYTES = 65536;

export class Runtime {
  private constructor(readonly variant: SimdVariant, readonly threads: number, readonly heap: Heap,
                      readonly pool: Pool, readonly kernels: Kernels) {}

  static async create(options: RuntimeOptions = {}): Promise<Runtime> {
    const requested = options.threads ?? defaultThreads();
    if (!Number.isInteger(requested) || requested < 1 || requested > 64) {
      throw new RangeError(`Runtime: threads must be an integer from 1 to 64, got ${requested}`);
    }
    const threads = usableThreads(requested);
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`Runtime: limits.${name} must be an integer ≥ 1, got ${value}`);
    }
    const variant = pickVariant(options.simd ?? "auto");
    const module = await compileKernels(variant);
    const memory = createMemory(17);
    const exports = instantiateKernels(module, memory);
    const heap = new Heap(memory, RESERVED_BYTES);
    const pool = await Pool.create(threads, module, memory, exports);
    return new Runtime(variant, threads, heap, pool, wasmKernels(new WasmContext(heap, pool, limits)));
  }

  close(): Promise<void> { return this.pool.close(); }
}
