// The body of `dmi bench rnn` (src/cli/bench-rnn.ts) and of `dmi tables lm`'s paper rows: per-step
// time at batch 1 of dense and dual-module recurrent cells at the paper's shapes, against
// onnxruntime-node's dense cell on the same weights (the faster of its LSTM/GRU operator and Gemm
// plus gate math), in one process.
// Weights are random (PyTorch's initialisation); masks come from little modules fitted to those
// weights and thresholds calibrated to each ratio, not from random draws. Our variants of a shape
// (per precision of the big weights: dense, the little module alone, each ratio) are timed in
// interleaved rounds with a cold cache, one step each per round, so that a slow spell of a shared
// machine falls on all of them alike (warm, each variant's steps go back to back: interleaved, the
// other variants would evict its weights); they share the recurrent state, which changes the masks'
// inputs a little but not what a step costs.
import type { Runtime } from "../runtime/runtime.js";
import { Stack, type LayerWeights } from "../recurrent/stack.js";
import type { BigBits } from "../recurrent/lstm.js";
import { DualModel } from "../recurrent/dual.js";
import { fitLittleModules } from "../recurrent/fit.js";
import { OrtPeer } from "../onnx/peer.js";
import { gruGemmModel, gruModel, lstmGemmModel, lstmModel, gnmtStackModel } from "../recurrent/onnx.js";
import { Progress } from "../util/progress.js";
import { setTimeout as sleep } from "node:timers/promises";
import { timeInterleaved, timeMedian, type Variant } from "../util/timing.js";
import { formatTable } from "../util/table.js";
import { benchInput, randomModel, type CellName, type Shape } from "./models.js";

export type Cache = "cold" | "warm";

export interface RnnBenchRow {
  /** big: the precision of the big weights (and of our dense step); the peer's cell is fp32. */
  cell: CellName; hidden: number; input: number; big: "f32" | "int8"; ratio: number; achieved_ratio: number;
  threads: number; cache: Cache; dense_ms: number; ort_ms: number | null; ort_op: OrtOp; dual_ms: number;
  little_ms: number; bytes_dense: number; bytes_dual: number; weights: "random";
}

/** The peer's faster model: its LSTM/GRU operator ("cell") or Gemm plus gate math ("gemm"). */
type OrtOp = "cell" | "gemm";

const WARMUP = 10;
const BIG_NAME = { 32: "f32", 8: "int8" } as const;

export async function benchShape(rt: Runtime, shape: Shape, ratios: number[], threads: number[], caches: Cache[],
                                 steps: number, bigBits: BigBits[], flush: Float32Array): Promise<RnnBenchRow[]> {
  const { config } = shape, H = config.hidden, name = `${shape.cell} H=${H} E=${benchInput(shape)}`;
  const { weights, sequence: seq } = randomModel(shape);
  const train = Array.from({ length: 60 }, () => seq(35)), valid = Array.from({ length: 10 }, () => seq(35));
  const timed = seq(steps);
  // INT8 big weights exist for LSTM layers only.
  const models = bigBits.filter((bits) => bits === 32 || config.kind === "lstm").map((bits) => {
    const stack = new Stack(rt, { ...config, bigBits: bits }, weights);
    const progress = new Progress(`${name}, ${BIG_NAME[bits]} big weights: fit`, train.length * 35);
    const { littles } = fitLittleModules(rt, stack, train, { onProgress: (_w, d) => progress.update(d) });
    const dual = new DualModel(rt, stack, littles);
    const thresholds = ratios.map((r) => (r === 0 ? null : dual.calibrate(valid, r)));
    return { bits, stack, dual, thresholds };
  });

  const rows: RnnBenchRow[] = [];
  for (const t of threads) {
    rt.pool.active = t;
    const ort = await ortCells(shape, weights, t);
    try {
      for (const cache of caches) {
        const flushing = cache === "cold" ? () => { rt.kernels.sum(flush, flush.length); } : null;
        // onnxruntime's threads keep spinning after a run and would slow whatever runs next, so the
        // peer is timed in a block of its own, and ours wait until its threads have gone idle (about a
        // second: measured as this process's CPU time while it sleeps); our variants are interleaved.
        // The faster of the peer's models counts.
        let ortMs = Infinity, ortOp: OrtOp = "cell";
        for (const { op, peer } of ort.peers) {
          let round = 0;
          const ms = await timeMedian(() => { ort.load(timed[round++ % timed.length]); return peer.run(ort.feeds); },
            { warmup: WARMUP, reps: timed.length, flush: flushing });
          if (ms < ortMs) { ortMs = ms; ortOp = op; }
          await sleep(1000);
        }
        // Per model: dense, the little module alone (nothing sensitive: projection, little module,
        // selection and gate update), and each ratio, with its achieved ratio and bytes summed over its timed steps.
        const achieved = models.map(() => ratios.map(() => ({ ratio: 0, bytes: 0, steps: 0 })));
        const variants = models.flatMap(({ stack, dual, thresholds }, m): Variant[] => [
          { run: (round) => stack.step(timed[round % timed.length]) },
          { prepare: () => dual.setNoneSensitive(), run: (round) => dual.step(timed[round % timed.length]) },
          ...ratios.map((ratio, i): Variant => ({
            prepare: () => {
              if (thresholds[i]) dual.setThresholds(thresholds[i]!, ratio); else dual.setAllSensitive();
              dual.accounting.reset();
            },
            run: (round) => dual.step(timed[round % timed.length]),
            after: () => {
              const r = dual.accounting.report(), a = achieved[m][i];
              a.ratio += r.insensitiveRatio; a.bytes += r.perStep.bytes; a.steps++;
            },
          })),
        ]);
        const ms = await timeInterleaved(variants, { warmup: WARMUP, rounds: timed.length, flush: flushing, blocks: cache === "warm" });
        models.forEach(({ bits, dual }, m) => {
          const [dense, little, ...duals] = ms.slice(m * (ratios.length + 2), (m + 1) * (ratios.length + 2));
          const denseBytes = dual.accounting.report().perStep.denseBytes;
          ratios.forEach((ratio, i) => rows.push({
            cell: shape.cell, hidden: H, input: benchInput(shape), big: BIG_NAME[bits], ratio,
            achieved_ratio: achieved[m][i].ratio / achieved[m][i].steps, threads: t, cache,
            dense_ms: dense, ort_ms: ortMs, ort_op: ortOp, dual_ms: duals[i], little_ms: little,
            bytes_dense: denseBytes, bytes_dual: achieved[m][i].bytes / achieved[m][i].steps, weights: "random",
          }));
          console.error(`${name}, ${BIG_NAME[bits]} big weights, ${t} thread(s), ${cache}: dense ${dense.toFixed(3)} ms, ort ${ortMs.toFixed(3)} ms, little ${little.toFixed(3)} ms`);
        });
      }
    } finally {
      for (const { peer } of ort.peers) await peer.release();
    }
  }
  rt.pool.active = rt.threads;
  return rows;
}

