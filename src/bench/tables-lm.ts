// The paper's language-model experiments on one trained checkpoint (`dmi tables lm`, src/cli/tables-lm.ts),
// as one LmTables object and its Markdown, and its Figures 1 and 2 as PNG:
//   ratios     PPL, ΔPPL, cell-step time and speedup, memory reduction at each insensitive ratio, and
//              the time of one whole token (dual cell with the dual-module output layer; dense: cell and decoder)
//   precision  little-weight precision 32 … 1 bits at 50 %: PPL and little-module size
//   noise      Gaussian noise on the insensitive versus the sensitive half of the gates: PPL
//   overhead   a 50 % step split into projection, little module and big module
//   k          the JL ε (0.3, 0.5, 0.7) → k, PPL and speedup at 50 %
//   compare    (with --compare SMALLER) dual-module at 50 % against a dense model half the size
//   paper      the same cell at the paper's widths (H = 750, 1500) with random weights and the same
//              little-module configuration: cell-step time at each ratio, against onnxruntime
// Little modules are fitted on train, thresholds calibrated on valid, PPL measured on test, as in
// `dmi eval lm`. Cell-step times are at batch 1 with the caches flushed before every step (the
// paper's protocol), ours against ours, variants interleaved.
import { basename, join } from "node:path";
import type { Runtime } from "../runtime/runtime.js";
import { DualModel, gateRegions, type Thresholds } from "../recurrent/dual.js";
import { Stack } from "../recurrent/stack.js";
import { fitLittleModules, type FitOptions } from "../recurrent/fit.js";
import { LittleModule, PROJECTIONS, type ProjectionKind } from "../recurrent/little.js";
import { BITS, type Bits } from "../dual/quantize.js";
import { Progress } from "../util/progress.js";
import { Rng } from "../util/random.js";
import { FLUSH_BYTES, timeInterleaved, type Variant } from "../util/timing.js";
import { benchShape, type RnnBenchRow } from "./rnn.js";
import { selectShapes } from "./models.js";
import { renderPng } from "../plot/render.js";
import { insensitiveRegionsSpec, sensitivityMapSpec } from "../plot/figures.js";
import type { LmInference } from "../recurrent/lm.js";
import { perplexity, spreadPieces, stepSequences, timeTokens } from "../recurrent/eval.js";
import { DUAL_DECODER_DEFAULTS, DualDecoder } from "../recurrent/dual-decoder.js";
import type { OpenedLm } from "../recurrent/open.js";

const RATIOS = [0.1, 0.3, 0.5, 0.7, 0.9];
const NOISE_SIGMAS = [0.25, 0.5, 1];
const EPS_SWEEP = [0.3, 0.5, 0.7];
/** Projected sizes of the k sweep, each with both projections (those above the layer's width are skipped). */
const K_SWEEP = [16, 32, 64, 128, 256, 512];
const WARMUP = 10;

export interface TableOptions { testTokens: number; trainTokens: number; validTokens: number; steps: number; paperWidths: number[] }

export interface LmTables {
  machine: { threads: number; build: string };
  model: { file: string; cell: string; layers: number; hidden: number; corpus: string; testTokens: number; k: number[] };
  /** tokenMs: one whole prediction, cold (dense: cell and full decoder; a ratio: its dual cell and the dual output layer at the defaults). */
  dense: { ppl: number; cellMs: number; tokenMs: number };
  ratios: { ratio: number; achieved: number; ppl: number; dppl: number; cellMs: number; speedup: number; bytesReduction: number; tokenMs: number }[];
  /** The simplest competitor, an LSTM's big weights in INT8 and every row computed (null for a GRU). */
  int8: { ppl: number; dppl: number; cellMs: number; speedup: number; bytesReduction: number } | null;
  precision: { bits: Bits; ppl: number; littleMB: number; bigMB: number }[];
  noise: { sigma: number; insensitivePpl: number; sensitivePpl: number }[];
  overhead: { projection: number; little: number; big: number };
  /** ε rows: the paper's random projection at the JL k of each ε; k rows: both projections at each k of K_SWEEP. */
  k: { projection: ProjectionKind; eps: number | null; k: number; littleKB: number; ppl: number; dppl: number; speedup: number }[];
  compare: { file: string; hidden: number; ppl: number; cellMs: number; mbPerStep: number;
             dualPpl: number; dualCellMs: number; dualMbPerStep: number } | null;
  /** `dmi bench rnn`'s rows for the model's cell at the paper's widths: ratio 0 and RATIOS, cold, fp32 big weights. */
  paper: RnnBenchRow[];
}

