// The body of `dmi bench rnn` (src/cli/bench-rnn.ts; benchShape: `dmi tables lm`'s paper rows): per-step time at batch 1 of dense and
// dual-module recurrent cells at the paper's shapes, against every dense baseline a user could pick
// instead (our fp32 and INT8 dense steps, onnxruntime-node's fp32 cell and its dynamically quantized
// INT8 cell, on the same weights), in one process.
// Weights are random (PyTorch's initialisation); masks come from little modules fitted to those
// weights and thresholds calibrated to each ratio, not from random draws.
//
// How it is timed. Before any timing, each onnxruntime graph is run once against our step from the
// same nonzero state and must agree within a stated tolerance. Our variants of a shape (each dense
// precision, and per precision of the big weights: the little module alone and each ratio) are
// timed together in `repeats` independent repetitions (timeRepeated: each restarts, from a flushed
// cache when warm, and runs the variants in a rotated order), and every time is the median over the
// repetitions with their min–max. Cold: a cache flush before every step, variants interleaved step
// by step. Warm: each variant's steps back to back (interleaved, the other variants would evict its
// weights). They share the recurrent state, which changes the masks' inputs a little but not what a
// step costs. Ratio 0 is always timed: it is the dense computation run through the dual step, so a
// table whose dense and ratio-0 times differ by more than their spread is flagged as untrustworthy.
import type { Runtime } from "../runtime/runtime.js";
import { Stack, type LayerWeights } from "../recurrent/stack.js";
import type { BigBits } from "../recurrent/lstm.js";
import { DualModel, type DualStepProfile } from "../recurrent/dual.js";
import { fitLittleModules } from "../recurrent/fit.js";
import { OrtPeer } from "../onnx/peer.js";
import { gruGemmModel, gruModel, gruQuantizedModel, lstmGemmModel, lstmModel, lstmQuantizedModel, gnmtStackModel } from "../recurrent/onnx.js";
import { Progress } from "../util/progress.js";
import { setTimeout as sleep } from "node:timers/promises";
import { lastLevelCacheBytes, median, separated, timeRepeated, type Spread, type Variant } from "../util/timing.js";
import { formatTable } from "../util/table.js";
import { benchInput, randomModel, type CellName, type Shape } from "./models.js";

export type Cache = "cold" | "warm";
type Precision = "f32" | "int8";

/** A dense step someone could run instead: ours or onnxruntime's, at either precision. */
export interface Baseline { name: string; ms: Spread }

/** One table: a shape, a precision of the big weights, a thread count and a cache state. */
export interface RnnBenchTable {
  cell: CellName; hidden: number; input: number; big: Precision; threads: number; cache: Cache;
  repeats: number; steps: number; weights: "random";
  /** Our dense step at the big weights' precision, and the little module alone (nothing sensitive). */
  dense_ms: Spread; little_ms: Spread;
  /** Every dense baseline of the shape, ours and the peer's, both precisions; `fastest` names the quickest (by median). */
  baselines: Baseline[]; fastest: string;
  /** The peer's graphs, each checked against our step before timing. */
  peer_checks: PeerCheck[];
  /** Ratio 0 against dense: `differs` when their min–max ranges do not overlap. */
  control: { dense_ms: Spread; ratio0_ms: Spread; differs: boolean };
  bytes_dense: number; llc_bytes: number | null;
  /** Read bandwidth on `threads` threads (our sum over the 256 MiB flush buffer, median of 5), GB/s: the physical bound of a step is its bytes over it. */
  bandwidth_gbps: number;
  /** Where the little module's time goes (nothing sensitive), and the projection alone: see profileSteps. */
  little_breakdown_ms: Breakdown; projection_ms: number;
  rows: RnnBenchRatio[];
}

/** Mean milliseconds per step in each part of a dual step (DualStepProfile), over PROFILE_STEPS steps after the timing. */
export type Breakdown = DualStepProfile;

export interface RnnBenchRatio {
  ratio: number; achieved_ratio: number; dual_ms: Spread; bytes_dual: number; breakdown_ms: Breakdown;
  /** Warm, the dual step's bytes fit in the last-level cache and the dense step's do not: a cache effect. */
  fits_llc: boolean;
}

