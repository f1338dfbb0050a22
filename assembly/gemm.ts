// Matrix-matrix product in fp32: C (M, N) = op(A) (M, K) · op(B) (K, N), plus the old C on request,
// where op() is an optional transpose. The compute-bound core of training and of im2col convolution.
//
// Goto/BLIS scheme: blocks of op(A) and op(B) are copied ("packed") into per-thread scratch as
// micro-panels laid out in exactly the order the micro-kernel reads them, so that all four transpose
// combinations run the same register-blocked MR×NR micro-kernel. Packing pads short panels with
// zeros; the micro-kernel then always computes a full tile and writes back only its valid part.
import { shareStart, madd } from "./common";

const MR = 4;    // rows of C per micro-tile: 8 f32x4 accumulators + 3 operands fit x64's 16 SIMD registers
const NR = 8;    // columns of C per micro-tile (two f32x4)
const KC = 256;  // depth of a packed block: one B micro-panel (KC×NR, 8 KiB) stays in L1
const MC = 128;  // rows of a packed A block (MC×KC, 128 KiB): stays in L2
const NC = 1024; // columns of a packed B block (KC×NC, 1 MiB): L2/L3

const PACK_ROWS = 32; // rows of a row-major source copied per visit to one panel (see packBlock)

const B_PACK_BYTES = KC * NC * 4;
const A_PACK_BYTES = MC * KC * 4;
const TILE_BYTES = MR * NR * 4;
const SCRATCH_BYTES = B_PACK_BYTES + A_PACK_BYTES + TILE_BYTES;

/** Bytes of scratch gemm_f32 needs per thread (the caller allocates threads × this). */
export function gemm_f32_scratch(): i32 {
  return SCRATCH_BYTES;
}

/** Copies `rows` rows of `valid` floats, zero-padding each destination row to its full length. */
// @ts-ignore: decorator
@inline function copyRows(d: usize, s: usize, srcRow: usize, dstRow: usize, rows: i32, valid: i32): void {
  const full = <usize>valid << 2 == dstRow;
  for (let p = 0; p < rows; p++) {
    if (full) {
      for (let o: usize = 0; o < dstRow; o += 16) v128.store(d + o, v128.load(s + o));
    } else {
      memory.fill(d, 0, dstRow);
      memory.copy(d, s, <usize>valid << 2);
    }
    s += srcRow;
    d += dstRow;
  }
}

/**
 * Packs a kc × cols block into panels `width` columns wide, one after another (kc × width floats
 * each): panel t holds dst[(t·kc + p)·width + q] = src[p·ks + (t·width + q)·cs], the last one padded
 * with zeros. Strides are in elements; one of them is 1, and the source is read along it.
 */
function packBlock(dst: usize, src: usize, ks: i32, cs: i32, kc: i32, cols: i32, width: i32): void {
  const dstRow = <usize>width << 2, panel = <usize>kc * dstRow;
  if (cs == 1) {
    // Block rows are contiguous in the source. Going down a few rows of one panel before moving to
    // the next keeps the reads sequential and writes whole cache lines: full panels lie 8 KiB apart,
    // so writing one row at a time across all panels would thrash a single cache set.
    const srcRow = <usize>ks << 2;
    for (let p0 = 0; p0 < kc; p0 += PACK_ROWS) {
      const rows = min(PACK_ROWS, kc - p0);
      let s = src + <usize>p0 * srcRow, d = dst + <usize>p0 * dstRow;
      for (let j = 0; j < cols; j += width) {
        copyRows(d, s, srcRow, dstRow, rows, min(width, cols - j));
        s += <usize>width << 2;
        d += panel;
      }
    }
    return;
  }
  // Block columns are contiguous in the source: transpose 4×4 blocks in registers.
  const srcCol = <usize>cs << 2;
  let d = dst;
  for (let j = 0; j < cols; j += width, d += panel) {
    const valid = min(width, cols - j);
    let q = 0;
    for (; q + 4 <= valid; q += 4) {
      const s0 = src + <usize>(j + q) * srcCol, s1 = s0 + srcCol, s2 = s1 + srcCol, s3 = s2 + srcCol;
      const dq = d + (<usize>q << 2);
      let p = 0;
      for (; p + 4 <= kc; p += 4) {
        const o = <usize>p << 2;
        const r0 = v128.load(s0 + o), r1 = v128.load(s1 + o), r2 = v128.load(s2 + o), r3 = v128.load(s3 + o);
        const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5), t1 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
        const t2 = i32x4.shuffle(r2, r3, 0, 4, 1, 5), t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
        const dp = dq + <usize>p * dstRow;
        v128.store(dp, i64x2.shuffle(t0, t2, 0, 2));
        v128.store(dp + dstRow, i64x2.shuffle(t0, t2, 1, 3));
        v128.store(dp + 2 * dstRow, i64x2.shuffle(t1, t3, 0, 2));
        v128.store(dp + 3 * dstRow, i64x2.shuffle(t1, t3, 1, 3));
      }
      for (; p < kc; p++) {
        const o = <usize>p << 2, dp = dq + <usize>p * dstRow;
        store<f32>(dp, load<f32>(s0 + o)); store<f32>(dp, load<f32>(s1 + o), 4);
        store<f32>(dp, load<f32>(s2 + o), 8); store<f32>(dp, load<f32>(s3 + o), 12);
      }
    }
    for (; q < valid; q++) {
      const s = src + <usize>(j + q) * srcCol, dq = d + (<usize>q << 2);
      for (let p = 0; p < kc; p++) store<f32>(dq + <usize>p * dstRow, load<f32>(s + (<usize>p << 2)));
    }
    for (; q < width; q++) {
      const dq = d + (<usize>q << 2);
      for (let p = 0; p < kc; p++) store<f32>(dq + <usize>p * dstRow, 0);
    }
  }
}

