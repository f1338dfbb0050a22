// Fork/join over worker threads that share the kernels' memory. The calling thread is thread 0 and
// does its own share; workers wake on an Atomics counter, claim their share, run the same exported
// kernel with their (tid, nth), and count themselves done. No messages on the hot path, no locks
// inside kernels. A share is claimed by one compare-exchange, so when the calling thread is done
// with its own share it takes over every share whose worker has not started yet (asleep, or not
// scheduled because another process holds the core): on a busy machine a call then costs what one
// thread costs instead of waiting for a worker to be scheduled.
// Workers are started by the platform module (worker_threads in Node, Web Workers in a browser).
import { CAN_BLOCK, startWorker, type KernelWorker } from "./platform.js";
import { kernelNames } from "./wasm.js";

/** A function exported by assembly/index.ts. The pool's table comes from the compiled module (see
 *  kernelNames), so a name it lacks is an error at the first call, naming what the module has. */
export type KernelName = string;

// Control block layout (Int32 slots): the call's fields, then one claim slot per share (share s at
// CTL.claims + s; share 0 is always the calling thread's), followed by the argument slots (Float64).
// A share of generation g is open while its slot holds ~g and taken once it holds g.
export const CTL = { generation: 0, done: 1, kernel: 2, nth: 3, stop: 4, failed: 5, argc: 6, claims: 8 } as const;
export const MAX_THREADS = 64;
export const CTL_INTS = CTL.claims + MAX_THREADS;
export const MAX_ARGS = 16;

/** How long a waiting thread polls before it sleeps: back-to-back kernels then skip the wake-up latency. */
export const SPIN_ITERATIONS = 20000;
/** A worker's shortest spin, after calls kept arriving later than its spin (worker-loop.ts). */
export const MIN_SPIN_ITERATIONS = 1000;

/** How long the calling thread waits for the workers before it declares one dead (no kernel takes a minute). */
export const DEFAULT_WORKER_TIMEOUT_MS = 60_000;
/** A gap between two clock reads of the wait loop this long means the process itself was stopped. */
const SUSPENDED_MS = 1000;

type KernelFn = (...args: number[]) => number | void;

export class Pool {
  private readonly ctl: Int32Array;
  private readonly args: Float64Array;
  private readonly fns: KernelFn[];
  /** Kernel name → index into fns, the index the workers receive. */
  private readonly ids: Map<KernelName, number>;
  private activeThreads: number;
  /** Why the pool can no longer run kernels (closed, or a worker died); null while it can. */
  private broken: string | null = null;
  /** See DEFAULT_WORKER_TIMEOUT_MS; tests lower it. */
  workerTimeoutMs = DEFAULT_WORKER_TIMEOUT_MS;

  private constructor(readonly threads: number, private readonly workers: KernelWorker[], shared: ArrayBufferLike,
                      module: WebAssembly.Module, exports: WebAssembly.Exports) {
    this.ctl = new Int32Array(shared, 0, CTL_INTS);
    this.args = new Float64Array(shared, CTL_INTS * 4, MAX_ARGS);
    const names = kernelNames(module);
    this.fns = names.map((n) => exports[n] as KernelFn);
    this.ids = new Map(names.map((n, i) => [n, i]));
    this.activeThreads = threads;
    // A worker that exits or throws outside a kernel (terminated, out of memory) breaks the pool: the
    // event arrives between calls; a death during a call is caught by the bounded wait in run().
    workers.forEach((w, i) => w.onExit((why) => { this.broken ??= `pool worker ${i + 1} of ${threads - 1} died (${why})`; }));
  }

  /** Threads a large kernel is split over: at most `threads`; lowering it lets a benchmark compare
   *  thread counts on the same weights. */
  get active(): number { return this.activeThreads; }
  set active(n: number) {
    if (!Number.isInteger(n) || n < 1 || n > this.threads) {
      throw new RangeError(`Pool: active threads must be an integer from 1 to ${this.threads}, got ${n}`);
    }
    this.activeThreads = n;
  }

  static async create(threads: number, module: WebAssembly.Module, memory: WebAssembly.Memory,
                      exports: WebAssembly.Exports): Promise<Pool> {
    // A page that is not cross-origin isolated has no SharedArrayBuffer, and runs on one thread.
    const bytes = CTL_INTS * 4 + MAX_ARGS * 8;
    const shared: ArrayBufferLike = typeof SharedArrayBuffer === "function" ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
    const workers: KernelWorker[] = [];
    for (let tid = 1; tid < threads; tid++) workers.push(await startWorker({ tid, module, memory, shared: shared as SharedArrayBuffer }));
    return new Pool(threads, workers, shared, module, exports);
  }

