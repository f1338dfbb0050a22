// Training the GNMT model with NVIDIA's GNMT v2 recipe, scaled: batches of length-sorted pairs (in a
// seeded random order each epoch), teacher forcing, label smoothing 0.1, Adam with an exponential
// warm-up, a constant rate, then halvings (WarmupMultiStepLR), gradient-norm clipping at 5, dropout
// 0.2. After each epoch: validation loss and greedy validation BLEU; the best weights by BLEU go to
// `out`, a resumable checkpoint (weights, Adam moments, position) beside it, also on a stop request.
// Not here: the graph's forward and backward (graph.ts), decoding (translate.ts).
import type { Runtime } from "../runtime/runtime.js";
import * as check from "../kernels/check.js";
import { batchRng } from "../util/random.js";
import type { SentencePair } from "../data/pairs.js";
import { BOS_ID, EOS_ID, type Bpe } from "./bpe.js";
import { corpusBleu } from "./bleu.js";
import { GnmtGraph, type PairBatch } from "./graph.js";
import { type GnmtConfig, type NmtCheckpoint, type NmtTrainingInfo, checkConfig, initParams, loadNmt, paramCount, saveNmt } from "./gnmt.js";
import { NmtModel, greedyDecode } from "./translate.js";

// ---------------------------------------------------------------------------------------------------
// Data: encoded pairs, length-sorted batches

/** A pair as ids: source with </s>, target without (the batch adds <s> and </s>). */
export interface EncodedPair { src: Int32Array; tgt: Int32Array }

export function encodePairs(bpe: Bpe, pairs: readonly SentencePair[]): EncodedPair[] {
  return pairs.map((p) => {
    const s = bpe.encode(p.src), src = new Int32Array(s.length + 1);
    src.set(s);
    src[s.length] = EOS_ID;
    return { src, tgt: bpe.encode(p.tgt) };
  });
}

/** Pairs that fit `maxLength` tokens on both sides (source with </s>, target with </s>). */
export function fitting(pairs: readonly EncodedPair[], maxLength: number): EncodedPair[] {
  return pairs.filter((p) => p.src.length <= maxLength && p.tgt.length + 1 <= maxLength);
}

/** Consecutive groups of `batch` pairs after a stable sort by (source length, target length). */
export function lengthSortedBatches(pairs: readonly EncodedPair[], batch: number): EncodedPair[][] {
  const sorted = pairs.map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.src.length - b.p.src.length || a.p.tgt.length - b.p.tgt.length || a.i - b.i).map((e) => e.p);
  const out: EncodedPair[][] = [];
  for (let i = 0; i < sorted.length; i += batch) out.push(sorted.slice(i, i + batch));
  return out;
}

/** Padded, time-major arrays of a group of pairs. */
export function makeBatch(pairs: readonly EncodedPair[]): PairBatch {
  const B = pairs.length, Ts = Math.max(...pairs.map((p) => p.src.length)), Tt = Math.max(...pairs.map((p) => p.tgt.length)) + 1;
  const b: PairBatch = { B, srcSteps: Ts, tgtSteps: Tt, src: new Int32Array(Ts * B), srcLen: new Int32Array(B),
    tgtIn: new Int32Array(Tt * B), tgtOut: new Int32Array(Tt * B), tgtLen: new Int32Array(B) };
  pairs.forEach((p, j) => {
    b.srcLen[j] = p.src.length;
    b.tgtLen[j] = p.tgt.length + 1;
    for (let t = 0; t < p.src.length; t++) b.src[t * B + j] = p.src[t];
    b.tgtIn[j] = BOS_ID;
    for (let t = 0; t < p.tgt.length; t++) { b.tgtIn[(t + 1) * B + j] = p.tgt[t]; b.tgtOut[t * B + j] = p.tgt[t]; }
    b.tgtOut[p.tgt.length * B + j] = EOS_ID;
  });
  return b;
}

/** The epoch's batch order: a seeded Fisher–Yates shuffle of 0..n−1. */
export function batchOrder(n: number, seed: number, epoch: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i), rng = batchRng(seed, epoch, -1);
  for (let i = n - 1; i > 0; i--) { const j = rng.int(i + 1); [order[i], order[j]] = [order[j], order[i]]; }
  return order;
}

// ---------------------------------------------------------------------------------------------------
// Optimiser and schedule

export interface Schedule { lr: number; warmup: number; remain: number; decays: number; factor: number }

/**
 * NVIDIA's WarmupMultiStepLR: lr·0.01^((warmup − step)/warmup) during warm-up, lr until `remain`
 * (a fraction) of the run's steps, then `decays` equal intervals each multiplying by `factor`.
 */
export function learningRate(s: Schedule, step: number, total: number): number {
  if (step < s.warmup) return s.lr * 0.01 ** ((s.warmup - step) / s.warmup);
  const remain = Math.round(s.remain * total);
  if (step < remain) return s.lr;
  const interval = Math.max(1, Math.floor((total - remain) / s.decays));
  return s.lr * s.factor ** Math.min(s.decays, Math.floor((step - remain) / interval) + 1);
}

