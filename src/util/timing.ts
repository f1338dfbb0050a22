// Timing shared by the benchmarks and evaluations: medians of warmed-up runs, each optionally
// preceded (untimed) by a cache flush, and variants timed in interleaved rounds. Not here: what
// is timed (src/bench/, the families' evaluations) or how it is printed (table.ts).
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Bytes a cache flush reads. The L3 is 32 MiB here, but a 64 MiB flush measurably left part of a
 * 72 MB matrix cached (a matvec appeared to read 60 GB/s); 256 MiB does not.
 */
export const FLUSH_BYTES = 256 * 2 ** 20;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b), h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

export interface TimeOptions {
  warmup: number;
  reps: number;
  /** Untimed, before each run: evicts the weights from the caches. A 1 ms pause follows, so that
   *  spinning pool threads (ours or onnxruntime's) are asleep and neither side holds a core. */
  flush?: (() => void) | null;
  /** Untimed, before each run (and before the flush): e.g. pick the next input. */
  prepare?: () => void;
}

/** Median milliseconds of `reps` runs after `warmup` runs; an asynchronous run is awaited inside the timing. */
export async function timeMedian(run: () => unknown, o: TimeOptions): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < o.warmup + o.reps; i++) {
    o.prepare?.();
    if (o.flush) { o.flush(); await sleep(1); }
    const t0 = performance.now();
    const r = run();
    if (r instanceof Promise) await r;
    const t = performance.now() - t0;
    if (i >= o.warmup) ms.push(t);
  }
  return median(ms);
}

export interface Variant {
  /** Untimed, before each run: e.g. set this variant's thresholds. */
  prepare?: () => void;
  run: (round: number) => unknown;
  /** Untimed, after each timed run: e.g. read its accounting. */
  after?: () => void;
}

/**
 * Median milliseconds of each variant, timed in interleaved rounds (every round runs every variant
 * once), so that a slow spell of a shared machine falls on all of them alike and their ratios stay
 * fair. `flush` is as in timeMedian. With `blocks`, each variant's runs go back to back instead:
 * what a warm cache measures, since between two interleaved runs the other variants evict it.
 */
export async function timeInterleaved(variants: Variant[],
    o: { warmup: number; rounds: number; flush?: (() => void) | null; blocks?: boolean }): Promise<number[]> {
  const ms = variants.map((): number[] => []);
  const runs = o.blocks
    ? variants.flatMap((_, i) => Array.from({ length: o.warmup + o.rounds }, (_, round) => [round, i]))
    : Array.from({ length: o.warmup + o.rounds }, (_, round) => variants.map((_, i) => [round, i])).flat();
  for (const [round, i] of runs) {
    const v = variants[i];
    v.prepare?.();
    if (o.flush) { o.flush(); await sleep(1); }
    const t0 = performance.now();
    const r = v.run(round);
    if (r instanceof Promise) await r;
    const t = performance.now() - t0;
    v.after?.();
    if (round >= o.warmup) ms[i].push(t);
  }
  return ms.map(median);
}
