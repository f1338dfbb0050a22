// Parallel text: the src<TAB>tgt reader and its errors, the README's block split of the Bible pairs,
// the split of a user's file, length statistics, and `dmi data bible` / `--pairs`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { BIBLE_FILE, BIBLE_SPLIT, lengthStats, loadBible, loadPairs, pairStats, parsePairs, readPairs, splitOf } from "../src/data/pairs.js";

const dmi = fileURLToPath(new URL("../src/cli/dmi.js", import.meta.url));
const run = promisify(execFile);

test("parsePairs: one pair a line, sides trimmed, CRLF accepted, line numbers kept", () => {
  assert.deepEqual(parsePairs("a b\tc d\r\n e \t f\n", "x"), [{ src: "a b", tgt: "c d", line: 1 }, { src: "e", tgt: "f", line: 2 }]);
});

test("parsePairs: a malformed line is an error naming the line and what is wrong", () => {
  assert.throws(() => parsePairs("a\tb\nno tab here\n", "pairs file f.tsv"), /pairs file f\.tsv line 2 has no tab: every line must be source<TAB>target, got "no tab here"/);
  assert.throws(() => parsePairs("a\tb\n\tonly target\n", "f"), /f line 2 has an empty source \(left\) side/);
  assert.throws(() => parsePairs("a\t  \n", "f"), /f line 1 has an empty target \(right\) side/);
  assert.throws(() => parsePairs("a\tb\tc\n", "f"), /f line 1 has 2 tabs/);
  assert.throws(() => parsePairs("a\tb\n\nc\td\n", "f"), /f line 2 is empty/);
  assert.throws(() => parsePairs("", "f"), /f has no sentence pairs/);
});

test("splitOf: blocks of 100 lines, the 49th and 50th of every 50 blocks are valid and test", () => {
  const at = (i: number) => splitOf(i, BIBLE_SPLIT);
  assert.deepEqual([at(0), at(4799), at(4800), at(4899), at(4900), at(4999), at(5000), at(9800), at(9900)],
    ["train", "train", "valid", "valid", "test", "test", "train", "valid", "test"]);
});

test("lengthStats: nearest-rank percentiles", () => {
  const lengths = Array.from({ length: 100 }, (_, i) => 100 - i);  // 1..100, unsorted
  assert.deepEqual(lengthStats(lengths), { total: 5050, mean: 50.5, p50: 50, p90: 90, p99: 99, max: 100 });
  assert.deepEqual(lengthStats([]), { total: 0, mean: 0, p50: 0, p90: 0, p99: 0, max: 0 });
});

test("missing and unreadable pairs files: errors that name the path and the way out", async () => {
  await assert.rejects(loadBible("/nonexistent/kjv-rv1909.tsv"),
    /the Bible En–Es pairs are not at \/nonexistent\/kjv-rv1909\.tsv: .*not shipped with the npm package; copy that folder there, or give any source<TAB>target file with --pairs FILE/);
  await assert.rejects(readPairs("/nonexistent/mine.tsv"), /cannot read pairs file \/nonexistent\/mine\.tsv: it does not exist/);
  const dir = await mkdtemp(join(tmpdir(), "pairs-"));
  try {
    const empty = join(dir, "empty.tsv");
    await writeFile(empty, "");
    await assert.rejects(readPairs(empty), /pairs file .*empty\.tsv is empty: give one source<TAB>target sentence pair a line/);
    const few = join(dir, "few.tsv");
    await writeFile(few, "a\tb\n".repeat(49));
    await assert.rejects(loadPairs(few), /has 49 pairs: at least 50 are needed/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("loadPairs: a user's file of 520 pairs is split in blocks of 10 lines (520 / 50)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pairs-"));
  try {
    const path = join(dir, "mine.tsv");
    await writeFile(path, Array.from({ length: 520 }, (_, i) => `source ${i}\ttarget ${i}`).join("\n"));
    const c = await loadPairs(path);
    assert.deepEqual(c.split, { block: 10, period: 50 });
    assert.deepEqual([c.pairs.train.length, c.pairs.valid.length, c.pairs.test.length], [500, 10, 10]);
    assert.deepEqual([c.pairs.valid[0].src, c.pairs.test[9].tgt], ["source 480", "target 499"]);
    const st = pairStats(c);
    assert.deepEqual([st.train.pairs, st.train.src.total, st.test.tgt.max], [500, 1000, 2]);
    const { stdout } = await run(process.execPath, [dmi, "data", "--pairs", path, "--bpe", "0"]);
    assert.match(stdout, /blocks of 10 lines/);
    assert.match(stdout, /train\s+500\s+1000\s+1000\s/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const noBible = existsSync(BIBLE_FILE) ? false : `${BIBLE_FILE} is absent`;

test("the Bible pairs: 30 698 lines split 29 498 / 600 / 600 as the README suggests", { skip: noBible }, async () => {
  const c = await loadBible();
  assert.deepEqual([c.pairs.train.length, c.pairs.valid.length, c.pairs.test.length], [29498, 600, 600]);
  assert.deepEqual(c.languages, ["en", "es"]);
  assert.equal(c.pairs.train[0].src, "In the beginning God created the heaven and the earth.");
  assert.equal(c.pairs.train[0].tgt, "EN el principio crió Dios los cielos y la tierra.");
  assert.deepEqual([c.pairs.valid[0].line, c.pairs.test[0].line, c.pairs.test[599].line], [4801, 4901, 30000]);
});

test("dmi data bible prints pairs, words and length percentiles per split, then the shared BPE's tokens", { skip: noBible }, async () => {
  const { stdout } = await run(process.execPath, [dmi, "data", "bible", "--bpe", "2000"]);
  assert.match(stdout, /train\s+29498\s/);
  assert.match(stdout, /valid\s+600\s/);
  assert.match(stdout, /shared BPE of 2000 symbols/);
});