/** Adam (β 0.9, 0.999, ε 1e-8) after clipping the global gradient norm to `clip`; `t` counts from 1. Returns the norm before clipping. */
export function adamStep(params: Float32Array, grads: Float32Array, m: Float32Array, v: Float32Array, lr: number, t: number, clip: number): number {
  let ss = 0;
  for (let i = 0; i < grads.length; i++) ss += grads[i] * grads[i];
  const norm = Math.sqrt(ss), scale = clip > 0 && norm > clip ? clip / norm : 1;
  const b1 = 0.9, b2 = 0.999, c1 = 1 - b1 ** t, c2 = 1 - b2 ** t;
  for (let i = 0; i < params.length; i++) {
    const g = grads[i] * scale;
    m[i] = b1 * m[i] + (1 - b1) * g;
    v[i] = b2 * v[i] + (1 - b2) * g * g;
    params[i] -= (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + 1e-8);
  }
  return norm;
}

// ---------------------------------------------------------------------------------------------------
// The loop

export interface NmtTrainOptions {
  batch: number;      // pairs per batch (64)
  maxLength: number;  // training pairs longer than this (tokens, either side) are left out (80)
  schedule: Schedule;
  clip: number;
  dropout: number;
  smoothing: number;
  seed: number;
}

export const NMT_TRAIN_DEFAULTS: NmtTrainOptions = {
  batch: 64, maxLength: 80, clip: 5, dropout: 0.2, smoothing: 0.1, seed: 1,
  schedule: { lr: 2e-3, warmup: 200, remain: 0.666, decays: 4, factor: 0.5 },
};

export interface NmtData { bpe: Bpe; train: SentencePair[]; valid: SentencePair[] }

export interface NmtRunOptions {
  config: GnmtConfig;
  corpus: string;
  options: NmtTrainOptions;
  epochs: number;        // in total, counting a resumed run's
  out: string;           // best by validation BLEU; the resumable checkpoint at resumePath(out)
  dtype?: "F32" | "F16"; // of `out`
  resume?: NmtCheckpoint;
  maxBatches?: number;   // per epoch (quick runs and throughput measurements)
  maxValid?: number;     // validation pairs decoded for BLEU (all)
}

export interface NmtBatchInfo { epoch: number; batch: number; batches: number; tokens: number; loss: number; lr: number; gradNorm: number }
export interface NmtEpochReport { epoch: number; trainLoss: number; validLoss: number; validBleu: number; improved: boolean; seconds: number }
export interface NmtHooks {
  onEpochStart?(epoch: number, first: number, batches: number): void;
  onBatch?(info: NmtBatchInfo): void;
  onValidate?(done: number, total: number): void;
  onEpoch?(r: NmtEpochReport): void;
  stopRequested?(): boolean;
}
export interface NmtRunResult { epoch: number; bestValidBleu: number | null; stopped: boolean; params: Float32Array; trainPairs: number; leftOut: number }

export function resumePath(out: string): string { return out.replace(/(\.safetensors)?$/, ".resume.safetensors"); }

