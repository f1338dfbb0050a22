// The one profiler: a Stopwatch adds the time between laps to named buckets of a profile, in
// milliseconds summed over calls. Benchmarks pass a profile; everyone else passes none, and lap()
// then does nothing (no clock read on the hot path).

/** Where a forward pass spends its time: milliseconds per bucket, summed over calls. */
export type Profile<Bucket extends string> = Record<Bucket, number>;

export class Stopwatch<Bucket extends string> {
  private last = 0;
  constructor(private readonly profile?: Profile<Bucket>) { if (profile) this.last = performance.now(); }

  /** Adds the time since the previous lap (or the start) to `bucket`. */
  lap(bucket: Bucket): void {
    if (!this.profile) return;
    const now = performance.now();
    this.profile[bucket] += now - this.last;
    this.last = now;
  }

  /** Starts the next lap now, charging the time since the previous one to no bucket. */
  skip(): void {
    if (this.profile) this.last = performance.now();
  }
}

/** A stopwatch without a profile, for callers that are not profiling. */
export const NO_WATCH: Stopwatch<string> = new Stopwatch<string>();
