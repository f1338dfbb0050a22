// The paper's Table 4 (`dmi tables prune`, src/cli/tables-prune.ts): dual-module inference against
// and on top of weight pruning (AGP, src/recurrent/prune.ts), for a trained dense LSTM language model
// and its pruned checkpoints, and for the same cell at the paper's width with random weights pruned
// by magnitude. Per model and insensitive ratio (0 = no dual-module):
//   ppl             on the test split (trained weights only; little modules fitted on train to that
//                   model's own weights, thresholds calibrated on valid, as `dmi eval lm`)
//   bytes_per_step  parameter bytes one cell step reads: dense rows, or the compressed rows of the
//                   pruned model (nonzeros as fp32 values and u16 indices, row pointers, biases);
//                   with dual-module the sensitive rows actually read, counted row by row, plus the
//                   little module and thresholds
//   step_ms         the cell step at batch 1, caches flushed before every step, median [min–max] of
//                   `repeats` independent repetitions (timeRepeated), every configuration of a width
//                   interleaved; on 1 and 2 threads
// Dense models run our dense fp32 kernel, pruned ones the compressed-row kernels (a pruned model
// holds its weights sparse: that is what turns pruning into bytes). onnxruntime-node's dense LSTM
// step (fp32, the weights of the dense model) stands beside them, checked against ours first.
import type { Runtime } from "../runtime/runtime.js";
import { Stack, type LayerWeights } from "../recurrent/stack.js";
import type { Lstm } from "../recurrent/lstm.js";
import { DualModel, type Thresholds } from "../recurrent/dual.js";
import { fitLittleModules } from "../recurrent/fit.js";
import { magnitudeMask, zeroFractions } from "../recurrent/prune.js";
import { lstmModel } from "../recurrent/onnx.js";
import { perplexity, spreadPieces, stepSequences, type Recurrent } from "../recurrent/eval.js";
import type { OpenedLm } from "../recurrent/open.js";
import { OrtPeer, ortAvailable, ORT_MISSING } from "../onnx/peer.js";
import { Progress } from "../util/progress.js";
import { FLUSH_BYTES, timeRepeated, type Spread, type Variant } from "../util/timing.js";
import { formatTable } from "../util/table.js";
import { randomModel } from "./models.js";
import { setTimeout as sleep } from "node:timers/promises";

export interface PruneTableOptions {
  ratios: number[];           // insensitive ratios of the dual-module rows (0 is always the model alone)
  threads: number[];          // thread counts to time at
  testTokens: number; trainTokens: number; validTokens: number;
  steps: number;              // cell steps per timing repetition
  repeats: number;            // independent repetitions of each timing
  randomHidden: number[];     // widths timed with random weights (the paper's 1500); empty for none
  randomSparsities: number[]; // sparsities the random weights are pruned to by magnitude (beside 0)
  k?: number;                 // the little modules' projected size (default: from the JL ε 0.5, as dmi eval lm)
}

/** One configuration: a model (dense or pruned), a ratio (0 = no dual-module), a thread count. */
export interface PruneRow {
  hidden: number;
  weights: "trained" | "random";
  model: string;           // the checkpoint's file name, or "random"
  sparsity: number;        // measured: zeros of the recurrent weight matrices
  big: "dense" | "sparse" | "ort"; // the kernel of the big module: ours dense, ours compressed rows, onnxruntime's dense LSTM
  ratio: number;           // requested insensitive ratio; 0 = no dual-module
  achieved_ratio: number;  // on the perplexity pass (trained) or the timed steps (random)
  ppl: number | null;      // test perplexity (null for random weights and for onnxruntime, which computes our dense step)
  bytes_per_step: number;
  step_ms: number;         // median of the repetitions
  step_min: number; step_max: number;
  threads: number;
}

export interface PruneTables {
  machine: { threads: number[]; build: string };
  timing: { steps: number; repeats: number }; // per repetition, and independent repetitions
  tokens: { test: number; train: number; valid: number };
  peer: string;            // what the onnxruntime rows are, or why there are none
  rows: PruneRow[];
}

