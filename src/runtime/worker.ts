// A pool worker in Node (worker_threads): the loop is worker-loop.ts.
import { parentPort, workerData } from "node:worker_threads";
import { serveKernels, type WorkerInit } from "./worker-loop.js";

serveKernels(workerData as WorkerInit, () => parentPort!.postMessage("ready"));
