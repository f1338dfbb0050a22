// Dense and row-sparse fp32 matrix-vector products: the memory-bound core of batch-1 RNN cells.
// The row-sparse kernels read only the listed rows; the split kernels return the two partial sums
// of each row on either side of a column (a GRU row is [W_ih row | W_hh row], x is [x | h]).
import { shareStart, madd, hsum } from "./common";

/**
 * Dot product of one row with x; cols may be any size (scalar tail). 128 bytes per iteration into
 * eight accumulators: for consecutive rows (dense), one weight stream per thread is what the
 * hardware prefetcher serves best (measured: 1.8x faster on one thread than four interleaved rows).
 */
@inline function dotRow(row: usize, x: usize, cols: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
  let c = 0;
  for (; c + 32 <= cols; c += 32) {
    const r = row + (<usize>c << 2), v = x + (<usize>c << 2);
    a0 = madd(v128.load(r), v128.load(v), a0);
    a1 = madd(v128.load(r, 16), v128.load(v, 16), a1);
    a2 = madd(v128.load(r, 32), v128.load(v, 32), a2);
    a3 = madd(v128.load(r, 48), v128.load(v, 48), a3);
    a4 = madd(v128.load(r, 64), v128.load(v, 64), a4);
    a5 = madd(v128.load(r, 80), v128.load(v, 80), a5);
    a6 = madd(v128.load(r, 96), v128.load(v, 96), a6);
    a7 = madd(v128.load(r, 112), v128.load(v, 112), a7);
  }
  for (; c + 4 <= cols; c += 4) {
    const o = <usize>c << 2;
    a0 = madd(v128.load(row + o), v128.load(x + o), a0);
  }
  let s = hsum(f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7))));
  for (; c < cols; c++) s += load<f32>(row + (<usize>c << 2)) * load<f32>(x + (<usize>c << 2));
  return s;
}

/**
 * Two rows far apart (one from each half of a thread's share) at once, each load of x serving both:
 * two independent weight streams per thread keep more reads in flight than one (measured on the
 * 2-core AMD EPYC VM, quiet, cold 6000×3008: 6.54 → 5.53 ms on 1 thread, 4.27 → 3.96 ms on 2).
 * Writes y0, y1; any cols (scalar tail).
 */
@inline function dotRowPair(y0: usize, y1: usize, r0: usize, r1: usize, x: usize, cols: i32): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  let c = 0;
  for (; c + 16 <= cols; c += 16) {
    const o = <usize>c << 2, v = x + o, p = r0 + o, q = r1 + o;
    const x0 = v128.load(v), x1 = v128.load(v, 16), x2 = v128.load(v, 32), x3 = v128.load(v, 48);
    a0 = madd(v128.load(p), x0, a0); a1 = madd(v128.load(p, 16), x1, a1);
    a2 = madd(v128.load(p, 32), x2, a2); a3 = madd(v128.load(p, 48), x3, a3);
    b0 = madd(v128.load(q), x0, b0); b1 = madd(v128.load(q, 16), x1, b1);
    b2 = madd(v128.load(q, 32), x2, b2); b3 = madd(v128.load(q, 48), x3, b3);
  }
  for (; c + 4 <= cols; c += 4) {
    const o = <usize>c << 2, xv = v128.load(x + o);
    a0 = madd(v128.load(r0 + o), xv, a0);
    b0 = madd(v128.load(r1 + o), xv, b0);
  }
  let s0 = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3))), s1 = hsum(f32x4.add(f32x4.add(b0, b1), f32x4.add(b2, b3)));
  for (; c < cols; c++) {
    const o = <usize>c << 2, xs = load<f32>(x + o);
    s0 += load<f32>(r0 + o) * xs;
    s1 += load<f32>(r1 + o) * xs;
  }
  store<f32>(y0, s0); store<f32>(y1, s1);
}

/**
 * Four listed rows at once, each load of x serving four weight streams: for scattered rows (the
 * row-sparse kernels), four short streams overlap their prefetch ramps (measured: 1.3x faster at
 * 50 % of rows than one row at a time). Writes y0..y3.
 */
@inline function dotRows4(y0: usize, y1: usize, y2: usize, y3: usize,
                          r0: usize, r1: usize, r2: usize, r3: usize, x: usize, cols: i32): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let c = 0;
  for (; c + 4 <= cols; c += 4) {
    const o = <usize>c << 2;
    const xv = v128.load(x + o);
    a0 = madd(v128.load(r0 + o), xv, a0);
    a1 = madd(v128.load(r1 + o), xv, a1);
    a2 = madd(v128.load(r2 + o), xv, a2);
    a3 = madd(v128.load(r3 + o), xv, a3);
  }
  let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
  for (; c < cols; c++) {
    const o = <usize>c << 2;
    const xs = load<f32>(x + o);
    s0 += load<f32>(r0 + o) * xs;
    s1 += load<f32>(r1 + o) * xs;
    s2 += load<f32>(r2 + o) * xs;
    s3 += load<f32>(r3 + o) * xs;
  }
  store<f32>(y0, s0); store<f32>(y1, s1); store<f32>(y2, s2); store<f32>(y3, s3);
}

