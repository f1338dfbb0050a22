// Elementwise kernels of one RNN cell step besides the matrix products: activations, the fused LSTM
// and GRU gate updates, the little module's sparse ternary input projection, and a sum that runs at
// memory speed. Activations and gate updates are computed in float64 lanes and rounded to float32
// once, so each result is within about half an ulp of the exact value, ±∞ and NaN included.
import { shareStart, hsum } from "./common";

// ---- float64 lane math: two lanes per v128 ----

const LOG2E: f64 = 1.4426950408889634;
const LN2: f64 = 0.6931471805599453;
/** exp(−120) rounds to 0 in float32 and 1 − exp(−120) to 1 in float64: nothing below this matters. */
const EXP_MIN: f64 = -120;
/** Below this |x|, tanh x = x − x³/3 to 1e-13, and (1 − e)/(1 + e) would lose digits to cancellation. */
const TANH_SMALL: f64 = 1.0 / 1024;

// @ts-ignore: decorator
@inline function horner(p: v128, r: v128, c: f64): v128 {
  return f64x2.add(f64x2.mul(p, r), f64x2.splat(c));
}

/** e^z for z ≤ 0 (or NaN, which stays NaN), relative error below 1e-11. */
// @ts-ignore: decorator
@inline function expNeg(z: v128): v128 {
  z = f64x2.max(z, f64x2.splat(EXP_MIN)); // wasm max propagates NaN
  const n = f64x2.nearest(f64x2.mul(z, f64x2.splat(LOG2E)));
  // |n| ≤ 174, so the rounding of n·LN2 (< 1e-14) is far below float32 precision: no hi/lo split.
  const r = f64x2.sub(z, f64x2.mul(n, f64x2.splat(LN2))); // |r| ≤ ln2/2
  // Taylor series of e^r to degree 9: truncation ≤ (ln2/2)^10 / 10! < 1e-11.
  let p = f64x2.splat(1.0 / 362880);
  p = horner(p, r, 1.0 / 40320); p = horner(p, r, 1.0 / 5040); p = horner(p, r, 1.0 / 720);
  p = horner(p, r, 1.0 / 120); p = horner(p, r, 1.0 / 24); p = horner(p, r, 1.0 / 6);
  p = horner(p, r, 0.5); p = horner(p, r, 1); p = horner(p, r, 1);
  // 2^n built from its exponent bits (n ≥ −174 keeps it a normal float64).
  const bits = i64x2.extend_low_i32x4_s(i32x4.trunc_sat_f64x2_s_zero(n));
  return f64x2.mul(p, i64x2.shl(i64x2.add(bits, i64x2.splat(1023)), 52));
}

/** σ(x) = 1/(1 + e^−x), through e^−|x| so that neither side overflows or cancels. */
// @ts-ignore: decorator
@inline export function sigmoid64(x: v128): v128 {
  const e = expNeg(f64x2.neg(f64x2.abs(x)));
  const q = f64x2.div(f64x2.splat(1), f64x2.add(f64x2.splat(1), e));
  return v128.bitselect(f64x2.mul(e, q), q, f64x2.lt(x, f64x2.splat(0)));
}

/** tanh x = sign(x)·(1 − e)/(1 + e) with e = e^−2|x|, or the odd Taylor series near 0. */
// @ts-ignore: decorator
@inline export function tanh64(x: v128): v128 {
  const t = f64x2.abs(x), one = f64x2.splat(1);
  const e = expNeg(f64x2.mul(t, f64x2.splat(-2)));
  const far = f64x2.div(f64x2.sub(one, e), f64x2.add(one, e));
  const near = f64x2.mul(t, f64x2.sub(one, f64x2.mul(f64x2.mul(t, t), f64x2.splat(1.0 / 3))));
  const m = v128.bitselect(near, far, f64x2.lt(t, f64x2.splat(TANH_SMALL)));
  return v128.or(m, v128.and(x, f64x2.splat(-0.0))); // copy the sign of x (tanh(−0) = −0)
}

