// The language model's loss: softmax cross-entropy over a vocabulary, row by row, with its gradient
// written over the logits. Exponentials in float32 lanes (four per step: this is the bulk of the
// work), partial sums joined in float64.
import { shareStart, madd, hsum } from "./common";

const LOG2E: f32 = 1.44269504;
/** e^−87 ≈ 1.6e−38 is still a normal float32 and negligible next to the row's e^0 = 1. */
const EXP_MIN: f32 = -87;
/** Logits summed in float32 lanes before joining the float64 total: at most 64 additions per lane. */
const SUM_BLOCK: i32 = 256;

// @ts-ignore: decorator
@inline function horner(p: v128, r: v128, c: f32): v128 { return madd(p, r, f32x4.splat(c)); }

/**
 * e^x for x ≤ 0 in float32 lanes, within 2e-7 relative: x = n·ln2 + r with ln2 split in two
 * (exact n·hi), then Cephes expf's degree-7 polynomial on |r| ≤ ln2/2, times 2^n from its bits.
 */
// @ts-ignore: decorator
@inline function expNegF32(x: v128): v128 {
  x = f32x4.max(x, f32x4.splat(EXP_MIN)); // wasm max propagates NaN
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(LOG2E)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = horner(p, r, 1.3981999507e-3); p = horner(p, r, 8.3334519073e-3); p = horner(p, r, 4.1665795894e-2);
  p = horner(p, r, 1.6666665459e-1); p = horner(p, r, 5.0000001201e-1);
  const y = f32x4.add(madd(p, f32x4.mul(r, r), r), f32x4.splat(1));
  return f32x4.mul(y, i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23));
}

/** Largest of a row's n float32 values. */
// @ts-ignore: decorator
@inline function rowMax(p: usize, n: i32): f32 {
  let m = f32x4.splat(-Infinity);
  let i = 0;
  for (; i + 4 <= n; i += 4) m = f32x4.max(m, v128.load(p + (<usize>i << 2)));
  let s = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  for (; i < n; i++) s = max(s, load<f32>(p + (<usize>i << 2)));
  return s;
}

/** Σ e^(row − m) over a row of n values, writing each e^(row − m) over its logit if `keep`. */
// @ts-ignore: decorator
@inline function rowExpSum(p: usize, n: i32, m: f32, keep: bool): f64 {
  const mv = f32x4.splat(m);
  let total: f64 = 0;
  let i = 0;
  while (i + 4 <= n) {
    let acc = f32x4.splat(0);
    for (const stop = min(n, i + SUM_BLOCK); i + 4 <= stop; i += 4) {
      const q = p + (<usize>i << 2), e = expNegF32(f32x4.sub(v128.load(q), mv));
      acc = f32x4.add(acc, e);
      if (keep) v128.store(q, e);
    }
    total += <f64>hsum(acc);
  }
  for (; i < n; i++) {
    const q = p + (<usize>i << 2), e = f32x4.extract_lane(expNegF32(f32x4.splat(load<f32>(q) - m)), 0);
    total += <f64>e;
    if (keep) store<f32>(q, e);
  }
  return total;
}

// partials is (nth) float64, one per thread; logits is (rows, V) f32, targets (rows) i32 in [0, V).
// Adds each row's −log softmax(row)[target] to its thread's partial. With gradScale > 0 the row
// becomes gradScale · (softmax(row) − onehot(target)).
export function softmax_xent_f32(partials: usize, logits: usize, targets: usize, rows: i32, V: i32, gradScale: f64,
                                 tid: i32, nth: i32): void {
  let total: f64 = 0;
  const end = shareStart(rows, tid + 1, nth), grad = gradScale > 0;
  for (let r = shareStart(rows, tid, nth); r < end; r++) {
    const row = logits + ((<usize>r * <usize>V) << 2), target = row + (<usize>load<i32>(targets + (<usize>r << 2)) << 2);
    const m = rowMax(row, V), zt = <f64>load<f32>(target);
    const s = grad ? rowExpSum(row, V, m, true) : rowExpSum(row, V, m, false);
    total += <f64>m + Math.log(s) - zt;
    if (!grad) continue;
    const scale = f32x4.splat(<f32>(gradScale / s));
    let j = 0;
    for (; j + 4 <= V; j += 4) {
      const p = row + (<usize>j << 2);
      v128.store(p, f32x4.mul(v128.load(p), scale));
    }
    for (; j < V; j++) {
      const p = row + (<usize>j << 2);
      store<f32>(p, load<f32>(p) * f32x4.extract_lane(scale, 0));
    }
    store<f32>(target, load<f32>(target) - <f32>gradScale);
  }
  store<f64>(partials + (<usize>tid << 3), total);
}