/** A peer graph's agreement with our step: the largest |difference| of its outputs, and the bound it met. */
export interface PeerCheck { name: string; against: string; max_error: number; tolerance: number }

const WARMUP = 10;
/** Steps per variant of the profiled pass that follows the timing (the breakdown of a dual step). */
const PROFILE_STEPS = 20;
const PRECISION = { 32: "f32", 8: "int8" } as const;
/** onnxruntime's fp32 graphs compute our fp32 step up to rounding. */
const F32_TOLERANCE = 1e-4;
/** Its INT8 graph against our fp32 step: quantization error (its inputs quantized per tensor as uint8, ours per vector as int8). */
const INT8_TOLERANCE = 0.05;

/**
 * One row per ratio with each time's median (the shape `dmi tables lm` prints its paper-width rows
 * from); ort_ms is onnxruntime's faster fp32 graph. Timed as benchTables does, in 3 rounds.
 */
export interface RnnBenchRow {
  cell: CellName; hidden: number; input: number; big: Precision; ratio: number; achieved_ratio: number;
  threads: number; cache: Cache; dense_ms: number; ort_ms: number | null; ort_op: string; dual_ms: number;
  little_ms: number; bytes_dense: number; bytes_dual: number; weights: "random";
}

export async function benchShape(rt: Runtime, shape: Shape, ratios: number[], threads: number[], caches: Cache[],
                                 steps: number, bigBits: BigBits[], flush: Float32Array): Promise<RnnBenchRow[]> {
  const tables = await benchTables(rt, shape, ratios, threads, caches, steps, bigBits, 3, flush, lastLevelCacheBytes());
  return tables.flatMap((t) => {
    const ort = t.baselines.filter((b) => b.name.startsWith("ort f32")).reduce((a, b) => (b.ms.median < a.ms.median ? b : a));
    return t.rows.map((r) => ({
      cell: t.cell, hidden: t.hidden, input: t.input, big: t.big, ratio: r.ratio, achieved_ratio: r.achieved_ratio,
      threads: t.threads, cache: t.cache, dense_ms: t.dense_ms.median, ort_ms: ort.ms.median, ort_op: ort.name,
      dual_ms: r.dual_ms.median, little_ms: t.little_ms.median, bytes_dense: t.bytes_dense, bytes_dual: r.bytes_dual, weights: t.weights,
    }));
  });
}