export async function runTables(rt: Runtime, o: OpenedLm, smaller: OpenedLm | null, opt: TableOptions, out: string): Promise<LmTables> {
  const { lm, corpus } = o, c = o.checkpoint.config;
  const test = corpus.test.subarray(0, opt.testTokens);
  const trainSeqs = stepSequences(lm, spreadPieces(corpus.train, opt.trainTokens, 1000));
  const validSeqs = stepSequences(lm, spreadPieces(corpus.valid, opt.validTokens, 1000));
  const timedSeq = stepSequences(lm, [corpus.test.subarray(0, opt.steps)])[0];
  const flush = rt.heap.f32(FLUSH_BYTES / 4);
  const flushing = () => { rt.kernels.sum(flush, flush.length); };
  const ppl = (label: string, rnn: Parameters<typeof perplexity>[1]) => {
    const bar = new Progress(label, test.length - 1, "tok");
    return perplexity(lm, rnn, test, (d) => bar.update(d)).ppl;
  };
  /** Median cold cell-step times of the dense stack and of `dual` at each set of thresholds. */
  const cellTimes = async (dual: DualModel, thresholds: Thresholds[]): Promise<{ dense: number; dual: number[] }> => {
    const step = (run: (x: Float32Array) => unknown) => (round: number) => run(timedSeq[round % timedSeq.length]);
    const [dense, ...duals] = await timeInterleaved([
      { run: step((x) => lm.stack.step(x)) },
      ...thresholds.map((t): Variant => ({ prepare: () => dual.setThresholds(t), run: step((x) => dual.step(x)) })),
    ], { warmup: WARMUP, rounds: timedSeq.length, flush: flushing });
    return { dense, dual: duals };
  };
  /** The same model with INT8 big weights, dense: perplexity, and its step timed against the fp32 one. */
  const int8Dense = async (): Promise<LmTables["int8"]> => {
    const stack = new Stack(rt, { ...lm.stack.config, bigBits: 8 }, lm.stack.layers.map((cell) => cell.weights()));
    const p = ppl("dense INT8", stack);
    const step = (s: Stack) => (round: number) => s.step(timedSeq[round % timedSeq.length]);
    const [dense, quantized] = await timeInterleaved([{ run: step(lm.stack) }, { run: step(stack) }],
      { warmup: WARMUP, rounds: timedSeq.length, flush: flushing });
    const bytes = (s: Stack) => s.layers.reduce((n, cell) => n + cell.bigBytes(cell.rows), 0);
    return { ppl: p, dppl: p - densePpl, cellMs: quantized, speedup: dense / quantized, bytesReduction: bytes(lm.stack) / bytes(stack) };
  };
  const fit = (options: FitOptions, label: string) => {
    const bar = new Progress(`${label}: fit`, trainSeqs.reduce((n, s) => n + s.length, 0));
    return fitLittleModules(rt, lm.stack, trainSeqs, { ...options, onProgress: (_w, d) => bar.update(d) }).littles;
  };

  // Dense, then the ratio sweep on little modules at the defaults (ε = 0.5, INT8).
  const densePpl = ppl("dense", lm.stack);
  const littles = fit({ eps: 0.5 }, "ε 0.5");
  const dual = new DualModel(rt, lm.stack, littles);
  const thresholds = RATIOS.map((r) => dual.calibrate(validSeqs, r));
  const ratioRows = RATIOS.map((ratio, i) => {
    dual.setThresholds(thresholds[i], ratio);
    dual.accounting.reset();
    const p = ppl(`ratio ${ratio}`, dual), a = dual.accounting.report();
    return { ratio, achieved: a.insensitiveRatio, ppl: p, dppl: p - densePpl, bytesReduction: a.memoryReduction };
  });
  const times = await cellTimes(dual, thresholds);
  const decoder = DualDecoder.fit(rt, lm, lm.stack, spreadPieces(corpus.train, opt.trainTokens, 1000),
    { rank: Math.min(DUAL_DECODER_DEFAULTS.rank, c.hidden, c.vocab), candidates: Math.min(DUAL_DECODER_DEFAULTS.candidates, c.vocab) });
  const tokens = await timeTokens(rt, lm, { dual, ratios: RATIOS.map((ratio, i) => ({ ratio, thresholds: thresholds[i] })) }, decoder, test,
    { rounds: opt.steps, warmup: WARMUP });
  const half = RATIOS.indexOf(0.5);
  const int8 = c.cell === "lstm" ? await int8Dense() : null;

  // Figures from the 50 % thresholds: layer 0's insensitive regions, and its sensitive rows over
  // 35 steps from two places in the test text.
  await figures(lm, dual, thresholds[half], c.hidden, corpus.test, out);

  // Little-weight precision: the same fitted weights quantized to each width, thresholds recalibrated.
  const precision = BITS.slice().reverse().map((bits) => {
    const requantized = littles.map((m) => new LittleModule(rt, m.rows, m.projector, bits, m.weights, m.joint));
    const d = new DualModel(rt, lm.stack, requantized);
    d.calibrate(validSeqs, 0.5);
    const bigMB = lm.stack.layers.reduce((n, cell) => n + cell.bigBytes(cell.rows), 0) / 1e6;
    return { bits, ppl: ppl(`${bits}-bit little weights`, d), littleMB: requantized.reduce((n, m) => n + m.bytes, 0) / 1e6, bigMB };
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
  // update (nothing sensitive); and the 50 % step, whose remainder is the big module.
  const splitMs = await timeInterleaved([
    { run: (round) => lm.stack.step(timedSeq[round % timedSeq.length]) },
    { run: () => littles.forEach((m, l) => m.projector.project(lm.stack.layers[l].xh)) },
    { prepare: () => dual.setNoneSensitive(), run: (round) => dual.step(timedSeq[round % timedSeq.length]) },
    { prepare: () => dual.setThresholds(thresholds[half], 0.5), run: (round) => dual.step(timedSeq[round % timedSeq.length]) },
  ], { warmup: WARMUP, rounds: timedSeq.length, flush: flushing });
  const [denseMs, projMs, noneMs, halfMs] = splitMs;
  const overhead = { projection: projMs / denseMs, little: (noneMs - projMs) / denseMs, big: (halfMs - noneMs) / denseMs };

  // k from ε (the paper's), then a grid of k with both projections: PPL, little-module bytes
  // (projection included) and speedup at 50 % (ε = 0.5 is the ratio sweep above).
  const width = Math.min(...lm.stack.layers.map((cell) => Math.min(cell.input, cell.hidden)));
  const sweep: { projection: ProjectionKind; eps: number | null; k?: number }[] = [
    ...EPS_SWEEP.map((eps) => ({ projection: "random" as const, eps })),
    ...K_SWEEP.filter((k) => k <= width).flatMap((k) => PROJECTIONS.map((projection) => ({ projection, eps: null, k }))),
  ];
  const k = [];
  for (const { projection, eps, k: size } of sweep) {
    const label = eps !== null ? `ε ${eps}` : `${projection} k ${size}`;
    const ls = eps === 0.5 ? littles : fit(eps !== null ? { eps } : { k: size, projection }, label);
    const d = eps === 0.5 ? dual : new DualModel(rt, lm.stack, ls);
    const t = eps === 0.5 ? thresholds[half] : d.calibrate(validSeqs, 0.5);
    d.setThresholds(t, 0.5);
    const p = ppl(label, d), tm = await cellTimes(d, [t]);
    k.push({ projection, eps, k: ls[0].k, littleKB: ls.reduce((n, m) => n + m.bytes, 0) / 1e3, ppl: p, dppl: p - densePpl, speedup: tm.dense / tm.dual[0] });
  }

  const compare = smaller ? await compareSmaller(smaller, test, dual, thresholds[half], lm, opt.steps, flushing) : null;

  // The paper's widths: the bench's random model of this cell, fitted and timed the same way.
  const paper: RnnBenchRow[] = [];
  for (const shape of opt.paperWidths.length > 0 ? selectShapes([c.cell], opt.paperWidths) : []) {
    paper.push(...(await benchShape(rt, shape, [0, ...RATIOS], [rt.threads], ["cold"], opt.steps, [32], flush)));
  }
  return {
    machine: { threads: rt.threads, build: rt.variant },
    model: { file: basename(o.path), cell: c.cell, layers: c.layers, hidden: c.hidden, corpus: corpus.name, testTokens: test.length, k: littles.map((m) => m.k) },
    dense: { ppl: densePpl, cellMs: times.dense, tokenMs: tokens.dense.token },
    ratios: ratioRows.map((r, i) => ({ ...r, cellMs: times.dual[i], speedup: times.dense / times.dual[i], tokenMs: tokens.dual[i].token })),
    int8,
    precision, noise, overhead, k, compare, paper,
  };
}

/** The smaller model's dense PPL, cell time and bytes against the larger one's dual module at 50 %. */
async function compareSmaller(s: OpenedLm, test: Int32Array, dual: DualModel, half: Thresholds,
                              lm: LmInference, steps: number, flush: () => void): Promise<NonNullable<LmTables["compare"]>> {
  const bar = new Progress(`dense ${basename(s.path)}`, test.length - 1, "tok");
  const smallPpl = perplexity(s.lm, s.lm.stack, test, (d) => bar.update(d)).ppl;
  dual.setThresholds(half, 0.5);
  dual.accounting.reset();
  const bar2 = new Progress("dual 50 %", test.length - 1, "tok");
  const dualPpl = perplexity(lm, dual, test, (d) => bar2.update(d)).ppl;
  const perStep = dual.accounting.report().perStep;
  const seqSmall = stepSequences(s.lm, [test.subarray(0, steps)])[0], seqLarge = stepSequences(lm, [test.subarray(0, steps)])[0];
  const [smallMs, dualMs] = await timeInterleaved([
    { run: (round) => s.lm.stack.step(seqSmall[round % seqSmall.length]) },
    { run: (round) => dual.step(seqLarge[round % seqLarge.length]) },
  ], { warmup: WARMUP, rounds: steps, flush });
  const c = s.checkpoint.config;
  return {
    file: basename(s.path), hidden: c.hidden, ppl: smallPpl, cellMs: smallMs,
    mbPerStep: s.lm.stack.layers.reduce((n, cell) => n + cell.bigBytes(cell.rows), 0) / 1e6,
    dualPpl, dualCellMs: dualMs, dualMbPerStep: perStep.bytes / 1e6,
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
  const m = t.model;
  const parts = [
    `## ${m.cell.toUpperCase()} ${m.layers}×${m.hidden} on ${m.corpus} (${m.file})`,
    "",
    `Test perplexity over the first ${m.testTokens} test tokens; little modules (k = ${m.k.join(", ")}, INT8) fitted on train, ` +
    `thresholds on valid. Cell step: one recurrent step at batch 1, caches flushed before each, median; ${t.machine.threads} ` +
    `thread(s), ${t.machine.build} build. Token: one whole prediction, caches flushed (dense: cell and decoder over the ` +
    `vocabulary; dual: the dual cell and the dual-module output layer, rank-${DUAL_DECODER_DEFAULTS.rank} INT8 preview and ` +
    `${DUAL_DECODER_DEFAULTS.candidates} exact candidates), softmax and greedy choice.`,
    "",
    "### Insensitive ratio",
    "",
    markdown(["ratio", "achieved", "PPL", "ΔPPL", "cell ms", "speedup", "memory reduction", "token ms"], [
      ["dense", "-", f(t.dense.ppl), "-", f(t.dense.cellMs, 3), "1.00", "1.00", f(t.dense.tokenMs, 3)],
      ...t.ratios.map((r) => [f(r.ratio), f(r.achieved, 3), f(r.ppl), signed(r.dppl), f(r.cellMs, 3), f(r.speedup), f(r.bytesReduction), f(r.tokenMs, 3)]),
      ...(t.int8 ? [["dense INT8", "-", f(t.int8.ppl), signed(t.int8.dppl), f(t.int8.cellMs, 3), f(t.int8.speedup), f(t.int8.bytesReduction)]] : []),
    ]),
    ...(t.int8 ? ["", "dense INT8: the simplest competitor, the big weights quantized per row (no dual module); its step timed against the fp32 dense step in its own interleaved rounds."] : []),
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
    "### k sweep (50 %; little-module bytes include the projection)",
    "",
    markdown(["projection", "ε", "k", "little KB", "PPL", "ΔPPL", "speedup"], t.k.map((r) => [
      r.projection, r.eps === null ? "-" : String(r.eps), String(r.k), f(r.littleKB, 1), f(r.ppl), signed(r.dppl), f(r.speedup)])),
  ];
  if (t.compare) {
    const c = t.compare;
    parts.push("", `### Dual-module ${m.hidden} at 50 % against dense ${c.hidden} (${c.file})`, "",
      markdown(["model", "PPL", "cell ms", "MB per step"], [
        [`dense ${c.hidden}`, f(c.ppl), f(c.cellMs, 3), f(c.mbPerStep, 3)],
        [`dual ${m.hidden} at 50 %`, f(c.dualPpl), f(c.dualCellMs, 3), f(c.dualMbPerStep, 3)],
      ]));
  }
  if (t.paper.length > 0) {
    parts.push("", `### ${m.cell.toUpperCase()} cell step at the paper's widths (random weights; the same little-module configuration)`, "",
      `Input = hidden; little modules fitted on random inputs, thresholds calibrated to each ratio; ${t.machine.threads} thread(s), ` +
      "caches flushed. ORT: onnxruntime-node's faster dense model of the cell (its operator, or Gemm plus gate math), same weights.", "",
      markdown(["H", "ratio", "achieved", "dense ms", "dual ms", "speedup", "ORT ms", "speedup over ORT"], t.paper.map((r) => [
        String(r.hidden), f(r.ratio), f(r.achieved_ratio, 3), f(r.dense_ms, 3), f(r.dual_ms, 3), f(r.dense_ms / r.dual_ms),
        r.ort_ms === null ? "n/a" : f(r.ort_ms, 3), r.ort_ms === null ? "n/a" : f(r.ort_ms / r.dual_ms),
      ])));
  }
  return parts.join("\n") + "\n";
}

function markdown(header: string[], rows: string[][]): string {
  return [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

function signed(x: number): string { return `${x >= 0 ? "+" : ""}${x.toFixed(2)}`; }
