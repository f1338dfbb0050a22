// The training benchmark behind `dmi bench train`: tokens per second of our trainer
// (src/recurrent/train.ts, one trainStep per window) and of PyTorch's word_language_model example on
// the same recipe, the same shapes and the very same windows of real SOTU text, in one run.
//
// Method: per thread count, WARM-UP windows on each side, then rounds of `windows` windows each,
// ours and PyTorch's interleaved round by round (so that a disturbance of the machine hits both);
// tokens/s per round, medians with min–max. PyTorch runs in a child process
// (scripts/bench_train_torch.py under /usr/bin/python3) that waits on its stdin between rounds;
// when that Python has no torch the peer is skipped with a note. Weights start from the recipe's
// initialisation (random), which does not change the work of a step.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createInterface, type Interface } from "node:readline";
import { cpus, tmpdir } from "node:os";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import type { Runtime } from "../runtime/runtime.js";
import { batchify, bpttWindows, type BpttWindow } from "../data/batch.js";
import { batchRng } from "../util/random.js";
import { spread, type Spread } from "../util/timing.js";
import { type LmConfig, initParams, paramCount } from "../recurrent/lm.js";
import { LmGraph, TRAIN_DEFAULTS, trainStep } from "../recurrent/train.js";
import type { CellKind } from "../recurrent/stack.js";

export const PYTORCH_SCRIPT = fileURLToPath(new URL("../../../scripts/bench_train_torch.py", import.meta.url));

export interface TrainBenchOptions {
  cell: CellKind;
  hidden: number;
  threads: number[];
  warmup: number;   // windows before timing, per thread count and side
  windows: number;  // per round
  rounds: number;   // ≥ 3: medians
  dropout: number;  // the recipe's p (0.5: the example's medium configuration, as the LSTM-750 run)
  python: string | null; // the interpreter for PyTorch's side; null: ours only
}

/** A --json row. tokens_per_s is the median; min, max over the rounds. */
export interface TrainBenchRow {
  cell: CellKind; hidden: number; threads: number; runtime: "dualmodule" | "pytorch";
  tokens_per_s: number; min: number; max: number; rounds: number; tokens_per_round: number;
}

/** The machine the numbers belong to, in one line. */
export function machine(): string {
  const c = cpus();
  return `${c[0]?.model.trim() ?? "unknown CPU"}, ${c.length} logical cores, Node ${process.version}`;
}

/** Whether `python` can import torch: the reason it cannot, or null. */
export function pytorchMissing(python: string): string | null {
  if (!existsSync(PYTORCH_SCRIPT)) return `${PYTORCH_SCRIPT} is not in this install (it comes with the source tree)`;
  const r = spawnSync(python, ["-c", "import torch"], { encoding: "utf8" });
  if (r.error) return `${python} does not run (${r.error.message})`;
  if (r.status !== 0) return `${python} has no torch (Debian: apt-get install python3-torch)`;
  return null;
}

/** PyTorch's side: the script waiting for rounds on its stdin. */
class TorchPeer {
  private constructor(private readonly child: ChildProcessWithoutNullStreams, private readonly lines: AsyncIterator<string>,
                      private readonly rl: Interface, private readonly dir: string, readonly version: string) {}

  static async start(python: string, config: LmConfig, windows: BpttWindow[], o: TrainBenchOptions, B: number): Promise<TorchPeer> {
    // The windows as int32: count, bptt, batch, then each window's input and target.
    const T = windows[0].length, data = new Int32Array(3 + windows.length * 2 * T * B);
    data.set([windows.length, T, B]);
    windows.forEach((w, i) => { data.set(w.input, 3 + i * 2 * T * B); data.set(w.target, 3 + (i * 2 + 1) * T * B); });
    const dir = mkdtempSync(join(tmpdir(), "dmi-bench-train-")), file = join(dir, "windows.i32");
    writeFileSync(file, data);
    const child = spawn(python, [PYTORCH_SCRIPT, "--windows", file, "--cell", config.cell, "--vocab", String(config.vocab),
      "--hidden", String(config.hidden), "--dropout", String(o.dropout), "--lr", String(TRAIN_DEFAULTS.lr),
      "--clip", String(TRAIN_DEFAULTS.clip), "--seed", String(TRAIN_DEFAULTS.seed)], { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => { stderr += d; });
    const rl = createInterface({ input: child.stdout }), lines = rl[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done) {
      await new Promise((r) => child.once("close", r));
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`bench train: ${PYTORCH_SCRIPT} exited before it was ready: ${stderr.trim().split("\n").pop()}`);
    }
    return new TorchPeer(child, lines, rl, dir, JSON.parse(first.value).torch);
  }

