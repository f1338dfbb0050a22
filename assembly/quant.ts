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

/** Weight (row, c) of an int4 row as i32: a nibble in the layout of i4RowBytes. */
// @ts-ignore: decorator
@inline function nibbleAt(row: usize, c: i32): i32 {
  const byte = <i32>load<i8>(row + ((<usize>c >> 5) << 4) + (c & 15));
  return c & 16 ? byte >> 4 : (byte << 28) >> 28;
}

/** Σ w·x over the 32 int4 weights (16 bytes) at column c of a row, as four i32 lanes, x widened here. */
@inline function dotStepI4(row: usize, x: usize, c: i32): v128 {
  const x0 = v128.load(x + c), x1 = v128.load(x + c, 16);
  const v = v128.load(row + (<usize>c >> 1));
  // Bytes widened to i16 keep their sign, so the high nibble is one arithmetic shift away and the
  // low nibble is sign-extended by a shift up and back.
  const lo8 = i16x8.extend_low_i8x16_s(v), hi8 = i16x8.extend_high_i8x16_s(v);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(lo8, 12), 12), i16x8.extend_low_i8x16_s(x0)),
              i32x4.dot_i16x8_s(i16x8.shr_s(i16x8.shl(hi8, 12), 12), i16x8.extend_high_i8x16_s(x0))),
    i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_s(lo8, 4), i16x8.extend_low_i8x16_s(x1)),
              i32x4.dot_i16x8_s(i16x8.shr_s(hi8, 4), i16x8.extend_high_i8x16_s(x1))));
}

/**
 * Exact Σ_c w[r, c]·x[c] for one int4 row; any cols (scalar tail). Four steps per iteration into
 * four accumulators: one weight stream per thread, which the hardware prefetcher serves best.
 */
@inline function dotRowI4(row: usize, x: usize, cols: i32): i32 {
  let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
  let c = 0;
  for (; c + 128 <= cols; c += 128) {
    a0 = i32x4.add(a0, dotStepI4(row, x, c));
    a1 = i32x4.add(a1, dotStepI4(row, x, c + 32));
    a2 = i32x4.add(a2, dotStepI4(row, x, c + 64));
    a3 = i32x4.add(a3, dotStepI4(row, x, c + 96));
  }
  for (; c + 32 <= cols; c += 32) a0 = i32x4.add(a0, dotStepI4(row, x, c));
  let s = hsumI32(i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3)));
  for (; c < cols; c++) s += nibbleAt(row, c) * <i32>load<i8>(x + c);
  return s;
}

/**
 * Bytes of one thread's widened copy of x in the int8 products' scratch: cols i16 values, padded to
 * a cache line so that two threads' copies never share one.
 */
// @ts-ignore: decorator
@inline export function widenedBytes(cols: i32): usize {
  return (<usize>cols * 2 + 63) & ~<usize>63;
}

/**
 * x (cols int8) widened to i16 into xw, once per call and thread: the products then load x's i16
 * halves instead of widening x again for every row (two fewer instructions per 16 weights, which is
 * what held the int8 products below the memory's speed).
 */
@inline function widen(xw: usize, x: usize, cols: i32): void {
  let c = 0;
  for (; c + 16 <= cols; c += 16) {
    const v = v128.load(x + c), o = xw + (<usize>c << 1);
    v128.store(o, i16x8.extend_low_i8x16_s(v));
    v128.store(o, i16x8.extend_high_i8x16_s(v), 16);
  }
  for (; c < cols; c++) store<i16>(xw + (<usize>c << 1), load<i8>(x + c));
}

/** Σ w·x over the 16 int8 weights at column c of a row, x widened in xw. */
// @ts-ignore: decorator
@inline function dotWide(row: usize, xw: usize, c: i32): v128 {
  const p = xw + (<usize>c << 1);
  return dot16(v128.load(row + c), v128.load(p), v128.load(p, 16));
}

/**
 * Exact Σ_c w[r, c]·x[c] for one int8 row against widened x; any cols (scalar tail). Four steps per
 * iteration into four accumulators: one weight stream per thread, which the prefetcher serves best.
 */
