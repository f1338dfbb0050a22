// IEEE 754 binary16 ("half") ↔ float32 conversion on raw bits, for F16 tensors in checkpoints, and
// bfloat16 → float32 (for BF16 tensors of imported PyTorch checkpoints).
// float32 → half rounds to nearest, ties to even, keeps subnormals, overflows to ±infinity and keeps
// NaN a NaN (with its top payload bits); half → float32 is exact. Not a hot-path kernel.

/** float32 values → half-precision bit patterns. */
export function toF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = halfBits(bits[i]);
  return out;
}

/** Half-precision bit patterns → float32 values (exact: every half is a float32). */
export function fromF16(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  widenF16(src, out);
  return out;
}

// The widening loops write into `dest` (src.length elements from its start), so that a loader can
// fill its final array chunk by chunk without a float32 copy of each tensor.

/** Half-precision bit patterns → float32 values written into `dest`. */
export function widenF16(src: Uint16Array, dest: Float32Array): void {
  const bits = new Uint32Array(dest.buffer, dest.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) bits[i] = singleBits(src[i]);
}

/** bfloat16 bit patterns (the upper half of a float32) → float32 values written into `dest` (exact). */
export function widenBF16(src: Uint16Array, dest: Float32Array): void {
  const bits = new Uint32Array(dest.buffer, dest.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
}

// Largest float32 below the half overflow point: 65520 lies halfway between the largest half (65504)
// and 65536, and ties go to the even neighbour, which is infinity.
const HALF_OVERFLOW = 0x477ff000; // bits of 65520
const HALF_MIN_NORMAL = 0x38800000; // bits of 2^-14
const REBIAS = (127 - 15) << 23; // exponent bias difference, in float32 exponent position

function halfBits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const abs = f & 0x7fffffff;
  if (abs > 0x7f800000) {
    // NaN: keep the top 10 payload bits; a payload that only had low bits must stay non-zero.
    const payload = (abs >>> 13) & 0x3ff;
    return sign | 0x7c00 | (payload === 0 ? 0x200 : payload);
  }
  if (abs >= HALF_OVERFLOW) return sign | 0x7c00;
  if (abs >= HALF_MIN_NORMAL) {
    // Drop 13 mantissa bits, rounding half to even; a carry into the exponent is the right result.
    const v = abs - REBIAS;
    return sign | ((v + 0xfff + ((v >>> 13) & 1)) >>> 13);
  }
  // Half subnormal (or zero): value / 2^-24 = mantissa · 2^(exponent − 126), rounded half to even.
  const exponent = abs >>> 23;
  if (exponent < 102) return sign; // below 2^-25, half the smallest subnormal: rounds to zero
  const mantissa = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - exponent; // 14..24
  let q = mantissa >>> shift;
  const rest = mantissa & ((1 << shift) - 1), half = 1 << (shift - 1);
  if (rest > half || (rest === half && (q & 1) === 1)) q++;
  return sign | q;
}

function singleBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >>> 10) & 0x1f, mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal half: normalise, so the leading 1 becomes the implicit bit of a normal float32.
  const lead = 31 - Math.clz32(mantissa); // 0..9
  return (sign | ((lead + 103) << 23) | ((mantissa << (23 - lead)) & 0x7fffff)) >>> 0;
}
