// Byte-pair encoding: merges learned on a hand-made example and checked by hand, encoding and
// decoding (byte fallback for unseen characters), saving and loading, and the round trip on the real
// Bible pairs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIBLE_FILE, loadBible } from "../src/data/pairs.js";
import { BOS_ID, Bpe, EOS_ID, PAD_ID, learnBpe, learnSharedBpe, loadBpe, normalizeText, pretokenize, saveBpe } from "../src/seq2seq/bpe.js";

// Sennrich et al.'s example without the end-of-word mark, one word a sentence: low ×5, lower ×2,
// newest ×6, widest ×3. Pair counts at the start: e s 9, s t 9, w e 8, l o 7, o w 7, n e 6, e w 6,
// w i 3, i d 3, d e 3, e r 2. Ties go to the smaller left string, then the smaller right one.
//  1. e+s (9; ties s t, "e" < "s")       → newest = n e w es t, widest = w i d es t
//  2. es+t (9)                           → n e w est, w i d est
//  3. l+o (7; ties o w)                  → lo w, lo w e r
//  4. lo+w (7)                           → low, low e r
//  5. e+w (6; ties n e, w est)           → n ew est
//  6. ew+est (6; ties n ew)              → n ewest
//  7. n+ewest (6)                        → newest
//  8. d+est (3; ties i d, w i)           → w i dest
//  9. i+dest (3; ties w i)               → w idest
// 10. w+idest (3)                        → widest
// 11. e+r (2; ties low e)                → low er
// 12. low+er (2)                         → lower; no pair is left.
const WORDS = [...Array(5).fill("low"), ...Array(2).fill("lower"), ...Array(6).fill("newest"), ...Array(3).fill("widest")];
const HAND_MERGES = [["e", "s"], ["es", "t"], ["l", "o"], ["lo", "w"], ["e", "w"], ["ew", "est"], ["n", "ewest"],
  ["d", "est"], ["i", "dest"], ["w", "idest"], ["e", "r"], ["low", "er"]];