@inline function dotRowWide(row: usize, xw: usize, cols: i32): i32 {
  let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
  let c = 0;
  for (; c + 64 <= cols; c += 64) {
    a0 = i32x4.add(a0, dotWide(row, xw, c));
    a1 = i32x4.add(a1, dotWide(row, xw, c + 16));
    a2 = i32x4.add(a2, dotWide(row, xw, c + 32));
    a3 = i32x4.add(a3, dotWide(row, xw, c + 48));
  }
  for (; c + 16 <= cols; c += 16) a0 = i32x4.add(a0, dotWide(row, xw, c));
  let s = hsumI32(i32x4.add(i32x4.add(a0, a1), i32x4.add(a2, a3)));
  for (; c < cols; c++) s += <i32>load<i8>(row + c) * <i32>load<i16>(xw + (<usize>c << 1));
  return s;
}

/**
 * Exact sums of two int8 rows at once against widened x, each load of x serving both: two weight
 * streams per thread keep more reads in flight than one, as for the fp32 product (dotRowPair).
 * Writes the finished rows r0 and r1 (r0 == r1 computes one row twice, to the same value).
 */
@inline function dotRowPairWide(y: usize, scales: usize, b: usize, r0: usize, r1: usize, w: usize, xw: usize,
                                cols: i32, xScale: f32): void {
  const w0 = w + r0 * <usize>cols, w1 = w + r1 * <usize>cols;
  let a0 = i32x4.splat(0), a1 = i32x4.splat(0), b0 = i32x4.splat(0), b1 = i32x4.splat(0);
  let c = 0;
  for (; c + 32 <= cols; c += 32) {
    const p = xw + (<usize>c << 1);
    const x0 = v128.load(p), x1 = v128.load(p, 16), x2 = v128.load(p, 32), x3 = v128.load(p, 48);
    a0 = i32x4.add(a0, dot16(v128.load(w0 + c), x0, x1));
    a1 = i32x4.add(a1, dot16(v128.load(w0 + c, 16), x2, x3));
    b0 = i32x4.add(b0, dot16(v128.load(w1 + c), x0, x1));
    b1 = i32x4.add(b1, dot16(v128.load(w1 + c, 16), x2, x3));
  }
  for (; c + 16 <= cols; c += 16) {
    const p = xw + (<usize>c << 1), x0 = v128.load(p), x1 = v128.load(p, 16);
    a0 = i32x4.add(a0, dot16(v128.load(w0 + c), x0, x1));
    b0 = i32x4.add(b0, dot16(v128.load(w1 + c), x0, x1));
  }
  let s0 = hsumI32(i32x4.add(a0, a1)), s1 = hsumI32(i32x4.add(b0, b1));
  for (; c < cols; c++) {
    const xs = <i32>load<i16>(xw + (<usize>c << 1));
    s0 += <i32>load<i8>(w0 + c) * xs;
    s1 += <i32>load<i8>(w1 + c) * xs;
  }
  finish(y, scales, b, r0, s0, xScale);
  finish(y, scales, b, r1, s1, xScale);
}

/**
 * Rows r = rowAt(rowIdx, j), j in [start, end), of an int8 matrix (cols bytes per row) against x
 * widened into this thread's part of xw. Listed (scattered) rows go four at a time, their short
 * weight streams overlapping their prefetch ramps; consecutive rows go two at a time (dotRowPairWide).
 */