/** One row of a tile: two f32x4 written to c, added to what is there when `add`. */
// @ts-ignore: decorator
@inline function storeRow(c: usize, v0: v128, v1: v128, add: bool): void {
  if (add) {
    v0 = f32x4.add(v128.load(c), v0);
    v1 = f32x4.add(v128.load(c, 16), v1);
  }
  v128.store(c, v0);
  v128.store(c, v1, 16);
}

/**
 * The micro-kernel: an MR×NR tile of C from an A micro-panel (kc × MR) and a B micro-panel (kc × NR),
 * accumulated in registers. A partial tile (rows < MR or cols < NR: the edges of C) goes through
 * `tile` and only its valid part is written.
 */
function microTile(c: usize, ldc: i32, ap: usize, bp: usize, kc: i32, rows: i32, cols: i32, add: bool, tile: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c00 = madd(a, b0, c00); c01 = madd(a, b1, c01);
    a = v128.load32_splat(ap, 4);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
    a = v128.load32_splat(ap, 8);
    c20 = madd(a, b0, c20); c21 = madd(a, b1, c21);
    a = v128.load32_splat(ap, 12);
    c30 = madd(a, b0, c30); c31 = madd(a, b1, c31);
    ap += MR << 2;
    bp += NR << 2;
  }
  const ldcBytes = <usize>ldc << 2;
  if (rows == MR && cols == NR) {
    storeRow(c, c00, c01, add);
    storeRow(c + ldcBytes, c10, c11, add);
    storeRow(c + 2 * ldcBytes, c20, c21, add);
    storeRow(c + 3 * ldcBytes, c30, c31, add);
    return;
  }
  const row = NR << 2;
  storeRow(tile, c00, c01, false);
  storeRow(tile + row, c10, c11, false);
  storeRow(tile + 2 * row, c20, c21, false);
  storeRow(tile + 3 * row, c30, c31, false);
  for (let r = 0; r < rows; r++) {
    const d = c + <usize>r * ldcBytes, s = tile + <usize>r * row;
    for (let q = 0; q < cols; q++) {
      const o = <usize>q << 2;
      store<f32>(d + o, load<f32>(s + o) + (add ? load<f32>(d + o) : 0));
    }
  }
}

/**
 * c is (m, n); a is (m, k), or (k, m) when transA; b is (k, n), or (n, k) when transB; all row-major.
 * c = op(a) · op(b) (+ c when accumulate). scratch holds nth × gemm_f32_scratch() bytes.
 * Threads split the larger side of C in whole tiles, so the operand every thread packs in full is
 * the smaller one.
 */
export function gemm_f32(c: usize, a: usize, b: usize, m: i32, n: i32, k: i32,
                         transA: i32, transB: i32, accumulate: i32, scratch: usize, tid: i32, nth: i32): void {
  gemm(c, a, b, false, m, n, k, transA, transB, accumulate, scratch, tid, nth);
}

