// `dmi bench train`: tokens/s of our language-model trainer against PyTorch's word_language_model
// example on the same recipe, shapes and SOTU windows, in one run (src/bench/train.ts).
import { parseArgs } from "node:util";
import { Runtime } from "../runtime/runtime.js";
import { loadCorpus } from "../data/corpus.js";
import { writeFileAtomic } from "../io/files.js";
import { Progress } from "../util/progress.js";
import { formatTable } from "../util/table.js";
import { benchTrain, machine, pytorchMissing, type TrainBenchRow } from "../bench/train.js";
import { integer, nonNegative, numbers } from "./args.js";

const USAGE = `dmi bench train [--cell lstm|gru] [--hidden 750[,1500...]] [--threads 1,2] [--json FILE]
  --windows N    training windows (35 steps × 20 streams) per timed round (5)
  --rounds N     timed rounds, ≥ 3; medians with min–max (3)
  --warmup N     untimed windows first, per thread count (2)
  --dropout P    the recipe's dropout (0.5, the example's medium configuration)
  --python PATH  the interpreter for PyTorch's side (/usr/bin/python3); --no-pytorch: ours only
Times training steps of PyTorch's word_language_model recipe (batch 20, bptt 35, SGD lr 20, clip 0.25,
tied, one layer, vocabulary 10 000) on SOTU, ours and PyTorch's rounds interleaved. Run it on a quiet machine.`;

export async function main(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      cell: { type: "string", default: "lstm" }, hidden: { type: "string", default: "750" }, threads: { type: "string", default: "1,2" },
      windows: { type: "string" }, rounds: { type: "string" }, warmup: { type: "string" }, dropout: { type: "string" },
      python: { type: "string", default: "/usr/bin/python3" }, "no-pytorch": { type: "boolean" },
      json: { type: "string" }, help: { type: "boolean" },
    },
  });
  if (v.help) { console.log(USAGE); return; }
  const cell = v.cell;
  if (cell !== "lstm" && cell !== "gru") throw new Error(`--cell must be lstm or gru, got ${JSON.stringify(cell)}`);
  const hiddens = numbers(v.hidden, "hidden")!, threads = numbers(v.threads, "threads")!;
  for (const h of hiddens) if (!Number.isInteger(h) || h < 1) throw new Error(`--hidden must be positive integers, got ${v.hidden}`);
  for (const t of threads) if (!Number.isInteger(t) || t < 1) throw new Error(`--threads must be positive integers, got ${v.threads}`);
  const windows = integer("windows", v.windows, 1, 5), rounds = integer("rounds", v.rounds, 3, 3);
  const warmup = integer("warmup", v.warmup, 1, 2), dropout = nonNegative("dropout", v.dropout, 0.5);
  if (dropout >= 1) throw new Error(`--dropout must be below 1, got ${dropout}`);
  let python: string | null = v["no-pytorch"] ? null : v.python!;
  const missing = python && pytorchMissing(python);
  if (missing) {
    console.log(`PyTorch: skipped (${missing})`);
    python = null;
  }

  const corpus = await loadCorpus("sotu", { onProgress: (m) => console.error(m) });
  console.log(`Machine: ${machine()}`);
  const rows: TrainBenchRow[] = [];
  for (const hidden of hiddens) {
    // A runtime per width: its heap holds one model's weights, gradients and activations.
    const rt = await Runtime.create({ threads: Math.max(...threads) });
    try {
      const progress = new Progress(`${cell} H=${hidden}`, threads.length * rounds, "rounds");
      const r = await benchTrain(rt, corpus.train, corpus.vocab.size, { cell, hidden, threads, warmup, windows, rounds, dropout, python },
        (d) => progress.update(d));
      if (hidden === hiddens[0] && r.torchVersion) console.log(`PyTorch ${r.torchVersion} (${python}) trains beside us in a child process`);
      rows.push(...r.rows);
    } finally {
      await rt.close();
    }
  }
  const fmt = (x: number) => x.toFixed(0);
  const peerOf = (r: TrainBenchRow) => rows.find((p) => p.runtime === "pytorch" && p.hidden === r.hidden && p.threads === r.threads);
  console.log(`Training tokens/s, ${cell}, tied, SOTU (vocabulary ${corpus.vocab.size}), batch 20 × bptt 35, dropout ${dropout}; ` +
    `median [min–max] of ${rounds} rounds of ${windows} windows:`);
  console.log(formatTable(["H", "threads", "ours tokens/s", "PyTorch tokens/s", "ours / PyTorch"],
    rows.filter((r) => r.runtime === "dualmodule").map((r) => {
      const p = peerOf(r);
      return [r.hidden, r.threads, `${fmt(r.tokens_per_s)} [${fmt(r.min)}–${fmt(r.max)}]`,
        p ? `${fmt(p.tokens_per_s)} [${fmt(p.min)}–${fmt(p.max)}]` : "-", p ? `${(r.tokens_per_s / p.tokens_per_s).toFixed(2)}x` : "-"];
    }), 2));
  if (v.json) await writeFileAtomic(v.json, new TextEncoder().encode(JSON.stringify(rows, null, 1) + "\n"));
}
