// The timing statistics on constructed samples: a fake clock that only the timed runs advance,
// by durations the test chose, so that each function's choices (which runs count, in which order,
// what is flushed and when) are checked exactly against a computation written out here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { median, spread, separated, timeMedian, timeInterleaved, timeRepeated, type Clock, type Variant } from "../src/util/timing.js";

/** A clock that runs advance by their scripted duration, and a log of everything that happened. */
function fakeClock(): { clock: Clock; log: string[]; advance: (ms: number) => void } {
  let t = 0;
  const log: string[] = [];
  // A pause takes (fake) time too: it must not land inside a timing.
  return { clock: { now: () => t, pause: async (ms) => { log.push(`pause ${ms}`); t += 1000; } }, log, advance: (ms) => { t += ms; } };
}

test("median and spread of constructed samples", () => {
  assert.equal(median([5]), 5);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([7, 7, 1, 100, 7]), 7);
  const xs = [9, 1, 5];
  median(xs);
  assert.deepEqual(xs, [9, 1, 5], "the samples are not reordered");
  assert.throws(() => median([]), /no samples/);
  assert.deepEqual(spread([3, 10, 1, 4]), { median: 3.5, min: 1, max: 10 });
  assert.equal(separated({ median: 1, min: 0.9, max: 1.1 }, { median: 1.3, min: 1.2, max: 1.4 }), true);
  assert.equal(separated({ median: 1, min: 0.9, max: 1.2 }, { median: 1.3, min: 1.2, max: 1.4 }), false, "touching ranges overlap");
  assert.equal(separated({ median: 2, min: 1, max: 3 }, { median: 2, min: 1.5, max: 2.5 }), false);
});

test("timeMedian: warm-up runs excluded, prepare then flush then pause before every run, pauses untimed", async () => {
  const { clock, log, advance } = fakeClock();
  // Warm-up runs are slow (100, 90): they must not count. Timed: 4, 2, 9, 3, 5 → median 4.
  const durations = [100, 90, 4, 2, 9, 3, 5];
  let i = 0;
  const ms = await timeMedian(() => { log.push(`run ${i}`); advance(durations[i++]); }, {
    warmup: 2, reps: 5, clock, prepare: () => log.push("prepare"), flush: () => log.push("flush"),
  });
  assert.equal(ms, 4);
  assert.equal(i, 7);
  assert.deepEqual(log.slice(0, 8), ["prepare", "flush", "pause 1", "run 0", "prepare", "flush", "pause 1", "run 1"]);
  // An asynchronous run is awaited inside the timing.
  const a = fakeClock();
  const asyncMs = await timeMedian(async () => { await Promise.resolve(); a.advance(7); }, { warmup: 1, reps: 3, clock: a.clock });
  assert.equal(asyncMs, 7);
});

/** Variants whose run k (counted over all their runs) takes durations[k]; every call logged. */
function scripted(durations: number[][], advance: (ms: number) => void, log: string[]): Variant[] {
  return durations.map((d, v) => {
    let k = 0;
    return {
      prepare: () => log.push(`prepare ${v}`),
      run: (round: number) => { log.push(`run ${v}.${round}`); advance(d[k++]); },
      after: () => log.push(`after ${v}`),
    };
  });
}

test("timeInterleaved: every round runs every variant once; blocks run each variant back to back", async () => {
  {
    const { clock, log, advance } = fakeClock();
    // warmup 1, rounds 3: variant 0 runs 50 (warm-up), 1, 2, 3; variant 1 runs 60, 10, 30, 20.
    const ms = await timeInterleaved(scripted([[50, 1, 2, 3], [60, 10, 30, 20]], advance, log), { warmup: 1, rounds: 3, clock });
    assert.deepEqual(ms, [2, 20]);
    assert.deepEqual(log.filter((l) => l.startsWith("run")), ["run 0.0", "run 1.0", "run 0.1", "run 1.1", "run 0.2", "run 1.2", "run 0.3", "run 1.3"]);
    assert.deepEqual(log.slice(0, 6), ["prepare 0", "run 0.0", "after 0", "prepare 1", "run 1.0", "after 1"]);
  }
  {
    const { clock, log, advance } = fakeClock();
    const ms = await timeInterleaved(scripted([[50, 1, 2, 3], [60, 10, 30, 20]], advance, log), { warmup: 1, rounds: 3, clock, blocks: true });
    assert.deepEqual(ms, [2, 20]);
    assert.deepEqual(log.filter((l) => l.startsWith("run")), ["run 0.0", "run 0.1", "run 0.2", "run 0.3", "run 1.0", "run 1.1", "run 1.2", "run 1.3"]);
  }
  {
    // A flush before every run, its pause outside the timing.
    const { clock, log, advance } = fakeClock();
    const ms = await timeInterleaved(scripted([[9, 4], [9, 6]], advance, log), { warmup: 1, rounds: 1, clock, flush: () => log.push("flush") });
    assert.deepEqual(ms, [4, 6]);
    assert.equal(log.filter((l) => l === "flush").length, 4);
    assert.deepEqual(log.slice(0, 5), ["prepare 0", "flush", "pause 1", "run 0.0", "after 0"]);
  }
});

test("timeRepeated: independent repetitions in rotated order, each restarted; the spread of their medians", async () => {
  const { clock, log, advance } = fakeClock();
  // 3 variants, 3 repetitions of (warm-up 1, steps 3), blocks: each variant runs 4 times per repetition.
  const durations = [
    [99, 1, 2, 3, /**/ 99, 5, 4, 6, /**/ 99, 2, 2, 9], // medians 2, 5, 2 → median 2, min 2, max 5
    [99, 7, 7, 7, /**/ 99, 8, 1, 8, /**/ 99, 3, 6, 4], // medians 7, 8, 4 → 7, 4, 8
    [99, 1, 1, 1, /**/ 99, 1, 1, 1, /**/ 99, 1, 1, 1], // 1, 1, 1
  ];
  const spreads = await timeRepeated(scripted(durations, advance, log),
    { warmup: 1, steps: 3, repeats: 3, blocks: true, clock, restart: () => log.push("restart") });
  assert.deepEqual(spreads, [{ median: 2, min: 2, max: 5 }, { median: 7, min: 4, max: 8 }, { median: 1, min: 1, max: 1 }]);
  // Repetition q starts at variant ⌊q·3/3⌋ = q: orders 0 1 2, 1 2 0, 2 0 1; each after a restart.
  const firsts = log.flatMap((l, i) => (l === "restart" ? [log[i + 2]] : []));
  assert.deepEqual(firsts, ["run 0.0", "run 1.0", "run 2.0"]);
  const blocks = log.filter((l) => /^run \d\.0$/.test(l));
  assert.deepEqual(blocks, ["run 0.0", "run 1.0", "run 2.0", "run 1.0", "run 2.0", "run 0.0", "run 2.0", "run 0.0", "run 1.0"]);
});