  /**
   * Runs kernel `name` on `nth` threads (1 = the calling thread alone) and returns when all are done.
   * Arguments are the kernel's own, without (tid, nth). Callers validate arguments first: a kernel
   * must never be given pointers outside its buffers.
   */
  run(name: KernelName, nth: number, ...args: number[]): void {
    if (this.broken !== null) this.refuse(name);
    const id = this.id(name);
    if (nth <= 1 || this.workers.length === 0) {
      this.fns[id](...args, 0, 1);
      return;
    }
    nth = Math.min(nth, this.activeThreads);
    const { ctl } = this;
    if (args.length > MAX_ARGS) throw new Error(`Pool.run: ${name} has ${args.length} arguments, at most ${MAX_ARGS}`);
    for (let i = 0; i < args.length; i++) this.args[i] = args[i];
    ctl[CTL.kernel] = id;
    ctl[CTL.nth] = nth;
    ctl[CTL.argc] = args.length;
    Atomics.store(ctl, CTL.done, 0);
    Atomics.store(ctl, CTL.failed, 0);
    const gen = (ctl[CTL.generation] + 1) | 0;
    for (let s = 1; s < nth; s++) Atomics.store(ctl, CTL.claims + s, ~gen);
    Atomics.store(ctl, CTL.generation, gen);
    Atomics.notify(ctl, CTL.generation);
    let error: unknown;
    try {
      this.fns[id](...args, 0, nth);
    } catch (e) {
      error = e;
    }
    // Shares no worker has claimed yet are ours.
    let others = nth - 1;
    for (let s = 1; s < nth; s++) {
      if (Atomics.compareExchange(ctl, CTL.claims + s, ~gen, gen) !== ~gen) continue;
      others--;
      try {
        this.fns[id](...args, s, nth);
      } catch (e) {
        error ??= e;
      }
    }
    let deadline = 0, last = 0;
    for (let spin = 0; Atomics.load(ctl, CTL.done) < others; spin++) {
      if (spin <= SPIN_ITERATIONS) continue;
      // A browser's main thread may not wait: it spins until the workers are done.
      if (CAN_BLOCK) Atomics.wait(ctl, CTL.done, Atomics.load(ctl, CTL.done), 1);
      else if ((spin & 1023) !== 0) continue;
      // Only a long wait reads the clock: a worker that died mid-kernel never counts itself done.
      const now = performance.now();
      if (deadline === 0) deadline = now + this.workerTimeoutMs;
      // Reads are about a millisecond apart: a longer gap means the whole process was stopped
      // (SIGSTOP, a suspended tab), which is no worker's time.
      else if (now - last > SUSPENDED_MS) deadline += now - last;
      else if (now > deadline) {
        this.broken ??= `${others - Atomics.load(ctl, CTL.done)} pool worker(s) did not finish kernel ${name} within ${this.workerTimeoutMs} ms (a worker died?)`;
        this.refuse(name);
      }
      last = now;
    }
    if (error) throw new Error(`kernel ${name} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    if (Atomics.load(ctl, CTL.failed)) {
      throw new Error(`kernel ${name} failed in a worker thread (an out-of-bounds access or a bad argument that slipped past the checks); the pool is still usable`);
    }
  }

  private refuse(name: KernelName): never {
    throw new Error(`cannot run kernel ${name}: ${this.broken}; create a new Runtime`);
  }

  /**
   * Runs a single-threaded export on the calling thread and returns its result (a count, a scale).
   * Such exports take only their own arguments, no (tid, nth).
   */
  call(name: KernelName, ...args: number[]): number {
    if (this.broken !== null) this.refuse(name);
    return this.fns[this.id(name)](...args) as unknown as number;
  }

  private id(name: KernelName): number {
    const id = this.ids.get(name);
    if (id === undefined) {
      throw new Error(`Pool: the kernel module exports no function ${name} (it has ${[...this.ids.keys()].join(", ")}); add it to assembly/index.ts and run 'npm run build'`);
    }
    return id;
  }

  async close(): Promise<void> {
    this.broken = "the runtime is closed";
    Atomics.store(this.ctl, CTL.stop, 1);
    Atomics.add(this.ctl, CTL.generation, 1);
    Atomics.notify(this.ctl, CTL.generation);
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }
}
