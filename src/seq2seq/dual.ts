// The dual-module GNMT decoder: little modules on all decoder LSTM layers (the first stack, layer 0,
// and the rest, layers 1..L−1, each a DualModel of src/recurrent/), fitted on the dense decoder's
// step inputs of teacher-forced training pairs, thresholds per layer and gate calibrated to a target
// insensitive ratio on other training pairs. The encoder, attention and classifier stay dense.
// Evaluation: BLEU on a split at each ratio (greedy and beam) with the achieved ratio, and the
// decoder LSTM step's time, dense against dual, at batch 1.
// Not here: the model and search (translate.ts).
import type { Runtime } from "../runtime/runtime.js";
import { DualModel } from "../recurrent/dual.js";
import { fitLittleModules, type FitOptions } from "../recurrent/fit.js";
import { timeInterleaved, type Variant } from "../util/timing.js";
import type { SentencePair } from "../data/pairs.js";
import { BOS_ID } from "./bpe.js";
import { corpusBleu, type BleuScore } from "./bleu.js";
import type { EncodedPair } from "./train.js";
import { type BeamOptions, BEAM_DEFAULTS, type Decode, type NmtModel, beamDecode, greedyDecode } from "./translate.js";

/** Step inputs of teacher-forced pairs, per stack: sequences of [embedding] and of [layer 0 output | context]. */
export interface StepSequences { first: Float32Array[][]; rest: Float32Array[][] }

export function stepSequences(m: NmtModel, pairs: readonly EncodedPair[]): StepSequences {
  const out: StepSequences = { first: [], rest: [] };
  for (const p of pairs) {
    const tgtIn = new Int32Array(p.tgt.length + 1);
    tgtIn[0] = BOS_ID;
    tgtIn.set(p.tgt, 1);
    const s = m.stepInputs(p.src, tgtIn);
    out.first.push(s.first);
    out.rest.push(s.rest);
  }
  return out;
}

export class DualDecoder {
  private constructor(readonly model: NmtModel, readonly first: DualModel, readonly rest: DualModel) {}

  /** Fits little modules for every decoder layer on `fit` (step sequences of the dense model). */
  static fit(rt: Runtime, m: NmtModel, fit: StepSequences, options: FitOptions = {}): DualDecoder {
    const a = fitLittleModules(rt, m.stacks.first, fit.first, options);
    const b = fitLittleModules(rt, m.stacks.rest, fit.rest, { ...options, seed: (options.seed ?? 1) + 1 });
    return new DualDecoder(m, new DualModel(rt, m.stacks.first, a.littles), new DualModel(rt, m.stacks.rest, b.littles));
  }

  /** Thresholds per layer and gate so that `ratio` of the little modules' estimates on `calib` fall insensitive. */
  calibrate(calib: StepSequences, ratio: number): void {
    this.first.calibrate(calib.first, ratio);
    this.rest.calibrate(calib.rest, ratio);
  }

  /** Decodes with the dual stacks (on) or the dense ones (off). */
  use(on: boolean): void { if (on) this.model.useRunners(this.first, this.rest); else this.model.useRunners(); }

  resetAccounting(): void { this.first.accounting.reset(); this.rest.accounting.reset(); }

  /** Insensitive fraction of all decoder gate rows over the steps since resetAccounting (layers weigh alike: same width). */
  achievedRatio(): number {
    const a = this.first.accounting.report(), b = this.rest.accounting.report();
    const na = this.first.stack.layers.length, nb = this.rest.stack.layers.length;
    return (a.insensitiveRatio * na + b.insensitiveRatio * nb) / (na + nb);
  }
}

/** Decodes every source of `pairs` and scores against their references. */
export function translateSplit(m: NmtModel, pairs: readonly EncodedPair[], refs: readonly SentencePair[], decode: Decode,
                               beam: BeamOptions = BEAM_DEFAULTS, onSentence?: (done: number, total: number) => void): { bleu: BleuScore; hyps: string[] } {
  const hyps = pairs.map((p, i) => {
    m.start(p.src);
    const ids = decode === "greedy" ? greedyDecode(m, beam.maxLength) : beamDecode(m, beam);
    onSentence?.(i + 1, pairs.length);
    return m.bpe.decode(ids);
  });
  return { bleu: corpusBleu(hyps, [refs.map((r) => r.tgt)]), hyps };
}

/**
 * Median milliseconds of one decoder LSTM step (all layers, batch 1), dense and dual at the current
 * thresholds, in interleaved rounds over recorded step inputs (`seqs`, teacher-forced).
 */
export async function timeDecoderStep(d: DualDecoder, seqs: StepSequences, rounds = 400): Promise<{ dense: number; dual: number }> {
  const first = seqs.first.flat(), rest = seqs.rest.flat(), n = Math.min(first.length, rest.length);
  if (n === 0) throw new Error("timeDecoderStep: no recorded steps");
  const s = d.model.stacks;
  const variants: Variant[] = [
    { run: (r) => { s.first.step(first[r % n]); s.rest.step(rest[r % n]); } },
    { run: (r) => { d.first.step(first[r % n]); d.rest.step(rest[r % n]); } },
  ];
  s.first.reset(); s.rest.reset();
  const [dense, dual] = await timeInterleaved(variants, { warmup: 50, rounds });
  s.first.reset(); s.rest.reset();
  return { dense, dual };
}

// ---------------------------------------------------------------------------------------------------
// Evaluation: BLEU and step time per ratio

/** One row of `dmi eval nmt --json`: times are one decoder LSTM step (all layers) at batch 1, median ms. */
export interface NmtEvalRow {
  model: string; split: string; decode: Decode; ratio: number; achieved_ratio: number;
  bleu: number; bleu_dense: number; dense_ms: number; dual_ms: number; threads: number;
}

export interface NmtEvalOptions {
  ratios: number[];
  decodes: Decode[];
  beam: BeamOptions;
  rounds: number;  // interleaved timing rounds per ratio
  model: string;   // names for the rows
  split: string;
  onProgress?: (what: string, done: number, total: number) => void;
}

/**
 * Dense BLEU of `pairs` per decode, then per ratio: calibrate, decode with the dual decoder (the
 * achieved ratio counted over exactly those steps), time the decoder step dense against dual.
 */
export async function evaluateNmt(rt: Runtime, d: DualDecoder, calibration: StepSequences, pairs: readonly EncodedPair[],
                                  refs: readonly SentencePair[], o: NmtEvalOptions): Promise<{ rows: NmtEvalRow[]; dense: Map<Decode, BleuScore> }> {
  const m = d.model, dense = new Map<Decode, BleuScore>(), rows: NmtEvalRow[] = [];
  d.use(false);
  for (const decode of o.decodes) dense.set(decode, translateSplit(m, pairs, refs, decode, o.beam, (i, n) => o.onProgress?.(`dense ${decode}`, i, n)).bleu);
  for (const ratio of o.ratios) {
    d.calibrate(calibration, ratio);
    const t = await timeDecoderStep(d, calibration, o.rounds);
    for (const decode of o.decodes) {
      d.use(true);
      d.resetAccounting();
      const bleu = translateSplit(m, pairs, refs, decode, o.beam, (i, n) => o.onProgress?.(`ratio ${ratio} ${decode}`, i, n)).bleu;
      const achieved = d.achievedRatio();
      d.use(false);
      rows.push({ model: o.model, split: o.split, decode, ratio, achieved_ratio: achieved, bleu: bleu.score, bleu_dense: dense.get(decode)!.score,
        dense_ms: t.dense, dual_ms: t.dual, threads: rt.threads });
    }
  }
  return { rows, dense };
}
