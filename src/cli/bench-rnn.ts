// `dmi bench rnn`: per-step time at batch 1 of dense and dual-module recurrent cells at the paper's
// shapes against every dense baseline (ours and onnxruntime-node's, fp32 and INT8) on the same
// weights. The method is in src/bench/rnn.ts.
import { parseArgs } from "node:util";
import { Runtime } from "../runtime/runtime.js";
import type { BigBits } from "../recurrent/lstm.js";
import { writeFileAtomic } from "../io/files.js";
import { FLUSH_BYTES, lastLevelCacheBytes } from "../util/timing.js";
import { type Cache, type RnnBenchTable, benchTables, formatRnnTables } from "../bench/rnn.js";
import { selectShapes } from "../bench/models.js";
import { list, numbers } from "./args.js";

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      cell: { type: "string" }, hidden: { type: "string" }, input: { type: "string" },
      ratios: { type: "string", default: "0,0.1,0.3,0.5,0.7,0.9" }, threads: { type: "string", default: "1,2" },
      cache: { type: "string", default: "cold,warm" }, steps: { type: "string", default: "100" },
      "big-bits": { type: "string", default: "32,8" }, repeats: { type: "string", default: "3" },
      json: { type: "string" }, help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(`dmi bench rnn [--cell lstm,gru,gnmt-layer,gnmt-stack] [--hidden N,..] [--input N,..]
  [--ratios 0,0.1,0.3,0.5,0.7,0.9] [--threads 1,2] [--cache cold,warm] [--steps 100] [--big-bits 32,8] [--repeats 3] [--json FILE]
--big-bits: precision of the big weights; 8 (INT8, LSTM cells only) adds tables labelled int8. Every
  table lists the dense baselines of both precisions (ours and onnxruntime's) whatever --big-bits says.
--repeats: independent rounds of --steps steps (at least 3); times are their median and min–max.
Ratio 0 (the dense computation through the dual step) is always timed: the control.`);
    return;
  }
  const shapes = selectShapes(list(values.cell), numbers(values.hidden, "hidden"), numbers(values.input, "input"));
  const ratios = numbers(values.ratios, "ratios")!;
  for (const r of ratios) if (!(r >= 0 && r < 1)) throw new Error(`--ratios: ${r} is outside [0, 1)`);
  const threads = numbers(values.threads, "threads")!;
  const caches = list(values.cache)! as Cache[];
  for (const c of caches) if (c !== "cold" && c !== "warm") throw new Error(`--cache: ${c} is not cold or warm`);
  const bigBits = numbers(values["big-bits"], "big-bits")!;
  for (const b of bigBits) if (b !== 32 && b !== 8) throw new Error(`--big-bits: ${b} is not 32 or 8`);
  const steps = Number(values.steps);
  if (!Number.isInteger(steps) || steps < 5) throw new Error("--steps must be an integer ≥ 5");
  const repeats = Number(values.repeats);
  if (!Number.isInteger(repeats) || repeats < 3) throw new Error("--repeats must be an integer ≥ 3 (the spread needs independent rounds)");

  const rt = await Runtime.create({ threads: Math.max(...threads) });
  const llc = lastLevelCacheBytes();
  console.error(`dmi bench rnn: ${rt.variant} build, up to ${rt.threads} threads; random weights; ${repeats} rounds of ${steps} steps per time; ` +
    `last-level cache ${llc === null ? "unknown" : `${(llc / 2 ** 20).toFixed(0)} MiB`}`);
  const tables: RnnBenchTable[] = [];
  try {
    const flush = rt.heap.f32(FLUSH_BYTES / 4);
    for (const shape of shapes) tables.push(...(await benchTables(rt, shape, ratios, threads, caches, steps, bigBits as BigBits[], repeats, flush, llc)));
  } finally {
    await rt.close();
  }
  console.log(formatRnnTables(tables));
  if (values.json) await writeFileAtomic(values.json, new TextEncoder().encode(JSON.stringify(tables, null, 1) + "\n"));
}