export async function benchTables(rt: Runtime, shape: Shape, ratioList: number[], threads: number[], caches: Cache[],
                                  steps: number, bigBits: BigBits[], repeats: number, flush: Float32Array,
                                  llcBytes: number | null): Promise<RnnBenchTable[]> {
  const { config } = shape, H = config.hidden, name = `${shape.cell} H=${H} E=${benchInput(shape)}`;
  const ratios = ratioList.includes(0) ? ratioList : [0, ...ratioList];
  const { weights, sequence: seq } = randomModel(shape);
  const train = Array.from({ length: 60 }, () => seq(35)), valid = Array.from({ length: 10 }, () => seq(35));
  const timed = seq(steps);
  const lstm = config.kind === "lstm";
  // INT8 big weights exist for LSTM layers only.
  const models = bigBits.filter((bits) => bits === 32 || lstm).map((bits) => {
    const stack = new Stack(rt, { ...config, bigBits: bits }, weights);
    const progress = new Progress(`${name}, ${PRECISION[bits]} big weights: fit`, train.length * 35);
    const { littles } = fitLittleModules(rt, stack, train, { onProgress: (_w, d) => progress.update(d) });
    const dual = new DualModel(rt, stack, littles);
    const thresholds = ratios.map((r) => (r === 0 ? null : dual.calibrate(valid, r)));
    return { bits, stack, dual, thresholds };
  });
  // Our dense step at every precision the shape has, whether or not it was asked for as big weights.
  const dense = ([32, 8] as const).filter((bits) => bits === 32 || lstm).map((bits) => ({
    bits, stack: models.find((m) => m.bits === bits)?.stack ?? new Stack(rt, { ...config, bigBits: bits }, weights),
  }));
  const reference = dense[0].stack; // fp32

  const tables: RnnBenchTable[] = [];
  for (const t of threads) {
    rt.pool.active = t;
    const ort = await ortCells(shape, weights, t);
    const bandwidth = flush.byteLength / median(await Promise.all([0, 1, 2, 3, 4].map(async () => {
      const t0 = performance.now(); rt.kernels.sum(flush, flush.length); return performance.now() - t0;
    }))) / 1e6;
    try {
      const peerChecks = await checkPeers(ort, reference, timed);
      for (const cache of caches) {
        const flushing = () => { rt.kernels.sum(flush, flush.length); };
        const timing = { warmup: WARMUP, steps: timed.length, repeats, flush: cache === "cold" ? flushing : null,
                         restart: cache === "warm" ? flushing : null, blocks: cache === "warm" };
        // onnxruntime's threads keep spinning after a run and would slow whatever runs next, so each
        // peer graph is timed in a block of its own, and ours wait until its threads have gone idle
        // (about a second: measured as this process's CPU time while it sleeps).
        const baselines: Baseline[] = [];
        for (const { name: peerName, peer } of ort.peers) {
          let step = 0;
          const [ms] = await timeRepeated([{ run: () => { ort.load(timed[step++ % timed.length]); return peer.run(ort.feeds); } }], timing);
          baselines.push({ name: peerName, ms });
          await sleep(1000);
        }
        // Dense at each precision; per model the little module alone (nothing sensitive: projection,
        // little module, selection and gate update) and each ratio, with its achieved ratio and bytes summed over its timed steps.
        const achieved = models.map(() => ratios.map(() => ({ ratio: 0, bytes: 0, steps: 0 })));
        const variants: Variant[] = [
          ...dense.map(({ stack }): Variant => ({ run: (step) => stack.step(timed[step % timed.length]) })),
          ...models.flatMap(({ dual, thresholds }, m): Variant[] => [
            { prepare: () => dual.setNoneSensitive(), run: (step) => dual.step(timed[step % timed.length]) },
            ...ratios.map((ratio, i): Variant => ({
              prepare: () => {
                if (thresholds[i]) dual.setThresholds(thresholds[i]!, ratio); else dual.setAllSensitive();
                dual.accounting.reset();
              },
              run: (step) => dual.step(timed[step % timed.length]),
              after: () => {
                const r = dual.accounting.report(), a = achieved[m][i];
                a.ratio += r.insensitiveRatio; a.bytes += r.perStep.bytes; a.steps++;
              },
            })),
          ]),
        ];
        const ms = await timeRepeated(variants, timing);
        // The breakdown, in a pass of its own after the timing (reading the clock between the parts
        // must not touch the timed steps): the same steps, cache state and thresholds.
        const flushOrNull = cache === "cold" ? flushing : null;
        const breakdowns: { little: Breakdown; perRatio: Breakdown[]; projection: number }[] = [];
        for (const { dual, thresholds } of models) {
          const little = await profileSteps(dual, () => dual.setNoneSensitive(), timed, flushOrNull);
          const perRatio: Breakdown[] = [];
          for (let i = 0; i < ratios.length; i++) {
            perRatio.push(await profileSteps(dual, () => {
              if (thresholds[i]) dual.setThresholds(thresholds[i]!, ratios[i]); else dual.setAllSensitive();
            }, timed, flushOrNull));
          }
          breakdowns.push({ little, perRatio, projection: await profileProjection(dual, flushOrNull) });
        }
        const denseMs = dense.map((_, d) => ms[d]);
        baselines.unshift(...dense.map(({ bits }, d) => ({ name: `ours ${PRECISION[bits]}`, ms: denseMs[d] })));
        const fastest = baselines.reduce((a, b) => (b.ms.median < a.ms.median ? b : a)).name;
        models.forEach(({ bits, dual }, m) => {
          const at = dense.length + m * (ratios.length + 1), [little, ...duals] = ms.slice(at, at + ratios.length + 1);
          const own = denseMs[dense.findIndex((d) => d.bits === bits)], ratio0 = duals[ratios.indexOf(0)];
          const breakdown = breakdowns[m];
          const bytesDense = dual.accounting.report().perStep.denseBytes;
          tables.push({
            cell: shape.cell, hidden: H, input: benchInput(shape), big: PRECISION[bits], threads: t, cache,
            repeats, steps: timed.length, weights: "random",
            dense_ms: own, little_ms: little, baselines, fastest, peer_checks: peerChecks,
            control: { dense_ms: own, ratio0_ms: ratio0, differs: separated(own, ratio0) },
            bytes_dense: bytesDense, llc_bytes: llcBytes, bandwidth_gbps: bandwidth,
            little_breakdown_ms: breakdown.little, projection_ms: breakdown.projection,
            rows: ratios.map((ratio, i) => {
              const a = achieved[m][i], bytesDual = a.bytes / a.steps;
              return {
                ratio, achieved_ratio: a.ratio / a.steps, dual_ms: duals[i], bytes_dual: bytesDual, breakdown_ms: breakdown.perRatio[i],
                fits_llc: cache === "warm" && llcBytes !== null && bytesDual <= llcBytes && bytesDense > llcBytes,
              };
            }),
          });
          console.error(`${name}, ${PRECISION[bits]} big weights, ${t} thread(s), ${cache}: dense ${own.median.toFixed(3)} ms, ratio 0 ${ratio0.median.toFixed(3)} ms, little ${little.median.toFixed(3)} ms`);
        });
      }
    } finally {
      for (const { peer } of ort.peers) await peer.release();
    }
  }
  rt.pool.active = rt.threads;
  return tables;
}

