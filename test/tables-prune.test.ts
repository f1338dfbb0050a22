// `dmi tables prune` end to end on a tiny model: a word corpus of one's own (--data DIR), a dense
// LSTM trained on it with the trainer's API, pruned to 80 % for a few windows (AGP, then
// fine-tuning), then the command on a few hundred tokens with a tiny random width: every row, its
// fields, and what pruning and dual-module inference must do to the bytes and the perplexity.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testRuntimes } from "./helpers.js";
import { Rng } from "../src/util/random.js";
import { loadWordCorpus } from "../src/data/word-corpus.js";
import { loadLm } from "../src/recurrent/lm.js";
import { trainLm } from "../src/recurrent/train.js";
import { pruneRecord } from "../src/recurrent/prune.js";
import type { PruneRow } from "../src/bench/tables-prune.js";
import { main } from "../src/cli/tables-prune.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const tmp = await mkdtemp(join(tmpdir(), "dualmodule-tables-prune-"));
after(() => rm(tmp, { recursive: true, force: true }));

/** Lines of a first-order Markov source over 20 words: each word has 3 likely successors. */
function markovLines(n: number, seed: number): string {
  const table = new Rng(99), next = Array.from({ length: 20 }, () => [table.int(20), table.int(20), table.int(20)]);
  const rng = new Rng(seed), lines: string[] = [];
  let w = 0;
  for (let l = 0; l < n; l++) {
    const words: string[] = [];
    for (let i = 0; i < 9; i++) { w = rng.uniform() < 0.8 ? next[w][rng.int(3)] : rng.int(20); words.push(`w${w}`); }
    lines.push(words.join(" "));
  }
  return lines.join("\n") + "\n";
}

