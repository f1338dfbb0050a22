// INT8 symmetric quantization: a vector quantized per call, and int8 matrix-vector products with
// one scale per weight row, dense and row-sparse, plus a dense one over packed int4 weights.
// Products are summed exactly in i32 (the caller bounds cols so the sum cannot overflow); only the
// final scaling rounds. Both builds run the same code: relaxed SIMD's int8 dot product is exact only
// for 7-bit operands.
import { shareStart } from "./common";
import { rowAt } from "./matvec";

/** Largest quantized magnitude: symmetric, so -128 is never produced. */
const QMAX: f32 = 127;

// q is (n) int8, x is (n) finite fp32. q = clamp(round-half-even(x / scale), ±127) with
// scale = max|x| / 127; returns scale, or 1 with q all zero when x is zero (or too small to scale).
export function quantize_i8(q: usize, x: usize, n: i32): f32 {
  let m = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) m = f32x4.max(m, f32x4.abs(v128.load(x + (<usize>i << 2))));
  let amax = max(max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)),
                 max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
  for (; i < n; i++) amax = max(amax, abs(load<f32>(x + (<usize>i << 2))));
  const scale = amax / QMAX;
  if (scale == 0) {
    memory.fill(q, 0, <usize>n);
    return 1;
  }
  const s = f32x4.splat(scale), lo = f32x4.splat(-QMAX), hi = f32x4.splat(QMAX);
  i = 0;
  for (; i + 16 <= n; i += 16) {
    const p = x + (<usize>i << 2);
    const q0 = i32x4.trunc_sat_f32x4_s(f32x4.min(hi, f32x4.max(lo, f32x4.nearest(f32x4.div(v128.load(p), s)))));
    const q1 = i32x4.trunc_sat_f32x4_s(f32x4.min(hi, f32x4.max(lo, f32x4.nearest(f32x4.div(v128.load(p, 16), s)))));
    const q2 = i32x4.trunc_sat_f32x4_s(f32x4.min(hi, f32x4.max(lo, f32x4.nearest(f32x4.div(v128.load(p, 32), s)))));
    const q3 = i32x4.trunc_sat_f32x4_s(f32x4.min(hi, f32x4.max(lo, f32x4.nearest(f32x4.div(v128.load(p, 48), s)))));
    v128.store(q + i, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(q0, q1), i16x8.narrow_i32x4_s(q2, q3)));
  }
  for (; i < n; i++) {
    store<i8>(q + i, <i8>min(QMAX, max(-QMAX, nearest<f32>(load<f32>(x + (<usize>i << 2)) / scale))));
  }
  return scale;
}

/** Sum of the four i32 lanes. */
// @ts-ignore: decorator
@inline export function hsumI32(v: v128): i32 {
  const s = i32x4.add(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1);
}

/** Σ w·x over 16 int8 pairs, as four i32 lanes; xl, xh are x's 16 values widened to i16. */
// @ts-ignore: decorator
@inline export function dot16(w: v128, xl: v128, xh: v128): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w), xl),
                   i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w), xh));
}

/** y[r] = acc · (scales[r] · xScale) + b[r], rounded to f32 in that order (the reference's order). */
// @ts-ignore: decorator
@inline function finish(y: usize, scales: usize, b: usize, r: usize, acc: i32, xScale: f32): void {
  const o = r << 2;
  let v = <f32>acc * (load<f32>(scales + o) * xScale);
  if (b != 0) v += load<f32>(b + o);
  store<f32>(y + o, v);
}

/**
 * Bytes of one int4 row: each group of 32 columns takes 16 bytes, byte i holding column i in its low
 * nibble and column i + 16 in its high nibble (two's complement), so the nibbles of one 16-byte load
 * line up with two plain 16-byte loads of x. The last group is padded to 16 bytes.
 */
// @ts-ignore: decorator
@inline export function i4RowBytes(cols: i32): usize {
  return <usize>((cols + 31) >> 5) << 4;
}

