// The word vocabulary of a language model: id ↔ word, with "<unk>" for every word it lacks.
// Ids of this project's corpora: 0 is "<unk>", 1 is "<eos>", then words by decreasing training
// frequency, ties in code-unit (not locale) order, so the same counts give the same ids everywhere.
// A vocabulary read from elsewhere (src/data/word-corpus.ts) keeps its own order.
import { createHash } from "node:crypto";
import { EOS } from "./tokenize.js";

/** The token that stands for every word outside the vocabulary. */
export const UNK = "<unk>";
export const UNK_ID = 0;
export const EOS_ID = 1;

export class Vocabulary {
  private readonly ids = new Map<string, number>();
  /** Id of "<unk>", which words outside the vocabulary become; -1 when the vocabulary has none. */
  readonly unkId: number;
  /** Id of "<eos>", the end of every sentence. */
  readonly eosId: number;

  /**
   * `words[id]` is the word of each id. With `layout` "reserved" (this project's corpora) words[0]
   * must be "<unk>" and words[1] "<eos>"; with "any" (a vocabulary built elsewhere, e.g. PyTorch's
   * word_language_model in order of first appearance) they may be anywhere, and "<unk>" may be absent.
   */
  constructor(readonly words: readonly string[], layout: "reserved" | "any" = "reserved") {
    if (layout === "reserved" && (words[UNK_ID] !== UNK || words[EOS_ID] !== EOS)) {
      throw new Error(`Vocabulary: ids 0 and 1 must be "${UNK}" and "${EOS}", got ${JSON.stringify(words.slice(0, 2))}`);
    }
    words.forEach((w, id) => {
      if (typeof w !== "string" || w.length === 0) throw new Error(`Vocabulary: word ${id} is ${JSON.stringify(w)}, not a non-empty string`);
      if (this.ids.has(w)) throw new Error(`Vocabulary: word ${JSON.stringify(w)} appears twice (ids ${this.ids.get(w)} and ${id})`);
      this.ids.set(w, id);
    });
    if (!this.ids.has(EOS)) throw new Error(`Vocabulary: "${EOS}" is missing; every sentence ends with it`);
    this.unkId = this.ids.get(UNK) ?? -1;
    this.eosId = this.ids.get(EOS)!;
  }

  /**
   * The `size` most frequent words of `counts` (size counts "<unk>" and "<eos>", which are always
   * in); fewer when `counts` has fewer distinct words.
   */
  static fromCounts(counts: ReadonlyMap<string, number>, size: number): Vocabulary {
    if (!Number.isSafeInteger(size) || size < 2) throw new Error(`Vocabulary: size must be an integer ≥ 2 (for ${UNK} and ${EOS}), got ${size}`);
    const ranked = [...counts].filter(([w]) => w !== UNK && w !== EOS)
      .sort(([wa, a], [wb, b]) => b - a || (wa < wb ? -1 : wa > wb ? 1 : 0));
    return new Vocabulary([UNK, EOS, ...ranked.slice(0, size - 2).map(([w]) => w)]);
  }

  get size(): number { return this.words.length; }

  /** SHA-256 of the words in id order: two vocabularies of one size with other words differ here. */
  get digest(): string { return createHash("sha256").update(this.words.join("\n")).digest("hex"); }

  /** The id of `word`, unkId if it is not in the vocabulary (an error when there is no "<unk>"). */
  id(word: string): number {
    const id = this.ids.get(word) ?? this.unkId;
    if (id < 0) throw new Error(`Vocabulary: ${JSON.stringify(word)} is not in the vocabulary, which has no "${UNK}" to stand for it`);
    return id;
  }

  has(word: string): boolean { return this.ids.has(word); }

  word(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.words.length) throw new RangeError(`Vocabulary: id ${id} is outside [0, ${this.words.length})`);
    return this.words[id];
  }

  /** Ids of `tokens`; unknown words become unkId. */
  encode(tokens: readonly string[]): Int32Array {
    const out = new Int32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) out[i] = this.id(tokens[i]);
    return out;
  }

  decode(ids: ArrayLike<number>): string[] {
    return Array.from(ids, (id) => this.word(id));
  }
}

/** How often each token occurs. */
export function countTokens(tokens: Iterable<string>, counts = new Map<string, number>()): Map<string, number> {
  for (const t of tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
  return counts;
}
