// `dmi data`: processes (or reads from the cache) the language-modelling corpora and prints their
// statistics: documents, tokens and out-of-vocabulary rate per split. `dmi data bible` and
// `dmi data --pairs FILE` print a parallel corpus instead: pairs, words and length percentiles per
// split and side, then the tokens per sentence of a shared BPE learned on its training split.
import { parseArgs } from "node:util";
import { formatTable } from "../util/table.js";
import { CORPORA, DEFAULT_CACHE_DIR, DEFAULT_VOCAB_SIZE, loadCorpus, type Corpus, type CorpusName } from "../data/corpus.js";
import { loadBible, loadPairs, pairStats, type LengthStats, type ParallelCorpus } from "../data/pairs.js";
import { SPLITS } from "../data/source.js";
import { DEFAULT_BPE_VOCAB, learnSharedBpe, saveBpe } from "../seq2seq/bpe.js";
import { optionalInteger } from "./args.js";

const PARALLEL = "bible";
export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      "cache-dir": { type: "string" }, vocab: { type: "string" },
      pairs: { type: "string" }, bpe: { type: "string" }, "bpe-out": { type: "string" }, help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(`dmi data [${CORPORA.join("|")} ...] [--vocab ${DEFAULT_VOCAB_SIZE}] [--cache-dir ${DEFAULT_CACHE_DIR}]
dmi data ${PARALLEL} | --pairs FILE [--bpe ${DEFAULT_BPE_VOCAB}] [--bpe-out FILE.json]
  ${PARALLEL}: the Bible En–Es verse pairs (../shared/data/bible-en-es/ beside the repository)
  --pairs FILE: any file of source<TAB>target lines, split like the Bible's
  --bpe N: size of the shared BPE learned on the training split (0: none); --bpe-out saves its merges`);
    return;
  }
  const known = [...CORPORA, PARALLEL];
  for (const p of positionals) if (!known.includes(p)) throw new Error(`unknown corpus ${p}; known: ${known.join(", ")}`);
  const parallel = positionals.includes(PARALLEL) || values.pairs !== undefined;
  if (parallel) {
    const corpora: ParallelCorpus[] = [];
    if (positionals.includes(PARALLEL)) corpora.push(await loadBible());
    if (values.pairs !== undefined) corpora.push(await loadPairs(values.pairs));
    const bpeSize = optionalInteger("bpe", values.bpe, 0) ?? DEFAULT_BPE_VOCAB;
    if (values["bpe-out"] !== undefined && (bpeSize === 0 || corpora.length !== 1)) throw new Error("--bpe-out needs one parallel corpus and --bpe > 0");
    for (const c of corpora) await printParallel(c, bpeSize, values["bpe-out"]);
  }
  const lm = positionals.filter((p) => p !== PARALLEL) as CorpusName[];
  if (parallel && lm.length === 0) return;
  const names = lm.length ? lm : CORPORA;
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

const lengths = (l: LengthStats) => `${l.p50}/${l.p90}/${l.p99}/${l.max}`;

/** A parallel corpus's table: pairs and lengths per split; with bpeSize > 0, the shared BPE's tokens too. */
async function printParallel(c: ParallelCorpus, bpeSize: number, bpeOut: string | undefined): Promise<void> {
  const [a, b] = c.languages;
  const words = pairStats(c);
  const lengthHeader = (lang: string, unit: string) => `${lang} ${unit} p50/p90/p99/max`;
  console.log(formatTable(["corpus", "split", "pairs", `words ${a}`, `words ${b}`, lengthHeader(a, "words"), lengthHeader(b, "words")],
    SPLITS.map((s) => [c.name, s, words[s].pairs, words[s].src.total, words[s].tgt.total, lengths(words[s].src), lengths(words[s].tgt)]), 2));
  console.log(`split: by position, blocks of ${c.split.block} lines; of every ${c.split.period} blocks the ` +
    `${c.split.period - 1}th is valid and the ${c.split.period}th test (${c.path})`);
  if (bpeSize === 0) return;
  const t0 = performance.now();
  const bpe = learnSharedBpe(c, bpeSize);
  const seconds = (performance.now() - t0) / 1000;
  const tokens = pairStats(c, (s) => bpe.encode(s).length);
  console.log();
  console.log(formatTable(["corpus", "split", `tokens ${a}`, `tokens ${b}`, `${a} mean`, `${b} mean`, lengthHeader(a, "tokens"), lengthHeader(b, "tokens")],
    SPLITS.map((s) => [c.name, s, tokens[s].src.total, tokens[s].tgt.total, tokens[s].src.mean.toFixed(1), tokens[s].tgt.mean.toFixed(1),
      lengths(tokens[s].src), lengths(tokens[s].tgt)]), 2));
  console.log(`shared BPE of ${bpe.size} symbols (3 specials, 256 bytes, ${bpe.alphabet.length} characters, ${bpe.merges.length} merges), ` +
    `learned on both sides of train in ${seconds.toFixed(1)} s`);
  if (bpeOut !== undefined) {
    await saveBpe(bpeOut, bpe);
    console.log(`merges written to ${bpeOut}`);
  }
}
