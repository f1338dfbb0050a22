// Writes under SIGKILL (issue 21): a process killed at a random moment while it writes a file through
// writeFileAtomic leaves the target either as the old or as the new complete file, never a mix or a
// truncation; and `dmi train lm` killed after its first epoch's checkpoint resumes with --resume to
// the very weights of a run that was never interrupted (training is deterministic for given threads).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadLm } from "../src/recurrent/lm.js";
import { Rng } from "../src/util/random.js";

const FILES_JS = fileURLToPath(new URL("../src/io/files.js", import.meta.url));
const DMI = fileURLToPath(new URL("../src/cli/dmi.js", import.meta.url));
const SIZE = 8 << 20;

const exited = (child: ChildProcess) => new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

test("a writer killed with SIGKILL at random moments leaves the old or the new complete file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dmi-writes-")), target = join(dir, "target.bin");
  // The child rewrites the target forever; version v is SIZE bytes of (v mod 251), then v as u32.
  const code = `import { writeFileAtomic } from ${JSON.stringify(FILES_JS)};
    for (let v = 1; ; v++) {
      const b = new Uint8Array(${SIZE} + 4).fill(v % 251);
      new DataView(b.buffer).setUint32(${SIZE}, v, true);
      await writeFileAtomic(${JSON.stringify(target)}, b);
      process.stdout.write("w");
    }`;
  const rng = new Rng(21);
  try {
    for (let round = 0; round < 8; round++) {
      const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
      const done = exited(child);
      await new Promise<void>((resolve) => child.stdout!.once("data", () => resolve())); // one complete write at least
      await new Promise((resolve) => setTimeout(resolve, rng.uniform() * 300));
      child.kill("SIGKILL");
      await done;
      const bytes = readFileSync(target);
      assert.equal(bytes.length, SIZE + 4, `round ${round}: the target has ${bytes.length} bytes`);
      const v = new DataView(bytes.buffer, bytes.byteOffset).getUint32(SIZE, true);
      const fill = v % 251;
      for (let i = 0; i < SIZE; i += 4093) assert.equal(bytes[i], fill, `round ${round}: byte ${i} of version ${v}`);
      assert.equal(bytes[SIZE - 1], fill);
    }
    // What a kill can leave: temporary files beside the target (named .target.bin.PID.….tmp), never a broken target.
    assert.ok(readdirSync(dir).every((n) => n === "target.bin" || /^\.target\.bin\.\d+\.[0-9a-f]+\.tmp$/.test(n)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("dmi train lm killed after its first epoch resumes with --resume to the weights of an uninterrupted run", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dmi-resume-"));
  const args = (out: string) => ["train", "lm", "--corpus", "sotu", "--cell", "lstm", "--hidden", "16", "--epochs", "3", "--max-batches", "4",
    "--threads", "1", "--out", out];
  const run = async (argv: string[]) => {
    const child = spawn(process.execPath, [DMI, ...argv], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr!.on("data", (d) => { err += d; });
    const code = await exited(child);
    assert.equal(code, 0, err.slice(-2000));
  };
  try {
    const whole = join(dir, "whole.safetensors"), killed = join(dir, "killed.safetensors"), resume = join(dir, "killed.resume.safetensors");
    await run(args(whole));
    // Killed as soon as the first epoch's resumable checkpoint exists (mid epoch 2, or while it writes).
    const child = spawn(process.execPath, [DMI, ...args(killed)], { stdio: "ignore" });
    const done = exited(child);
    while (!existsSync(resume)) await new Promise((resolve) => setTimeout(resolve, 10));
    child.kill("SIGKILL");
    assert.equal(await done, null);
    const saved = await loadLm(resume);
    assert.ok(saved.training.epoch >= 1 && saved.resume !== undefined, `the resumable checkpoint holds epoch ${saved.training.epoch}`);
    await run([...args(killed), "--resume"]);
    const [a, b] = [await loadLm(whole), await loadLm(killed)];
    assert.equal(b.training.epoch, a.training.epoch);
    assert.deepEqual(b.params, a.params, "the resumed run's best weights are the uninterrupted run's");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