/** Weight (row, c) as i32: an int8, or an int4 nibble in the layout of i4RowBytes. */
// @ts-ignore: decorator
@inline function weightAt(row: usize, c: i32, int4: bool): i32 {
  if (!int4) return <i32>load<i8>(row + c);
  const byte = <i32>load<i8>(row + ((<usize>c >> 5) << 4) + (c & 15));
  return c & 16 ? byte >> 4 : (byte << 28) >> 28;
}

/** Columns one SIMD step covers: 16 int8 weights, or 32 int4 weights (16 bytes either way). */
// @ts-ignore: decorator
@inline function step(int4: bool): i32 { return int4 ? 32 : 16; }

/**
 * Σ w·x over one SIMD step of a row, as four i32 lanes; xa..xd are x's values for the step widened
 * to i16, eight at a time (int8 uses xa, xb only).
 */
// @ts-ignore: decorator
@inline function dotStep(row: usize, c: i32, xa: v128, xb: v128, xc: v128, xd: v128, int4: bool): v128 {
  if (!int4) return dot16(v128.load(row + c), xa, xb);
  const v = v128.load(row + (<usize>c >> 1));
  // Bytes widened to i16 keep their sign, so the high nibble is one arithmetic shift away and the
  // low nibble is sign-extended by a shift up and back.
  const lo8 = i16x8.extend_low_i8x16_s(v), hi8 = i16x8.extend_high_i8x16_s(v);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(lo8, 12), 12), xa),
              i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(hi8, 12), 12), xb)),
    i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_s(lo8, 4), xc), i32x4.dot_i16x8_s(i16x8.shr_s(hi8, 4), xd)));
}

/** Σ w·x over the SIMD step at column c of a row, widening x's values there to i16. */
@inline function dotStepAt(row: usize, x: usize, c: i32, int4: bool): v128 {
  const x0 = v128.load(x + c), x1 = int4 ? v128.load(x + c, 16) : x0;
  return dotStep(row, c, i16x8.extend_low_i8x16_s(x0), i16x8.extend_high_i8x16_s(x0),
                 i16x8.extend_low_i8x16_s(x1), i16x8.extend_high_i8x16_s(x1), int4);
}

/**
 * Exact Σ_c w[r, c]·x[c] for one row; any cols (scalar tail). Four SIMD steps per iteration into
 * four accumulators: for consecutive rows (dense), one weight stream per thread is what the
 * hardware prefetcher serves best (measured: 1.4x faster than four interleaved rows sharing a
 * widened x, although x is widened again for every row).
 */
@inline function dotRowQ(row: usize, x: usize, cols: i32, int4: bool): i32 {
  let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
  const n = step(int4);
  let c = 0;
  for (; c + 4 * n <= cols; c += 4 * n) {
    a0 = i32x4.add(a0, dotStepAt(row, x, c, int4));
    a1 = i32x4.add(a1, dotStepAt(row, x, c + n, int4));
    a2 = i32x4.add(a2, dotStepAt(row, x, c + 2 * n, int4));
    a3 = i32x4.add(a3, dotStepAt(row, x, c + 3 * n, int4));
  }
  for (; c + n <= cols; c += n) a0 = i32x4.add(a0, dotStepAt(row, x, c, int4));
  let s = hsumI32(i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3)));
  for (; c < cols; c++) s += weightAt(row, c, int4) * <i32>load<i8>(x + c);
  return s;
}

/**
 * Rows r = rowAt(rowIdx, j), j in [start, end), of an int8 (or int4) matrix with `stride` bytes per
 * row. Listed (scattered) rows go four at a time, each widened x serving four short weight streams
 * whose prefetch ramps overlap; consecutive rows go one at a time (see dotRowQ).
 */
