// A language-model checkpoint with the corpus it was trained on, ready for inference: the commands'
// shared start, with the checks that a checkpoint and a corpus belong together.
import { existsSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Runtime } from "../runtime/runtime.js";
import { LmInference, viewParams } from "./lm.js";
import { loadLanguageModel, type LoadedLm } from "./import.js";
import type { CellKind } from "./stack.js";
import { CORPORA, loadCorpus, type CorpusName } from "../data/corpus.js";
import { loadWordCorpus, type WordCorpus } from "../data/word-corpus.js";
import { encodeFile } from "../data/text.js";

/** The package's models/ folder (from dist/src/recurrent/open.js), where the shipped checkpoints are. */
export const MODELS_DIR = fileURLToPath(new URL("../../../models", import.meta.url));

/**
 * The shipped default model: the smallest-hidden SOTU LSTM in MODELS_DIR (the larger ones are for
 * the paper's tables).
 */
export function defaultModel(dir = MODELS_DIR): string {
  const found = existsSync(dir) ? readdirSync(dir).flatMap((f) => {
    const m = /^sotu-lstm-(\d+)\.safetensors$/.exec(f);
    return m ? [{ file: join(dir, f), hidden: Number(m[1]) }] : [];
  }) : [];
  if (found.length === 0) {
    throw new Error(`no default model: ${dir} has no sotu-lstm-<H>.safetensors; pass --model FILE, or train one with ` +
      "`dmi train lm --corpus sotu --cell lstm --hidden H --dtype f16 --out models/sotu-lstm-H.safetensors`");
  }
  return found.sort((a, b) => a.hidden - b.hidden)[0].file;
}

/**
 * Throws unless the corpus's vocabulary is the one the model's embedding and decoder index: the same
 * size, and the same words when the checkpoint records their digest.
 */
export function checkVocabulary(checkpoint: Pick<LoadedLm, "config" | "vocabDigest">, corpus: Pick<WordCorpus, "name" | "vocab">, path: string): void {
  if (corpus.vocab.size !== checkpoint.config.vocab) {
    throw new Error(`checkpoint ${path} has a vocabulary of ${checkpoint.config.vocab} words, corpus ${corpus.name} one of ${corpus.vocab.size}: ` +
      "the model was trained on other data; pass the corpus it was trained on (--corpus or --data) or retrain it");
  }
  if (checkpoint.vocabDigest !== undefined && checkpoint.vocabDigest !== corpus.vocab.digest) {
    throw new Error(`checkpoint ${path} was trained on other words than corpus ${corpus.name}'s ${corpus.vocab.size} (vocabulary digests differ): ` +
      "the corpus or its processing changed since; evaluate it with the corpus it was trained on, or retrain it");
  }
}

export interface OpenedLm { path: string; checkpoint: LoadedLm; corpus: WordCorpus; lm: LmInference }

export interface OpenLmOptions {
  corpus?: string;                      // one of CORPORA, instead of the one the checkpoint was trained on
  data?: string;                        // a corpus of one's own (src/data/word-corpus.ts): a folder, or a file with `split`
  split?: number[];                     // train,valid,test proportions of a one-file `data`
  cell?: CellKind;                      // the cell the model must hold
  onProgress?: (message: string) => void;
}

/**
 * The model at `path` (this project's checkpoint, a PyTorch state_dict in safetensors, or an ONNX
 * export: src/recurrent/import.ts) as an LmInference, and its corpus: `data`, or `corpus`, or the
 * one a dualmodule checkpoint was trained on.
 */
export async function openLm(rt: Runtime, path: string, options: OpenLmOptions = {}): Promise<OpenedLm> {
  const checkpoint = await loadLanguageModel(path, { cell: options.cell });
  if (options.data !== undefined && options.corpus !== undefined) throw new Error("--data and --corpus both name a corpus: pass one of them");
  let corpus: WordCorpus;
  if (options.data !== undefined) {
    corpus = await loadWordCorpus(options.data, options.split);
  } else {
    const name = options.corpus ?? checkpoint.training?.corpus;
    if (name === undefined) {
      throw new Error(`model ${path} (${checkpoint.format}) carries no vocabulary: pass --data DIR, the corpus it was trained on ` +
        "(train.txt, valid.txt, test.txt as in PyTorch's word_language_model)");
    }
    if (!(CORPORA as string[]).includes(name)) {
      throw new Error(`checkpoint ${path} was trained on corpus ${JSON.stringify(name)}, which is not one of ${CORPORA.join(", ")}; ` +
        "pass --corpus NAME to evaluate it on one of those, or --data DIR for a corpus of your own");
    }
    // The vocabulary `dmi train lm` uses, checked against the one the checkpoint records.
    corpus = await loadCorpus(name as CorpusName, { onProgress: options.onProgress });
  }
  checkVocabulary(checkpoint, corpus, path);
  const lm = new LmInference(rt, checkpoint.config, viewParams(checkpoint.config, checkpoint.params));
  return { path, checkpoint, corpus, lm };
}

/** The text perplexity is measured on: the corpus's test split, or a text file in its vocabulary. */
export async function testText(o: OpenedLm, file?: string): Promise<{ name: string; ids: Int32Array }> {
  if (file === undefined) return { name: "test", ids: o.corpus.test };
  const ids = await encodeFile(file, o.corpus.vocab);
  if (ids.length < 2) throw new Error(`text file ${file} has ${ids.length} token: too few to predict one from another; give it a sentence or more`);
  return { name: `text ${basename(file)}`, ids };
}
