// A pool worker in a browser (a module Web Worker, built as dualmodule-worker.js): its first message
// is the WorkerInit; the loop is worker-loop.ts.
import { serveKernels, type WorkerInit } from "./worker-loop.js";

const scope = globalThis as unknown as { onmessage: ((e: { data: WorkerInit }) => void) | null; postMessage(m: unknown): void };
scope.onmessage = (e) => {
  scope.onmessage = null;
  serveKernels(e.data, () => scope.postMessage("ready"));
};
