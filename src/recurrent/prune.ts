// Automated gradual pruning (AGP; Zhu & Gupta 2017, "To prune, or not to prune") of a language
// model's recurrent weights, as the trainer (src/recurrent/train.ts) applies it: the schedule, the
// magnitude masks, and the record a pruned checkpoint carries in its training metadata.
//
// What is pruned: every weight_ih_l* and weight_hh_l* matrix, each to the same sparsity by its own
// magnitudes (the paper's Table 4 prunes the LSTM's weights). The embedding, the decoder and the
// biases stay dense. Sparsity rises from s_i to s_f as
//     s_t = s_f + (s_i − s_f)·(1 − (t − t0)/(n·Δt))³   for t0 ≤ t ≤ t0 + n·Δt,
// the masks being recomputed every Δt steps (and at t0 + n·Δt, so the last update is at s_f);
// between updates, and after the ramp (fine-tuning at s_f), masked weights stay exactly zero because
// their gradients are masked before the SGD step. Pruned weights are zeros, and the smallest
// magnitudes, so a later mask always contains an earlier one.
//
// A mask is never stored: it is re-derived from the weights. magnitudeMask prunes the k smallest
// |w|, ties broken by the lower index, so on resume the mask in force (k = round(s·n) at the last
// update) is the set of zeros the saved weights hold, found by the same function. (An unpruned
// weight that SGD left at exactly 0.0 would be indistinguishable from a pruned one; with ties broken
// by index the count k is still exact.)
import * as check from "../kernels/check.js";
import type { LmCheckpoint, LmConfig, TrainingInfo } from "./lm.js";
import { paramTable } from "./lm.js";

// ---------------------------------------------------------------------------------------------------
// Schedule

export interface PruneSchedule {
  initial: number; // s_i, sparsity at the first update (0: the first update prunes nothing)
  final: number;   // s_f, the target
  start: number;   // t0: the step of the first update (0: the run's first SGD step)
  steps: number;   // n·Δt: the ramp's length in SGD steps
  every: number;   // Δt: steps between mask updates
}

export function checkSchedule(s: PruneSchedule, where: string): void {
  for (const key of ["initial", "final"] as const) {
    if (!(s[key] >= 0 && s[key] < 1)) throw new RangeError(`${where}: prune ${key} sparsity must be in [0, 1), got ${s[key]}`);
  }
  if (s.initial > s.final) throw new RangeError(`${where}: the initial sparsity ${s.initial} exceeds the final ${s.final}`);
  check.size(where, "prune start", s.start);
  check.size(where, "prune steps", s.steps);
  check.size(where, "prune every", s.every, 1);
}

/** s_t: 0 before t0, the cubic ramp from s_i to s_f over n·Δt steps, s_f after it. */
export function sparsityAt(s: PruneSchedule, t: number): number {
  if (t < s.start) return 0;
  if (s.steps === 0 || t >= s.start + s.steps) return s.final;
  return s.final + (s.initial - s.final) * (1 - (t - s.start) / s.steps) ** 3;
}

/** Whether the masks are recomputed before step t: every Δt steps from t0, and at the ramp's end. */
export function maskUpdateDue(s: PruneSchedule, t: number): boolean {
  const d = t - s.start;
  return d >= 0 && d <= s.steps && (d % s.every === 0 || d === s.steps);
}

/** The step of the last mask update at or before step t (null: none yet). */
export function lastMaskUpdate(s: PruneSchedule, t: number): number | null {
  const d = Math.min(t - s.start, s.steps);
  if (d < 0) return null;
  return s.start + (d === s.steps ? d : d - (d % s.every));
}

// ---------------------------------------------------------------------------------------------------
// Masks

/**
 * keep[i] = 0 for the round(sparsity·n) weights of smallest |w[i]| (ties: lower index first), 1 for
 * the others; the pruned weights of w are set to 0. Returns how many were pruned.
 */
