// Sensitivity thresholds on the little module's pre-activations a. A neuron is SENSITIVE iff
// lo < a < hi; otherwise (a ≤ lo or a ≥ hi) it is insensitive and keeps the little module's value.
// The paper's rules on the post-activation output, with threshold θ, become such intervals:
//   sigmoid: sensitive iff σ(a) > θ      ⇔ a > logit θ          (lo = logit θ, hi = +∞)
//   tanh:    sensitive iff |tanh a| < θ  ⇔ |a| < atanh θ        (lo = −atanh θ, hi = atanh θ)
//   relu:    sensitive iff a > θ                                (lo = θ, hi = +∞)
// For ReLU θ is a pre-activation threshold: a negative θ (a ratio below the fraction of negative
// pre-activations) marks the least negative ones sensitive too.
//
// calibrate() picks the interval that makes a target fraction of samples insensitive (a constant
// threshold searched on validation data); topKBounds() is the per-step alternative, exact for one
// step's gate block. The bounds are sample values, exact in float32, so a float32 comparison in a
// kernel classifies the samples as here; θ is informative (σ or tanh of a bound may round to 1).

export type Region = "sigmoid" | "tanh" | "relu";
export const REGIONS: readonly Region[] = ["sigmoid", "tanh", "relu"];

/** The open interval (lo, hi) of sensitive pre-activations. */
export interface Bounds { lo: number; hi: number; }

export interface Calibration extends Bounds {
  region: Region;     // lo and hi are sample values, exact in float32
  theta: number;      // the post-activation threshold (pre-activation for relu)
  target: number;     // the ratio asked for
  achieved: number;   // the insensitive fraction of the calibration samples
}

function checkRegion(f: string, region: Region): void {
  if (!REGIONS.includes(region)) throw new RangeError(`${f}: region must be one of ${REGIONS.join(", ")}, got ${region}`);
}

function checkRatio(f: string, ratio: number): void {
  if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`${f}: ratio must be in [0, 1), got ${ratio}`);
}

function checkSamples(f: string, name: string, a: Float32Array): void {
  if (!(a instanceof Float32Array)) throw new TypeError(`${f}: ${name} must be a Float32Array`);
  if (a.length === 0) throw new RangeError(`${f}: ${name} is empty`);
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new RangeError(`${f}: ${name}[${i}] = ${a[i]} must be finite`);
  }
}

/** The sensitive interval for post-activation threshold θ (see the file header). */
export function bounds(region: Region, theta: number): Bounds {
  const f = "bounds";
  checkRegion(f, region);
  if (region === "relu") {
    if (Number.isNaN(theta)) throw new RangeError(`${f}: theta must be a number, got NaN`);
    return { lo: theta, hi: Infinity };
  }
  if (!(theta >= 0 && theta <= 1)) throw new RangeError(`${f}: theta must be in [0, 1] for ${region}, got ${theta}`);
  if (region === "sigmoid") return { lo: Math.log(theta / (1 - theta)), hi: Infinity };
  const t = Math.atanh(theta);
  return { lo: -t, hi: t };
}

/** The fraction of samples outside (lo, hi). */
export function insensitiveFraction({ lo, hi }: Bounds, samples: Float32Array): number {
  checkSamples("insensitiveFraction", "samples", samples);
  let n = 0;
  for (let i = 0; i < samples.length; i++) if (samples[i] <= lo || samples[i] >= hi) n++;
  return n / samples.length;
}

/**
 * The constant threshold whose insensitive fraction on `samples` is nearest `ratio` (ties between
 * two candidates go to the smaller fraction). Tied sample values fall on the same side, so with
 * many equal values the fraction can miss by more than 1/n. Expected O(n).
 */