/**
 * Mean milliseconds per part of PROFILE_STEPS dual steps (after WARMUP unprofiled ones) with the
 * thresholds `prepare` sets, each step after `flush` and a 1 ms pause when cold (as timed).
 */
async function profileSteps(dual: DualModel, prepare: () => void, inputs: Float32Array[],
                            flush: (() => void) | null): Promise<Breakdown> {
  prepare();
  const p: Breakdown = { little: 0, select: 0, big: 0, fused: 0, other: 0 };
  for (let i = 0; i < WARMUP; i++) dual.step(inputs[i % inputs.length]);
  for (let i = 0; i < PROFILE_STEPS; i++) {
    if (flush) { flush(); await sleep(1); }
    dual.step(inputs[(WARMUP + i) % inputs.length], p);
  }
  for (const k of Object.keys(p) as (keyof Breakdown)[]) p[k] /= PROFILE_STEPS;
  return p;
}

/** Mean milliseconds of every layer's projection alone (on its current input), as profileSteps. */
async function profileProjection(dual: DualModel, flush: (() => void) | null): Promise<number> {
  let ms = 0;
  for (let i = 0; i < WARMUP + PROFILE_STEPS; i++) {
    if (flush) { flush(); await sleep(1); }
    const t0 = performance.now();
    dual.littles.forEach((m, l) => m.projector.project(dual.stack.layers[l].xh));
    if (i >= WARMUP) ms += performance.now() - t0;
  }
  return ms / PROFILE_STEPS;
}

// ---------------------------------------------------------------------------------------------
// The peer: onnxruntime's graphs of the shape, and their check against our step

export interface OrtCells {
  peers: { name: string; peer: OrtPeer; tolerance: number }[];
  feeds: Record<string, Float32Array>;
  /** How a step input [x | context] enters the feeds. */
  load: (x: Float32Array) => void;
  /** The state feeds (h0, c0 per layer), in our stack's layer order. */
  state: { h: Float32Array; c: Float32Array | null }[];
  /** The output that is our stack's output ("h1", or the stack's "y"), and, for one LSTM cell, its c ("c1"). */
  output: string; cell: string | null;
}

/**
 * onnxruntime's dense models of the shape (a single cell: its LSTM/GRU operator, Gemm plus gate
 * math, and the dynamically quantized cell; the GNMT stack: LSTM operators, and quantized cells),
 * their shared feeds, and how a step input [x | context] enters them.
 */