/** A model ready to time: its stack (dense or compressed rows), its dual model with thresholds per ratio, what it measured. */
interface Prepared {
  hidden: number; weights: "trained" | "random"; model: string; sparsity: number; big: "dense" | "sparse";
  stack: Stack; dual: DualModel; thresholds: Thresholds[]; // per ratio of options.ratios
  ppl: (number | null)[]; bytes: number[]; achieved: number[]; // per [0, ...ratios]
  timed: Float32Array[];  // the step inputs the timing cycles through
  layerWeights: LayerWeights[];
}

const WARMUP = 10;
const say = (m: string) => console.error(m);
/** onnxruntime's fp32 LSTM computes our fp32 step up to rounding. */
const ORT_TOLERANCE = 1e-4;

/**
 * `dense` and each of `pruned` (the same architecture and corpus) on their test split, then the
 * random-weight widths; every row of the tables. Without `dense`, the random widths only.
 */
export async function runPruneTables(rt: Runtime, dense: OpenedLm | null, pruned: OpenedLm[], o: PruneTableOptions): Promise<PruneTables> {
  const flush = rt.heap.f32(FLUSH_BYTES / 4);
  const peer = (await ortAvailable()) ? "onnxruntime-node's fp32 LSTM operator on the dense model's weights (one layer only), checked against our step" : ORT_MISSING;
  const rows: PruneRow[] = [];

  const tokens = dense ? await trainedRows(rt, dense, pruned, o, flush, peer === ORT_MISSING, rows) : { test: 0, train: 0, valid: 0 };
  await randomRows(rt, o, flush, peer === ORT_MISSING, rows);
  return { machine: { threads: o.threads, build: rt.variant }, timing: { steps: o.steps, repeats: o.repeats }, tokens, peer, rows };
}

/** Trained weights: every model measured, then all of them timed together; rows appended to `rows`. */
async function trainedRows(rt: Runtime, dense: OpenedLm, pruned: OpenedLm[], o: PruneTableOptions, flush: Float32Array,
                           noPeer: boolean, rows: PruneRow[]): Promise<PruneTables["tokens"]> {
  const c = dense.checkpoint.config;
  if (c.cell !== "lstm") throw new Error(`tables prune: the sparse big module is an LSTM's; ${dense.path} is a ${c.cell.toUpperCase()}`);
  const corpus = dense.corpus, test = corpus.test.subarray(0, o.testTokens);
  const trainPieces = spreadPieces(corpus.train, o.trainTokens, 1000), validPieces = spreadPieces(corpus.valid, o.validTokens, 1000);
  const trained = [dense, ...pruned].map((m) => {
    const sparsity = measuredSparsity(m);
    say(`${name(m.path)}: sparsity ${sparsity.toFixed(3)}`);
    const layerWeights = m.lm.stack.layers.map((cell) => cell.weights());
    const stack = sparsity === 0 ? m.lm.stack : new Stack(rt, { ...m.lm.stack.config, sparseBig: true }, layerWeights);
    const seqs = { train: stepSequences(m.lm, trainPieces), valid: stepSequences(m.lm, validPieces) };
    const timed = stepSequences(m.lm, [test.subarray(0, o.steps)])[0];
    return prepare(rt, { hidden: c.hidden, weights: "trained", model: name(m.path), sparsity, stack, layerWeights, timed }, seqs, o,
      (label, rnn, onStep) => {
        const bar = new Progress(`${name(m.path)} ${label}`, test.length - 1, "tok");
        return perplexity(m.lm, counting(rnn, onStep), test, (d) => bar.update(d)).ppl;
      });
  });
  rows.push(...await timeGroup(rt, trained, o, flush, noPeer ? null : trained[0]));
  return { test: test.length, train: count(trainPieces), valid: count(validPieces) };
}

