// A corpus of one's own, read exactly as PyTorch's word_language_model example reads it
// (examples/word_language_model/data.py, `Corpus`): DIR/train.txt, valid.txt and test.txt, each line
// split on whitespace with "<eos>" appended, the vocabulary built in order of first appearance over
// train, then valid, then test, so that word ids match a model trained by the example. Also a one-file
// variant for raw text split by lines (`--data FILE --split 90,5,5`). No tokenizer, no frequency
// cut-off, no cache: the text is taken as it is, which is what the example does.
// Not the project's own corpora (SOTU, Brown: src/data/corpus.ts), whose ids are frequency-ranked.
import { statSync } from "node:fs";
import { basename, join } from "node:path";
import { readFileChecked } from "../io/files.js";
import { decodeText } from "./text.js";
import { EOS } from "./tokenize.js";
import { Vocabulary } from "./vocabulary.js";
import { SPLITS, type Split } from "./source.js";

/** What language-model evaluation needs of a corpus; the project's `Corpus` has this and more. */
export interface WordCorpus {
  name: string;    // for tables and messages: the folder or file name
  source: string;  // where the text came from (a path)
  vocab: Vocabulary;
  train: Int32Array;
  valid: Int32Array;
  test: Int32Array;
}

// Python's str.split() whitespace (which differs from JavaScript's \s: \x1c–\x1f and \x85 are in,
// U+FEFF is out); lines are Python's universal newlines.
const PY_WHITESPACE = /[\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;
const LINE_BREAK = /\r\n|\r|\n/;

/** The lines of `text` as Python iterates a file opened in text mode (no empty line after a final newline). */
export function pythonLines(text: string): string[] {
  const lines = text.split(LINE_BREAK);
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** The words of each line, "<eos>" after every line: data.py's `line.split() + ['<eos>']`. */
export function lineWords(lines: readonly string[]): string[] {
  const words: string[] = [];
  for (const line of lines) {
    for (const w of line.split(PY_WHITESPACE)) if (w !== "") words.push(w);
    words.push(EOS);
  }
  return words;
}

/** The corpus of `splits` (words per split): vocabulary in order of first appearance, train → valid → test. */
export function wordCorpus(name: string, source: string, splits: Record<Split, string[]>): WordCorpus {
  const order = new Map<string, number>();
  for (const s of SPLITS) for (const w of splits[s]) if (!order.has(w)) order.set(w, order.size);
  const vocab = new Vocabulary([...order.keys()], "any");
  const ids = (s: Split) => Int32Array.from(splits[s], (w) => order.get(w)!);
  return { name, source, vocab, train: ids("train"), valid: ids("valid"), test: ids("test") };
}

async function readLines(path: string): Promise<string[]> {
  return pythonLines(decodeText(await readFileChecked(path, "corpus file"), `corpus file ${path}`));
}

/**
 * The corpus at `path`: a folder with train.txt, valid.txt and test.txt (the example's layout), or one
 * text file cut by lines into train / valid / test in the proportions `split` (e.g. [90, 5, 5]).
 */
export async function loadWordCorpus(path: string, split?: readonly number[]): Promise<WordCorpus> {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) throw new Error(`--data ${path}: it does not exist; give a folder with train.txt, valid.txt, test.txt, or a text file with --split`);
  if (stat.isDirectory()) {
    if (split !== undefined) throw new Error(`--split applies to a one-file corpus, but --data ${path} is a folder (its files are the split)`);
    const words = {} as Record<Split, string[]>;
    for (const s of SPLITS) words[s] = lineWords(await readLines(join(path, `${s}.txt`)));
    return wordCorpus(basename(path), path, words);
  }
  const parts = split ?? [90, 5, 5];
  if (parts.length !== 3 || !parts.every((p) => Number.isFinite(p) && p >= 0) || !(parts[0] > 0 && parts[2] > 0)) {
    throw new Error(`--split must be three proportions train,valid,test (train and test > 0), e.g. 90,5,5; got ${parts.join(",")}`);
  }
  const lines = await readLines(path);
  const total = parts[0] + parts[1] + parts[2];
  const trainEnd = Math.round((lines.length * parts[0]) / total), validEnd = Math.round((lines.length * (parts[0] + parts[1])) / total);
  if (trainEnd < 1 || validEnd >= lines.length) {
    throw new Error(`--data ${path}: ${lines.length} lines are too few to split ${parts.join(",")} with a line in train and in test`);
  }
  return wordCorpus(basename(path), path, {
    train: lineWords(lines.slice(0, trainEnd)), valid: lineWords(lines.slice(trainEnd, validEnd)), test: lineWords(lines.slice(validEnd)),
  });
}
