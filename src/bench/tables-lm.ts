// The paper's language-model experiments on one trained checkpoint (`dmi tables lm`, src/cli/tables-lm.ts),
// as one LmTables object (its JSON) and its Markdown, and its Figures 1 and 2 as PNG:
//   ratios     PPL, ΔPPL (and as % of the dense PPL), cell-step time and speedups over our dense step
//              and onnxruntime-node's at each insensitive ratio and thread count, memory reduction, and
//              the time of one whole token (dual cell with the dual-module output layer; dense: cell
//              and decoder); the ratio-0 control, our INT8 dense step and onnxruntime's dense steps
//   precision  little-weight precision 32 … 1 bits at 50 %: PPL and little-module size
//   noise      Gaussian noise on the insensitive versus the sensitive half of the gates: PPL
//   overhead   a 50 % step split into projection, little module and big module
//   k          the JL ε (0.3, 0.5, 0.7) → k, then k = 16 … with both projections: PPL, bytes, time at 50 %
//   compare    (with --compare SMALLER) dual-module at 50 % against a dense model half the size
//   paper      the same cell at the paper's widths (H = 750, 1500) with random weights and the same
//              little-module configuration: cell-step time at each ratio, against onnxruntime
// The ratio sweep is `dmi eval lm`'s evaluation (evaluateLm: little modules fitted on train with the
// chosen projection and k, thresholds calibrated on valid, PPL on test). Every cell-step time is at
// batch 1 with the caches flushed before every step (the paper's protocol), the median [min–max] of
// `repeats` independent repetitions (timeRepeated, as `dmi bench rnn`), variants interleaved. Ratio 0
// (every neuron sensitive: the dense computation through the dual step) is timed beside dense as a
// control; a thread count whose two differ beyond their spread is flagged. onnxruntime-node's graphs
// of the trained cell are bench rnn's, checked against our step before they are timed.
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Runtime } from "../runtime/runtime.js";
import { DualModel, gateRegions, type Thresholds } from "../recurrent/dual.js";
import { Stack } from "../recurrent/stack.js";
import { fitLittleModules, type FitOptions } from "../recurrent/fit.js";
import { LittleModule, PROJECTIONS, type ProjectionKind } from "../recurrent/little.js";
import { BITS, type Bits } from "../dual/quantize.js";
import { ORT_MISSING, ortAvailable } from "../onnx/peer.js";
import { Progress } from "../util/progress.js";
import { Rng } from "../util/random.js";
import { FLUSH_BYTES, separated, timeRepeated, type Spread, type Variant } from "../util/timing.js";
import { benchShape, checkPeers, ortCells, type PeerCheck, type RnnBenchRow } from "./rnn.js";
import { selectShapes, type CellName } from "./models.js";
import { renderPng } from "../plot/render.js";
import { insensitiveRegionsSpec, sensitivityMapSpec } from "../plot/figures.js";
import type { LmInference } from "../recurrent/lm.js";
import { evaluateLm, perplexity, spreadPieces, stepSequences, timeTokens, type KCandidate } from "../recurrent/eval.js";
import { DUAL_DECODER_DEFAULTS, DualDecoder, clampRule } from "../recurrent/dual-decoder.js";
import type { OpenedLm } from "../recurrent/open.js";

const RATIOS = [0.1, 0.3, 0.5, 0.7, 0.9];
const NOISE_SIGMAS = [0.25, 0.5, 1];
const EPS_SWEEP = [0.3, 0.5, 0.7];
/** Projected sizes of the k sweep, each with both projections (those above the layer's width are skipped). */
const K_SWEEP = [16, 32, 64, 128, 256, 512];
/** Untimed steps before each variant's timed ones (fewer when fewer are timed, as in a quick test run). */
const WARMUP = 10;
/** The quality budget of the summary line: the highest ratio whose ΔPPL stays within this % of the dense PPL. */
const BUDGET_PERCENT = 1;

export interface TableOptions {
  testTokens: number; trainTokens: number; validTokens: number;
  steps: number;     // timed cell steps per repetition
  repeats: number;   // independent repetitions of every cell-step timing
  threads: number[]; // thread counts the ratio table is timed at (each at most rt.threads)
  paperWidths: number[];
  /** The ratio sweep's little modules: projection, and k (a number per layer; "auto": eval lm's search; undefined: the JL k of ε 0.5). */
  projection: ProjectionKind; k: number | "auto" | undefined;
  onProgress?: (phase: string, done: number, total: number) => void;
}