/** Random weights at the paper's widths, pruned by magnitude: rows appended to `rows`. */
async function randomRows(rt: Runtime, o: PruneTableOptions, flush: Float32Array, noPeer: boolean, rows: PruneRow[]): Promise<void> {
  // Random weights at the paper's widths, pruned by magnitude.
  for (const H of o.randomHidden) {
    const shape = { cell: "lstm" as const, config: { kind: "lstm" as const, input: H, hidden: H, layers: 1, context: 0, residualFrom: 1 } };
    const { weights, sequence } = randomModel(shape);
    const seqs = { train: Array.from({ length: 60 }, () => sequence(35)), valid: Array.from({ length: 10 }, () => sequence(35)) };
    const timed = sequence(o.steps);
    const group = [0, ...o.randomSparsities].map((s) => {
      const layerWeights = weights.map((w) => pruneCopy(w, s));
      const stack = new Stack(rt, { ...shape.config, sparseBig: s > 0 }, layerWeights);
      say(`random H = ${H}: sparsity ${s}`);
      return prepare(rt, { hidden: H, weights: "random", model: "random", sparsity: s, stack, layerWeights, timed }, seqs, o,
        (_label, rnn, onStep) => { rnn.reset(); for (const x of timed) { rnn.step(x); onStep(); } rnn.reset(); return null; });
    });
    rows.push(...await timeGroup(rt, group, o, flush, noPeer ? null : group[0]));
  }
}

/**
 * Fits the little modules to the model's own weights, calibrates each ratio, and measures the
 * model alone and at each ratio with `measure` (perplexity, or a pass over the timed steps),
 * counting the bytes each step read.
 */
function prepare(rt: Runtime, m: Omit<Prepared, "dual" | "thresholds" | "ppl" | "bytes" | "achieved" | "big">,
                 seqs: { train: Float32Array[][]; valid: Float32Array[][] }, o: PruneTableOptions,
                 measure: (label: string, rnn: Recurrent, onStep: () => void) => number | null): Prepared {
  const bar = new Progress(`${m.model} H=${m.hidden} s=${m.sparsity.toFixed(2)}: fit`, seqs.train.reduce((n, s) => n + s.length, 0));
  const { littles } = fitLittleModules(rt, m.stack, seqs.train, { k: o.k, onProgress: (_w, d) => bar.update(d) });
  const dual = new DualModel(rt, m.stack, littles);
  const thresholds = o.ratios.map((r) => dual.calibrate(seqs.valid, r));
  const cells = m.stack.layers as Lstm[];
  const alone = cells.reduce((n, cell) => n + cell.bigBytes(cell.rows), 0);
  const ppl = [measure("alone", m.stack, () => {})], bytes = [alone], achieved = [0];
  o.ratios.forEach((ratio, i) => {
    dual.setThresholds(thresholds[i], ratio);
    dual.accounting.reset();
    let big = 0;
    ppl.push(measure(`ratio ${ratio}`, dual, () => {
      cells.forEach((cell, l) => { const rows = dual.sensitiveRows(l); big += cell.rowBytes(rows, rows.length); });
    }));
    const a = dual.accounting.report();
    bytes.push(big / a.steps + a.perStep.littleBytes + a.perStep.thresholdBytes);
    achieved.push(a.insensitiveRatio);
  });
  return { ...m, big: m.sparsity > 0 ? "sparse" : "dense", dual, thresholds, ppl, bytes, achieved };
}

/** `rnn`, calling onStep after each of its steps. */
function counting(rnn: Recurrent, onStep: () => void): Recurrent {
  return { reset: () => rnn.reset(), step: (x) => { const h = rnn.step(x); onStep(); return h; } };
}

/**
 * Every model of a group alone and at each ratio, on each thread count, in one interleaved timing
 * (cold: flushed before every step); then onnxruntime's dense step of `ortModel` in a block of its own.
 */
