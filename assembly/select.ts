// Selection of the sensitive neurons: the ones whose little-module pre-activation lies inside an
// open interval per gate block, listed in ascending order for the big module's row-sparse product.

// rowIdx is (blocks·blockSize) scratch, a is (blocks·blockSize), lo and hi are (blocks).
// Returns the count of sensitive elements; their indices are rowIdx[0 .. count).
export function select_sensitive_f32(rowIdx: usize, a: usize, lo: usize, hi: usize, blockSize: i32, blocks: i32): i32 {
  let count = 0, j = 0;
  for (let g = 0; g < blocks; g++) {
    const l = load<f32>(lo + (<usize>g << 2)), u = load<f32>(hi + (<usize>g << 2));
    for (const end = j + blockSize; j < end; j++) {
      const v = load<f32>(a + (<usize>j << 2));
      // Write every index and advance by the predicate: no branch to mispredict. count ≤ j, so
      // the store stays inside rowIdx.
      store<i32>(rowIdx + (<usize>count << 2), j);
      count += <i32>(l < v) & <i32>(v < u);
    }
  }
  return count;
}