export function calibrate(region: Region, samples: Float32Array, ratio: number): Calibration {
  const f = "calibrate";
  checkRegion(f, region);
  checkSamples(f, "samples", samples);
  checkRatio(f, ratio);
  const n = samples.length;
  const target = ratio * n;
  // Insensitive samples are the lowest a (sigmoid, relu) or the highest |a| (tanh): in terms of
  // keys (a, or −|a|), the `count` lowest keys, with key ≤ cut.
  const keys = region === "tanh" ? samples.map((a) => -Math.abs(a)) : Float32Array.from(samples);
  let cut = -Infinity, count = 0;
  const c = Math.round(target);
  if (c > 0) {
    const v = select(keys, c - 1);
    // The tie block of v spans counts [below, atOrBelow]: the nearest reachable counts to the target.
    let below = 0, atOrBelow = 0, prev = -Infinity;
    for (let i = 0; i < n; i++) {
      const k = region === "tanh" ? -Math.abs(samples[i]) : samples[i];
      if (k < v) { below++; if (k > prev) prev = k; }
      if (k <= v) atOrBelow++;
    }
    if (atOrBelow - target < target - below) { cut = v; count = atOrBelow; } else { cut = prev; count = below; }
  }
  const hi = region === "tanh" ? 0 - cut : Infinity;
  const theta = region === "sigmoid" ? 1 / (1 + Math.exp(-cut)) : region === "tanh" ? Math.tanh(hi) : cut;
  return { region, lo: cut, hi, theta, target: ratio, achieved: count / n };
}

/**
 * Per-step top-k: exactly floor(ratio · n) of one step's pre-activations `pre` (one gate block)
 * are insensitive, the most saturated ones (lowest a for sigmoid and relu, largest |a| for tanh).
 * Returns the bounds that select them; values tied at the bound are split by index (lower index
 * insensitive first), which only `mask` (n: 1 sensitive, 0 insensitive), if given, records.
 * `scratch` (≥ n elements) avoids an allocation per call.
 */
export function topKBounds(region: Region, pre: Float32Array, ratio: number,
                           mask?: Uint8Array, scratch?: Float32Array): Bounds & { count: number } {
  const f = "topKBounds";
  checkRegion(f, region);
  checkSamples(f, "pre", pre);
  checkRatio(f, ratio);
  const n = pre.length;
  if (mask !== undefined && (!(mask instanceof Uint8Array) || mask.length !== n)) {
    throw new RangeError(`${f}: mask must be a Uint8Array of ${n} elements`);
  }
  if (scratch !== undefined && (!(scratch instanceof Float32Array) || scratch.length < n)) {
    throw new RangeError(`${f}: scratch must be a Float32Array of at least ${n} elements`);
  }
  const count = Math.floor(ratio * n);
  const keys = scratch ? scratch.subarray(0, n) : new Float32Array(n);
  for (let i = 0; i < n; i++) keys[i] = region === "tanh" ? -Math.abs(pre[i]) : pre[i];
  const cut = count > 0 ? select(keys, count - 1) : -Infinity;
  if (mask) {
    // keys[0 .. count) now hold the count lowest keys: those below the cut, then ties of it.
    let ties = 0;
    for (let i = 0; i < count; i++) if (keys[i] === cut) ties++;
    for (let i = 0; i < n; i++) {
      const k = region === "tanh" ? -Math.abs(pre[i]) : pre[i];
      const insensitive = k < cut || (k === cut && ties-- > 0);
      mask[i] = insensitive ? 0 : 1;
    }
  }
  return { lo: cut, hi: region === "tanh" ? 0 - cut : Infinity, count };
}

/**
 * The r-th smallest value of `a` (0-based), rearranging `a` so that a[0 .. r] are the r+1 smallest.
 * Quickselect: pseudo-random pivots (xorshift32, fixed seed: runs repeat, nothing allocated per
 * call) give expected O(n) on any input, and a three-way partition keeps many equal keys from
 * degrading it.
 */
function select(a: Float32Array, r: number): number {
  let lo = 0, hi = a.length - 1, state = 0x9e3779b9;
  for (;;) {
    if (lo >= hi) return a[r];
    state ^= state << 13; state ^= state >>> 17; state ^= state << 5;
    const pivot = a[lo + (state >>> 0) % (hi - lo + 1)];
    // Dutch flag: [lo, lt) < pivot, [lt, i) = pivot, (gt, hi] > pivot.
    let lt = lo, i = lo, gt = hi;
    while (i <= gt) {
      const v = a[i];
      if (v < pivot) { a[i] = a[lt]; a[lt] = v; lt++; i++; }
      else if (v > pivot) { a[i] = a[gt]; a[gt] = v; gt--; }
      else i++;
    }
    if (r < lt) hi = lt - 1;
    else if (r > gt) lo = gt + 1;
    else return pivot;
  }
}
