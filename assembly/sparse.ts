// Matrix-vector products over compressed rows (a pruned big module): every row, or only listed rows.
// Layout (src/kernels/sparse.ts packs it): row r is one contiguous block of `data` starting at byte
// rowPtr[r]: its n fp32 values, then their n u16 column indices, then 2 bytes of padding when n is
// odd, so every block starts 4-aligned and n = (rowPtr[r+1] − rowPtr[r]) / 6 rounded down. A
// sensitive row of a dual-module step is one read of 6n(+2) bytes.
import { shareStart, madd, hsum } from "./common";
import { rowAt } from "./matvec";

/** Σ vals[k]·x[cols[k]] over one row's n nonzeros: 4 lanes of values, x gathered lane by lane. */
@inline function dotSparseRow(block: usize, n: i32, x: usize): f32 {
  const cols = block + (<usize>n << 2);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  let k = 0;
  for (; k + 8 <= n; k += 8) {
    const v = block + (<usize>k << 2), c = cols + (<usize>k << 1);
    let g0 = f32x4.splat(load<f32>(x + (<usize>load<u16>(c) << 2)));
    g0 = f32x4.replace_lane(g0, 1, load<f32>(x + (<usize>load<u16>(c, 2) << 2)));
    g0 = f32x4.replace_lane(g0, 2, load<f32>(x + (<usize>load<u16>(c, 4) << 2)));
    g0 = f32x4.replace_lane(g0, 3, load<f32>(x + (<usize>load<u16>(c, 6) << 2)));
    let g1 = f32x4.splat(load<f32>(x + (<usize>load<u16>(c, 8) << 2)));
    g1 = f32x4.replace_lane(g1, 1, load<f32>(x + (<usize>load<u16>(c, 10) << 2)));
    g1 = f32x4.replace_lane(g1, 2, load<f32>(x + (<usize>load<u16>(c, 12) << 2)));
    g1 = f32x4.replace_lane(g1, 3, load<f32>(x + (<usize>load<u16>(c, 14) << 2)));
    a0 = madd(v128.load(v), g0, a0);
    a1 = madd(v128.load(v, 16), g1, a1);
  }
  let s = hsum(f32x4.add(a0, a1));
  for (; k < n; k++) s += load<f32>(block + (<usize>k << 2)) * load<f32>(x + (<usize>load<u16>(cols + (<usize>k << 1)) << 2));
  return s;
}

/**
 * For r = rowAt(rowIdx, j), j in thread tid's share of [0, count): y[r] = row r · x + b[r] (b = 0:
 * no bias). rowIdx = 0 means every row (count = rows), read as one stream.
 */
export function matvec_sparse_f32(y: usize, data: usize, rowPtr: usize, x: usize, b: usize, rowIdx: usize, count: i32,
                                  tid: i32, nth: i32): void {
  const end = shareStart(count, tid + 1, nth);
  for (let j = shareStart(count, tid, nth); j < end; j++) {
    const r = <usize>rowAt(rowIdx, j), p = rowPtr + (r << 2);
    const start = load<i32>(p), n = (load<i32>(p, 4) - start) / 6;
    let s = dotSparseRow(data + <usize>start, n, x);
    if (b != 0) s += load<f32>(b + (r << 2));
    store<f32>(y + (r << 2), s);
  }
}
