// Byte-pair encoding (Sennrich et al., 2016) for the translation model: one subword vocabulary shared
// by source and target, learned on the training split only. Lossless by construction: a sentence is
// normalized (normalizeText), cut into pre-tokens that carry their leading space (" tierra", "."),
// each pre-token is split into characters and merged by the learned merges; decoding concatenates the
// pieces, so decode(encode(s)) == normalizeText(s) and BLEU can be computed on real detokenized text.
// A character never seen in training falls back to its UTF-8 bytes (256 byte tokens, as
// SentencePiece's byte_fallback), so every input encodes and decodes; nothing maps to <unk>.
//
// Why shared: GNMT-style models with a shared wordpiece vocabulary can tie embeddings and copy
// names, numbers and punctuation (Abraham, Jerusalem, 3, ¿) through one id; the two languages share
// a script, and one table is one thing for a checkpoint to carry.
//
// Vocabulary layout (ids): 0 <pad>, 1 <s>, 2 </s>, 3..258 the bytes <0x00>..<0xFF>, then the
// alphabet (training characters in code-point order), then one symbol per merge that made a new string.
// Not here: the pairs themselves (src/data/pairs.ts), BLEU (bleu.ts), batching.
import { readFileChecked, writeFileAtomic } from "../io/files.js";
import type { ParallelCorpus } from "../data/pairs.js";

export const PAD = "<pad>", BOS = "<s>", EOS = "</s>";
export const PAD_ID = 0, BOS_ID = 1, EOS_ID = 2;
const BYTE_BASE = 3;
const FIRST_CHAR = BYTE_BASE + 256;
/** Default vocabulary size: small enough for a 2-core softmax, large enough that a verse is ~1.3 tokens a word. */
export const DEFAULT_BPE_VOCAB = 8000;
/** The key under which a checkpoint's safetensors metadata carries the BPE (its toJSON, as a string). */
export const BPE_METADATA_KEY = "bpe";
const FORMAT = "dualmodule-bpe", FORMAT_VERSION = 1;

// ---------------------------------------------------------------------------------------------------
// Normalization and pre-tokenization

/**
 * The text a model sees and BLEU is computed against: NFC (accented letters as one code point),
 * invisible format characters (soft hyphen, zero-width space, byte-order mark) deleted, whitespace and
 * control characters as single spaces, no space at either end.
 */
export function normalizeText(s: string): string {
  return s.normalize("NFC").replace(/\p{Cf}/gu, "").replace(/[\s\p{Cc}]+/gu, " ").trim();
}

// Letters (with their combining marks), digit runs, or runs of anything else, each with the single
// space before it; on normalized text the matches cover every character.
const PRETOKEN = / ?[\p{L}\p{M}]+| ?\p{N}+| ?[^\s\p{L}\p{M}\p{N}]+/gu;

/** The pre-tokens of normalized text: " tierra", ".", " ¿", "Quién"; joined they give the text back. */
export function pretokenize(normalized: string): string[] {
  return normalized.match(PRETOKEN) ?? [];
}

// ---------------------------------------------------------------------------------------------------
// The vocabulary and its merges

/** What a checkpoint or a JSON file carries: enough to rebuild the same ids. */
export interface BpeJson {
  format: typeof FORMAT;
  version: number;
  /** The initial symbols, one character (code point) each, in id order. */
  alphabet: string[];
  /** The merges in the order learned: [left, right] symbol strings. */
  merges: [string, string][];
}

const pairKey = (a: number, b: number) => a * 0x200000 + b;  // ids < 2^21, key < 2^42: exact in a double

export class Bpe {
  /** id → its text: specials, "<0xAB>" for bytes, characters, merged strings. */
  readonly symbols: string[];
  readonly alphabet: readonly string[];
  readonly merges: readonly [string, string][];
  private readonly ids = new Map<string, number>();
  /** (left id, right id) → [rank of the merge, id of the result]. */
  private readonly ranks = new Map<number, [number, number]>();
  private readonly cache = new Map<string, number[]>();