@inline function matvecListedI8(y: usize, w: usize, scales: usize, x: usize, xScale: f32, b: usize, rowIdx: usize,
                                start: i32, end: i32, cols: i32, xw: usize): void {
  widen(xw, x, cols);
  const stride = <usize>cols;
  let j = start;
  if (rowIdx != 0) for (; j + 4 <= end; j += 4) {
    const r0 = <usize>rowAt(rowIdx, j), r1 = <usize>rowAt(rowIdx, j + 1);
    const r2 = <usize>rowAt(rowIdx, j + 2), r3 = <usize>rowAt(rowIdx, j + 3);
    const w0 = w + r0 * stride, w1 = w + r1 * stride, w2 = w + r2 * stride, w3 = w + r3 * stride;
    let a0 = i32x4.splat(0), a1 = i32x4.splat(0), a2 = i32x4.splat(0), a3 = i32x4.splat(0);
    let c = 0;
    for (; c + 16 <= cols; c += 16) {
      const p = xw + (<usize>c << 1), xl = v128.load(p), xh = v128.load(p, 16);
      a0 = i32x4.add(a0, dot16(v128.load(w0 + c), xl, xh));
      a1 = i32x4.add(a1, dot16(v128.load(w1 + c), xl, xh));
      a2 = i32x4.add(a2, dot16(v128.load(w2 + c), xl, xh));
      a3 = i32x4.add(a3, dot16(v128.load(w3 + c), xl, xh));
    }
    let s0 = hsumI32(a0), s1 = hsumI32(a1), s2 = hsumI32(a2), s3 = hsumI32(a3);
    for (; c < cols; c++) {
      const xs = <i32>load<i16>(xw + (<usize>c << 1));
      s0 += <i32>load<i8>(w0 + c) * xs;
      s1 += <i32>load<i8>(w1 + c) * xs;
      s2 += <i32>load<i8>(w2 + c) * xs;
      s3 += <i32>load<i8>(w3 + c) * xs;
    }
    finish(y, scales, b, r0, s0, xScale); finish(y, scales, b, r1, s1, xScale);
    finish(y, scales, b, r2, s2, xScale); finish(y, scales, b, r3, s3, xScale);
  }
  if (rowIdx == 0) {
    // Consecutive rows: row j with row j + half, two streams (dotRowPairWide); an odd row left
    // over pairs with itself. The sums are exact, so the pairing changes no result.
    const half = (end - start) >> 1;
    for (; j < start + half; j++) dotRowPairWide(y, scales, b, <usize>j, <usize>(j + half), w, xw, cols, xScale);
    if (2 * half < end - start) {
      const r = <usize>(start + 2 * half);
      dotRowPairWide(y, scales, b, r, r, w, xw, cols, xScale);
    }
    return;
  }
  for (; j < end; j++) {
    const r = <usize>rowAt(rowIdx, j);
    finish(y, scales, b, r, dotRowWide(w + r * stride, xw, cols), xScale);
  }
}

// y is (rows) f32, w is (rows, cols) int8 row-major, scales is (rows) f32, x is (cols) int8,
// b is (rows) or 0, xw is scratch of nth · widenedBytes(cols) bytes.
// y[r] = scales[r]·xScale·Σ_c w[r, c]·x[c] + b[r].
export function matvec_i8(y: usize, w: usize, scales: usize, x: usize, xScale: f32, b: usize, rows: i32, cols: i32,
                          xw: usize, tid: i32, nth: i32): void {
  matvecListedI8(y, w, scales, x, xScale, b, 0, shareStart(rows, tid, nth), shareStart(rows, tid + 1, nth),
                 cols, xw + <usize>tid * widenedBytes(cols));
}

// As matvec_i8 for the rows rowIdx[0..count) only; threads split the list.
export function matvec_i8_rows(y: usize, w: usize, scales: usize, x: usize, xScale: f32, b: usize, rowIdx: usize,
                               count: i32, cols: i32, xw: usize, tid: i32, nth: i32): void {
  matvecListedI8(y, w, scales, x, xScale, b, rowIdx, shareStart(count, tid, nth), shareStart(count, tid + 1, nth),
                 cols, xw + <usize>tid * widenedBytes(cols));
}

// As matvec_i8 with int4 weights: w is (rows, i4RowBytes(cols)) bytes in the layout of i4RowBytes.
export function matvec_i4(y: usize, w: usize, scales: usize, x: usize, xScale: f32, b: usize, rows: i32, cols: i32,
                          tid: i32, nth: i32): void {
  const end = shareStart(rows, tid + 1, nth), stride = i4RowBytes(cols);
  for (let r = <usize>shareStart(rows, tid, nth); r < <usize>end; r++) {
    finish(y, scales, b, r, dotRowI4(w + r * stride, x, cols), xScale);
  }
}