export async function ortCells(shape: Shape, weights: LayerWeights[], threads: number): Promise<OrtCells> {
  const c = shape.config, H = c.hidden, zeros = () => new Float32Array(H);
  const make = async (name: string, model: Parameters<typeof OrtPeer.create>[0], tolerance: number) =>
    ({ name, peer: await OrtPeer.create(model, threads), tolerance });
  if (shape.cell === "gnmt-stack") {
    const feeds: Record<string, Float32Array> = { x: new Float32Array(c.input), ctx: new Float32Array(c.context) };
    weights.forEach((_, l) => { feeds[`h0_${l}`] = zeros(); feeds[`c0_${l}`] = zeros(); });
    return {
      peers: [
        await make("ort f32 (LSTM op)", gnmtStackModel(c.input, H, c.context, c.residualFrom, weights), F32_TOLERANCE),
        await make("ort int8", gnmtStackModel(c.input, H, c.context, c.residualFrom, weights, true), INT8_TOLERANCE),
      ],
      feeds, load: (x) => { feeds.x.set(x.subarray(0, c.input)); feeds.ctx.set(x.subarray(c.input)); },
      state: weights.map((_, l) => ({ h: feeds[`h0_${l}`], c: feeds[`c0_${l}`] })), output: "y", cell: null,
    };
  }
  const lstm = c.kind === "lstm", w = weights[0];
  const feeds: Record<string, Float32Array> = lstm
    ? { x: new Float32Array(c.input), h0: zeros(), c0: zeros() } : { x: new Float32Array(c.input), h0: zeros() };
  return {
    peers: [
      await make(`ort f32 (${lstm ? "LSTM" : "GRU"} op)`, lstm ? lstmModel(c.input, H, w) : gruModel(c.input, H, w), F32_TOLERANCE),
      await make("ort f32 (Gemm)", lstm ? lstmGemmModel(c.input, H, w) : gruGemmModel(c.input, H, w), F32_TOLERANCE),
      await make("ort int8", lstm ? lstmQuantizedModel(c.input, H, w) : gruQuantizedModel(c.input, H, w), INT8_TOLERANCE),
    ],
    feeds, load: (x) => feeds.x.set(x),
    state: [{ h: feeds.h0, c: lstm ? feeds.c0 : null }], output: "h1", cell: lstm ? "c1" : null,
  };
}

/**
 * Runs every peer graph once against our fp32 step from the same nonzero state (reached by three
 * steps of ours) and throws if an output differs by more than the graph's tolerance. Leaves our
 * stack reset and the peer's state feeds at zero, as the timing expects.
 */
export async function checkPeers(ort: OrtCells, stack: Stack, inputs: Float32Array[]): Promise<PeerCheck[]> {
  stack.reset();
  for (let i = 0; i < 3; i++) stack.step(inputs[i]);
  stack.layers.forEach((cell, l) => {
    ort.state[l].h.set(cell.h);
    if (cell.kind === "lstm") ort.state[l].c!.set(cell.c);
  });
  const x = inputs[3];
  ort.load(x);
  const want = stack.step(x).slice(), wantC = stack.layers[0].kind === "lstm" ? stack.layers[0].c.slice() : null;
  const checks: PeerCheck[] = [];
  for (const { name, peer, tolerance } of ort.peers) {
    const out = await peer.run(ort.feeds);
    let err = maxError(out[ort.output], want);
    if (ort.cell && wantC) err = Math.max(err, maxError(out[ort.cell], wantC));
    if (!(err <= tolerance)) {
      throw new Error(`bench rnn: ${name} does not compute our fp32 step: its outputs differ by up to ${err.toExponential(2)} (tolerance ${tolerance}); the graph (src/recurrent/onnx.ts) or our cell is wrong`);
    }
    checks.push({ name, against: "ours f32", max_error: err, tolerance });
  }
  stack.reset();
  for (const s of ort.state) { s.h.fill(0); s.c?.fill(0); }
  return checks;
}

