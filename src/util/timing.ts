// Timing shared by the benchmarks and evaluations: medians of warmed-up runs, each optionally
// preceded (untimed) by a cache flush, variants timed in interleaved rounds, and repeated
// independent rounds with their spread. Not here: what is timed (src/bench/, the families'
// evaluations) or how it is printed (table.ts).
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Bytes a cache flush reads. The L3 is 32 MiB here, but a 64 MiB flush measurably left part of a
 * 72 MB matrix cached (a matvec appeared to read 60 GB/s); 256 MiB does not.
 */
export const FLUSH_BYTES = 256 * 2 ** 20;

/** The last-level cache's bytes (Linux sysfs: the highest cache level of CPU 0), or null if unknown. */
export function lastLevelCacheBytes(): number | null {
  let best: { level: number; bytes: number } | null = null;
  for (let i = 0; i < 8; i++) {
    try {
      const dir = `/sys/devices/system/cpu/cpu0/cache/index${i}`;
      const level = Number(readFileSync(`${dir}/level`, "utf8"));
      const m = /^(\d+)([KMG]?)/.exec(readFileSync(`${dir}/size`, "utf8").trim());
      if (!m) continue;
      const bytes = Number(m[1]) * ({ "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 } as const)[m[2] as "" | "K" | "M" | "G"];
      if (!best || level > best.level) best = { level, bytes };
    } catch {
      break;
    }
  }
  return best?.bytes ?? null;
}

/** Where the time comes from and how a pause is made: the real clock, or a fake one in tests. */
export interface Clock {
  now(): number;
  pause(ms: number): Promise<unknown>;
}

export const SYSTEM_CLOCK: Clock = { now: () => performance.now(), pause: (ms) => sleep(ms) };

export function median(xs: number[]): number {
  if (xs.length === 0) throw new RangeError("median: no samples");
  const s = [...xs].sort((a, b) => a - b), h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** The median of repeated measurements and their range. */
export interface Spread { median: number; min: number; max: number }

export function spread(xs: number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

/** Whether two measurements differ by more than their spread: their min–max ranges do not overlap. */
export function separated(a: Spread, b: Spread): boolean { return a.max < b.min || b.max < a.min; }

export interface TimeOptions {
  warmup: number;
  reps: number;
  /** Untimed, before each run: evicts the weights from the caches. A 1 ms pause follows, so that
   *  spinning pool threads (ours or onnxruntime's) are asleep and neither side holds a core. */
  flush?: (() => void) | null;
  /** Untimed, before each run (and before the flush): e.g. pick the next input. */
  prepare?: () => void;
  clock?: Clock;
}

/** Median milliseconds of `reps` runs after `warmup` runs; an asynchronous run is awaited inside the timing. */
export async function timeMedian(run: () => unknown, o: TimeOptions): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < o.warmup + o.reps; i++) {
    o.prepare?.();
    const t = await timeOne(() => run(), o.flush, o.clock ?? SYSTEM_CLOCK);
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

/** Flush (and pause), then time one run. */
async function timeOne(run: () => unknown, flush: (() => void) | null | undefined, clock: Clock): Promise<number> {
  if (flush) { flush(); await clock.pause(1); }
  const t0 = clock.now();
  const r = run();
  if (r instanceof Promise) await r;
  return clock.now() - t0;
}

/** Milliseconds of every timed run of each variant (warm-up runs left out), in `order`. See timeInterleaved. */
async function timeSamples(variants: Variant[], order: number[],
    o: { warmup: number; rounds: number; flush?: (() => void) | null; blocks?: boolean; clock?: Clock }): Promise<number[][]> {
  const ms = variants.map((): number[] => []), clock = o.clock ?? SYSTEM_CLOCK;
  const runs = o.blocks
    ? order.flatMap((i) => Array.from({ length: o.warmup + o.rounds }, (_, round) => [round, i]))
    : Array.from({ length: o.warmup + o.rounds }, (_, round) => order.map((i) => [round, i])).flat();
  for (const [round, i] of runs) {
    const v = variants[i];
    v.prepare?.();
    const t = await timeOne(() => v.run(round), o.flush, clock);
    v.after?.();
    if (round >= o.warmup) ms[i].push(t);
  }
  return ms;
}

/**
 * Median milliseconds of each variant, timed in interleaved rounds (every round runs every variant
 * once), so that a slow spell of a shared machine falls on all of them alike and their ratios stay
 * fair. `flush` is as in timeMedian. With `blocks`, each variant's runs go back to back instead:
 * what a warm cache measures, since between two interleaved runs the other variants evict it.
 */
export async function timeInterleaved(variants: Variant[],
    o: { warmup: number; rounds: number; flush?: (() => void) | null; blocks?: boolean; clock?: Clock }): Promise<number[]> {
  return (await timeSamples(variants, variants.map((_, i) => i), o)).map(median);
}

/**
 * Each variant's spread over `repeats` independent repetitions of timeInterleaved (`steps` timed
 * runs per variant each, after its own warm-up). Every repetition starts with `restart` (e.g. a
 * cache flush, so that a warm measurement warms up afresh) and runs the variants in a rotated order:
 * repetition q starts at variant ⌊q·n/repeats⌋, so no variant is always the first one after whatever
 * ran before (a first block runs on a cooler, slower machine: that made the dense step of warm
 * tables look slower than the same computation at ratio 0).
 */
export async function timeRepeated(variants: Variant[],
    o: { warmup: number; steps: number; repeats: number; flush?: (() => void) | null; restart?: (() => void) | null;
         blocks?: boolean; clock?: Clock }): Promise<Spread[]> {
  const n = variants.length, medians = variants.map((): number[] => []);
  for (let q = 0; q < o.repeats; q++) {
    const first = Math.floor((q * n) / o.repeats);
    const order = variants.map((_, i) => (first + i) % n);
    o.restart?.();
    const ms = await timeSamples(variants, order, { warmup: o.warmup, rounds: o.steps, flush: o.flush, blocks: o.blocks, clock: o.clock });
    ms.forEach((s, i) => medians[i].push(median(s)));
  }
  return medians.map(spread);
}