export function magnitudeMask(keep: Uint8Array, w: Float32Array, sparsity: number): number {
  if (keep.length !== w.length) throw new RangeError(`magnitudeMask: keep has ${keep.length} elements, w ${w.length}`);
  if (!(sparsity >= 0 && sparsity <= 1)) throw new RangeError(`magnitudeMask: sparsity must be in [0, 1], got ${sparsity}`);
  const n = w.length, k = Math.round(sparsity * n);
  keep.fill(1);
  if (k === 0) return 0;
  const mags = new Float32Array(n);
  for (let i = 0; i < n; i++) mags[i] = Math.abs(w[i]);
  const threshold = mags.slice().sort()[k - 1];
  let below = 0;
  for (let i = 0; i < n; i++) if (mags[i] < threshold) below++;
  let ties = k - below; // of the weights at exactly the threshold, the first `ties` go
  for (let i = 0; i < n; i++) {
    if (mags[i] < threshold || (mags[i] === threshold && ties-- > 0)) { keep[i] = 0; w[i] = 0; }
  }
  return k;
}

/** One pruned matrix: its name and place in the flat parameter array, and its mask. */
export interface PrunedMatrix { name: string; offset: number; size: number; keep: Uint8Array }

/** The names of the matrices AGP prunes: every layer's weight_ih and weight_hh. */
export function isPrunable(name: string): boolean { return /^rnn\.weight_(ih|hh)_l\d+$/.test(name); }

/** The masks of a model's recurrent weight matrices, over its flat parameter array (paramTable order). */
export class PruneMasks {
  readonly matrices: PrunedMatrix[];

  constructor(readonly config: LmConfig) {
    this.matrices = paramTable(config).filter((s) => isPrunable(s.name))
      .map((s) => ({ name: s.name, offset: s.offset, size: s.size, keep: new Uint8Array(s.size).fill(1) }));
  }

  /** Recomputes every matrix's mask at `sparsity` from the weights' magnitudes, zeroing what it prunes. */
  update(params: Float32Array, sparsity: number): void {
    for (const m of this.matrices) magnitudeMask(m.keep, params.subarray(m.offset, m.offset + m.size), sparsity);
  }

  /** Zeroes the gradients of the pruned weights: SGD then leaves them at exactly zero. */
  maskGrads(grads: Float32Array): void {
    for (const m of this.matrices) {
      const g = grads.subarray(m.offset, m.offset + m.size), keep = m.keep;
      for (let i = 0; i < keep.length; i++) if (keep[i] === 0) g[i] = 0;
    }
  }

  /** Per matrix, the fraction its mask prunes. */
  sparsity(): Record<string, number> {
    return Object.fromEntries(this.matrices.map((m) => [m.name, m.keep.reduce((n, v) => n + 1 - v, 0) / m.size]));
  }
}

/** Per recurrent weight matrix, the fraction of exact zeros in `params` (a checkpoint's sparsity). */
export function zeroFractions(config: LmConfig, params: Float32Array): Record<string, number> {
  return Object.fromEntries(paramTable(config).filter((s) => isPrunable(s.name)).map((s) => {
    let zeros = 0;
    for (let i = s.offset; i < s.offset + s.size; i++) if (params[i] === 0) zeros++;
    return [s.name, zeros / s.size];
  }));
}

// ---------------------------------------------------------------------------------------------------
// The record in a pruned checkpoint's training metadata

/** What a pruned checkpoint records (TrainingInfo.prune): the schedule, the dense start, the sparsity reached. */
export interface PruneRecord extends PruneSchedule {
  from: string;                     // the dense checkpoint pruning started from (its file name)
  sparsity: number;                 // the sparsity of the masks when the checkpoint was written
  matrices: Record<string, number>; // per pruned matrix, its measured sparsity then
}

/** TrainingInfo with the pruning record (stored in the same JSON, so lm.ts reads it without knowing). */
export interface PrunedTrainingInfo extends TrainingInfo { prune?: PruneRecord }

/** The pruning record of a checkpoint, or null for a dense one; a malformed record is an error naming the file. */
export function pruneRecord(ckpt: Pick<LmCheckpoint, "training">, path: string): PruneRecord | null {
  const p = (ckpt.training as PrunedTrainingInfo).prune;
  if (p === undefined) return null;
  try {
    checkSchedule(p, "prune");
    if (!(p.sparsity >= 0 && p.sparsity < 1) || typeof p.from !== "string" || typeof p.matrices !== "object") throw new Error("sparsity, from or matrices missing");
  } catch (e) {
    throw new Error(`checkpoint ${path}: metadata training.prune is malformed (${(e as Error).message}); re-make it with dmi train lm --prune`);
  }
  return p;
}
