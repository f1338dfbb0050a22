// Opening a trained translation checkpoint for use: the model at batch 1 and the parallel corpus it
// was trained on (for fitting and calibrating the dual-module decoder on its training pairs).
import type { Runtime } from "../runtime/runtime.js";
import { loadBible, loadPairs, type ParallelCorpus } from "../data/pairs.js";
import { type NmtCheckpoint, loadNmt } from "./gnmt.js";
import { MAX_SOURCE, NmtModel } from "./translate.js";
import { DualDecoder, stepSequences } from "./dual.js";
import { encodePairs } from "./train.js";
import type { FitOptions } from "../recurrent/fit.js";

export interface OpenedNmt { path: string; checkpoint: NmtCheckpoint; model: NmtModel }

export async function openNmt(rt: Runtime, path: string): Promise<OpenedNmt> {
  const checkpoint = await loadNmt(path);
  return { path, checkpoint, model: new NmtModel(rt, checkpoint.config, checkpoint.params, checkpoint.bpe) };
}

/** The corpus a checkpoint names: "bible", or the path of a src<TAB>tgt file (`pairs` overrides it). */
export async function trainingCorpus(c: NmtCheckpoint, pairs?: string): Promise<ParallelCorpus> {
  const name = pairs ?? c.training.corpus;
  return name === "bible" ? loadBible() : loadPairs(name);
}

export interface DualSetup { fitPairs: number; calibrationPairs: number; fit?: FitOptions }
export const DUAL_SETUP_DEFAULTS: DualSetup = { fitPairs: 300, calibrationPairs: 100 };

/**
 * Little modules fitted on the first `fitPairs` training pairs (teacher-forced step inputs), and the
 * step inputs of the next `calibrationPairs` for calibration: pairs the model trained on, never the
 * split that is evaluated.
 */
export function fitDualDecoder(rt: Runtime, m: NmtModel, corpus: ParallelCorpus, s: DualSetup = DUAL_SETUP_DEFAULTS) {
  const train = encodePairs(m.bpe, corpus.pairs.train.slice(0, s.fitPairs + s.calibrationPairs))
    .filter((p) => p.src.length <= MAX_SOURCE);
  if (train.length <= s.fitPairs) throw new Error(`fitDualDecoder: ${corpus.name} has too few training pairs (${train.length}) for ${s.fitPairs} fitting and ${s.calibrationPairs} calibration pairs`);
  const dual = DualDecoder.fit(rt, m, stepSequences(m, train.slice(0, s.fitPairs)), s.fit);
  return { dual, calibration: stepSequences(m, train.slice(s.fitPairs)) };
}
