// Dense and row-sparse fp32 matrix-vector products: the memory-bound core of batch-1 RNN cells.
import { shareStart, madd, hsum } from "./common";

/** Dot product of one row with x; cols may be any size (scalar tail). */
// @ts-ignore: decorator
@inline function dotRow(row: usize, x: usize, cols: i32): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  let c = 0;
  for (; c + 8 <= cols; c += 8) {
    const o = <usize>c << 2;
    a0 = madd(v128.load(row + o), v128.load(x + o), a0);
    a1 = madd(v128.load(row + o, 16), v128.load(x + o, 16), a1);
  }
  let s = hsum(f32x4.add(a0, a1));
  for (; c < cols; c++) s += load<f32>(row + (<usize>c << 2)) * load<f32>(x + (<usize>c << 2));
  return s;
}

/** Four rows at once, so each load of x serves four weight streams. Writes y[0..3]. */
// @ts-ignore: decorator
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

// y is (rows), w is (rows, cols) row-major, x is (cols), b is (rows) or 0 for no bias.
export function matvec_f32(y: usize, w: usize, x: usize, b: usize, rows: i32, cols: i32, tid: i32, nth: i32): void {
  const start = shareStart(rows, tid, nth), end = shareStart(rows, tid + 1, nth);
  const stride = <usize>cols << 2;
  let r = start;
  for (; r + 4 <= end; r += 4) {
    const row = w + <usize>r * stride;
    const yr = y + (<usize>r << 2);
    dotRows4(yr, yr + 4, yr + 8, yr + 12, row, row + stride, row + 2 * stride, row + 3 * stride, x, cols);
  }
  for (; r < end; r++) store<f32>(y + (<usize>r << 2), dotRow(w + <usize>r * stride, x, cols));
  if (b != 0) for (r = start; r < end; r++) {
    const o = <usize>r << 2;
    store<f32>(y + o, load<f32>(y + o) + load<f32>(b + o));
  }
}
