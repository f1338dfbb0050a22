// Loading a model needs about 2x its file (issue 21): an F16 checkpoint is widened straight into
// the float32 parameters (twice the file), with no copy of the whole file, of each tensor or of the
// widened tensors beside them (the old loader peaked at 6x the file). Each load runs in a fresh
// child process, whose peak resident memory (getrusage's maxRSS) is compared before and after.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { paramCount, saveLm, type LmConfig } from "../src/recurrent/lm.js";
import { saveResNet } from "../src/conv/checkpoint.js";
import { randomResNetWeights, resnet18Small } from "../src/conv/resnet.js";

const DIST = resolve(import.meta.dirname, "..");

/**
 * The growth of peak RSS (bytes) while `load` runs in a fresh process, after its imports and a GC.
 * Linux's peak (VmHWM) is reset to the current RSS first (clear_refs 5), so what the imports and the
 * start-up touched does not hide the load's peak.
 */
function loadPeak(module: string, load: string, path: string): number {
  const script = `
    import { readFileSync, writeFileSync } from "node:fs";
    const peak = () => Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))[1]) * 1024;
    const lib = await import(${JSON.stringify(join(DIST, module))});
    const path = ${JSON.stringify(path)};
    const bytes = ${load.includes("bytes") ? "readFileSync(path)" : "null"};
    globalThis.gc();
    writeFileSync("/proc/self/clear_refs", "5");
    const before = peak();
    const loaded = await ${load};
    if (!loaded) throw new Error("nothing loaded");
    console.log(peak() - before);`;
  return Number(execFileSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], { encoding: "utf8" }));
}

const LINUX_ONLY = process.platform !== "linux" && "reads and resets the peak RSS through Linux's /proc/self";

test("loading an F16 checkpoint needs about 2x the file, not the 6x of a copy per stage", { skip: LINUX_ONLY }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "dmi-load-memory-"));
  try {
    // A 31 MB file: the model is 62 MB of float32, so a loader that also holds the file or a copy of
    // the tensors (31 or 62 MB more) goes past the bound, while a few MB of slack do not.
    const config: LmConfig = { cell: "lstm", vocab: 30_000, emb: 256, hidden: 256, layers: 1, tied: false };
    const params = new Float32Array(paramCount(config)).map((_, i) => Math.sin(i) * 0.1);
    const lm = join(dir, "lm.safetensors");
    const training = { corpus: "test", seed: 1, epoch: 1, lr: 20, bestValidLoss: 5, dropout: 0, clip: 0.25, bptt: 35, batch: 20 };
    await saveLm(lm, { config, params, training }, "F16");
    const size = statSync(lm).size;
    assert.ok(size > 30e6, `file of ${size} bytes`);
    const bound = 2.5 * size;
    for (const [module, load] of [
      ["src/recurrent/lm.js", "lib.loadLm(path)"],
      ["src/recurrent/lm.js", "lib.loadLm(bytes)"], // the caller holds the bytes: the load adds the parameters only
      ["src/recurrent/import.js", "lib.loadLanguageModel(path)"],
    ]) {
      const peak = loadPeak(module, load, lm);
      t.diagnostic(`${load}: peak RSS +${(peak / size).toFixed(2)}x the ${(size / 2 ** 20).toFixed(1)} MiB file`);
      assert.ok(peak < bound, `${load}: peak RSS grew by ${(peak / size).toFixed(2)}x the file, more than 2.5x`);
      assert.ok(peak > 1.5 * size, `${load}: peak RSS grew by ${(peak / size).toFixed(2)}x the file: the measurement missed the parameters`);
    }

    // A ResNet-18 of width 64 stored as F16 (22 MB): the same bound.
    const resnet = resnet18Small(64);
    const cnn = join(dir, "resnet.safetensors");
    await saveResNet(cnn, resnet, randomResNetWeights(resnet, 1), { dtype: "F16" });
    const cnnSize = statSync(cnn).size;
    const peak = loadPeak("src/conv/checkpoint.js", "lib.loadResNet(path)", cnn);
    t.diagnostic(`loadResNet(path): peak RSS +${(peak / cnnSize).toFixed(2)}x the ${(cnnSize / 2 ** 20).toFixed(1)} MiB file`);
    assert.ok(peak < 2.5 * cnnSize, `loadResNet: peak RSS grew by ${(peak / cnnSize).toFixed(2)}x the file, more than 2.5x`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