/** Two float32 at p (one if !pair) as float64 lanes. `pair` is a constant at every call site. */
// @ts-ignore: decorator
@inline export function widen(p: usize, pair: bool): v128 {
  return f64x2.promote_low_f32x4(pair ? v128.load64_zero(p) : v128.load32_zero(p));
}

/** Rounds the float64 lanes to float32 and stores two (one if !pair) at p. */
// @ts-ignore: decorator
@inline export function narrow(p: usize, v: v128, pair: bool): void {
  const f = f32x4.demote_f64x2_zero(v);
  if (pair) v128.store64_lane(p, f, 0);
  else v128.store32_lane(p, f, 0);
}

// ---- activations: y (n) = f(x (n)); y may be x ----

export function sigmoid_f32(y: usize, x: usize, n: i32, tid: i32, nth: i32): void {
  let o = <usize>shareStart(n, tid, nth) << 2;
  const stop = <usize>shareStart(n, tid + 1, nth) << 2;
  for (; o + 8 <= stop; o += 8) narrow(y + o, sigmoid64(widen(x + o, true)), true);
  if (o < stop) narrow(y + o, sigmoid64(widen(x + o, false)), false);
}

export function tanh_f32(y: usize, x: usize, n: i32, tid: i32, nth: i32): void {
  let o = <usize>shareStart(n, tid, nth) << 2;
  const stop = <usize>shareStart(n, tid + 1, nth) << 2;
  for (; o + 8 <= stop; o += 8) narrow(y + o, tanh64(widen(x + o, true)), true);
  if (o < stop) narrow(y + o, tanh64(widen(x + o, false)), false);
}

/** max(x, 0): wasm max keeps NaN and turns −0 into +0. */
export function relu_f32(y: usize, x: usize, n: i32, tid: i32, nth: i32): void {
  let o = <usize>shareStart(n, tid, nth) << 2;
  const stop = <usize>shareStart(n, tid + 1, nth) << 2;
  const zero = f32x4.splat(0);
  for (; o + 16 <= stop; o += 16) v128.store(y + o, f32x4.max(v128.load(x + o), zero));
  for (; o < stop; o += 4) store<f32>(y + o, max<f32>(load<f32>(x + o), 0));
}

// ---- fused gate updates ----

/** One or two hidden units of an LSTM step; `gate` is the byte size of one gate block. */
// @ts-ignore: decorator
@inline function lstmUnits(h: usize, c: usize, gates: usize, gate: usize, o: usize, pair: bool): void {
  const g = gates + o;
  const i = sigmoid64(widen(g, pair)), f = sigmoid64(widen(g + gate, pair));
  const u = tanh64(widen(g + 2 * gate, pair)), out = sigmoid64(widen(g + 3 * gate, pair));
  const cNew = f64x2.add(f64x2.mul(f, widen(c + o, pair)), f64x2.mul(i, u));
  narrow(c + o, cNew, pair);
  narrow(h + o, f64x2.mul(out, tanh64(cNew)), pair); // from the unrounded cell state
}

// h, c are (H); gates is (4H) pre-activations in PyTorch order i, f, g, o.
export function lstm_gates_f32(h: usize, c: usize, gates: usize, H: i32, tid: i32, nth: i32): void {
  let o = <usize>shareStart(H, tid, nth) << 2;
  const stop = <usize>shareStart(H, tid + 1, nth) << 2, gate = <usize>H << 2;
  for (; o + 8 <= stop; o += 8) lstmUnits(h, c, gates, gate, o, true);
  if (o < stop) lstmUnits(h, c, gates, gate, o, false);
}

/** One or two hidden units of a GRU step; `gate` is the byte size of one gate block. */
// @ts-ignore: decorator
@inline function gruUnits(h: usize, gx: usize, gh: usize, gate: usize, o: usize, pair: bool): void {
  const x = gx + o, hh = gh + o, one = f64x2.splat(1);
  const r = sigmoid64(f64x2.add(widen(x, pair), widen(hh, pair)));
  const z = sigmoid64(f64x2.add(widen(x + gate, pair), widen(hh + gate, pair)));
  const n = tanh64(f64x2.add(widen(x + 2 * gate, pair), f64x2.mul(r, widen(hh + 2 * gate, pair))));
  narrow(h + o, f64x2.add(f64x2.mul(f64x2.sub(one, z), n), f64x2.mul(z, widen(h + o, pair))), pair);
}

