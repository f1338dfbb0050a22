// A pool worker's body, the same in Node and in a browser: instantiate the kernels over the shared
// memory, say ready, then loop forever: wait for the next generation, claim its share (unless the
// calling thread took it first), run it, count itself done. See pool.ts for the protocol; worker.ts (Node) and worker.browser.ts (a Web
// Worker) only deliver `WorkerInit` and the ready message.
import { CTL, CTL_INTS, MAX_ARGS, MAX_THREADS, MIN_SPIN_ITERATIONS, SPIN_ITERATIONS } from "./pool.js";
import { instantiateKernels, kernelNames } from "./wasm.js";

export interface WorkerInit { tid: number; module: WebAssembly.Module; memory: WebAssembly.Memory; shared: SharedArrayBuffer }

export function serveKernels({ tid, module, memory, shared }: WorkerInit, ready: () => void): void {
  const exports = instantiateKernels(module, memory);
  const fns = kernelNames(module).map((n) => exports[n] as (...a: number[]) => void);
  const ctl = new Int32Array(shared, 0, CTL_INTS);
  const args = new Float64Array(shared, CTL_INTS * 4, MAX_ARGS);
  ready();

  let seen = Atomics.load(ctl, CTL.generation);
  // Adaptive spin: a wait that ended in sleep halves the next spin (the calls come slower than a
  // spin: spinning only takes a core from the calling thread or another process), one that ended
  // while spinning doubles it (back-to-back kernels, as inside a step).
  let spinLimit = SPIN_ITERATIONS;
  for (;;) {
    let slept = false;
    for (let spin = 0; Atomics.load(ctl, CTL.generation) === seen; spin++) {
      if (spin > spinLimit) { Atomics.wait(ctl, CTL.generation, seen); slept = true; }
    }
    spinLimit = slept ? Math.max(MIN_SPIN_ITERATIONS, spinLimit >> 1) : Math.min(SPIN_ITERATIONS, spinLimit << 1);
    seen = Atomics.load(ctl, CTL.generation);
    if (Atomics.load(ctl, CTL.stop)) break;
    // Claim before reading the call: a claim of generation `seen` succeeds only while that call is
    // still waiting for this share, so its arguments cannot have been replaced by the next call's.
    if (tid >= MAX_THREADS || Atomics.compareExchange(ctl, CTL.claims + tid, ~seen, seen) !== ~seen) continue;
    const nth = ctl[CTL.nth];
    try {
      const a = Array.from(args.subarray(0, ctl[CTL.argc]));
      fns[ctl[CTL.kernel]](...a, tid, nth);
    } catch {
      Atomics.store(ctl, CTL.failed, 1);
    }
    Atomics.add(ctl, CTL.done, 1);
    Atomics.notify(ctl, CTL.done);
  }
}