function maxError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`bench rnn: a peer output has ${a.length} values, ours ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// ---------------------------------------------------------------------------------------------
// Printing

const ms = (s: Spread) => `${s.median.toFixed(3)} [${s.min.toFixed(3)}–${s.max.toFixed(3)}]`;
const parts = (b: Breakdown) => [b.little, b.select, b.big, b.fused, b.other].map((v) => v.toFixed(3)).join(" / ");

export function formatRnnTables(tables: RnnBenchTable[]): string {
  const out: string[] = [];
  for (const t of tables) {
    const fastest = t.baselines.find((b) => b.name === t.fastest)!;
    const ortF32 = t.baselines.filter((b) => b.name.startsWith("ort f32")).reduce((a, b) => (b.ms.median < a.ms.median ? b : a));
    out.push(`${t.cell} H=${t.hidden} E=${t.input} · ${t.big} big weights · ${t.threads} thread${t.threads > 1 ? "s" : ""} · ${t.cache} cache` +
      ` · ms per step: median [min–max] of ${t.repeats} rounds of ${t.steps} steps`);
    out.push(`dense baselines: ${t.baselines.map((b) => `${b.name} ${ms(b.ms)}`).join(" · ")}; fastest: ${t.fastest}`);
    out.push(`peer checked before timing: ${t.peer_checks.map((c) => `${c.name} max |Δ| ${c.max_error.toExponential(1)} ≤ ${c.tolerance} against ${c.against}`).join(" · ")}`);
    out.push(formatTable(
      ["ratio", "achieved", "dual ms", "x dense", "x fastest", "x ort f32", "little %", "MB dense", "MB dual", "bound ms", "x bound",
       "little / select / big / fused / other ms", "note"],
      t.rows.map((r) => [
        r.ratio.toFixed(2), r.achieved_ratio.toFixed(3), ms(r.dual_ms),
        (t.dense_ms.median / r.dual_ms.median).toFixed(2), (fastest.ms.median / r.dual_ms.median).toFixed(2),
        (ortF32.ms.median / r.dual_ms.median).toFixed(2), ((100 * t.little_ms.median) / t.dense_ms.median).toFixed(1),
        (t.bytes_dense / 1e6).toFixed(2), (r.bytes_dual / 1e6).toFixed(2),
        (r.bytes_dual / t.bandwidth_gbps / 1e6).toFixed(3), (r.bytes_dual / t.bandwidth_gbps / 1e6 / r.dual_ms.median).toFixed(2),
        parts(r.breakdown_ms), r.fits_llc ? "dual fits LLC, dense not" : "",
      ]), 0));
    out.push(`little module alone (nothing sensitive), little / select / big / fused / other ms: ${parts(t.little_breakdown_ms)}; of its little part, the projection alone ${t.projection_ms.toFixed(3)} ms`);
    const c = t.control;
    out.push(`control: ratio 0 ${ms(c.ratio0_ms)} against dense ${ms(c.dense_ms)}: ` +
      (c.differs ? "DIFFER beyond their spread: this table's speedups are not trustworthy" : "agree within their spread"));
    out.push("");
  }
  const llc = tables.find((t) => t.llc_bytes !== null)?.llc_bytes;
  out.push("x dense: against our dense step at the big weights' precision; x fastest: against the fastest dense baseline of any precision;" +
    " x ort f32: against onnxruntime's faster fp32 graph.");
  out.push("onnxruntime's times include creating its input tensors and awaiting onnxruntime-node's asynchronous run.");
  out.push("little %: the step with nothing sensitive over the dense step; a dual step costs about that plus (1 − ratio) of the dense step, so little % is also" +
    " the break-even ratio below which the dual step cannot beat the dense one.");
  out.push(`little / select / big / fused / other ms: mean per step of ${PROFILE_STEPS} profiled steps after the timing (same cache state): the little module (projection,` +
    " quantization, little product), selection, the big rows with the state update, the three as one kernel where the step is fused (DualModel.fuse), the rest (input copies, accounting).");
  out.push(`bound ms: the step's bytes over the read bandwidth measured before the table (${[...new Set(tables.map((t) => `${t.threads} thread(s) ${t.bandwidth_gbps.toFixed(1)} GB/s`))].join(", ")}); x bound: bound over the measured time (1 = at memory speed).`);
  out.push(`MB: parameter bytes read per step (dual: big rows and biases, little module with its projection, thresholds). ` +
    (llc ? `"dual fits LLC, dense not" (warm rows): the dual step's bytes fit in the ${(llc / 2 ** 20).toFixed(0)} MiB last-level cache and the dense step's do not, so part of that speedup is a cache effect, not the method.`
      : "The last-level cache's size is unknown here: no row is marked as a cache effect."));
  return out.join("\n");
}
