// `dmi tables prune`: the paper's Table 4, dual-module inference against and on top of weight
// pruning, for a dense LSTM language model and its pruned checkpoints (made by `dmi train lm
// --prune`), and the same cell at the paper's width with random weights pruned by magnitude.
// What each column measures, and how, is in src/bench/tables-prune.ts.
import { parseArgs } from "node:util";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Runtime } from "../runtime/runtime.js";
import { writeFileAtomic } from "../io/files.js";
import { DEFAULT_MAX_TOKENS, checkRatios } from "../recurrent/eval.js";
import { openLm } from "../recurrent/open.js";
import { formatPruneTables, measuredSparsity, runPruneTables } from "../bench/tables-prune.js";
import { integer, numbers, optionalInteger } from "./args.js";
import { dataOptions } from "./eval-lm.js";

const USAGE = `dmi tables prune [--model FILE] --out DIR [options]
  --model FILE        the trained dense LSTM language model (without it: the random widths only)
  --pruned S=FILE,... its pruned checkpoints by sparsity, e.g. 0.8=p80.safetensors,0.9=p90.safetensors
                      (dmi train lm --prune S --prune-from FILE); the sparsity is checked against the file's zeros
  --ratios R,...      insensitive ratios of the dual-module rows (0.5,0.7); 0, the model alone, is always there
  --threads N,...     thread counts to time at (1,2)
  --test-tokens N     test tokens each perplexity is measured on (20000)
  --train-tokens N    training tokens the little modules are fitted on (${DEFAULT_MAX_TOKENS.train})
  --valid-tokens N    validation tokens the thresholds are calibrated on (${DEFAULT_MAX_TOKENS.valid})
  --steps N           cell steps per timing repetition (100); --repeats R repetitions (3)
  --random-hidden H,… widths timed with random weights pruned by magnitude (1500; none)
  --random-sparsity S,… their sparsities beside 0 (0.8,0.9)
  --k N               the little modules' projected size (from the JL ε 0.5 by default, as dmi eval lm)
  --data DIR          a corpus of your own (train.txt, valid.txt, test.txt), as in dmi eval lm
  --json FILE         also write the rows as a JSON array to FILE
Writes DIR/prune.md and DIR/prune.json.`;

export async function main(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" }, out: { type: "string" }, pruned: { type: "string" }, ratios: { type: "string" },
      threads: { type: "string" }, "test-tokens": { type: "string" }, "train-tokens": { type: "string" },
      "valid-tokens": { type: "string" }, steps: { type: "string" }, repeats: { type: "string" },
      "random-hidden": { type: "string" }, "random-sparsity": { type: "string" }, data: { type: "string" },
      json: { type: "string" }, k: { type: "string" }, help: { type: "boolean" },
    },
  });
  if (v.help) { console.log(USAGE); return; }
  if (!v.out) throw new Error(`--out DIR is required\n${USAGE}`);
  const pruned = prunedList(v.pruned);
  if (!v.model && pruned.length > 0) throw new Error("--pruned needs --model FILE, the dense model they were pruned from");
  const ratios = numbers(v.ratios, "ratios") ?? [0.5, 0.7];
  checkRatios(ratios, "--ratios");
  const threads = numbers(v.threads, "threads") ?? [1, 2];
  for (const t of threads) if (!Number.isInteger(t) || t < 1) throw new Error(`--threads: ${t} is not a positive whole number`);
  const randomHidden = v["random-hidden"] === "none" ? [] : numbers(v["random-hidden"], "random-hidden") ?? [1500];
  for (const h of randomHidden) if (!Number.isInteger(h) || h < 4) throw new Error(`--random-hidden: ${h} is not a width ≥ 4`);
  const randomSparsities = numbers(v["random-sparsity"], "random-sparsity") ?? [0.8, 0.9];
  for (const s of randomSparsities) if (!(s > 0 && s < 1)) throw new Error(`--random-sparsity: ${s} is outside (0, 1)`);
  const options = {
    ratios: ratios.filter((r) => r > 0), threads, randomHidden, randomSparsities,
    testTokens: integer("test-tokens", v["test-tokens"], 2, 20_000),
    trainTokens: integer("train-tokens", v["train-tokens"], 2, DEFAULT_MAX_TOKENS.train),
    validTokens: integer("valid-tokens", v["valid-tokens"], 2, DEFAULT_MAX_TOKENS.valid),
    steps: integer("steps", v.steps, 5, 100), repeats: integer("repeats", v.repeats, 1, 3),
    k: optionalInteger("k", v.k, 1),
  };
  mkdirSync(v.out, { recursive: true });

  const rt = await Runtime.create({ threads: Math.max(...threads) });
  try {
    const say = (m: string) => console.error(m);
    const data = dataOptions(v);
    const dense = v.model ? await openLm(rt, v.model, { ...data, onProgress: say }) : null;
    const same = data.data !== undefined ? { data: data.data } : { corpus: dense?.corpus.name };
    const models = [];
    for (const p of pruned) {
      const m = await openLm(rt, p.file, { ...same, onProgress: say });
      if (JSON.stringify(m.checkpoint.config) !== JSON.stringify(dense!.checkpoint.config)) {
        throw new Error(`--pruned ${p.file}: a ${JSON.stringify(m.checkpoint.config)} model, not the dense one's ${JSON.stringify(dense!.checkpoint.config)}`);
      }
      const got = measuredSparsity(m);
      if (Math.abs(got - p.sparsity) > 0.01) throw new Error(`--pruned ${p.sparsity}=${p.file}: the file's recurrent weights are ${(100 * got).toFixed(1)} % zeros`);
      models.push(m);
    }
    const tables = await runPruneTables(rt, dense, models, options);
    const c = dense?.checkpoint.config;
    const md = `## Dual-module inference and weight pruning: ${c ? `LSTM ${c.layers}×${c.hidden} (${dense!.corpus.name})` : "no trained model"}, ` +
      `random weights at ${randomHidden.join(", ") || "no width"}\n\n` +
      formatPruneTables(tables) + "\n";
    await writeFileAtomic(join(v.out, "prune.md"), new TextEncoder().encode(md));
    await writeFileAtomic(join(v.out, "prune.json"), new TextEncoder().encode(JSON.stringify(tables, null, 1) + "\n"));
    if (v.json) await writeFileAtomic(v.json, new TextEncoder().encode(JSON.stringify(tables.rows, null, 1) + "\n"));
    console.log(md);
    console.error(`wrote ${join(v.out, "prune.md")} and prune.json${v.json ? ` and ${v.json}` : ""}`);
  } finally {
    await rt.close();
  }
}

/** --pruned S=FILE,...: sparsity and file of each pruned checkpoint. */
function prunedList(value: string | undefined): { sparsity: number; file: string }[] {
  if (value === undefined) return [];
  return value.split(",").map((item) => {
    const m = /^([0-9.]+)=(.+)$/.exec(item.trim());
    const sparsity = m ? Number(m[1]) : NaN;
    if (!m || !(sparsity > 0 && sparsity < 1)) throw new Error(`--pruned: "${item}" is not S=FILE with S in (0, 1), e.g. 0.8=p80.safetensors`);
    return { sparsity, file: m[2] };
  });
}
