// Helpers shared by every kernel file: work splitting and the multiply-add that the relaxed build
// fuses. Built twice (plain SIMD and relaxed SIMD); ASC_FEATURE_RELAXED_SIMD picks at compile time.

/** First item of thread `tid`'s share of `n` items split into `nth` near-equal contiguous parts. */
// @ts-ignore: decorator
@inline export function shareStart(n: i32, tid: i32, nth: i32): i32 {
  return <i32>((<i64>n * tid) / nth);
}

/** a * b + c, fused (one rounding) where relaxed SIMD is on. */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Sum of the four lanes. */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}