async function timeGroup(rt: Runtime, group: Prepared[], o: PruneTableOptions, flush: Float32Array,
                         ortModel: Prepared | null): Promise<PruneRow[]> {
  const rows: PruneRow[] = [];
  const flushing = () => { rt.kernels.sum(flush, flush.length); };
  const timing = { warmup: WARMUP, steps: o.steps, repeats: o.repeats, flush: flushing };
  for (const t of o.threads) {
    rt.pool.active = t;
    const variants = group.flatMap((m): Variant[] => [
      { prepare: () => {}, run: (step) => m.stack.step(m.timed[step % m.timed.length]) },
      ...o.ratios.map((ratio, i): Variant => ({
        prepare: () => m.dual.setThresholds(m.thresholds[i], ratio),
        run: (step) => m.dual.step(m.timed[step % m.timed.length]),
      })),
    ]);
    const ms = await timeRepeated(variants, timing);
    group.forEach((m, g) => [0, ...o.ratios].forEach((ratio, i) => rows.push(row(m, m.big, ratio, m.achieved[i], m.ppl[i], m.bytes[i], ms[g * (o.ratios.length + 1) + i], t))));
    if (ortModel && ortModel.layerWeights.length === 1) {
      const ort = await ortStep(ortModel, t);
      try {
        let step = 0;
        const [s] = await timeRepeated([{ run: () => ort.run(ortModel.timed[step++ % ortModel.timed.length]) }], timing);
        rows.push(row(ortModel, "ort", 0, 0, null, ortModel.bytes[0], s, t));
      } finally {
        await ort.release();
      }
      await sleep(1000); // onnxruntime's threads spin down before anything else is timed
    }
    console.error(`H=${group[0].hidden} ${group[0].weights}, ${t} thread(s): timed`);
  }
  rt.pool.active = rt.threads;
  return rows;
}

function row(m: Prepared, big: PruneRow["big"], ratio: number, achieved: number, ppl: number | null, bytes: number, s: Spread, threads: number): PruneRow {
  return {
    hidden: m.hidden, weights: m.weights, model: m.model, sparsity: m.sparsity, big, ratio, achieved_ratio: achieved, ppl,
    bytes_per_step: bytes, step_ms: s.median, step_min: s.min, step_max: s.max, threads,
  };
}

/**
 * onnxruntime's LSTM step on the model's weights (zeros included: a dense operator), checked
 * against our step from the same nonzero state; `run` feeds one input and awaits the outputs.
 */
async function ortStep(m: Prepared, threads: number): Promise<{ run: (x: Float32Array) => Promise<unknown>; release: () => Promise<void> }> {
  const cell = m.stack.layers[0] as Lstm, H = cell.hidden, E = cell.input;
  const peer = await OrtPeer.create(lstmModel(E, H, m.layerWeights[0]), threads);
  const feeds = { x: new Float32Array(E), h0: new Float32Array(H), c0: new Float32Array(H) };
  m.stack.reset();
  for (let i = 0; i < 3; i++) m.stack.step(m.timed[i % m.timed.length]);
  feeds.h0.set(cell.h); feeds.c0.set(cell.c);
  const x = m.timed[3 % m.timed.length];
  feeds.x.set(x);
  const want = m.stack.step(x).slice(), out = await peer.run(feeds);
  let err = 0;
  for (let i = 0; i < H; i++) err = Math.max(err, Math.abs(out.h1[i] - want[i]), Math.abs(out.c1[i] - cell.c[i]));
  m.stack.reset();
  feeds.h0.fill(0); feeds.c0.fill(0);
  if (!(err <= ORT_TOLERANCE)) {
    await peer.release();
    throw new Error(`tables prune: onnxruntime's LSTM step differs from ours by ${err.toExponential(2)} (tolerance ${ORT_TOLERANCE}); the graph or our cell is wrong`);
  }
  return { run: (input) => { feeds.x.set(input); return peer.run(feeds); }, release: () => peer.release() };
}