/** Row j of a work list: rowIdx[j], or j itself when there is no list (rowIdx = 0: all rows). */
// @ts-ignore: decorator
@inline export function rowAt(rowIdx: usize, j: i32): i32 {
  return rowIdx == 0 ? j : load<i32>(rowIdx + (<usize>j << 2));
}

/**
 * For r = rowAt(rowIdx, j), j in [start, end): y1[r] = w[r, 0:split]·x[0:split] + b1[r] and, when
 * y2 != 0, y2[r] = w[r, split:cols]·x[split:cols] + b2[r]. Both parts of a row are computed while
 * that row streams by, so a split product reads memory exactly as an unsplit one does.
 */
@inline function dotListed(y1: usize, y2: usize, w: usize, x: usize, b1: usize, b2: usize, rowIdx: usize,
                           start: i32, end: i32, cols: i32, split: i32): void {
  const stride = <usize>cols << 2, skip = <usize>split << 2, rest = cols - split;
  let j = start;
  if (rowIdx != 0) for (; j + 4 <= end; j += 4) {
    const r0 = <usize>rowAt(rowIdx, j), r1 = <usize>rowAt(rowIdx, j + 1);
    const r2 = <usize>rowAt(rowIdx, j + 2), r3 = <usize>rowAt(rowIdx, j + 3);
    const w0 = w + r0 * stride, w1 = w + r1 * stride, w2 = w + r2 * stride, w3 = w + r3 * stride;
    dotRows4(y1 + (r0 << 2), y1 + (r1 << 2), y1 + (r2 << 2), y1 + (r3 << 2), w0, w1, w2, w3, x, split);
    if (y2 != 0) dotRows4(y2 + (r0 << 2), y2 + (r1 << 2), y2 + (r2 << 2), y2 + (r3 << 2),
                          w0 + skip, w1 + skip, w2 + skip, w3 + skip, x + skip, rest);
  }
  if (rowIdx == 0) {
    // Consecutive rows: row j with row j + half, two streams (dotRowPair).
    const half = (end - start) >> 1;
    for (; j < start + half; j++) {
      const r0 = <usize>j, r1 = <usize>(j + half), w0 = w + r0 * stride, w1 = w + r1 * stride;
      dotRowPair(y1 + (r0 << 2), y1 + (r1 << 2), w0, w1, x, split);
      if (y2 != 0) dotRowPair(y2 + (r0 << 2), y2 + (r1 << 2), w0 + skip, w1 + skip, x + skip, rest);
    }
    // The odd row left over pairs with itself, so every row's sum is rounded the same way
    // whatever the thread count.
    if (2 * half < end - start) {
      const r = <usize>(start + 2 * half), row = w + r * stride;
      dotRowPair(y1 + (r << 2), y1 + (r << 2), row, row, x, split);
      if (y2 != 0) dotRowPair(y2 + (r << 2), y2 + (r << 2), row + skip, row + skip, x + skip, rest);
    }
    j = end;
  }
  for (; j < end; j++) {
    const r = <usize>rowAt(rowIdx, j), row = w + r * stride;
    store<f32>(y1 + (r << 2), dotRow(row, x, split));
    if (y2 != 0) store<f32>(y2 + (r << 2), dotRow(row + skip, x + skip, rest));
  }
  addBias(y1, b1, rowIdx, start, end);
  if (y2 != 0) addBias(y2, b2, rowIdx, start, end);
}

@inline function addBias(y: usize, b: usize, rowIdx: usize, start: i32, end: i32): void {
  if (b != 0) for (let j = start; j < end; j++) {
    const o = <usize>rowAt(rowIdx, j) << 2;
    store<f32>(y + o, load<f32>(y + o) + load<f32>(b + o));
  }
}

export function matvec_f32(y: usize, w: usize, x: usize, b: usize, rows: i32, cols: i32, tid: i32, nth: i32): void {
  dotListed(y, 0, w, x, b, 0, 0, shareStart(rows, tid, nth), shareStart(rows, tid + 1, nth), cols, cols);
}

export function matvec_rows_f32(y: usize, w: usize, x: usize, b: usize, rowIdx: usize, count: i32, cols: i32,
                                tid: i32, nth: i32): void {
  dotListed(y, 0, w, x, b, 0, rowIdx, shareStart(count, tid, nth), shareStart(count, tid + 1, nth), cols, cols);
}

export function matvec_split_f32(y1: usize, y2: usize, w: usize, x: usize, b1: usize, b2: usize, rowIdx: usize,
                                 count: i32, cols: i32, split: i32, tid: i32, nth: i32): void {
  dotListed(y1, y2, w, x, b1, b2, rowIdx, shareStart(count, tid, nth), shareStart(count, tid + 1, nth), cols, split);
}
