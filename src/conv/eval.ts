// Evaluation of a ResNet and its dual-module twin at batch 1 on image sets, the logic behind `dmi eval
// cnn` (src/cli/eval-cnn.ts): the network's inputs from a set, predicted classes and top-1, dense and
// dual wall-clock in interleaved rounds with a profile of the dual network, and onnxruntime-node's
// time on the same weights. Not here: options, tables and figures (the command).
import { setTimeout as sleep } from "node:timers/promises";
import type { Runtime } from "../runtime/runtime.js";
import { Progress } from "../util/progress.js";
import { timeInterleaved, timeMedian } from "../util/timing.js";
import type { ResNet, ResNetConfig, ResNetWeights } from "./resnet.js";
import type { DualResNet } from "./dual.js";
import { type DualProfile, emptyDualProfile } from "./dual-conv.js";
import { type Allocation, type LayerCurve, allocateRatios } from "./allocate.js";

/** The predicted class of every image, with a progress bar. */
export function predict(net: { forward(x: Float32Array): Float32Array }, images: Float32Array[], label: string): number[] {
  const bar = new Progress(label, images.length, "img");
  return images.map((x, i) => {
    const top = argmax(net.forward(x));
    bar.update(i + 1);
    return top;
  });
}

/**
 * onnxruntime-node's per-image median on the same weights, per thread count, after checking that its
 * logits agree with ours; an empty map when it is not installed (it is an optional peer dependency).
 */
export async function timeOrt(config: ResNetConfig, weights: ResNetWeights, dense: ResNet, images: Float32Array[], threadCounts: number[],
                              rt: Runtime): Promise<Map<number, number>> {
  const ms = new Map<number, number>();
  let peerModule: typeof import("../onnx/peer.js"), graphModule: typeof import("./onnx.js");
  [peerModule, graphModule] = await Promise.all([import("../onnx/peer.js"), import("./onnx.js")]);
  if (!(await peerModule.ortAvailable())) {
    console.error(`${peerModule.ORT_MISSING}: ort_ms is null`);
    return ms;
  }
  const graph = graphModule.resnetModel(config, weights);
  for (const threads of threadCounts) {
    const peer = await peerModule.OrtPeer.create(graph, threads);
    try {
      rt.pool.active = threads;
      const difference = await graphModule.logitsDifference(peer, (x) => dense.forward(x), images);
      if (!(difference <= 1e-3)) throw new Error(`onnxruntime's logits differ from ours by ${difference} of the largest: the exported graph is wrong`);
      let n = 0;
      ms.set(threads, await timeMedian(() => peer.run({ images: images[n++ % images.length] }), { warmup: 3, reps: 3 * images.length }));
      // Its threads spin after a run and would slow ours.
      await sleep(1000);
    } finally {
      await peer.release();
      rt.pool.active = rt.threads;
    }
  }
  return ms;
}

/**
 * Per-image medians of the dense and the dual network, alternating on `images` for o.rounds rounds,
 * taken o.repeats times (their spread is the machine's noise); then the dual network's profile, per
 * image, from separate runs (a profile reads the clock between kernels).
 */
export async function timeDenseAndDual(net: DualResNet, images: Float32Array[], o: { rounds: number; repeats: number }):
    Promise<{ denseMs: number[]; dualMs: number[]; profile: DualProfile }> {
  const denseMs: number[] = [], dualMs: number[] = [];
  for (let r = 0; r < o.repeats; r++) {
    const [d, u] = await timeInterleaved([
      { run: (i) => net.dense.forward(images[i % images.length]) },
      { run: (i) => net.forward(images[i % images.length]) },
    ], { warmup: 3, rounds: o.rounds * images.length });
    denseMs.push(d); dualMs.push(u);
  }
  const profile = emptyDualProfile();
  for (const x of images) net.forward(x, profile);
  for (const key of Object.keys(profile) as (keyof DualProfile)[]) profile[key] /= images.length;
  return { denseMs, dualMs, profile };
}

/** The index of the largest element (the first, on ties). */
export function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

/** The fraction of predictions equal to the truth. */
export function accuracy(predicted: number[], truth: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < predicted.length; i++) if (predicted[i] === truth[i]) n++;
  return n / predicted.length;
}

/** A scored operating point: its top-1 and the dense network's on the same (validation) images, and its operation savings. */
export interface ScoredPoint { top1: number; top1_dense: number; ops_reduction_fp32eq: number }

/**
 * The operating point to report: the largest FP32-equivalent operation reduction among the points
 * whose top-1 is at most `maxDropPoints` percentage points below dense, on the images they were
 * scored on (a validation split, so that the test set is read once, for the chosen point); null if
 * none qualifies.
 */
export function chooseOperatingPoint<P extends ScoredPoint>(points: P[], maxDropPoints: number): P | null {
  let best: P | null = null;
  for (const p of points) {
    if (100 * (p.top1_dense - p.top1) > maxDropPoints + 1e-9) continue;
    if (!best || p.ops_reduction_fp32eq > best.ops_reduction_fp32eq) best = p;
  }
  return best;
}

/** The ratios at which each layer's damage is measured for a greedy allocation. */
export const SENSITIVITY_RATIOS = [0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95];

/**
 * Per-layer ratios that leave the big module the operations of `ratio` applied to every layer
 * (Σ (1 − r_l)·macs_l ≤ (1 − ratio)·Σ macs_l), allocated greedily by each layer's measured damage
 * (DualResNet.sensitivity on `images`, in the network's current mode; `curves` caches them per mode).
 */
export function greedyRatios(net: DualResNet, images: Float32Array[], ratio: number, curves: Map<string, LayerCurve[]>): Allocation {
  let c = curves.get(net.mode);
  if (!c) {
    const started = performance.now();
    c = net.sensitivity(images, SENSITIVITY_RATIOS);
    console.error(`per-layer damage curves (${net.mode}) on ${images.length} images in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    curves.set(net.mode, c);
  }
  const total = c.reduce((s, l) => s + l.macs, 0);
  return allocateRatios(c, { macs: (1 - ratio) * total });
}
