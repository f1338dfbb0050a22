// `dmi tables lm`: the paper's language-model tables and Figures 1–2 for one checkpoint, written as
// Markdown, JSON and PNG. What each table measures, and how, is in src/bench/tables-lm.ts.
import { parseArgs } from "node:util";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Runtime } from "../runtime/runtime.js";
import { writeFileAtomic } from "../io/files.js";
import { DEFAULT_MAX_TOKENS, K_GRID } from "../recurrent/eval.js";
import { openLm } from "../recurrent/open.js";
import { formatTables, runTables } from "../bench/tables-lm.js";
import { integer, numbers, optionalProjection } from "./args.js";
import { dataOptions, progressBars } from "./eval-lm.js";

const USAGE = `dmi tables lm --model FILE --out DIR [options]
  --data DIR         a corpus of your own (train.txt, valid.txt, test.txt), needed by a PyTorch state_dict or
                     ONNX model; --split P,P,P and --cell as in dmi eval lm
  --compare FILE     a dense model of about half the hidden size, for the similar-traffic comparison
  --test-tokens N    test tokens each perplexity is measured on (20000; the first ones of the split)
  --train-tokens N   training tokens the little modules are fitted on (${DEFAULT_MAX_TOKENS.train})
  --valid-tokens N   validation tokens the thresholds are calibrated on (${DEFAULT_MAX_TOKENS.valid})
  --projection P     the ratio sweep's little modules: random (the paper's sparse projection) or rrr (the
                     reduced-rank basis of the pre-activations) (random)
  --k K | auto       their projected size per layer; auto: dmi eval lm's search, the smallest k of ${K_GRID.join(", ")}
                     whose validation perplexity at 50 % stays within 1 % of dense (the JL k of ε 0.5, at most the width)
  --steps N          cell steps per timing repetition (100)
  --repeats N        independent repetitions of every cell-step timing, each from a fresh flush; ≥ 3 (3)
  --threads L        thread counts to time the cell step at, e.g. 1,2 (the runtime's default, one per core)
  --paper-widths L   hidden sizes of the paper's table to time the same cell at, random weights (750,1500; none)
Writes DIR/tables.md, DIR/tables.json, DIR/figure1.png (insensitive regions) and DIR/figure2.png
(sensitivity map over 35 steps for two inputs).`;

export async function main(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" }, out: { type: "string" }, data: { type: "string" }, split: { type: "string" }, cell: { type: "string" }, compare: { type: "string" }, "test-tokens": { type: "string" },
      "train-tokens": { type: "string" }, "valid-tokens": { type: "string" }, steps: { type: "string" },
      threads: { type: "string" }, "paper-widths": { type: "string" }, projection: { type: "string" }, k: { type: "string" },
      repeats: { type: "string" }, help: { type: "boolean" },
    },
  });
  if (v.help) { console.log(USAGE); return; }
  if (!v.model || !v.out) throw new Error(`--model FILE and --out DIR are required\n${USAGE}`);
  const testTokens = integer("test-tokens", v["test-tokens"], 2, 20_000), steps = integer("steps", v.steps, 5, 100);
  const trainTokens = integer("train-tokens", v["train-tokens"], 2, DEFAULT_MAX_TOKENS.train);
  const validTokens = integer("valid-tokens", v["valid-tokens"], 2, DEFAULT_MAX_TOKENS.valid);
  if (v.compare && !existsSync(v.compare)) throw new Error(`--compare ${v.compare}: no such file`);
  const paperWidths = paperWidthList(v["paper-widths"]);
  const projection = optionalProjection(v.projection) ?? "random";
  const k = v.k === "auto" ? "auto" : v.k === undefined ? undefined : kValue(v.k);
  const repeats = integer("repeats", v.repeats, 3, 3), threadList = threadCounts(v.threads);
  mkdirSync(v.out, { recursive: true });

  const rt = await Runtime.create(threadList === undefined ? {} : { threads: Math.max(...threadList) });
  try {
    const say = (m: string) => console.error(m);
    const data = dataOptions(v);
    const opened = await openLm(rt, v.model, { ...data, onProgress: say });
    // The smaller model is read on the same corpus; --cell applies to the main model only.
    const same = data.data !== undefined ? { data: data.data, split: data.split } : { corpus: opened.corpus.name };
    const smaller = v.compare ? await openLm(rt, v.compare, { ...same, onProgress: say }) : null;
    const tables = await runTables(rt, opened, smaller, {
      testTokens, trainTokens, validTokens, steps, repeats, threads: threadList ?? [rt.threads], paperWidths, projection, k, onProgress: progressBars(),
    }, v.out);
    const md = formatTables(tables);
    await writeFileAtomic(join(v.out, "tables.md"), new TextEncoder().encode(md));
    await writeFileAtomic(join(v.out, "tables.json"), new TextEncoder().encode(JSON.stringify(tables, null, 1) + "\n"));
    console.log(md);
    console.error(`wrote ${join(v.out, "tables.md")}, tables.json, figure1.png, figure2.png`);
  } finally {
    await rt.close();
  }
}

function kValue(value: string): number {
  if (!/^[1-9]\d*$/.test(value.trim())) throw new Error(`--k must be an integer ≥ 1 or auto, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** --threads 1,2: distinct whole numbers ≥ 1, in the order given; undefined when not given. */
function threadCounts(value: string | undefined): number[] | undefined {
  const list = numbers(value, "threads");
  if (list === undefined) return undefined;
  if (list.length === 0) throw new Error("--threads: no thread count given (e.g. --threads 1,2)");
  for (const t of list) if (!Number.isInteger(t) || t < 1) throw new Error(`--threads: ${t} is not a whole number ≥ 1 (e.g. --threads 1,2)`);
  if (new Set(list).size !== list.length) throw new Error(`--threads: ${value} names a thread count twice`);
  return list;
}

const PAPER_WIDTHS = [750, 1500];

function paperWidthList(value: string | undefined): number[] {
  if (value === "none") return [];
  const widths = numbers(value, "paper-widths") ?? PAPER_WIDTHS;
  for (const w of widths) {
    if (!PAPER_WIDTHS.includes(w)) throw new Error(`--paper-widths: ${w} is not one of the paper's widths (${PAPER_WIDTHS.join(", ")}); or pass none`);
  }
  return widths;
}