/** A cell-step time on `threads` threads, its speedups over our fp32 dense step and over onnxruntime's faster fp32 graph (null without it), both on those threads. */
export interface CellTime { threads: number; ms: Spread; speedup: number; speedupOrt: number | null }

export interface LmTables {
  machine: { build: string; threads: number[]; repeats: number; steps: number; peer: string };
  model: {
    file: string; cell: string; layers: number; hidden: number; corpus: string; testTokens: number;
    /** The ratio sweep's little modules: how k was set, k and validation R² per layer, bytes per step (projection included). */
    projection: ProjectionKind; kRule: "jl" | "given" | "auto"; k: number[]; validationR2: (number | null)[]; littleKB: number;
    /** For k auto: every k tried, the chosen one last. */
    kSearch: KCandidate[] | null;
  };
  /** tokenMs: one whole prediction, cold (dense: cell and full decoder; a ratio: its dual cell and the dual output layer at the defaults), on the most threads. */
  dense: { ppl: number; cell: CellTime[]; tokenMs: number };
  /** onnxruntime-node's dense steps of the same trained cell: the faster fp32 graph (named per thread count) and the INT8 one,
   *  with their checks against our step (null: not installed, or more than one layer). */
  ort: { f32: CellTime[]; f32Graph: string[]; int8: CellTime[]; checks: { threads: number; checks: PeerCheck[] }[] } | null;
  /** Ratio 0 first (every neuron sensitive: the control, tokenMs null), then each ratio. dpplPercent = 100·ΔPPL / dense PPL. */
  ratios: { ratio: number; achieved: number; ppl: number; dppl: number; dpplPercent: number; bytesReduction: number; tokenMs: number | null; cell: CellTime[] }[];
  /** Per thread count, dense against ratio 0: `differs` (the table's speedups are not trustworthy) when their min–max ranges do not overlap. */
  control: { threads: number; dense: Spread; ratio0: Spread; differs: boolean }[];
  /** The highest ratio whose ΔPPL ≤ BUDGET_PERCENT % of the dense PPL, or null. */
  best: { ratio: number; dpplPercent: number; cell: CellTime[] } | null;
  /** The simplest competitor, an LSTM's big weights in INT8 and every row computed (null for a GRU). */
  int8: { ppl: number; dppl: number; dpplPercent: number; bytesReduction: number; cell: CellTime[] } | null;
  precision: { bits: Bits; ppl: number; littleMB: number; bigMB: number }[];
  noise: { sigma: number; insensitivePpl: number; sensitivePpl: number }[];
  overhead: { projection: number; little: number; big: number };
  /** ε rows: the paper's random projection at the JL k of each ε; k rows: both projections at each k of K_SWEEP. Timed on `threads`. */
  k: { projection: ProjectionKind; eps: number | null; k: number; littleKB: number; ppl: number; dppl: number; dpplPercent: number;
       threads: number; denseMs: Spread; dualMs: Spread; speedup: number }[];
  compare: { file: string; hidden: number; ppl: number; cellMs: Spread; mbPerStep: number;
             dualPpl: number; dualCellMs: Spread; dualMbPerStep: number; threads: number } | null;
  /** `dmi bench rnn`'s rows for the model's cell at the paper's widths: ratio 0 and RATIOS, cold, fp32 big weights. */
  paper: RnnBenchRow[];
}

