// A language-model checkpoint with the corpus it was trained on, ready for inference: the commands'
// shared start, with the checks that a checkpoint and a corpus belong together.
import { existsSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Runtime } from "../runtime/runtime.js";
import { LmInference, loadLm, viewParams, type LmCheckpoint } from "./lm.js";
import { CORPORA, loadCorpus, type Corpus, type CorpusName } from "../data/corpus.js";
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
export function checkVocabulary(checkpoint: Pick<LmCheckpoint, "config" | "vocabDigest">, corpus: Pick<Corpus, "name" | "vocab">, path: string): void {
  if (corpus.vocab.size !== checkpoint.config.vocab) {
    throw new Error(`checkpoint ${path} has a vocabulary of ${checkpoint.config.vocab} words, corpus ${corpus.name} one of ${corpus.vocab.size}: ` +
      "the model was trained on other data; pass the corpus it was trained on (--corpus) or retrain it");
  }
  if (checkpoint.vocabDigest !== undefined && checkpoint.vocabDigest !== corpus.vocab.digest) {
    throw new Error(`checkpoint ${path} was trained on other words than corpus ${corpus.name}'s ${corpus.vocab.size} (vocabulary digests differ): ` +
      "the corpus or its processing changed since; evaluate it with the corpus it was trained on, or retrain it");
  }
}

export interface OpenedLm { path: string; checkpoint: LmCheckpoint; corpus: Corpus; lm: LmInference }

/** The checkpoint at `path` as an LmInference, and its corpus (`corpusName` or the one it was trained on). */
export async function openLm(rt: Runtime, path: string, corpusName?: string, say?: (message: string) => void): Promise<OpenedLm> {
  const checkpoint = await loadLm(path);
  const name = corpusName ?? checkpoint.training.corpus;
  if (!(CORPORA as string[]).includes(name)) {
    throw new Error(`checkpoint ${path} was trained on corpus ${JSON.stringify(name)}, which is not one of ${CORPORA.join(", ")}; ` +
      "pass --corpus NAME to evaluate it on one of those");
  }
  // The vocabulary `dmi train lm` uses, checked against the one the checkpoint records.
  const corpus = await loadCorpus(name as CorpusName, { onProgress: say });
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
