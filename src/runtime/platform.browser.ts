// platform.ts for a web page (the browser bundle swaps it in; see scripts/build-web.mjs): the kernel
// module fetched and compiled while it streams in, pool workers as module Web Workers, threads only
// when the page is cross-origin isolated (shared memory needs COOP/COEP), one otherwise, with a
// warning. The kernel module, the worker script and the bundle sit side by side in one folder.
import type { SimdVariant } from "./wasm.js";
import type { WorkerInit } from "./worker-loop.js";

export interface KernelWorker {
  terminate(): Promise<unknown>;
  /** Calls `listener` if the worker throws outside a kernel (not after terminate()). */
  onExit(listener: (why: string) => void): void;
}

// The few browser globals used here, typed locally: the project compiles against Node's types.
interface WebWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  onmessage: ((e: { data: unknown }) => void) | null;
  onerror: ((e: { message?: string }) => void) | null;
}
interface BrowserGlobals {
  crossOriginIsolated?: boolean;
  navigator?: { hardwareConcurrency?: number };
  WorkerGlobalScope?: unknown;
  Worker: new (url: URL, options: { type: "module"; name?: string }) => WebWorker;
}
const web = globalThis as unknown as BrowserGlobals;
const wasm = WebAssembly as unknown as { compileStreaming(source: Promise<Response>): Promise<WebAssembly.Module> };

/** A page's main thread may not block in Atomics.wait; a worker may. */
export const CAN_BLOCK = web.WorkerGlobalScope !== undefined;

function isolated(): boolean { return web.crossOriginIsolated === true; }

export function defaultThreads(): number { return isolated() ? Math.min(64, web.navigator?.hardwareConcurrency ?? 1) : 1; }

export function usableThreads(requested: number): number {
  if (requested > 1 && !isolated()) {
    console.warn(`dualmodule: ${requested} threads asked for, but the page is not cross-origin isolated ` +
      "(serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp): one thread");
    return 1;
  }
  return requested;
}

export async function compileKernelModule(variant: SimdVariant): Promise<WebAssembly.Module> {
  const url = new URL(`./kernels-${variant}.wasm`, import.meta.url);
  const response = fetch(url).then((r) => {
    if (!r.ok) throw new Error(`kernel module ${url.href}: HTTP ${r.status}; serve the browser bundle's folder whole (npx dmi serve does)`);
    return r;
  });
  // compileStreaming needs the application/wasm type; a server that sends another gets the bytes compiled.
  return wasm.compileStreaming(response).catch(async (e: unknown) => {
    const r = await response;
    if (r.headers.get("content-type")?.startsWith("application/wasm")) throw e;
    return WebAssembly.compile(await (await fetch(url)).arrayBuffer());
  });
}

export function startWorker(init: WorkerInit): Promise<KernelWorker> {
  const w = new web.Worker(new URL("./dualmodule-worker.js", import.meta.url), { type: "module", name: `dualmodule ${init.tid}` });
  return new Promise((resolve, reject) => {
    w.onmessage = () => {
      w.onmessage = null;
      let closing = false;
      resolve({
        terminate: async () => { closing = true; w.terminate(); },
        onExit(listener) { w.onerror = (e) => { if (!closing) listener(e.message ?? "an error"); }; },
      });
    };
    w.onerror = (e) => reject(new Error(`dualmodule worker ${init.tid} failed to start: ${e.message ?? "no message"}`));
    w.postMessage(init);
  });
}

/** Browsers ship relaxed SIMD on or off; a page cannot switch it. */
export function enableRelaxedSimdFlag(): void { /* nothing to do */ }