export async function runTables(rt: Runtime, o: OpenedLm, smaller: OpenedLm | null, opt: TableOptions, out: string): Promise<LmTables> {
  const { lm, corpus } = o, c = o.checkpoint.config;
  for (const t of opt.threads) {
    if (!Number.isInteger(t) || t < 1 || t > rt.threads) throw new RangeError(`runTables: thread count ${t} is not one of 1 … ${rt.threads} (the runtime's threads)`);
  }
  if (!(opt.repeats >= 3)) throw new RangeError(`runTables: repeats must be at least 3, got ${opt.repeats}`);
  const width = Math.min(...lm.stack.layers.map((cell) => Math.min(cell.input, cell.hidden)));
  if (typeof opt.k === "number" && opt.k > width) throw new Error(`--k ${opt.k} is more than the layer's width ${width}: take k ≤ ${width}`);
  const test = corpus.test.subarray(0, opt.testTokens);
  const trainSeqs = stepSequences(lm, spreadPieces(corpus.train, opt.trainTokens, 1000));
  const validSeqs = stepSequences(lm, spreadPieces(corpus.valid, opt.validTokens, 1000));
  const timedSeq = stepSequences(lm, [corpus.test.subarray(0, opt.steps)])[0];
  const flush = rt.heap.f32(FLUSH_BYTES / 4);
  const warmup = Math.min(WARMUP, timedSeq.length);
  const timing = { warmup, steps: timedSeq.length, repeats: opt.repeats, flush: () => { rt.kernels.sum(flush, flush.length); } };
  const step = (run: (x: Float32Array) => unknown) => (round: number) => run(timedSeq[round % timedSeq.length]);
  const most = Math.max(...opt.threads);
  /** Times the variants on `threads` threads, then leaves the pool at the runtime's count. */
  const timeOn = async (threads: number, variants: Variant[]): Promise<Spread[]> => {
    rt.pool.active = threads;
    try { return await timeRepeated(variants, timing); } finally { rt.pool.active = rt.threads; }
  };
  const ppl = (label: string, rnn: Parameters<typeof perplexity>[1]) => {
    const bar = new Progress(label, test.length - 1, "tok");
    return perplexity(lm, rnn, test, (d) => bar.update(d)).ppl;
  };
  const fit = (options: FitOptions, label: string) => {
    const bar = new Progress(`${label}: fit`, trainSeqs.reduce((n, s) => n + s.length, 0));
    return fitLittleModules(rt, lm.stack, trainSeqs, { ...options, onProgress: (_w, d) => bar.update(d) }).littles;
  };
  const percent = (p: number) => (100 * (p - densePpl)) / densePpl;
  const bigBytes = (s: Stack) => s.layers.reduce((n, cell) => n + cell.bigBytes(cell.rows), 0);

  // Dense and the ratio sweep: eval lm's evaluation with the chosen projection and k.
  const evaluated = evaluateLm(rt, lm, { train: corpus.train, valid: corpus.valid, test }, {
    ratios: RATIOS, k: opt.k, projection: opt.projection, maxTokens: { train: opt.trainTokens, valid: opt.validTokens, test: opt.testTokens },
    onProgress: opt.onProgress,
  });
  const densePpl = evaluated.dense.ppl, { dual } = evaluated, littles = dual.littles;
  const thresholds = evaluated.ratios.map((r) => r.thresholds);
  // Ratio 0, every neuron sensitive: its PPL is the dense one's, by construction; measured as a check.
  dual.setAllSensitive();
  dual.accounting.reset();
  const ratio0Ppl = ppl("ratio 0", dual), ratio0Bytes = dual.accounting.report().memoryReduction;
  const int8Stack = c.cell === "lstm" ? new Stack(rt, { ...lm.stack.config, bigBits: 8 }, lm.stack.layers.map((cell) => cell.weights())) : null;
  const int8Ppl = int8Stack ? ppl("dense INT8", int8Stack) : null;

  // Cell-step times per thread count: onnxruntime's graphs of the trained cell (checked first),
  // each in a block of its own; then ours interleaved: dense fp32, dense INT8, ratio 0, each ratio.
  const peerOk = lm.stack.layers.length === 1 && (await ortAvailable());
  const shape = { cell: c.cell as CellName, config: lm.stack.config };
  const weights = lm.stack.layers.map((cell) => cell.weights());
  type PeerTimes = { f32: Spread; f32Graph: string; int8: Spread | null; checks: PeerCheck[] };
  const perThread: { threads: number; ort: PeerTimes | null; dense: Spread; int8: Spread | null; ratio0: Spread; duals: Spread[] }[] = [];
  for (const threads of opt.threads) {
    let ort: PeerTimes | null = null;
    if (peerOk) {
      const cells = await ortCells(shape, weights, threads);
      try {
        const checks = await checkPeers(cells, lm.stack, timedSeq);
        const peers: { name: string; ms: Spread }[] = [];
        for (const { name, peer } of cells.peers) {
          let n = 0;
          const [ms] = await timeOn(threads, [{ run: () => { cells.load(timedSeq[n++ % timedSeq.length]); return peer.run(cells.feeds); } }]);
          peers.push({ name, ms });
          // onnxruntime's threads spin on after a run: ours start once they have gone idle (as bench rnn).
          await sleep(1000);
        }
        const f32 = peers.filter((p) => p.name.startsWith("ort f32")).reduce((a, b) => (b.ms.median < a.ms.median ? b : a));
        ort = { f32: f32.ms, f32Graph: f32.name, int8: peers.find((p) => p.name === "ort int8")?.ms ?? null, checks };
      } finally {
        for (const { peer } of cells.peers) await peer.release();
      }
    }
    const ms = await timeOn(threads, [
      { run: step((x) => lm.stack.step(x)) },
      ...(int8Stack ? [{ run: step((x) => int8Stack.step(x)) }] : []),
      { prepare: () => dual.setAllSensitive(), run: step((x) => dual.step(x)) },
      ...thresholds.map((t, i): Variant => ({ prepare: () => dual.setThresholds(t, RATIOS[i]), run: step((x) => dual.step(x)) })),
    ]);
    const [dense, ...rest] = ms, int8 = int8Stack ? rest.shift()! : null, [ratio0, ...duals] = rest;
    perThread.push({ threads, ort, dense, int8, ratio0, duals });
  }
  const cellTime = (pick: (p: (typeof perThread)[number]) => Spread | null): CellTime[] => perThread.flatMap((p) => {
    const ms = pick(p);
    return ms ? [{ threads: p.threads, ms, speedup: p.dense.median / ms.median, speedupOrt: p.ort ? p.ort.f32.median / ms.median : null }] : [];
  });

  const decoder = DualDecoder.fit(rt, lm, lm.stack, spreadPieces(corpus.train, opt.trainTokens, 1000),
    { rank: Math.min(DUAL_DECODER_DEFAULTS.rank, c.hidden, c.vocab), candidates: clampRule(DUAL_DECODER_DEFAULTS.candidates, c.vocab) });
  const tokens = await timeTokens(rt, lm, { dual, ratios: evaluated.ratios }, decoder, test, { rounds: opt.steps, warmup });
  const half = RATIOS.indexOf(0.5);
  const ratios: LmTables["ratios"] = [
    { ratio: 0, achieved: 0, ppl: ratio0Ppl, dppl: ratio0Ppl - densePpl, dpplPercent: percent(ratio0Ppl), bytesReduction: ratio0Bytes,
      tokenMs: null, cell: cellTime((p) => p.ratio0) },
    ...evaluated.ratios.map((r, i) => ({
      ratio: r.ratio, achieved: r.achievedRatio, ppl: r.ppl, dppl: r.ppl - densePpl, dpplPercent: percent(r.ppl),
      bytesReduction: r.bytesReduction, tokenMs: tokens.dual[i].token, cell: cellTime((p) => p.duals[i]),
    })),
  ];
  const within = ratios.filter((r) => r.ratio > 0 && r.dpplPercent <= BUDGET_PERCENT);
  const best = within.length > 0 ? within[within.length - 1] : null;

  // Figures from the 50 % thresholds: layer 0's insensitive regions, and its sensitive rows over
  // 35 steps from two places in the test text.
  await figures(lm, dual, thresholds[half], c.hidden, corpus.test, out);

  // Little-weight precision: the same fitted weights quantized to each width, thresholds recalibrated.
  const precision = BITS.slice().reverse().map((bits) => {
    const requantized = littles.map((m) => new LittleModule(rt, m.rows, m.projector, bits, m.weights, m.joint));
    const d = new DualModel(rt, lm.stack, requantized);
    d.calibrate(validSeqs, 0.5);
    return { bits, ppl: ppl(`${bits}-bit little weights`, d), littleMB: requantized.reduce((n, m) => n + m.bytes, 0) / 1e6, bigMB: bigBytes(lm.stack) / 1e6 };
  });

  // Noise of each σ on either half, at the 50 % thresholds.
  dual.setThresholds(thresholds[half], 0.5);
  const noise = NOISE_SIGMAS.map((sigma) => {
    const at = (target: "insensitive" | "sensitive") => {
      dual.setNoise({ target, sigma, rng: new Rng(7) });
      return ppl(`noise σ ${sigma} on the ${target} half`, dual);
    };
    const row = { sigma, insensitivePpl: at("insensitive"), sensitivePpl: at("sensitive") };
    dual.setNoise(null);
    return row;
  });

  // Overhead split of a 50 % step: projection alone; projection + little module + selection + gate
  // update (nothing sensitive); and the 50 % step, whose remainder is the big module. Medians.
  const [denseMs, projMs, noneMs, halfMs] = (await timeOn(most, [
    { run: step((x) => lm.stack.step(x)) },
    { run: () => littles.forEach((m, l) => m.projector.project(lm.stack.layers[l].xh)) },
    { prepare: () => dual.setNoneSensitive(), run: step((x) => dual.step(x)) },
    { prepare: () => dual.setThresholds(thresholds[half], 0.5), run: step((x) => dual.step(x)) },
  ])).map((s) => s.median);
  const overhead = { projection: projMs / denseMs, little: (noneMs - projMs) / denseMs, big: (halfMs - noneMs) / denseMs };

  // k from ε (the paper's), then a grid of k with both projections: PPL, little-module bytes
  // (projection included) and the 50 % step, every configuration timed in one interleaved run with dense.
  const sweep: { projection: ProjectionKind; eps: number | null; k?: number }[] = [
    ...EPS_SWEEP.map((eps) => ({ projection: "random" as const, eps })),
    ...K_SWEEP.filter((k) => k <= width).flatMap((k) => PROJECTIONS.map((projection) => ({ projection, eps: null, k }))),
  ];
  const configs = sweep.map(({ projection, eps, k: size }) => {
    const label = eps !== null ? `ε ${eps}` : `${projection} k ${size}`;
    const ls = fit(eps !== null ? { eps } : { k: size, projection }, label);
    const d = new DualModel(rt, lm.stack, ls), t = d.calibrate(validSeqs, 0.5);
    d.setThresholds(t, 0.5);
    return { projection, eps, d, t, k: ls[0].k, littleKB: ls.reduce((n, m) => n + m.bytes, 0) / 1e3, ppl: ppl(label, d) };
  });
  const [kDense, ...kDuals] = await timeOn(most, [
    { run: step((x) => lm.stack.step(x)) },
    ...configs.map(({ d, t }): Variant => ({ prepare: () => d.setThresholds(t, 0.5), run: step((x) => d.step(x)) })),
  ]);
  const k = configs.map((r, i) => ({
    projection: r.projection, eps: r.eps, k: r.k, littleKB: r.littleKB, ppl: r.ppl, dppl: r.ppl - densePpl, dpplPercent: percent(r.ppl),
    threads: most, denseMs: kDense, dualMs: kDuals[i], speedup: kDense.median / kDuals[i].median,
  }));

  const compare = smaller ? await compareSmaller(smaller, test, dual, thresholds[half], lm, opt.steps, most, (v) => timeOn(most, v)) : null;

  // The paper's widths: the bench's random model of this cell, fitted and timed the same way.
  const paper: RnnBenchRow[] = [];
  for (const shape of opt.paperWidths.length > 0 ? selectShapes([c.cell], opt.paperWidths) : []) {
    paper.push(...(await benchShape(rt, shape, [0, ...RATIOS], opt.threads, ["cold"], opt.steps, [32], flush)));
  }
  rt.heap.release(flush);
  const fitReport = evaluated.fit;
  return {
    machine: { build: rt.variant, threads: opt.threads, repeats: opt.repeats, steps: timedSeq.length,
      peer: peerOk ? "onnxruntime-node's dense fp32 step of the same trained cell (the faster of its LSTM/GRU operator and Gemm plus gate math) and its dynamically quantized INT8 cell, each checked against our step before timing; its times include creating its input tensors and awaiting its asynchronous run"
        : lm.stack.layers.length > 1 ? "onnxruntime: n/a (no peer graph for a stack of several layers)" : ORT_MISSING },
    model: {
      file: basename(o.path), cell: c.cell, layers: c.layers, hidden: c.hidden, corpus: corpus.name, testTokens: test.length,
      projection: opt.projection, kRule: opt.k === undefined ? "jl" : opt.k === "auto" ? "auto" : "given",
      k: littles.map((m) => m.k), validationR2: fitReport.map((r) => r.validationR2), littleKB: littles.reduce((n, m) => n + m.bytes, 0) / 1e3,
      kSearch: evaluated.kSearch,
    },
    dense: { ppl: densePpl, cell: cellTime((p) => p.dense), tokenMs: tokens.dense.token },
    ort: peerOk ? {
      f32: cellTime((p) => p.ort!.f32), f32Graph: perThread.map((p) => p.ort!.f32Graph), int8: cellTime((p) => p.ort!.int8),
      checks: perThread.map((p) => ({ threads: p.threads, checks: p.ort!.checks })),
    } : null,
    ratios,
    control: perThread.map((p) => ({ threads: p.threads, dense: p.dense, ratio0: p.ratio0, differs: separated(p.dense, p.ratio0) })),
    best: best && { ratio: best.ratio, dpplPercent: best.dpplPercent, cell: best.cell },
    int8: int8Ppl === null ? null : {
      ppl: int8Ppl, dppl: int8Ppl - densePpl, dpplPercent: percent(int8Ppl), bytesReduction: bigBytes(lm.stack) / bigBytes(int8Stack!),
      cell: cellTime((p) => p.int8),
    },
    precision, noise, overhead, k, compare, paper,
  };
}