test("learnBpe: the hand-made example's merges, in order, and where it stops", () => {
  const bpe = learnBpe(WORDS, 1000);
  assert.deepEqual(bpe.merges, HAND_MERGES);
  assert.deepEqual(bpe.alphabet, ["d", "e", "i", "l", "n", "o", "r", "s", "t", "w"]);
  assert.equal(bpe.size, 3 + 256 + 10 + 12);
  assert.deepEqual(bpe.symbols.slice(0, 4), ["<pad>", "<s>", "</s>", "<0x00>"]);
  assert.deepEqual([PAD_ID, BOS_ID, EOS_ID], [0, 1, 2]);
  // vocabSize stops learning early; below the alphabet it is an error that gives the minimum.
  assert.deepEqual(learnBpe(WORDS, 3 + 256 + 10 + 4).merges, HAND_MERGES.slice(0, 4));
  assert.throws(() => learnBpe(WORDS, 100), /vocabSize must be an integer ≥ 269 \(3 specials, 256 bytes and the 10 characters/);
  // minPairCount: pairs seen only twice (e r, low er) are left.
  assert.deepEqual(learnBpe(WORDS, 1000, { minPairCount: 3 }).merges, HAND_MERGES.slice(0, 10));
});

test("Bpe.encode applies the earliest merge first; unseen characters fall back to bytes; decode inverts", () => {
  const bpe = new Bpe(["d", "e", "i", "l", "n", "o", "r", "s", "t", "w"], HAND_MERGES as [string, string][]);
  const pieces = (s: string) => bpe.pieces(bpe.encode(s));
  assert.deepEqual(pieces("lowest"), ["low", "est"]);
  assert.deepEqual(pieces("newer"), ["n", "ew", "er"]);
  assert.deepEqual(pieces("widest"), ["widest"]);
  // "☃" (U+2603) and the space were never seen: their UTF-8 bytes, which decode back.
  assert.deepEqual(pieces("low☃ low"), ["low", "<0xE2>", "<0x98>", "<0x83>", "<0x20>", "low"]);
  assert.equal(bpe.decode(bpe.encode("low☃ low")), "low☃ low");
  assert.equal(bpe.decode(bpe.encode("  lowest\t\u00ad\n newer ")), "lowest newer");
  // A model's output may hold specials, stray bytes or spaces: dropped, U+FFFD, collapsed.
  assert.equal(bpe.decode([BOS_ID, ...bpe.encode("low"), 3 + 0xe2, ...bpe.encode("est"), EOS_ID, PAD_ID]), "low\ufffdest");
  assert.equal(bpe.decode([]), "");
  assert.equal(bpe.encode("").length, 0);
  assert.throws(() => bpe.decode([bpe.size]), /token id 281 is outside the vocabulary \(0\.\.280\)/);
});

test("normalizeText and pretokenize: NFC, invisible characters out, single spaces; pre-tokens rejoin to the text", () => {
  assert.equal(normalizeText("  Y  dijo\u200b Dios:\r\n\u0301Sea e\u0301 "), "Y dijo Dios: \u0301Sea é");
  const t = normalizeText("¿Quién te enseñó que estabas desnudo? And he said, Who told thee (1:11)—");
  const p = pretokenize(t);
  assert.deepEqual(p.slice(0, 6), ["¿", "Quién", " te", " enseñó", " que", " estabas"]);
  assert.deepEqual(p.slice(-6), [" thee", " (", "1", ":", "11", ")—"]);
  assert.equal(p.join(""), t);
});

test("saveBpe / loadBpe and fromJSON: the same ids after the round trip; corrupt files say what is wrong", async () => {
  const bpe = learnBpe(WORDS, 1000);
  const dir = await mkdtemp(join(tmpdir(), "bpe-"));
  try {
    const path = join(dir, "bpe.json");
    await saveBpe(path, bpe);
    const back = await loadBpe(path);
    assert.deepEqual(back.symbols, bpe.symbols);
    assert.deepEqual(back.encode("lowest newer"), bpe.encode("lowest newer"));
    // As a checkpoint carries it: a string in safetensors metadata.
    assert.deepEqual(Bpe.fromJSON(JSON.stringify(bpe.toJSON())).symbols, bpe.symbols);
    await writeFile(path, "{not json");
    await assert.rejects(loadBpe(path), /BPE vocabulary .*bpe\.json is not valid JSON/);
    await writeFile(path, JSON.stringify({ ...bpe.toJSON(), version: 9 }));
    await assert.rejects(loadBpe(path), /version 9, this dualmodule reads version 1; learn it again/);
    assert.throws(() => Bpe.fromJSON({ ...bpe.toJSON(), merges: [["x", "y"]] }), /merge 0 \("x" \+ "y"\) uses a symbol that neither the alphabet nor an earlier merge made/);
    assert.throws(() => Bpe.fromJSON({ format: "other" }), /is not a dualmodule-bpe vocabulary/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const noBible = existsSync(BIBLE_FILE) ? false : `${BIBLE_FILE} is absent`;

test("shared BPE on the Bible's training pairs: the first 200 pairs round-trip exactly, at about 1.3 tokens a word", { skip: noBible }, async () => {
  const corpus = await loadBible();
  const t0 = performance.now();
  const bpe = learnSharedBpe(corpus, 8000);
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(bpe.size, 8000);
  assert.ok(seconds < 60, `learning took ${seconds.toFixed(1)} s`);
  let tokens = 0, words = 0;
  for (const p of corpus.pairs.train.slice(0, 200)) {
    for (const s of [p.src, p.tgt]) {
      const ids = bpe.encode(s);
      assert.equal(bpe.decode(ids), normalizeText(s), `line ${p.line}`);
      assert.ok(ids.every((id) => id >= 3 + 256), `line ${p.line}: a training character fell back to bytes`);
      tokens += ids.length;
      words += s.split(" ").length;
    }
  }
  assert.ok(tokens / words > 1 && tokens / words < 1.6, `tokens per word ${tokens / words}`);
  // A character the Bible lacks still encodes (as bytes) and decodes.
  assert.equal(bpe.decode(bpe.encode("Dios 😀 ≠ €5")), "Dios 😀 ≠ €5");
});