test("tables prune: dense and 80 %-pruned rows, with and without dual-module, trained and random weights, on 1 and 2 threads", async () => {
  const [rt] = await testRuntimes();
  const data = join(tmp, "corpus");
  await mkdir(data);
  await writeFile(join(data, "train.txt"), markovLines(300, 1));
  await writeFile(join(data, "valid.txt"), markovLines(120, 2));
  await writeFile(join(data, "test.txt"), markovLines(60, 3));
  const corpus = await loadWordCorpus(data);
  const config = { cell: "lstm" as const, vocab: corpus.vocab.size, emb: 16, hidden: 24, layers: 1, tied: false };
  const options = { bptt: 10, batch: 4, evalBatch: 2, lr: 20, clip: 0.25, dropout: 0, seed: 3 };
  const dense = join(tmp, "dense.safetensors"), pruned = join(tmp, "p80.safetensors");
  await trainLm(rt, { config, corpus: "corpus", epochs: 2, out: dense, options, vocabDigest: corpus.vocab.digest }, corpus);
  const denseCkpt = await loadLm(dense);
  const windows = Math.floor(corpus.train.length / options.batch / options.bptt);
  await trainLm(rt, {
    config, corpus: "corpus", epochs: 2, out: pruned, options: { ...options, lr: denseCkpt.training.lr }, vocabDigest: corpus.vocab.digest,
    init: denseCkpt.params, prune: { initial: 0, final: 0.8, start: 0, steps: windows - 5, every: 10, from: "dense.safetensors" },
  }, corpus);
  assert.equal(pruneRecord(await loadLm(pruned), pruned)?.sparsity, 0.8);

  const out = join(tmp, "tables"), json = join(tmp, "rows.json");
  await main(["--model", dense, "--pruned", `0.8=${pruned}`, "--data", data, "--out", out, "--json", json,
    "--ratios", "0.5", "--threads", "1,2", "--test-tokens", "300", "--train-tokens", "1500", "--valid-tokens", "800",
    "--steps", "5", "--repeats", "1", "--random-hidden", "20", "--random-sparsity", "0.8,0.9", "--k", "8"]);
  const rows = JSON.parse(await readFile(json, "utf8")) as PruneRow[];
  const tables = JSON.parse(await readFile(join(out, "prune.json"), "utf8"));
  assert.deepEqual(tables.rows, rows);
  assert.match(await readFile(join(out, "prune.md"), "utf8"), /### LSTM H = 24, trained weights, 2 threads/);
  for (const r of rows) {
    for (const key of ["hidden", "weights", "sparsity", "ratio", "ppl", "bytes_per_step", "step_ms", "threads"]) assert.ok(key in r, `${key} in every row`);
    assert.ok(r.step_ms > 0 && r.step_min <= r.step_ms && r.step_ms <= r.step_max && r.bytes_per_step > 0);
  }
  const ours = (w: string) => rows.filter((r) => r.weights === w && r.big !== "ort");
  const peer = rows.filter((r) => r.big === "ort");
  const withOrt = tables.peer.startsWith("onnxruntime");
  // Per thread count: trained 2 models × (alone, 50 %), random 3 sparsities × (alone, 50 %), and onnxruntime's dense step per width.
  assert.equal(ours("trained").length, 2 * 2 * 2);
  assert.equal(ours("random").length, 2 * 3 * 2);
  assert.equal(peer.length, withOrt ? 2 * 2 : 0);
  for (const t of [1, 2]) {
    const at = (w: string, s: number, ratio: number) => ours(w).find((r) => r.threads === t && Math.abs(r.sparsity - s) < 0.01 && r.ratio === ratio)!;
    const d0 = at("trained", 0, 0), d5 = at("trained", 0, 0.5), p0 = at("trained", 0.8, 0), p5 = at("trained", 0.8, 0.5);
    assert.equal(d0.big, "dense");
    assert.equal(p0.big, "sparse");
    assert.equal(p0.model, "p80.safetensors");
    assert.ok(Math.abs(p0.sparsity - 0.8) < 0.002, `measured sparsity ${p0.sparsity}`);
    for (const r of [d0, d5, p0, p5]) assert.ok(r.ppl !== null && Number.isFinite(r.ppl) && r.ppl < corpus.vocab.size, `ppl ${r.ppl}`);
    assert.ok(p0.bytes_per_step < 0.45 * d0.bytes_per_step, "compressed rows at 80 %: under half the dense bytes");
    assert.ok(Math.abs(d5.achieved_ratio - 0.5) < 0.1 && Math.abs(p5.achieved_ratio - 0.5) < 0.1, "calibrated ratios hold on test");
    assert.ok(d5.bytes_per_step < d0.bytes_per_step, "dual-module reads less than dense");
    for (const s of [0, 0.8, 0.9]) {
      const r0 = at("random", s, 0), r5 = at("random", s, 0.5);
      assert.equal(r0.ppl, null);
      assert.equal(r0.hidden, 20);
      assert.equal(r0.big, s === 0 ? "dense" : "sparse");
      assert.ok(r5.achieved_ratio > 0.3);
    }
    assert.ok(at("random", 0.9, 0).bytes_per_step < at("random", 0.8, 0).bytes_per_step);
  }
  // Without --model: the random widths only.
  const randomJson = join(tmp, "random.json");
  await main(["--out", join(tmp, "random"), "--json", randomJson, "--ratios", "0.5", "--threads", "1", "--steps", "5", "--repeats", "1",
    "--random-hidden", "12", "--random-sparsity", "0.8", "--k", "4"]);
  const randomOnly = JSON.parse(await readFile(randomJson, "utf8")) as PruneRow[];
  assert.equal(randomOnly.filter((r) => r.big !== "ort").length, 2 * 2);
  assert.ok(randomOnly.every((r) => r.weights === "random" && r.hidden === 12 && r.ppl === null));
  // Bad options, named before any work.
  await assert.rejects(main(["--out", out, "--pruned", `0.8=${pruned}`]), /--pruned needs --model FILE/);
  await assert.rejects(main(["--model", dense, "--out", out, "--pruned", "0.8"]), /--pruned: "0.8" is not S=FILE/);
  await assert.rejects(main(["--model", dense, "--out", out, "--ratios", "1"]), /ratio 1 is outside \[0, 1\)/);
  await assert.rejects(main(["--model", dense, "--out", out, "--pruned", `0.5=${pruned}`, "--data", data, "--ratios", "0.5",
    "--test-tokens", "50", "--train-tokens", "200", "--valid-tokens", "200", "--steps", "5", "--repeats", "1", "--threads", "1",
    "--random-hidden", "none", "--k", "4"]), /--pruned 0.5=.*p80.safetensors: the file's recurrent weights are 80.0 % zeros/);
});
