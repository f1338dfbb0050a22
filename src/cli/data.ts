// `dmi data`: processes (or reads from the cache) the language-modelling corpora and prints their
// statistics: documents, tokens and out-of-vocabulary rate per split.
import { parseArgs } from "node:util";
import { formatTable } from "../util/table.js";
import { CORPORA, DEFAULT_CACHE_DIR, DEFAULT_VOCAB_SIZE, loadCorpus, type Corpus, type CorpusName } from "../data/corpus.js";
import { SPLITS } from "../data/source.js";

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { "cache-dir": { type: "string" }, vocab: { type: "string" }, help: { type: "boolean" } },
  });
  if (values.help) {
    console.log(`dmi data [${CORPORA.join("|")} ...] [--vocab ${DEFAULT_VOCAB_SIZE}] [--cache-dir ${DEFAULT_CACHE_DIR}]`);
    return;
  }
  for (const p of positionals) if (!(CORPORA as string[]).includes(p)) throw new Error(`unknown corpus ${p}; known: ${CORPORA.join(", ")}`);
  const names = positionals.length ? (positionals as CorpusName[]) : CORPORA;
  const vocabSize = values.vocab === undefined ? DEFAULT_VOCAB_SIZE : Number(values.vocab);
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 2) throw new Error(`--vocab must be an integer ≥ 2, got ${values.vocab}`);

  const rows: (string | number)[][] = [];
  for (const name of names) {
    const c = await loadCorpus(name, { cacheDir: values["cache-dir"], vocabSize, onProgress: (m) => console.error(m) });
    for (const s of SPLITS) {
      const st = c.stats.splits[s];
      rows.push([name, s, span(c, s), st.documents, st.tokens, st.unknown, (100 * st.oovRate).toFixed(2), c.vocab.size, c.fromCache ? "cache" : "built"]);
    }
  }
  console.log(formatTable(["corpus", "split", "span", "documents", "tokens", "<unk>", "OOV %", "vocab", "from"], rows, 3));
}

/** What a split covers: SOTU's years, Brown's genres (the letter after the "c" of a file name). */
function span(c: Corpus, split: (typeof SPLITS)[number]): string {
  const ids = c.documents[split];
  if (ids.length === 0) return "-";
  if (c.name === "sotu") return `${ids[0].slice(0, 4)}–${ids[ids.length - 1].slice(0, 4)}`;
  return `${new Set(ids.map((id) => id[1])).size} genres`;
}