/** A copy of a layer's weights with each weight matrix pruned by magnitude to `sparsity`. */
function pruneCopy(w: LayerWeights, sparsity: number): LayerWeights {
  const copy = { weight_ih: w.weight_ih.slice(), weight_hh: w.weight_hh.slice(), bias_ih: w.bias_ih, bias_hh: w.bias_hh };
  magnitudeMask(new Uint8Array(copy.weight_ih.length), copy.weight_ih, sparsity);
  magnitudeMask(new Uint8Array(copy.weight_hh.length), copy.weight_hh, sparsity);
  return copy;
}

/** Zeros among all recurrent weight-matrix entries of a checkpoint. */
export function measuredSparsity(m: OpenedLm): number {
  const c = m.checkpoint.config, fractions = zeroFractions(c, m.checkpoint.params);
  const sizes = m.lm.stack.layers.map((cell) => [cell.rows * cell.input, cell.rows * cell.hidden]).flat();
  const zeros = Object.values(fractions).reduce((n, f, i) => n + f * sizes[i], 0);
  return zeros / sizes.reduce((a, b) => a + b, 0);
}

function name(path: string): string { return path.split(/[\\/]/).pop()!; }
function count(pieces: Int32Array[]): number { return pieces.reduce((n, p) => n + p.length, 0); }

// ---------------------------------------------------------------------------------------------------
// Printing

/** One table per width and thread count: PPL, bytes and step time per model and ratio, against the same model alone. */
export function formatPruneTables(t: PruneTables): string {
  const out: string[] = [];
  const groups = [...new Set(t.rows.map((r) => `${r.hidden}|${r.weights}|${r.threads}`))];
  for (const key of groups) {
    const rs = t.rows.filter((r) => `${r.hidden}|${r.weights}|${r.threads}` === key), first = rs[0];
    out.push(`### LSTM H = ${first.hidden}, ${first.weights} weights, ${first.threads} thread${first.threads > 1 ? "s" : ""}`, "");
    const alone = (r: PruneRow) => rs.find((a) => a.model === r.model && a.sparsity === r.sparsity && a.ratio === 0 && a.big !== "ort")!;
    out.push("```", formatTable(
      ["model", "sparsity", "big", "ratio", "achieved", "PPL", "ΔPPL %", "MB/step", "x bytes", "ms/step [min–max]", "speedup"],
      rs.map((r) => {
        const a = alone(r);
        return [
          r.model, r.sparsity.toFixed(3), r.big, r.ratio.toFixed(2), r.achieved_ratio.toFixed(3),
          r.ppl === null ? "–" : r.ppl.toFixed(2),
          r.ppl === null || a.ppl === null || r === a ? "" : (100 * (r.ppl / a.ppl - 1)).toFixed(2),
          (r.bytes_per_step / 1e6).toFixed(3), (r.bytes_per_step / a.bytes_per_step).toFixed(3),
          `${r.step_ms.toFixed(3)} [${r.step_min.toFixed(3)}–${r.step_max.toFixed(3)}]`, (a.step_ms / r.step_ms).toFixed(2),
        ];
      })), "```", "");
  }
  out.push(`ΔPPL %, x bytes and speedup are against the same model alone (ratio 0, our kernel). big: dense = our fp32 rows, sparse = compressed rows ` +
    `(only nonzeros: fp32 value + u16 index, a row pointer and a bias per row), ort = ${t.peer}.`);
  out.push(`Times: a cell step at batch 1, caches flushed before each, median [min–max] of ${t.timing.repeats} repetitions of ${t.timing.steps} steps.` +
    (t.tokens.test > 0 ? ` PPL on ${t.tokens.test} test tokens, little modules fitted on ${t.tokens.train} training tokens, ` +
      `thresholds on ${t.tokens.valid} validation tokens.` : " Random weights: little modules fitted on 60 random sequences of 35 steps, thresholds on 10."));
  return out.join("\n");
}