  /** Trains windows [first, first + count) on `threads` threads; returns the seconds it took. */
  async round(threads: number, first: number, count: number): Promise<number> {
    this.child.stdin.write(`threads ${threads} ${first} ${count}\n`);
    const line = await this.lines.next();
    if (line.done) throw new Error(`bench train: ${PYTORCH_SCRIPT} exited mid-benchmark`);
    return JSON.parse(line.value).seconds;
  }

  async close(): Promise<void> {
    this.child.stdin.end();
    this.rl.close();
    if (this.child.exitCode === null) await new Promise((r) => this.child.once("close", r));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface TrainBenchResult { rows: TrainBenchRow[]; torchVersion: string | null }

/**
 * Times `o.rounds` rounds of `o.windows` training windows of SOTU (`train`: its training token ids,
 * vocabulary `vocab`) at each thread count, ours and PyTorch's interleaved. `onRound` after each round.
 */
export async function benchTrain(rt: Runtime, train: Int32Array, vocab: number, o: TrainBenchOptions,
                                  onRound?: (done: number, total: number) => void): Promise<TrainBenchResult> {
  const { batch: B, bptt: T, lr, clip, seed } = TRAIN_DEFAULTS;
  const config: LmConfig = { cell: o.cell, vocab, hidden: o.hidden, emb: o.hidden, layers: 1, tied: true };
  const needed = o.warmup + o.windows * o.rounds;
  const windows = [...bpttWindows(batchify(train, B), T)].filter((w) => w.length === T).slice(0, needed);
  if (windows.length < needed) throw new Error(`bench train: the corpus has ${windows.length} full windows, ${needed} needed; lower --windows or --rounds`);
  for (const n of o.threads) {
    if (n > rt.threads) throw new Error(`bench train: --threads ${n} exceeds the runtime's ${rt.threads} threads`);
  }

  const params = rt.heap.f32(paramCount(config)), grads = rt.heap.f32(params.length);
  initParams(config, params, seed);
  const graph = new LmGraph(rt, config, T, B, params, grads, o.dropout);
  const ours = (first: number, count: number): number => {
    const start = performance.now();
    for (let i = first; i < first + count; i++) trainStep(graph, params, grads, windows[i], batchRng(seed, 0, i), lr, clip);
    return (performance.now() - start) / 1000;
  };
  const peer = o.python ? await TorchPeer.start(o.python, config, windows, o, B) : null;
  const rows: TrainBenchRow[] = [], total = o.threads.length * o.rounds;
  const tokens = o.windows * T * B;
  const row = (threads: number, runtime: TrainBenchRow["runtime"], s: Spread): TrainBenchRow =>
    ({ cell: o.cell, hidden: o.hidden, threads, runtime, tokens_per_s: s.median, min: s.min, max: s.max, rounds: o.rounds, tokens_per_round: tokens });
  try {
    for (const [ti, threads] of o.threads.entries()) {
      rt.pool.active = threads;
      graph.resetState();
      ours(0, o.warmup);
      await peer?.round(threads, 0, o.warmup);
      const mine: number[] = [], theirs: number[] = [];
      for (let r = 0; r < o.rounds; r++) {
        const first = o.warmup + r * o.windows;
        await sleep(20); // the other side's spinning threads go to sleep before a round starts
        mine.push(tokens / ours(first, o.windows));
        if (peer) {
          await sleep(20);
          theirs.push(tokens / await peer.round(threads, first, o.windows));
        }
        onRound?.(ti * o.rounds + r + 1, total);
      }
      rows.push(row(threads, "dualmodule", spread(mine)));
      if (peer) rows.push(row(threads, "pytorch", spread(theirs)));
    }
  } finally {
    rt.pool.active = rt.threads;
    await peer?.close();
  }
  return { rows, torchVersion: peer?.version ?? null };
}
