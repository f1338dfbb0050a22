// `dmi bench train` end to end on a tiny width (a few seconds): its table and --json rows, PyTorch's
// side skipped with a note when the interpreter has no torch, and its option errors. PyTorch itself
// is never needed here: the peer's run is exercised only where /usr/bin/python3 has torch.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pytorchMissing, type TrainBenchRow } from "../src/bench/train.js";

const dmi = fileURLToPath(new URL("../src/cli/dmi.js", import.meta.url));
const tmp = await mkdtemp(join(tmpdir(), "dualmodule-bench-train-"));
after(() => rm(tmp, { recursive: true, force: true }));

const TINY = ["bench", "train", "--hidden", "8", "--windows", "1", "--rounds", "3", "--warmup", "1"];

test("bench train prints ours and writes {cell, hidden, threads, tokens_per_s, runtime} rows; no torch: a one-line note", async () => {
  const json = join(tmp, "rows.json");
  const out = execFileSync(process.execPath, [dmi, ...TINY, "--threads", "1,2", "--python", "/nonexistent/python3", "--json", json],
    { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  assert.match(out, /^PyTorch: skipped \(\/nonexistent\/python3 does not run/m);
  assert.match(out, /^Machine: .*logical cores, Node v/m);
  const rows = JSON.parse(await readFile(json, "utf8")) as TrainBenchRow[];
  assert.deepEqual(rows.map((r) => [r.cell, r.hidden, r.threads, r.runtime]), [["lstm", 8, 1, "dualmodule"], ["lstm", 8, 2, "dualmodule"]]);
  for (const r of rows) assert.ok(r.tokens_per_s > 0 && r.min <= r.tokens_per_s && r.tokens_per_s <= r.max, JSON.stringify(r));
});

test("bench train beside PyTorch when /usr/bin/python3 has torch: a pytorch row per thread count and the ratio", { skip: pytorchMissing("/usr/bin/python3") ?? false }, async () => {
  const json = join(tmp, "peer.json");
  const out = execFileSync(process.execPath, [dmi, ...TINY, "--cell", "gru", "--threads", "1", "--json", json],
    { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  assert.match(out, /^8 +1 +\d+ \[\d+–\d+\] +\d+ \[\d+–\d+\] +\d+\.\d\dx$/m);
  const rows = JSON.parse(await readFile(json, "utf8")) as TrainBenchRow[];
  assert.deepEqual(rows.map((r) => [r.cell, r.threads, r.runtime]), [["gru", 1, "dualmodule"], ["gru", 1, "pytorch"]]);
});

test("bench train refuses bad options with a one-line error", () => {
  for (const [args, message] of [
    [["--cell", "rnn"], /--cell must be lstm or gru, got "rnn"/],
    [["--rounds", "2"], /--rounds must be an integer ≥ 3/],
    [["--threads", "0"], /--threads must be positive integers/],
  ] as [string[], RegExp][]) {
    const r = spawnSync(process.execPath, [dmi, "bench", "train", ...args], { encoding: "utf8" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, message);
  }
});
