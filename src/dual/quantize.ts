// Post-training uniform symmetric quantization of the little module's weights, one scale per row:
// w ≈ scale · q with integer levels q in [−L, L], L = 2^(bits−1) − 1 (1 bit: signs ±1).
// Also the dequantized matrix (what a kernel at that precision effectively multiplies by) and the
// storage size, for the precision table. A bias vector is one row.
import * as check from "../kernels/check.js";

export type Bits = 1 | 2 | 4 | 8 | 16 | 32;
export const BITS: readonly Bits[] = [1, 2, 4, 8, 16, 32];

export interface QuantizedRows {
  bits: Bits;
  /** (rows, cols) integer levels for bits ≤ 8; null for 16 (simulated only) and 32 (the original). */
  q: Int8Array | null;
  /** (rows) w ≈ scale · level; 1 for 32 bits and for rows of zeros. */
  scales: Float32Array;
  /** (rows, cols) scale · level: the weights as a kernel at this precision sees them. */
  dequantized: Float32Array;
  /** Storage at this precision: the levels packed at `bits` each, plus a float32 scale per row below 32 bits. */
  bytes: number;
}

/**
 * Quantizes W (rows, cols) per row. With L levels a side the scale is max|w| / L and levels are
 * rounded to nearest (halves away from zero), so |w − scale·q| ≤ scale/2. One bit keeps only the
 * sign (zero counts as +) with scale mean|w|, the scale that minimises the row's squared error.
 * Rows of zeros get scale 1 and level 0 at every width (for 1 bit the one level outside ±1).
 */
export function quantizeRows(W: Float32Array, rows: number, cols: number, bits: Bits): QuantizedRows {
  const f = "quantizeRows";
  check.size(f, "rows", rows);
  check.size(f, "cols", cols);
  check.f32(f, "W", W, rows * cols);
  if (!BITS.includes(bits)) throw new RangeError(`${f}: bits must be one of ${BITS.join(", ")}, got ${bits}`);
  check.finite(f, "W", W);

  const scales = new Float32Array(rows).fill(1);
  if (bits === 32) return { bits, q: null, scales, dequantized: Float32Array.from(W), bytes: rows * cols * 4 };

  const L = bits === 1 ? 1 : 2 ** (bits - 1) - 1;
  const levels = bits <= 8 ? new Int8Array(rows * cols) : null;
  const dequantized = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = W.subarray(r * cols, (r + 1) * cols);
    let max = 0, sum = 0;
    for (let c = 0; c < cols; c++) { const a = Math.abs(row[c]); max = Math.max(max, a); sum += a; }
    if (max === 0) continue; // levels and dequantized stay 0, scale 1
    const scale = Math.fround(bits === 1 ? sum / cols : max / L);
    scales[r] = scale;
    for (let c = 0; c < cols; c++) {
      const w = row[c];
      const mag = bits === 1 ? 1 : Math.min(L, Math.floor(Math.abs(w) / scale + 0.5));
      const level = w < 0 ? 0 - mag : mag; // 0 − 0 is +0: no −0 in the dequantized weights
      if (levels) levels[r * cols + c] = level;
      dequantized[r * cols + c] = scale * level;
    }
  }
  return { bits, q: levels, scales, dequantized, bytes: Math.ceil(rows * cols * bits / 8) + 4 * rows };
}
