// The web page's language-model demo as a class that runs in a browser and in Node alike: a model
// and vocabulary from bytes and a word list, little modules fitted and thresholds calibrated on
// token slices, text continued from a prompt dense or dual-module, the prompt's perplexity under
// both, and the step time of both. The page (web/app.js) only draws it; the browser test runs the
// same class in Node to check the page's dense output. Not here: fetching, the DOM, the server.
import type { Runtime } from "../runtime/runtime.js";
import { LmInference, loadLm, viewParams } from "../recurrent/lm.js";
import { DualModel, type Thresholds } from "../recurrent/dual.js";
import { fitLittleModules, type FitReport } from "../recurrent/fit.js";
import { generate, perplexity, stepSequences, type Recurrent } from "../recurrent/eval.js";
import { Vocabulary } from "../data/vocabulary.js";
import { encodeText } from "../data/text.js";
import { Rng } from "../util/random.js";
import { timeInterleaved } from "../util/timing.js";

/** Token ids the demo fits on (train pieces), calibrates on (valid pieces) and times on (test). */
export interface DemoSlices { words: string[]; train: number[][]; valid: number[][]; test: number[] }

export interface ContinueOptions { words: number; temperature: number; seed: number }

export interface Continuation { text: string; tokens: number; tokensPerSecond: number }

export interface StepTimes { denseMs: number; dualMs: number; achievedRatio: number }

/**
 * `rnn` that, on its first step after each reset, reads "<eos>" and then `prompt` instead of the one
 * token it is given: the library's generate() then continues the prompt rather than start afresh.
 */
export function withPrompt(lm: LmInference, rnn: Recurrent, eos: number, prompt: Int32Array): Recurrent {
  let primed = false;
  return {
    reset: () => { rnn.reset(); primed = false; },
    step: (x) => {
      if (primed || prompt.length === 0) return rnn.step(x);
      primed = true;
      rnn.step(lm.embed(eos));
      let out = rnn.step(lm.embed(prompt[0]));
      for (let i = 1; i < prompt.length; i++) out = rnn.step(lm.embed(prompt[i]));
      return out;
    },
  };
}

export class LmDemo {
  readonly dual: DualModel;
  readonly fit: FitReport[];
  private readonly validSeqs: Float32Array[][];
  private readonly thresholds = new Map<number, Thresholds>();

  private constructor(readonly rt: Runtime, readonly lm: LmInference, readonly vocab: Vocabulary, private readonly slices: DemoSlices) {
    this.validSeqs = stepSequences(lm, slices.valid.map((p) => Int32Array.from(p)));
    const fitted = fitLittleModules(rt, lm.stack, stepSequences(lm, slices.train.map((p) => Int32Array.from(p))));
    this.dual = new DualModel(rt, lm.stack, fitted.littles);
    this.fit = fitted.report;
  }

  /** The model from a language-model checkpoint's bytes, its little modules fitted on `slices.train`. */
  static async create(rt: Runtime, checkpoint: ArrayBuffer | Uint8Array, slices: DemoSlices): Promise<LmDemo> {
    const ckpt = await loadLm(checkpoint);
    const vocab = new Vocabulary(slices.words);
    if (vocab.size !== ckpt.config.vocab) {
      throw new Error(`LmDemo: the model has a vocabulary of ${ckpt.config.vocab} words, the word list ${vocab.size}: serve the corpus the model was trained on`);
    }
    return new LmDemo(rt, new LmInference(rt, ckpt.config, viewParams(ckpt.config, ckpt.params)), vocab, slices);
  }

  /** Calibrates the dual model to insensitive ratio `ratio` on the valid slices (once per ratio). */
  setRatio(ratio: number): void {
    let t = this.thresholds.get(ratio);
    if (!t) { t = this.dual.calibrate(this.validSeqs, ratio); this.thresholds.set(ratio, t); }
    this.dual.setThresholds(t, ratio);
  }

  /** Token ids of typed text (the corpus tokenizer; unknown words are "<unk>"), without a final "<eos>". */
  encode(text: string): Int32Array {
    const ids = text.trim() === "" ? new Int32Array(0) : encodeText(text, this.vocab, "the prompt");
    return ids.length > 0 && ids[ids.length - 1] === this.vocab.eosId ? ids.subarray(0, ids.length - 1) : ids;
  }

  /** `prompt` continued by `words` sampled tokens ("<eos>" shown as a line break), dense or at the current ratio. */
  continue(prompt: string, mode: "dense" | "dual", o: ContinueOptions): Continuation {
    const rnn = withPrompt(this.lm, mode === "dense" ? this.lm.stack : this.dual, this.vocab.eosId, this.encode(prompt));
    const start = performance.now();
    // One sentence of at most `words` words: "<eos>" ends it early.
    const [text] = generate(this.lm, rnn, this.vocab, new Rng(o.seed), { sentences: 1, maxWords: o.words, temperature: o.temperature });
    const seconds = (performance.now() - start) / 1000;
    const tokens = text === "" ? 0 : text.split(" ").length;
    return { text, tokens, tokensPerSecond: (tokens + 1) / seconds };
  }

  /** Perplexity of the typed text (from "<eos>", every word predicted), dense and at the current ratio. */
  perplexity(text: string): { dense: number; dual: number } | null {
    const ids = this.encode(text);
    if (ids.length === 0) return null;
    const stream = Int32Array.of(this.vocab.eosId, ...ids);
    return { dense: perplexity(this.lm, this.lm.stack, stream).ppl, dual: perplexity(this.lm, this.dual, stream).ppl };
  }

  /**
   * Median time of one recurrent step, dense and dual at the current ratio, over interleaved rounds
   * of `block` steps each on the test slice (a browser's clock ticks in 5 µs steps at best).
   */
  async stepTimes(rounds = 200, block = 10): Promise<StepTimes> {
    const xs = stepSequences(this.lm, [Int32Array.from(this.slices.test)])[0];
    const run = (rnn: Recurrent) => (round: number) => { for (let i = 0; i < block; i++) rnn.step(xs[(round * block + i) % xs.length]); };
    this.lm.stack.reset();
    this.dual.accounting.reset();
    const [dense, dual] = await timeInterleaved([{ run: run(this.lm.stack) }, { run: run(this.dual) }], { warmup: 20, rounds });
    const achievedRatio = this.dual.accounting.report().insensitiveRatio;
    this.lm.stack.reset();
    return { denseMs: dense / block, dualMs: dual / block, achievedRatio };
  }
}