// h is (H), updated in place; gx, gh are (3H) in PyTorch order r, z, n, biases included.
export function gru_gates_f32(h: usize, gx: usize, gh: usize, H: i32, tid: i32, nth: i32): void {
  let o = <usize>shareStart(H, tid, nth) << 2;
  const stop = <usize>shareStart(H, tid + 1, nth) << 2, gate = <usize>H << 2;
  for (; o + 8 <= stop; o += 8) gruUnits(h, gx, gh, gate, o, true);
  if (o < stop) gruUnits(h, gx, gh, gate, o, false);
}

// ---- sparse ternary projection ----

/** Σ x[indices[from .. to)] in float64, four accumulators so that the adds do not wait on each other. */
// @ts-ignore: decorator
@inline function gatherSum(x: usize, indices: usize, from: i32, to: i32): f64 {
  let s0: f64 = 0, s1: f64 = 0, s2: f64 = 0, s3: f64 = 0;
  let p = indices + (<usize>from << 1);
  const stop = indices + (<usize>to << 1);
  for (; p + 8 <= stop; p += 8) {
    s0 += <f64>load<f32>(x + (<usize>load<u16>(p) << 2));
    s1 += <f64>load<f32>(x + (<usize>load<u16>(p, 2) << 2));
    s2 += <f64>load<f32>(x + (<usize>load<u16>(p, 4) << 2));
    s3 += <f64>load<f32>(x + (<usize>load<u16>(p, 6) << 2));
  }
  for (; p < stop; p += 2) s0 += <f64>load<f32>(x + (<usize>load<u16>(p) << 2));
  return (s0 + s1) + (s2 + s3);
}

// y is (k), x is (n); row i's +1 columns are indices[offsets[2i] .. offsets[2i+1]), its −1 columns
// indices[offsets[2i+1] .. offsets[2i+2]). offsets is (2k+1), validated by the caller.
export function project_ternary_f32(y: usize, x: usize, offsets: usize, indices: usize, scale: f64, k: i32,
                                    tid: i32, nth: i32): void {
  const end = shareStart(k, tid + 1, nth);
  for (let i = shareStart(k, tid, nth); i < end; i++) {
    const row = offsets + (<usize>i << 3);
    const plus = gatherSum(x, indices, load<i32>(row), load<i32>(row, 4));
    const minus = gatherSum(x, indices, load<i32>(row, 4), load<i32>(row, 8));
    store<f32>(y + (<usize>i << 2), <f32>(scale * (plus - minus)));
  }
}

// ---- sum at memory speed ----

/** Bytes summed in float32 lanes before joining the float64 total: at most 32 additions per lane. */
const SUM_BLOCK: usize = 4096;

// partials is (nth) float64, one per thread; x is (n).
export function sum_f32(partials: usize, x: usize, n: i32, tid: i32, nth: i32): void {
  let o = <usize>shareStart(n, tid, nth) << 2;
  const stop = <usize>shareStart(n, tid + 1, nth) << 2;
  let total: f64 = 0;
  for (; o + SUM_BLOCK <= stop;) {
    // Eight accumulators keep eight loads in flight, enough to stream from memory.
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (const end = o + SUM_BLOCK; o < end; o += 128) {
      const p = x + o;
      a0 = f32x4.add(a0, v128.load(p)); a1 = f32x4.add(a1, v128.load(p, 16));
      a2 = f32x4.add(a2, v128.load(p, 32)); a3 = f32x4.add(a3, v128.load(p, 48));
      a4 = f32x4.add(a4, v128.load(p, 64)); a5 = f32x4.add(a5, v128.load(p, 80));
      a6 = f32x4.add(a6, v128.load(p, 96)); a7 = f32x4.add(a7, v128.load(p, 112));
    }
    const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)));
    total += <f64>hsum(s);
  }
  for (; o < stop; o += 4) total += <f64>load<f32>(x + o);
  store<f64>(partials + (<usize>tid << 3), total);
}
