// One dual-module LSTM step in one pool call: the threads run projection → little module →
// selection → big rows → state update with barriers in shared memory between the phases, instead
// of one fork/join (and one trip through JavaScript) per phase. The phases are the separate
// kernels' own code, so each computes what the separate kernels compute.
//
// The plan is an i32 block (slots below) written once per layer by src/kernels/dual-step.ts;
// pointers are byte offsets. Little weights are INT8 over the sparse ternary projection; big
// weights fp32 or INT8 (bigBits).
import { shareStart } from "./common";
import { project_ternary_f32 } from "./elementwise";
import { lstm_gates_f32 } from "./elementwise";
import { matvec_f32, matvec_rows_f32 } from "./matvec";
import { quantize_i8, matvec_i8, matvec_i8_rows, widenedBytes } from "./quant";

// Plan slots (i32 index); keep in step with PLAN in src/kernels/dual-step.ts.
// The projection's scale is a float64 at slots 28–29 (as the separate kernel takes it).
const XH = 0, COLS = 1, H = 2, OFFSETS = 3, INDICES = 4, K2 = 5, PSCALE = 28, P = 7,
  LW = 8, LSCALES = 9, LB = 10, PQ = 11, PRE = 12, LO = 13, HI = 14, ROWIDX = 15, COUNTS = 16,
  BIGBITS = 17, BW = 18, BSCALES = 19, BB = 20, XHQ = 21, XHSCALE = 22, XW = 23, HH = 24, CC = 25,
  BARRIER = 26, TOTAL = 27;

@inline function slot(plan: usize, i: i32): i32 { return load<i32>(plan + (<usize>i << 2)); }
@inline function ptr(plan: usize, i: i32): usize { return <usize>load<i32>(plan + (<usize>i << 2)); }

/** Spins this many times at most for the other threads (seconds): past that a thread died mid-step. */
const BARRIER_SPINS: i32 = 0x7fffffff;

/**
 * Waits until all nth threads have arrived (a counter and a generation in two i32 at bar). The
 * threads of one step all run at once (each claimed its share when the call began), so this only spins.
 */
function barrier(bar: usize, nth: i32): void {
  if (nth == 1) return;
  const gen = atomic.load<i32>(bar, 4);
  if (atomic.add<i32>(bar, 1) == nth - 1) {
    atomic.store<i32>(bar, 0);
    atomic.add<i32>(bar, 1, 4);
    return;
  }
  for (let spin = 0; atomic.load<i32>(bar, 4) == gen; spin++) if (spin == BARRIER_SPINS) unreachable();
}

/** Bytes of one thread's copy of the quantized projection. */
@inline function padded(n: i32): usize { return (<usize>n + 63) & ~<usize>63; }

export function lstm_dual_step(plan: usize, tid: i32, nth: i32): void {
  const hidden = slot(plan, H), rows = 4 * hidden, cols = slot(plan, COLS), k2 = slot(plan, K2);
  const xh = ptr(plan, XH), pre = ptr(plan, PRE), rowIdx = ptr(plan, ROWIDX), counts = ptr(plan, COUNTS);
  const bar = ptr(plan, BARRIER), bits = slot(plan, BIGBITS), xhq = ptr(plan, XHQ), xw = ptr(plan, XW);

  // 1. Projection, rows split; thread 0 also quantizes [x | h] for INT8 big weights.
  project_ternary_f32(ptr(plan, P), xh, ptr(plan, OFFSETS), ptr(plan, INDICES), load<f64>(plan + (<usize>PSCALE << 2)), k2, tid, nth);
  if (bits == 8 && tid == 0) store<f32>(plan + (<usize>XHSCALE << 2), quantize_i8(xhq, xh, cols));
  barrier(bar, nth);

  // 2. Each thread quantizes the projection into its own copy, estimates its share of the rows
  //    and lists its sensitive ones in its own segment of rowIdx (from its first row on).
  const pq = ptr(plan, PQ) + <usize>tid * padded(k2);
  const pScale = quantize_i8(pq, ptr(plan, P), k2);
  matvec_i8(pre, ptr(plan, LW), ptr(plan, LSCALES), pq, pScale, ptr(plan, LB), rows, k2, xw, tid, nth);
  const r0 = shareStart(rows, tid, nth), r1 = shareStart(rows, tid + 1, nth), lo = ptr(plan, LO), hi = ptr(plan, HI);
  let n = 0;
  for (let r = r0; r < r1; r++) {
    const g = <usize>(r / hidden) << 2, v = load<f32>(pre + (<usize>r << 2));
    // As select_sensitive_f32: write every index, advance by the predicate (n ≤ r − r0 stays in the segment).
    store<i32>(rowIdx + (<usize>(r0 + n) << 2), r);
    n += <i32>(load<f32>(lo + g) < v) & <i32>(v < load<f32>(hi + g));
  }
  store<i32>(counts + (<usize>tid << 2), n);
  barrier(bar, nth);

  // 3. The big module: every row sensitive is the dense product (as the separate step does);
  //    otherwise the segments, read as one list, are split evenly between the threads.
  let total = 0;
  for (let u = 0; u < nth; u++) total += load<i32>(counts + (<usize>u << 2));
  const W = ptr(plan, BW), scales = ptr(plan, BSCALES), b = ptr(plan, BB), xScale = load<f32>(plan + (<usize>XHSCALE << 2));
  if (total == rows) {
    if (bits == 8) matvec_i8(pre, W, scales, xhq, xScale, b, rows, cols, xw, tid, nth);
    else matvec_f32(pre, W, xh, b, rows, cols, tid, nth);
  } else {
    const from = shareStart(total, tid, nth), to = shareStart(total, tid + 1, nth);
    const myXw = xw + <usize>tid * widenedBytes(cols);
    let at = 0; // position of segment u in the joined list
    for (let u = 0; u < nth && at < to; u++) {
      const count = load<i32>(counts + (<usize>u << 2)), a = max(from, at), e = min(to, at + count);
      if (a < e) {
        const list = rowIdx + (<usize>(shareStart(rows, u, nth) + a - at) << 2);
        if (bits == 8) matvec_i8_rows(pre, W, scales, xhq, xScale, b, list, e - a, cols, myXw, 0, 1);
        else matvec_rows_f32(pre, W, xh, b, list, e - a, cols, 0, 1);
      }
      at += count;
    }
  }
  barrier(bar, nth);

  // 4. The state update; thread 0 also joins the segments into one ascending list.
  if (tid == 0) {
    let at = load<i32>(counts);
    for (let u = 1; u < nth; u++) {
      const count = load<i32>(counts + (<usize>u << 2));
      memory.copy(rowIdx + (<usize>at << 2), rowIdx + (<usize>shareStart(rows, u, nth) << 2), <usize>count << 2);
      at += count;
    }
    store<i32>(plan + (<usize>TOTAL << 2), total);
  }
  lstm_gates_f32(ptr(plan, HH), ptr(plan, CC), pre, hidden, tid, nth);
}