/** The smaller model's dense PPL, cell time and bytes against the larger one's dual module at 50 %. */
async function compareSmaller(s: OpenedLm, test: Int32Array, dual: DualModel, half: Thresholds, lm: LmInference, steps: number, threads: number,
                              time: (variants: Variant[]) => Promise<Spread[]>): Promise<NonNullable<LmTables["compare"]>> {
  const bar = new Progress(`dense ${basename(s.path)}`, test.length - 1, "tok");
  const smallPpl = perplexity(s.lm, s.lm.stack, test, (d) => bar.update(d)).ppl;
  dual.setThresholds(half, 0.5);
  dual.accounting.reset();
  const bar2 = new Progress("dual 50 %", test.length - 1, "tok");
  const dualPpl = perplexity(lm, dual, test, (d) => bar2.update(d)).ppl;
  const perStep = dual.accounting.report().perStep;
  const seqSmall = stepSequences(s.lm, [test.subarray(0, steps)])[0], seqLarge = stepSequences(lm, [test.subarray(0, steps)])[0];
  const [smallMs, dualMs] = await time([
    { run: (round) => s.lm.stack.step(seqSmall[round % seqSmall.length]) },
    { prepare: () => dual.setThresholds(half, 0.5), run: (round) => dual.step(seqLarge[round % seqLarge.length]) },
  ]);
  const c = s.checkpoint.config;
  return {
    file: basename(s.path), hidden: c.hidden, ppl: smallPpl, cellMs: smallMs,
    mbPerStep: s.lm.stack.layers.reduce((n, cell) => n + cell.bigBytes(cell.rows), 0) / 1e6,
    dualPpl, dualCellMs: dualMs, dualMbPerStep: perStep.bytes / 1e6, threads,
  };
}