/** Floats of op(B) (k, n) packed by gemm_pack_b_f32: ceil(n / NR) panels of k × NR. */
export function gemm_f32_packed_size(n: i32, k: i32): i32 {
  return (n + NR - 1) / NR * k * NR;
}

/** Columns of one packed panel (the TypeScript side checks it against its own constant). */
export function gemm_f32_panel(): i32 {
  return NR;
}

/**
 * Packs op(b) (k, n) once for many products with it (a recurrent weight over the steps of a window):
 * bp is (ceil(n / NR), k, NR), panel t holding columns t·NR .. t·NR + NR − 1, zero-padded. b is (k, n),
 * or (n, k) when transB. Threads split the panels.
 */
export function gemm_pack_b_f32(bp: usize, b: usize, n: i32, k: i32, transB: i32, tid: i32, nth: i32): void {
  const panels = (n + NR - 1) / NR, t0 = shareStart(panels, tid, nth), t1 = shareStart(panels, tid + 1, nth);
  if (t0 >= t1 || k == 0) return;
  const sbk = transB ? 1 : n, sbj = transB ? k : 1, j0 = t0 * NR;
  packBlock(bp + ((<usize>t0 * k * NR) << 2), b + ((<usize>j0 * sbj) << 2), sbk, sbj, k, min(n, t1 * NR) - j0, NR);
}

/** gemm_f32 with op(b) already packed by gemm_pack_b_f32 into bp: no packing of B per call. */
export function gemm_f32_packed(c: usize, a: usize, bp: usize, m: i32, n: i32, k: i32,
                                transA: i32, accumulate: i32, scratch: usize, tid: i32, nth: i32): void {
  gemm(c, a, bp, true, m, n, k, transA, 0, accumulate, scratch, tid, nth);
}

// @ts-ignore: decorator
@inline function gemm(c: usize, a: usize, b: usize, packedB: bool, m: i32, n: i32, k: i32,
                      transA: i32, transB: i32, accumulate: i32, scratch: usize, tid: i32, nth: i32): void {
  let i0 = 0, i1 = m, j0 = 0, j1 = n;
  if (m >= n) {
    const tiles = (m + MR - 1) / MR;
    i0 = min(m, shareStart(tiles, tid, nth) * MR);
    i1 = min(m, shareStart(tiles, tid + 1, nth) * MR);
  } else {
    const tiles = (n + NR - 1) / NR;
    j0 = min(n, shareStart(tiles, tid, nth) * NR);
    j1 = min(n, shareStart(tiles, tid + 1, nth) * NR);
  }
  if (k == 0) {
    // An empty sum: C = 0, or unchanged when accumulating.
    if (!accumulate) for (let i = i0; i < i1; i++) memory.fill(c + ((<usize>i * n + j0) << 2), 0, <usize>(j1 - j0) << 2);
    return;
  }
  // Element strides of op(A)[i, p] (rows, depth) and op(B)[p, j] (depth, columns).
  const sai = transA ? 1 : k, sak = transA ? m : 1;
  const sbk = transB ? 1 : n, sbj = transB ? k : 1;
  const own = scratch + <usize>tid * SCRATCH_BYTES, ap = own + B_PACK_BYTES, tile = ap + A_PACK_BYTES;
  for (let jc = j0; jc < j1; jc += NC) {
    const nc = min(NC, j1 - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = min(KC, k - pc);
      const add = accumulate != 0 || pc > 0;
      // B's micro-panels of this block: packed here, or already in place (panels of depth k).
      let bp = own, panel = <usize>kc * NR << 2;
      if (packedB) {
        bp = b + ((<usize>(jc / NR) * k + pc) * NR << 2);
        panel = <usize>k * NR << 2;
      } else {
        packBlock(bp, b + ((<usize>pc * sbk + <usize>jc * sbj) << 2), sbk, sbj, kc, nc, NR);
      }
      for (let ic = i0; ic < i1; ic += MC) {
        const mc = min(MC, i1 - ic);
        packBlock(ap, a + ((<usize>ic * sai + <usize>pc * sak) << 2), sak, sai, kc, mc, MR);
        for (let jr = 0; jr < nc; jr += NR) {
          for (let ir = 0; ir < mc; ir += MR) {
            microTile(c + ((<usize>(ic + ir) * n + jc + jr) << 2), n, ap + (<usize>ir * kc << 2),
              bp + <usize>(jr / NR) * panel, kc, min(MR, mc - ir), min(NR, nc - jr), add, tile);
          }
        }
      }
    }
  }
}