@inline function matvecListedQ(y: usize, w: usize, scales: usize, x: usize, xScale: f32, b: usize, rowIdx: usize,
                               start: i32, end: i32, cols: i32, stride: usize, int4: bool): void {
  const n = step(int4);
  let j = start;
  if (rowIdx != 0) for (; j + 4 <= end; j += 4) {
    const r0 = <usize>rowAt(rowIdx, j), r1 = <usize>rowAt(rowIdx, j + 1);
    const r2 = <usize>rowAt(rowIdx, j + 2), r3 = <usize>rowAt(rowIdx, j + 3);
    const w0 = w + r0 * stride, w1 = w + r1 * stride, w2 = w + r2 * stride, w3 = w + r3 * stride;
    let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
    let c = 0;
    for (; c + n <= cols; c += n) {
      const x0 = v128.load(x + c), x1 = int4 ? v128.load(x + c, 16) : x0;
      const xa = i16x8.extend_low_i8x16_s(x0), xb = i16x8.extend_high_i8x16_s(x0);
      const xc = i16x8.extend_low_i8x16_s(x1), xd = i16x8.extend_high_i8x16_s(x1);
      a0 = i32x4.add(a0, dotStep(w0, c, xa, xb, xc, xd, int4));
      a1 = i32x4.add(a1, dotStep(w1, c, xa, xb, xc, xd, int4));
      a2 = i32x4.add(a2, dotStep(w2, c, xa, xb, xc, xd, int4));
      a3 = i32x4.add(a3, dotStep(w3, c, xa, xb, xc, xd, int4));
    }
    let s0 = hsumI32(a0), s1 = hsumI32(a1), s2 = hsumI32(a2), s3 = hsumI32(a3);
    for (; c < cols; c++) {
      const xs = <i32>load<i8>(x + c);
      s0 += weightAt(w0, c, int4) * xs;
      s1 += weightAt(w1, c, int4) * xs;
      s2 += weightAt(w2, c, int4) * xs;
      s3 += weightAt(w3, c, int4) * xs;
    }
    finish(y, scales, b, r0, s0, xScale); finish(y, scales, b, r1, s1, xScale);
    finish(y, scales, b, r2, s2, xScale); finish(y, scales, b, r3, s3, xScale);
  }
  for (; j < end; j++) {
    const r = <usize>rowAt(rowIdx, j);
    finish(y, scales, b, r, dotRowQ(w + r * stride, x, cols, int4), xScale);
  }
}

// y is (rows) f32, w is (rows, cols) int8 row-major, scales is (rows) f32, x is (cols) int8,
// b is (rows) or 0. y[r] = scales[r]·xScale·Σ_c w[r, c]·x[c] + b[r].
export function matvec_i8(y: usize, w: usize, scales: usize, x: usize, xScale: f32, b: usize, rows: i32, cols: i32,
                          tid: i32, nth: i32): void {
  matvecListedQ(y, w, scales, x, xScale, b, 0, shareStart(rows, tid, nth), shareStart(rows, tid + 1, nth),
                cols, <usize>cols, false);
}

// As matvec_i8 for the rows rowIdx[0..count) only; threads split the list.
export function matvec_i8_rows(y: usize, w: usize, scales: usize, x: usize, xScale: f32, b: usize, rowIdx: usize,
                               count: i32, cols: i32, tid: i32, nth: i32): void {
  matvecListedQ(y, w, scales, x, xScale, b, rowIdx, shareStart(count, tid, nth), shareStart(count, tid + 1, nth),
                cols, <usize>cols, false);
}

// As matvec_i8 with int4 weights: w is (rows, i4RowBytes(cols)) bytes in the layout of i4RowBytes.
export function matvec_i4(y: usize, w: usize, scales: usize, x: usize, xScale: f32, b: usize, rows: i32, cols: i32,
                          tid: i32, nth: i32): void {
  matvecListedQ(y, w, scales, x, xScale, b, 0, shareStart(rows, tid, nth), shareStart(rows, tid + 1, nth),
                cols, i4RowBytes(cols), true);
}