  constructor(alphabet: readonly string[], merges: readonly [string, string][], source = "BPE") {
    this.alphabet = alphabet;
    this.merges = merges;
    this.symbols = [PAD, BOS, EOS];
    for (let b = 0; b < 256; b++) this.symbols.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    for (const c of alphabet) {
      if ([...c].length !== 1) throw new Error(`${source}: alphabet entry ${JSON.stringify(c)} is not one character`);
      if (this.ids.has(c)) throw new Error(`${source}: alphabet entry ${JSON.stringify(c)} appears twice`);
      this.ids.set(c, this.symbols.length);
      this.symbols.push(c);
    }
    for (const [rank, [a, b]] of merges.entries()) {
      const ia = this.ids.get(a), ib = this.ids.get(b);
      if (ia === undefined || ib === undefined) {
        throw new Error(`${source}: merge ${rank} (${JSON.stringify(a)} + ${JSON.stringify(b)}) uses a symbol that neither the alphabet nor an earlier merge made; the merges are corrupt, learn them again`);
      }
      let id = this.ids.get(a + b);
      if (id === undefined) { id = this.symbols.length; this.ids.set(a + b, id); this.symbols.push(a + b); }
      if (!this.ranks.has(pairKey(ia, ib))) this.ranks.set(pairKey(ia, ib), [rank, id]);
    }
    if (this.symbols.length >= 0x200000) throw new Error(`${source}: ${this.symbols.length} symbols; at most 2^21 are supported`);
  }

  get size(): number { return this.symbols.length; }

  /** Subword ids of `text` (normalized first); no <s> or </s>, which are the model's to add. */
  encode(text: string): Int32Array {
    const out: number[] = [];
    for (const p of pretokenize(normalizeText(text))) for (const id of this.encodePretoken(p)) out.push(id);
    return Int32Array.from(out);
  }

  /** The symbols of `ids` as text (for looking at a segmentation): " tier" "ra" "." */
  pieces(ids: ArrayLike<number>): string[] {
    return Array.from(ids, (id) => this.symbol(id));
  }