/** Figure 1 and Figure 2 of the paper from layer 0 of the model at the 50 % thresholds. */
async function figures(lm: LmInference, dual: DualModel, half: Thresholds, H: number, text: Int32Array, out: string): Promise<void> {
  const cell = lm.stack.layers[0], names = cell.kind === "lstm" ? ["i", "f", "g", "o"] : ["r", "z", "n"];
  const regions = gateRegions(cell.kind);
  dual.setThresholds(half, 0.5);
  await renderPng(insensitiveRegionsSpec(half[0].map((bounds, g) => ({ gate: names[g], region: regions[g], bounds })),
    "Insensitive regions at the thresholds calibrated for 50 % (layer 0)"), join(out, "figure1.png"));
  const STEPS = 35;
  const maps = [0, Math.floor(text.length / 2)].map((start, i) => {
    const mask = new Uint8Array(STEPS * cell.rows);
    dual.reset();
    for (let t = 0; t < STEPS; t++) {
      dual.step(lm.embed(text[start + t]));
      for (const r of dual.sensitiveRows(0)) mask[t * cell.rows + r] = 1;
    }
    return { label: `input ${i + 1}: test tokens ${start}–${start + STEPS - 1}`, steps: STEPS, mask };
  });
  dual.reset();
  await renderPng(sensitivityMapSpec(maps, names, H, 64, "Sensitive gate neurons of layer 0 over 35 steps (50 % thresholds)"),
    join(out, "figure2.png"));
}