export async function trainNmt(rt: Runtime, run: NmtRunOptions, data: NmtData, hooks: NmtHooks = {}): Promise<NmtRunResult> {
  const { config, options: o } = run, r = run.resume;
  checkConfig(config, "trainNmt");
  check.size("trainNmt", "epochs", run.epochs, 1);
  if (r) checkResumable(r, run);
  const n = paramCount(config), params = rt.heap.f32(n), grads = rt.heap.f32(n);
  const m = new Float32Array(n), v = new Float32Array(n);
  if (r) { params.set(r.params); m.set(r.resume!.m); v.set(r.resume!.v); } else initParams(config, params, o.seed);

  const all = encodePairs(data.bpe, data.train), train = fitting(all, o.maxLength);
  if (train.length === 0) throw new Error(`trainNmt: no training pair fits --max-length ${o.maxLength}`);
  const batches = lengthSortedBatches(train, o.batch);
  const perEpoch = Math.min(batches.length, run.maxBatches ?? Infinity), total = perEpoch * run.epochs;
  const valid = encodePairs(data.bpe, data.valid).slice(0, run.maxValid ?? Infinity);
  const longest = (ps: EncodedPair[], side: "src" | "tgt", extra: number) => Math.max(1, ...ps.map((p) => p[side].length + extra));
  const graph = new GnmtGraph(rt, config, { maxSrc: o.maxLength, maxTgt: o.maxLength, batch: o.batch, dropout: o.dropout, smoothing: o.smoothing }, params, grads);
  const evalGraph = new GnmtGraph(rt, config, { maxSrc: longest(valid, "src", 0), maxTgt: longest(valid, "tgt", 1), batch: Math.min(o.batch, 16),
    dropout: 0, smoothing: o.smoothing }, params, null);
  const decoder = new NmtModel(rt, config, params, data.bpe);

  const t0 = r?.training;
  let epoch = t0?.epoch ?? 0, step = t0?.step ?? 0, best = t0?.bestValidBleu ?? null;
  const history = t0 ? [...t0.history] : [];
  const info = (): NmtTrainingInfo => ({ corpus: run.corpus, seed: o.seed, epoch, step, epochs: run.epochs, batch: o.batch,
    maxLength: o.maxLength, lr: o.schedule.lr, dropout: o.dropout, smoothing: o.smoothing, bestValidBleu: best, history,
    schedule: o.schedule, clip: o.clip });
  let lossSum = r?.resume?.lossSum ?? 0, lossTokens = r?.resume?.lossTokens ?? 0, first = r?.resume?.batch ?? 0;
  const saveResume = (batch: number) => saveNmt(resumePath(run.out), { config, params, bpe: data.bpe, training: info(),
    resume: { batch, m, v, lossSum, lossTokens } });
  const stopped = (): NmtRunResult => ({ epoch, bestValidBleu: best, stopped: true, params, trainPairs: train.length, leftOut: all.length - train.length });

  while (epoch < run.epochs) {
    if (hooks.stopRequested?.()) return stopped();
    const start = performance.now(), order = batchOrder(batches.length, o.seed, epoch).slice(0, perEpoch);
    if (first === 0) lossSum = lossTokens = 0;
    hooks.onEpochStart?.(epoch + 1, first, perEpoch);
    for (let b = first; b < perEpoch; b++) {
      grads.fill(0);
      const loss = graph.forward(makeBatch(batches[order[b]]), batchRng(o.seed, epoch, b));
      graph.backward();
      const lr = learningRate(o.schedule, step, total);
      const gradNorm = adamStep(params, grads, m, v, lr, ++step, o.clip);
      lossSum += loss;
      lossTokens += graph.tokens;
      hooks.onBatch?.({ epoch: epoch + 1, batch: b + 1, batches: perEpoch, tokens: graph.tokens, loss: loss / graph.tokens, lr, gradNorm });
      await yieldToEvents();
      if (hooks.stopRequested?.() && b + 1 < perEpoch) {
        await saveResume(b + 1);
        return stopped();
      }
    }
    first = 0;
    const validLoss = await validationLoss(evalGraph, valid);
    decoder.setParams(params);
    const validBleu = await validationBleu(decoder, valid, data.valid, hooks);
    epoch++;
    const improved = best === null || validBleu > best;
    if (improved) best = validBleu;
    const seconds = (performance.now() - start) / 1000;
    history.push({ epoch, trainLoss: lossSum / lossTokens, validLoss, validBleu, seconds });
    if (improved) await saveNmt(run.out, { config, params, bpe: data.bpe, training: info() }, run.dtype);
    await saveResume(0);
    hooks.onEpoch?.({ epoch, trainLoss: lossSum / lossTokens, validLoss, validBleu, improved, seconds });
  }
  params.set((await loadNmt(run.out)).params);
  return { epoch, bestValidBleu: best, stopped: false, params, trainPairs: train.length, leftOut: all.length - train.length };
}

/** Mean (label-smoothed) loss per target token over the validation pairs. */
async function validationLoss(g: GnmtGraph, valid: EncodedPair[]): Promise<number> {
  let sum = 0, tokens = 0;
  for (const group of lengthSortedBatches(valid, g.o.batch)) {
    sum += g.forward(makeBatch(group));
    tokens += g.tokens;
    await yieldToEvents();
  }
  return sum / tokens;
}

/** Greedy-decoded BLEU of the validation pairs against their references. */
async function validationBleu(m: NmtModel, valid: EncodedPair[], refs: SentencePair[], hooks: NmtHooks): Promise<number> {
  const hyps: string[] = [];
  for (const [i, p] of valid.entries()) {
    m.start(p.src);
    hyps.push(m.bpe.decode(greedyDecode(m)));
    hooks.onValidate?.(i + 1, valid.length);
    if (i % 20 === 0) await yieldToEvents();
  }
  return corpusBleu(hyps, [refs.slice(0, valid.length).map((p) => p.tgt)]).score;
}

function yieldToEvents(): Promise<void> { return new Promise((resolve) => setImmediate(resolve)); }

/** A resumed run must be the same model, corpus and recipe. */
function checkResumable(r: NmtCheckpoint, run: NmtRunOptions): void {
  if (!r.resume) throw new Error("trainNmt: cannot resume from a checkpoint without a resume state; use the .resume.safetensors file beside it");
  const t = r.training, o = run.options;
  const saved = { config: r.config, corpus: t.corpus, seed: t.seed, batch: t.batch, maxLength: t.maxLength, dropout: t.dropout, smoothing: t.smoothing, epochs: t.epochs };
  const now = { config: run.config, corpus: run.corpus, seed: o.seed, batch: o.batch, maxLength: o.maxLength, dropout: o.dropout, smoothing: o.smoothing, epochs: run.epochs };
  for (const key of Object.keys(saved) as (keyof typeof saved)[]) {
    const a = JSON.stringify(saved[key]), b = JSON.stringify(now[key]);
    if (a !== b) throw new Error(`trainNmt: cannot resume: the checkpoint has ${key} ${a}, this run ${b}; drop the conflicting option or start afresh without --resume`);
  }
}
