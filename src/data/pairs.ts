// Parallel text for translation: a file of `source<TAB>target` lines (one sentence pair a line),
// checked line by line, cut deterministically into train / valid / test, and measured. The project's
// pairs are the Bible En–Es verses in ../shared/data/bible-en-es/ beside the repository (not shipped
// with the npm package); any file of the same layout can stand in for them (`--pairs FILE`).
// Not here: subwords and BLEU (src/seq2seq/), batching for training.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readFileChecked } from "../io/files.js";
import { SPLITS, type Split } from "./source.js";
import { decodeText } from "./text.js";

/** One sentence pair and the line of the file it came from (1-based), for messages. */
export interface SentencePair {
  src: string;
  tgt: string;
  line: number;
}

/** Which lines go where: blocks of `block` consecutive lines; of every `period` blocks the last two are valid and test. */
export interface BlockSplit {
  block: number;
  period: number;
}

export interface ParallelCorpus {
  /** For tables and messages: "bible" or the file's path. */
  name: string;
  /** The file the pairs were read from. */
  path: string;
  /** Language codes of the two sides, e.g. ["en", "es"]; ["src", "tgt"] when unknown. */
  languages: [string, string];
  split: BlockSplit;
  pairs: Record<Split, SentencePair[]>;
}

/**
 * The Bible verse pairs (KJV English, Reina-Valera 1909 Spanish): ../shared/data/bible-en-es/kjv-rv1909.tsv
 * beside the repository root (from dist/src/data/pairs.js), as scripts/fixtures/make_fixtures.py finds it.
 */
export const BIBLE_FILE = fileURLToPath(new URL("../../../../shared/data/bible-en-es/kjv-rv1909.tsv", import.meta.url));

/** The split the corpus README suggests: blocks of 100 lines, block % 50 == 48 → valid, == 49 → test. */
export const BIBLE_SPLIT: BlockSplit = { block: 100, period: 50 };

/** Where a pair at (0-based) position `index` goes under `split`. */
export function splitOf(index: number, split: BlockSplit): Split {
  const k = Math.floor(index / split.block) % split.period;
  return k === split.period - 2 ? "valid" : k === split.period - 1 ? "test" : "train";
}

/**
 * The pairs of `text`, one a line: exactly one tab, text on both sides (surrounding spaces are
 * trimmed). `source` names the input in errors, which give the line number and what is wrong.
 */
export function parsePairs(text: string, source: string): SentencePair[] {
  const lines = text.split(/\r\n|\n|\r/);
  if (lines[lines.length - 1] === "") lines.pop();
  const pairs: SentencePair[] = [];
  for (const [i, raw] of lines.entries()) {
    const where = `${source} line ${i + 1}`;
    const fields = raw.split("\t");
    if (raw.trim() === "") throw new Error(`${where} is empty; every line must be source<TAB>target (remove blank lines)`);
    if (fields.length === 1) throw new Error(`${where} has no tab: every line must be source<TAB>target, got ${preview(raw)}`);
    if (fields.length > 2) throw new Error(`${where} has ${fields.length - 1} tabs: every line must be source<TAB>target with one tab, got ${preview(raw)}`);
    const [src, tgt] = fields.map((f) => f.trim());
    if (src === "" || tgt === "") throw new Error(`${where} has an empty ${src === "" ? "source (left)" : "target (right)"} side: ${preview(raw)}`);
    pairs.push({ src, tgt, line: i + 1 });
  }
  if (pairs.length === 0) throw new Error(`${source} has no sentence pairs`);
  return pairs;
}

function preview(line: string): string {
  return JSON.stringify(line.length > 60 ? `${line.slice(0, 60)}…` : line);
}

/** `pairs` cut by position: neighbouring lines (verses) stay together in one split. */
export function splitPairs(pairs: readonly SentencePair[], split: BlockSplit): Record<Split, SentencePair[]> {
  const out = { train: [], valid: [], test: [] } as Record<Split, SentencePair[]>;
  for (const [i, p] of pairs.entries()) out[splitOf(i, split)].push(p);
  return out;
}

/** The pairs of the file at `path`, checked (UTF-8 text, one tab a line, no empty side). */
export async function readPairs(path: string): Promise<SentencePair[]> {
  const bytes = await readFileChecked(path, "pairs file");
  const source = `pairs file ${path}`;
  if (bytes.length === 0) throw new Error(`${source} is empty: give one source<TAB>target sentence pair a line`);
  return parsePairs(decodeText(bytes, source), source);
}

/** The Bible En–Es pairs with the README's split; a missing file is an error saying where it was looked for and how to get it. */
export async function loadBible(path = BIBLE_FILE): Promise<ParallelCorpus> {
  if (!existsSync(path)) {
    throw new Error(`the Bible En–Es pairs are not at ${path}: they live in the project's shared data folder beside the repository ` +
      `(../shared/data/bible-en-es/kjv-rv1909.tsv, with a README saying how they were made from Debian's sword-text-kjv and ` +
      `sword-text-sparv) and are not shipped with the npm package; copy that folder there, or give any source<TAB>target file with --pairs FILE`);
  }
  return { name: "bible", path, languages: ["en", "es"], split: BIBLE_SPLIT, pairs: splitPairs(await readPairs(path), BIBLE_SPLIT) };
}

/**
 * A user's `source<TAB>target` file, split like the Bible's: blocks of 100 lines, or of n / 50 lines
 * when the file has fewer than 5 000 pairs, so that valid and test are never empty (≥ 50 pairs needed).
 */
export async function loadPairs(path: string, languages: [string, string] = ["src", "tgt"]): Promise<ParallelCorpus> {
  const all = await readPairs(path);
  if (all.length < BIBLE_SPLIT.period) {
    throw new Error(`pairs file ${path} has ${all.length} pairs: at least ${BIBLE_SPLIT.period} are needed for train, valid and test`);
  }
  const split = { block: Math.min(BIBLE_SPLIT.block, Math.floor(all.length / BIBLE_SPLIT.period)), period: BIBLE_SPLIT.period };
  return { name: path, path, languages, split, pairs: splitPairs(all, split) };
}

// ---------------------------------------------------------------------------------------------------
// Statistics

/** Length statistics of one side of one split, in whitespace-separated words (or any other unit). */
export interface LengthStats {
  total: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Total, mean, nearest-rank percentiles and maximum of `lengths`. */
export function lengthStats(lengths: readonly number[]): LengthStats {
  const sorted = Float64Array.from(lengths).sort();
  const rank = (q: number) => sorted.length === 0 ? 0 : sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
  const total = sorted.reduce((a, b) => a + b, 0);
  return { total, mean: sorted.length ? total / sorted.length : 0, p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), max: rank(1) };
}

/** Whitespace-separated words of a sentence. */
export function countWords(s: string): number {
  return s.split(/\s+/u).filter((w) => w !== "").length;
}

/** Per split: pairs, and each side's length statistics under `measure` (words by default). */
export function pairStats(corpus: ParallelCorpus, measure: (s: string) => number = countWords): Record<Split, { pairs: number; src: LengthStats; tgt: LengthStats }> {
  const out = {} as Record<Split, { pairs: number; src: LengthStats; tgt: LengthStats }>;
  for (const s of SPLITS) {
    const ps = corpus.pairs[s];
    out[s] = { pairs: ps.length, src: lengthStats(ps.map((p) => measure(p.src))), tgt: lengthStats(ps.map((p) => measure(p.tgt))) };
  }
  return out;
}