export function formatTables(t: LmTables): string {
  const f = (x: number, d = 2) => x.toFixed(d);
  const ms = (s: Spread) => `${f(s.median, 3)} [${f(s.min, 3)}–${f(s.max, 3)}]`;
  const threads = (n: number) => `${n} thread${n > 1 ? "s" : ""}`;
  const m = t.model, T = t.machine.threads;
  const kRule = { jl: "the Johnson–Lindenstrauss k of ε 0.5, at most the layer's width (the paper's)", given: "given (--k)",
    auto: "k auto: the smallest k of the grid whose validation PPL at 50 % stays within 1 % of dense" }[m.kRule];
  const r2 = m.validationR2.every((r) => r !== null) ? `, validation R² ${m.validationR2.map((r) => f(r!, 3)).join(", ")}` : "";
  // Per thread count: the step's time and its speedups over our dense step and onnxruntime's fp32 one.
  const timeHeader = T.flatMap((n) => [`cell ms, ${n} thr`, `x dense, ${n} thr`, `x ORT, ${n} thr`]);
  const timeCells = (cell: CellTime[]) => T.flatMap((n) => {
    const c = cell.find((x) => x.threads === n);
    return c ? [ms(c.ms), f(c.speedup), c.speedupOrt === null ? "n/a" : f(c.speedupOrt)] : ["-", "-", "-"];
  });
  const quality = (ppl: number, dppl: number, pct: number) => [f(ppl), signed(dppl), signed(pct)];
  const best = t.best
    ? `${f(t.best.ratio)} (ΔPPL ${signed(t.best.dpplPercent)} %; speedup ${t.best.cell.map((c) => `${f(c.speedup)}x on ${threads(c.threads)}`).join(", ")}` +
      `${t.best.cell.some((c) => c.speedupOrt !== null) ? `; over ORT ${t.best.cell.map((c) => `${f(c.speedupOrt ?? NaN)}x on ${threads(c.threads)}`).join(", ")}` : ""})`
    : "none of the ratios";
  const parts = [
    `## ${m.cell.toUpperCase()} ${m.layers}×${m.hidden} on ${m.corpus} (${m.file})`,
    "",
    `Little module: ${m.projection} projection, k = ${m.k.join(", ")} per layer (${kRule}), INT8 weights, ` +
    `${f(m.littleKB, 1)} KB per step with the projection${r2}. ` +
    `Test perplexity over the first ${m.testTokens} test tokens; little modules fitted on train, thresholds on valid; ` +
    `ΔPPL % = 100·ΔPPL / dense PPL. Cell step: one recurrent step at batch 1, caches flushed before each, ` +
    `ms median [min–max] of ${t.machine.repeats} independent repetitions of ${t.machine.steps} steps, ${t.machine.build} build. ` +
    `x dense: over our fp32 dense step; x ORT: over onnxruntime's fp32 step, both on the same threads. ` +
    `Token (on ${threads(Math.max(...T))}): one whole prediction, caches flushed (dense: cell and decoder over the ` +
    `vocabulary; dual: the dual cell and the dual-module output layer, rank-${DUAL_DECODER_DEFAULTS.rank} INT8 preview, exact logits for ` +
    `the candidates of rule ${DUAL_DECODER_DEFAULTS.candidates}), softmax and greedy choice.`,
  ];
  if (m.kSearch) {
    parts.push("", `k auto tried (validation PPL at 50 % against dense): ${m.kSearch.map((c) =>
      `k ${c.k}: ${f(c.validPpl)} / ${f(c.validDensePpl)} (${signed(100 * (c.validPpl / c.validDensePpl - 1))} %, ${f(c.littleBytes / 1e3, 1)} KB)`).join("; ")}.`);
  }
  parts.push(
    "",
    "### Insensitive ratio",
    "",
    markdown(["ratio", "achieved", "PPL", "ΔPPL", "ΔPPL %", "memory reduction", "token ms", ...timeHeader], [
      ["dense", "-", f(t.dense.ppl), "-", "-", "1.00", f(t.dense.tokenMs, 3), ...timeCells(t.dense.cell)],
      ...(t.ort ? [["ORT f32", "-", "-", "-", "-", "1.00", "-", ...timeCells(t.ort.f32)],
                   ["ORT INT8", "-", "-", "-", "-", "-", "-", ...timeCells(t.ort.int8)]] : []),
      ...(t.int8 ? [["dense INT8", "-", ...quality(t.int8.ppl, t.int8.dppl, t.int8.dpplPercent), f(t.int8.bytesReduction), "-", ...timeCells(t.int8.cell)]] : []),
      ...t.ratios.map((r) => [f(r.ratio), f(r.achieved, 3), ...quality(r.ppl, r.dppl, r.dpplPercent), f(r.bytesReduction),
        r.tokenMs === null ? "-" : f(r.tokenMs, 3), ...timeCells(r.cell)]),
    ]),
    "",
    `Highest ratio with ΔPPL ≤ ${BUDGET_PERCENT} %: ${best}.`,
    "",
    ...t.control.map((c) => `Control, ${threads(c.threads)}: ratio 0 ${ms(c.ratio0)} against dense ${ms(c.dense)} ms: ` +
      (c.differs ? "**they DIFFER beyond their spread: this thread count's speedups are not trustworthy**." : "they agree within their spread.")),
    "",
    "Ratio 0: the dual step with every neuron sensitive, the dense computation through the dual module (bench rnn's control). " +
    (t.int8 ? "Dense INT8: the simplest competitor, our step with the big weights quantized per row (no dual module). " : "") +
    (t.ort ? `ORT: ${t.machine.peer}. ORT f32 is ${[...new Set(t.ort.f32Graph)].join(" / ")}; checks: ` +
      t.ort.checks.map((o) => `${threads(o.threads)}: ${o.checks.map((c) => `${c.name} max |Δ| ${c.max_error.toExponential(1)} ≤ ${c.tolerance}`).join(", ")}`).join("; ") + "."
      : `ORT: n/a (${t.machine.peer}).`),
    "",
    "### Little-module precision (50 %)",
    "",
    markdown(["bits", "PPL", "little MB", "big MB"], t.precision.map((p) => [String(p.bits), f(p.ppl), f(p.littleMB, 3), f(p.bigMB, 3)])),
    "",
    "### Noise on the insensitive versus the sensitive half (50 % thresholds; σ in pre-activation units)",
    "",
    markdown(["σ", "PPL, noise on insensitive", "PPL, noise on sensitive"],
      t.noise.map((n) => [String(n.sigma), f(n.insensitivePpl), f(n.sensitivePpl)])),
    "",
    "### Overhead split of a 50 % step (fraction of the dense step)",
    "",
    markdown(["projection", "little module (+ selection, gates)", "big module"],
      [[f(t.overhead.projection, 3), f(t.overhead.little, 3), f(t.overhead.big, 3)]]),
    "",
    `### k sweep (50 %; little-module bytes include the projection; ${threads(t.k[0]?.threads ?? Math.max(...T))}, dense ${t.k[0] ? ms(t.k[0].denseMs) : "-"} ms)`,
    "",
    markdown(["projection", "ε", "k", "little KB", "PPL", "ΔPPL", "ΔPPL %", "dual ms", "x dense"], t.k.map((r) => [
      r.projection, r.eps === null ? "-" : String(r.eps), String(r.k), f(r.littleKB, 1), ...quality(r.ppl, r.dppl, r.dpplPercent), ms(r.dualMs), f(r.speedup)])),
  );
  if (t.compare) {
    const c = t.compare;
    parts.push("", `### Dual-module ${m.hidden} at 50 % against dense ${c.hidden} (${c.file}; ${threads(c.threads)})`, "",
      markdown(["model", "PPL", "cell ms", "MB per step"], [
        [`dense ${c.hidden}`, f(c.ppl), ms(c.cellMs), f(c.mbPerStep, 3)],
        [`dual ${m.hidden} at 50 %`, f(c.dualPpl), ms(c.dualCellMs), f(c.dualMbPerStep, 3)],
      ]));
  }
  if (t.paper.length > 0) {
    parts.push("", `### ${m.cell.toUpperCase()} cell step at the paper's widths (random weights; the same little-module configuration)`, "",
      "Input = hidden; little modules (the paper's random projection at the JL k) fitted on random inputs, thresholds calibrated to each ratio; " +
      "caches flushed; medians of 3 repetitions (`dmi bench rnn` prints their spread). ORT: onnxruntime-node's faster dense model of the cell " +
      "(its operator, or Gemm plus gate math), same weights.", "",
      markdown(["H", "threads", "ratio", "achieved", "dense ms", "dual ms", "speedup", "ORT ms", "speedup over ORT"], t.paper.map((r) => [
        String(r.hidden), String(r.threads), f(r.ratio), f(r.achieved_ratio, 3), f(r.dense_ms, 3), f(r.dual_ms, 3), f(r.dense_ms / r.dual_ms),
        r.ort_ms === null ? "n/a" : f(r.ort_ms, 3), r.ort_ms === null ? "n/a" : f(r.ort_ms / r.dual_ms),
      ])));
  }
  return parts.join("\n") + "\n";
}

function markdown(header: string[], rows: string[][]): string {
  return [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

function signed(x: number): string { return `${x >= 0 ? "+" : ""}${x.toFixed(2)}`; }