/**
 * onnxruntime's dense models of the shape (a single cell: its LSTM/GRU op, and Gemm plus gate math;
 * the GNMT stack: LSTM ops), their shared feeds, and how a step input [x | context] enters them.
 */
async function ortCells(shape: Shape, weights: LayerWeights[], threads: number):
    Promise<{ peers: { op: OrtOp; peer: OrtPeer }[]; feeds: Record<string, Float32Array>; load: (x: Float32Array) => void }> {
  const c = shape.config, H = c.hidden, zeros = () => new Float32Array(H);
  if (shape.cell === "gnmt-stack") {
    const feeds: Record<string, Float32Array> = { x: new Float32Array(c.input), ctx: new Float32Array(c.context) };
    weights.forEach((_, l) => { feeds[`h0_${l}`] = zeros(); feeds[`c0_${l}`] = zeros(); });
    const peer = await OrtPeer.create(gnmtStackModel(c.input, H, c.context, c.residualFrom, weights), threads);
    return { peers: [{ op: "cell", peer }], feeds, load: (x) => { feeds.x.set(x.subarray(0, c.input)); feeds.ctx.set(x.subarray(c.input)); } };
  }
  const lstm = c.kind === "lstm";
  const feeds: Record<string, Float32Array> = lstm
    ? { x: new Float32Array(c.input), h0: zeros(), c0: zeros() } : { x: new Float32Array(c.input), h0: zeros() };
  const peers = [
    { op: "cell" as const, peer: await OrtPeer.create(lstm ? lstmModel(c.input, H, weights[0]) : gruModel(c.input, H, weights[0]), threads) },
    { op: "gemm" as const, peer: await OrtPeer.create(lstm ? lstmGemmModel(c.input, H, weights[0]) : gruGemmModel(c.input, H, weights[0]), threads) },
  ];
  return { peers, feeds, load: (x) => feeds.x.set(x) };
}

export function formatRnnRows(rows: RnnBenchRow[]): string {
  return formatTable(
    ["cell", "H", "E", "big", "ratio", "achieved", "threads", "cache", "dense ms", "ort ms", "ort op", "dual ms", "x dense", "x ort", "little %", "MB dense", "MB dual"],
    rows.map((r) => [
      r.cell, r.hidden, r.input, r.big, r.ratio.toFixed(2), r.achieved_ratio.toFixed(3), r.threads, r.cache,
      r.dense_ms.toFixed(3), r.ort_ms?.toFixed(3) ?? "n/a", r.ort_op, r.dual_ms.toFixed(3),
      (r.dense_ms / r.dual_ms).toFixed(2), r.ort_ms ? (r.ort_ms / r.dual_ms).toFixed(2) : "n/a",
      ((100 * r.little_ms) / r.dense_ms).toFixed(1), (r.bytes_dense / 1e6).toFixed(2), (r.bytes_dual / 1e6).toFixed(2),
    ]));
}