  /**
   * The detokenized text of `ids`: pieces concatenated, byte runs decoded as UTF-8 (an invalid run is
   * U+FFFD), <pad> <s> </s> dropped, then normalized as input is (so stray spaces a model emits vanish).
   */
  decode(ids: ArrayLike<number>): string {
    let text = "";
    let bytes: number[] = [];
    const flush = () => { if (bytes.length) { text += new TextDecoder().decode(Uint8Array.from(bytes)); bytes = []; } };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      this.symbol(id);  // range check
      if (id < BYTE_BASE) continue;
      if (id < FIRST_CHAR) { bytes.push(id - BYTE_BASE); continue; }
      flush();
      text += this.symbols[id];
    }
    flush();
    return normalizeText(text);
  }

  toJSON(): BpeJson {
    return { format: FORMAT, version: FORMAT_VERSION, alphabet: [...this.alphabet], merges: this.merges.map(([a, b]) => [a, b]) };
  }

  /** A BPE from its toJSON (parsed) or its JSON text; `source` names it in errors. */
  static fromJSON(json: unknown, source = "BPE"): Bpe {
    const j = (typeof json === "string" ? parseJson(json, source) : json) as Partial<BpeJson> | null;
    const redo = "learn it again (dmi data bible --bpe-out FILE) or take it from the checkpoint it came with";
    if (j === null || typeof j !== "object" || j.format !== FORMAT) throw new Error(`${source} is not a ${FORMAT} vocabulary (no "format": "${FORMAT}"); ${redo}`);
    if (j.version !== FORMAT_VERSION) throw new Error(`${source} has ${FORMAT} version ${j.version}, this dualmodule reads version ${FORMAT_VERSION}; ${redo}`);
    const okMerge = (m: unknown) => Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string";
    if (!Array.isArray(j.alphabet) || !j.alphabet.every((c) => typeof c === "string")) throw new Error(`${source}: "alphabet" must be an array of characters`);
    if (!Array.isArray(j.merges) || !j.merges.every(okMerge)) throw new Error(`${source}: "merges" must be an array of [left, right] string pairs`);
    return new Bpe(j.alphabet, j.merges, source);
  }

  private symbol(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.symbols.length) throw new RangeError(`token id ${id} is outside the vocabulary (0..${this.symbols.length - 1})`);
    return this.symbols[id];
  }

  private encodePretoken(p: string): number[] {
    const hit = this.cache.get(p);
    if (hit) return hit;
    const syms: number[] = [];
    for (const c of p) {
      const id = this.ids.get(c);  // one character: an alphabet id (merged symbols are longer)
      if (id !== undefined) syms.push(id);
      else for (const b of new TextEncoder().encode(c)) syms.push(BYTE_BASE + b);
    }
    // Apply the earliest-learned merge present, everywhere in the word, until none applies.
    for (;;) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = this.ranks.get(pairKey(syms[i], syms[i + 1]));
        if (r !== undefined && r[0] < bestRank) { bestRank = r[0]; best = i; }
      }
      if (best < 0) break;
      const [left, right] = [syms[best], syms[best + 1]];
      const merged = this.ranks.get(pairKey(left, right))![1];
      let w = 0;
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === left && syms[i + 1] === right) { syms[w++] = merged; i++; }
        else syms[w++] = syms[i];
      }
      syms.length = w;
    }
    if (this.cache.size < 1 << 18) this.cache.set(p, syms);
    return syms;
  }
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${source} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** Writes the merges as a small JSON file (atomically). A checkpoint carries the same JSON as metadata[BPE_METADATA_KEY]. */
export async function saveBpe(path: string, bpe: Bpe): Promise<void> {
  await writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(bpe.toJSON())));
}

export async function loadBpe(path: string): Promise<Bpe> {
  return Bpe.fromJSON(new TextDecoder().decode(await readFileChecked(path, "BPE vocabulary")), `BPE vocabulary ${path}`);
}

// ---------------------------------------------------------------------------------------------------
// Learning

export interface LearnBpeOptions {
  /** A pair seen fewer times than this is never merged (default 2). */
  minPairCount?: number;
}

// A max-heap of (count, pair) entries, ordered by count, ties by the pair's strings (left, then
// right, in code-unit order) so that learning is deterministic. Entries go stale when a count
// changes; the current count is pushed anew and stale ones are skipped when popped.
class PairHeap {
  private items: { count: number; a: number; b: number }[] = [];
  constructor(private readonly text: string[]) {}
  get length(): number { return this.items.length; }

  private before(x: { count: number; a: number; b: number }, y: { count: number; a: number; b: number }): boolean {
    if (x.count !== y.count) return x.count > y.count;
    const [xa, ya] = [this.text[x.a], this.text[y.a]];
    if (xa !== ya) return xa < ya;
    return this.text[x.b] < this.text[y.b];
  }

  push(count: number, a: number, b: number): void {
    const h = this.items;
    h.push({ count, a, b });
    for (let i = h.length - 1; i > 0;) {
      const up = (i - 1) >> 1;
      if (!this.before(h[i], h[up])) break;
      [h[i], h[up]] = [h[up], h[i]];
      i = up;
    }
  }

