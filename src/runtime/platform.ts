// What the runtime needs from its environment, for Node: the kernel module's bytes (read from
// build/), the default thread count, how to start a pool worker, whether the calling thread may
// block in Atomics.wait, and the V8 switch for relaxed SIMD. platform.browser.ts has the same
// exports for a web page; the browser bundle (scripts/build-web.mjs) swaps it in. Nothing else in
// runtime/ differs between the two.
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { setFlagsFromString } from "node:v8";
import { Worker } from "node:worker_threads";
import type { SimdVariant } from "./wasm.js";
import type { WorkerInit } from "./worker-loop.js";

/** A started pool worker, ready for its first kernel. */
export interface KernelWorker {
  terminate(): Promise<unknown>;
  /** Calls `listener` once if the worker exits or throws outside a kernel (not after terminate()). */
  onExit(listener: (why: string) => void): void;
}

/** Node's main thread may wait on an Atomics counter (a browser's main thread may not). */
export const CAN_BLOCK = true;

export function defaultThreads(): number { return availableParallelism(); }

/** Threads the pool may use for `requested` (Node: all of them). */
export function usableThreads(requested: number): number { return requested; }

export function compileKernelModule(variant: SimdVariant): Promise<WebAssembly.Module> {
  const url = new URL(`../../../build/kernels-${variant}.wasm`, import.meta.url);
  return readFile(url).then(
    (bytes) => WebAssembly.compile(bytes),
    () => { throw new Error(`kernel module ${url.pathname} is missing: run 'npm run build' (npm install does it too)`); },
  );
}

export async function startWorker(init: WorkerInit): Promise<KernelWorker> {
  const w = new Worker(new URL("./worker.js", import.meta.url), { workerData: init });
  await new Promise<void>((resolve, reject) => {
    w.once("message", () => resolve());
    w.once("error", reject);
  });
  w.unref(); // a sleeping pool never keeps the process alive
  let closing = false, told = false;
  const tell = (listener: (why: string) => void, why: string) => { if (!closing && !told) { told = true; listener(why); } };
  const handle: KernelWorker & { raw: Worker } = {
    raw: w, // for test/pool-faults.test.ts, which kills it behind the pool's back
    terminate: () => { closing = true; return w.terminate(); },
    onExit(listener) {
      w.once("exit", (code) => tell(listener, `exit code ${code}`));
      w.once("error", (e) => tell(listener, e.message));
    },
  };
  return handle;
}

/** Node 20 ships relaxed SIMD behind a V8 flag; it affects only modules compiled afterwards. */
export function enableRelaxedSimdFlag(): void { setFlagsFromString("--experimental-wasm-relaxed-simd"); }
