#!/usr/bin/env node
// npm run fuzz -- --runs N [--json FILE] [--parser NAME[,NAME…]] [--seed S] [--time-bound MS]
// Runs the fuzzing harness (test/fuzz.ts, compiled: run `npm run build:ts` first) over every file
// parser and prints one row per parser: inputs tried, crashes (an error other than a one-line Error
// naming the file), hangs (an input over the time bound) and time. --json writes the rows
// {parser, runs, crashes, hangs, ms, examples}. Exits 1 when any parser had a crash or a hang.
import { writeFileSync } from "node:fs";
import { enableRelaxedSimd } from "../dist/src/runtime/wasm.js";
import { fuzzTarget, makeTargets } from "../dist/test/fuzz.js";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  if (i + 1 >= args.length) throw new Error(`${name} needs a value`);
  return args[i + 1];
};
const runs = Number(option("--runs", "1000"));
if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${option("--runs")}`);
const json = option("--json", undefined), seed = Number(option("--seed", "1")), timeBoundMs = Number(option("--time-bound", "2000"));
const only = option("--parser", undefined)?.split(",");

enableRelaxedSimd();
const { targets, close } = await makeTargets();
for (const name of only ?? []) if (!targets.some((t) => t.parser === name)) throw new Error(`--parser: no parser ${name} (${targets.map((t) => t.parser).join(", ")})`);
const rows = [];
console.log(`${"parser".padEnd(24)} ${"runs".padStart(9)} ${"crashes".padStart(8)} ${"hangs".padStart(6)} ${"s".padStart(8)}`);
for (const t of targets.filter((t) => !only || only.includes(t.parser))) {
  const row = await fuzzTarget(t, { runs, seed, timeBoundMs });
  rows.push(row);
  console.log(`${row.parser.padEnd(24)} ${String(row.runs).padStart(9)} ${String(row.crashes).padStart(8)} ${String(row.hangs).padStart(6)} ${(row.ms / 1000).toFixed(1).padStart(8)}`);
  for (const e of row.examples) console.log(`  ${e}`);
  if (json) writeFileSync(json, JSON.stringify(rows, null, 2) + "\n");
}
await close();
process.exitCode = rows.some((r) => r.crashes + r.hangs > 0) ? 1 : 0;