  pop(): { count: number; a: number; b: number } {
    const h = this.items, top = h[0], last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l], h[m])) m = l;
        if (r < h.length && this.before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * A BPE of `vocabSize` symbols (specials and bytes included) learned on `sentences`. Word types are
 * counted once; each merge updates only the words that hold the merged pair (an index from pair to
 * words) and the counts of the pairs around it, and the next pair comes from a heap, so learning
 * costs about the total length of the words a merge touches, not a rescan of the corpus.
 */
export function learnBpe(sentences: Iterable<string>, vocabSize: number, options: LearnBpeOptions = {}): Bpe {
  const minPairCount = options.minPairCount ?? 2;
  const wordCount = new Map<string, number>();
  for (const s of sentences) for (const w of pretokenize(normalizeText(s))) wordCount.set(w, (wordCount.get(w) ?? 0) + 1);

  const chars = new Set<string>();
  for (const w of wordCount.keys()) for (const c of w) chars.add(c);
  const alphabet = [...chars].sort((x, y) => x.codePointAt(0)! - y.codePointAt(0)!);
  const minimum = FIRST_CHAR + alphabet.length;
  if (!Number.isSafeInteger(vocabSize) || vocabSize < minimum) {
    throw new Error(`learnBpe: vocabSize must be an integer ≥ ${minimum} (3 specials, 256 bytes and the ${alphabet.length} characters of the text), got ${vocabSize}`);
  }

  // Symbol ids as the Bpe will number them (specials and bytes are placeholders: they never merge).
  const text: string[] = new Array<string>(FIRST_CHAR).fill("");
  const ids = new Map<string, number>();
  for (const c of alphabet) { ids.set(c, text.length); text.push(c); }
  const words: number[][] = [], freq: number[] = [];
  for (const [w, n] of wordCount) { words.push(Array.from(w, (c) => ids.get(c)!)); freq.push(n); }

  const counts = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  for (const [wi, syms] of words.entries()) {
    for (let i = 0; i + 1 < syms.length; i++) {
      const k = pairKey(syms[i], syms[i + 1]);
      counts.set(k, (counts.get(k) ?? 0) + freq[wi]);
      let set = where.get(k);
      if (!set) where.set(k, set = new Set());
      set.add(wi);
    }
  }
  const heap = new PairHeap(text);
  for (const [k, n] of counts) heap.push(n, Math.floor(k / 0x200000), k % 0x200000);

  const merges: [string, string][] = [];
  let size = text.length;
  while (size < vocabSize && heap.length > 0) {
    const { count, a, b } = heap.pop();
    const key = pairKey(a, b);
    if (counts.get(key) !== count) continue;  // stale
    if (count < minPairCount) break;
    const s = text[a] + text[b];
    let m = ids.get(s);
    if (m === undefined) { m = text.length; ids.set(s, m); text.push(s); size++; }
    merges.push([text[a], text[b]]);

    // Per word holding (a, b): its old pairs out, the merge, its new pairs in; counts change by the net delta.
    const delta = new Map<number, number>();
    const add = (syms: number[], f: number, wi: number | undefined) => {
      for (let i = 0; i + 1 < syms.length; i++) {
        const k = pairKey(syms[i], syms[i + 1]);
        delta.set(k, (delta.get(k) ?? 0) + f);
        if (wi !== undefined) {
          let set = where.get(k);
          if (!set) where.set(k, set = new Set());
          set.add(wi);
        }
      }
    };
    for (const wi of where.get(key)!) {
      const syms = words[wi];
      const merged: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) { merged.push(m); i++; }
        else merged.push(syms[i]);
      }
      if (merged.length === syms.length) continue;  // the index may list words that no longer hold the pair
      add(syms, -freq[wi], undefined);
      add(merged, freq[wi], wi);
      words[wi] = merged;
    }
    where.delete(key);
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const n = (counts.get(k) ?? 0) + d;
      if (n > 0) { counts.set(k, n); heap.push(n, Math.floor(k / 0x200000), k % 0x200000); }
      else counts.delete(k);
    }
  }
  return new Bpe(alphabet, merges);
}

/** The shared BPE of a parallel corpus: learned on both sides of its training split only. */
export function learnSharedBpe(corpus: ParallelCorpus, vocabSize = DEFAULT_BPE_VOCAB, options: LearnBpeOptions = {}): Bpe {
  function* sides() { for (const p of corpus.pairs.train) { yield p.src; yield p.tgt; } }
  return learnBpe(sides(), vocabSize, options);
}
