// `dmi bench kernels`: memory read bandwidth, dense and row-sparse matrix-vector products (fp32 and
// INT8) and GEMM, on 1 and 2 threads, each beside onnxruntime (the peer) on the same shape in the
// same process where it has the operation. Also: npm run bench:kernels [-- --json FILE].
//
// Method: every measurement is a warm-up then the median of REPS timed runs. Before each timed run
// (outside the timing) a sum over a separate 256 MiB buffer (FLUSH_BYTES) evicts the caches, so every run
// starts cold, as in the paper's "cache flushed before each cell"; the bandwidth sweep itself
// (256 MiB) needs no flush. A 1 ms pause follows the flush so that spinning pool threads (ours
// or onnxruntime's) have gone to sleep and neither side runs while the other still holds a core.
// onnxruntime-node's run() is asynchronous: its time includes that dispatch and the copy of its
// outputs into JavaScript, as any caller pays them.
import { writeFileSync, renameSync } from "node:fs";
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { FLUSH_BYTES, timeMedian } from "../util/timing.js";
import { formatTable } from "../util/table.js";
import { Runtime } from "../runtime/runtime.js";
import { Rng } from "../util/random.js";
import { Progress } from "../util/progress.js";
import { OrtPeer, type OnnxModel } from "../onnx/peer.js";
import { gemmModel, matmulModel } from "../onnx/graphs.js";

// ---------------------------------------------------------------------------------------------
// Configuration

const WARMUP = 5;
const REPS = 51;                       // ≥ 50, odd so the median is one run
const THREADS = [1, 2];
const BANDWIDTH_BYTES = 256 * 2 ** 20; // far beyond L3: a pure memory read
const MATVEC_SHAPES: [number, number][] = [[6000, 3000], [4096, 2048], [4096, 3072]];
const ROW_FRACTIONS = [0.1, 0.3, 0.5, 0.7, 0.9];
const BATCH = 20, HIDDEN = 1500;       // LSTM-1500 training step: gate rows 4H, inputs [x | h] of E + H = 2H
const GATES = 4 * HIDDEN, INPUTS = 2 * HIDDEN;

interface GemmShape { label: string; m: number; n: number; k: number; transA: boolean; transB: boolean; constB: boolean }
// Y (20, 6000) = X (20, 3000) · Wᵀ; dX (20, 3000) = dY (20, 6000) · W; dW (6000, 3000) = dYᵀ · X.
// W is a weight (a constant for onnxruntime, which prepacks it); activations and gradients are fed.
const GEMM_SHAPES: GemmShape[] = [
  { label: "square", m: 512, n: 512, k: 512, transA: false, transB: false, constB: false },
  { label: "LSTM forward X·Wᵀ", m: BATCH, n: GATES, k: INPUTS, transA: false, transB: true, constB: true },
  { label: "LSTM backward dX = dY·W", m: BATCH, n: INPUTS, k: GATES, transA: false, transB: false, constB: true },
  { label: "LSTM backward dW = dYᵀ·X", m: GATES, n: INPUTS, k: BATCH, transA: true, transB: false, constB: false },
];

// ---------------------------------------------------------------------------------------------
// Results: the --json schema

interface MatvecResult {
  rows: number; cols: number; dtype: "f32" | "i8"; rows_fraction: number; threads: number;
  ours_ms: number; ort_ms: number | null;
}
interface GemmResult { m: number; n: number; k: number; threads: number; gflops: number; ort_gflops: number | null }
/** The dense fp32 product of the first shape on 1 and 2 threads, alone and beside a busy loop in another process. */
interface ContentionResult { rows: number; cols: number; threads: number; competitor: boolean; ms: number }
interface Results { bandwidth_gbps: Record<string, number>; matvec: MatvecResult[]; gemm: GemmResult[]; contention: ContentionResult[] }

// ---------------------------------------------------------------------------------------------
// Timing

/** Median ms of REPS runs after WARMUP; see stats.ts for the flush and the pause. */
function time(run: () => unknown, flush: (() => void) | null, prepare?: () => void): Promise<number> {
  return timeMedian(run, { warmup: WARMUP, reps: REPS, flush, prepare });
}

// ---------------------------------------------------------------------------------------------
// The benchmark, one thread count at a time

interface Weights { rows: number; cols: number; W: Float32Array }

/** Peers' models are built once and reused for both thread counts (encoding 72 MB takes a while). */
const models = new Map<string, OnnxModel>();
function model(key: string, build: () => OnnxModel): OnnxModel {
  let m = models.get(key);
  if (!m) { m = build(); models.set(key, m); }
  return m;
}

async function withPeer<T>(m: OnnxModel, threads: number, use: (peer: OrtPeer) => Promise<T>): Promise<T> {
  const peer = await OrtPeer.create(m, threads);
  try { return await use(peer); } finally { await peer.release(); }
}

/** A benchmark of wrong results is worthless: ours must match the peer's to fp32 rounding. */
function agree(what: string, ours: Float32Array, theirs: Float32Array): void {
  let err = 0, mag = 0;
  for (let i = 0; i < ours.length; i++) { err = Math.max(err, Math.abs(ours[i] - theirs[i])); mag = Math.max(mag, Math.abs(theirs[i])); }
  if (ours.length !== theirs.length || !(err <= 1e-4 * mag)) {
    throw new Error(`bench:kernels: ${what} differs from onnxruntime (max error ${err} for max magnitude ${mag})`);
  }
}

type Section = "matvec" | "gemm" | "contention";
const SECTIONS: Section[] = ["matvec", "gemm", "contention"];

async function benchThreads(threads: number, weights: Weights[], results: Results, progress: Progress,
                            done: { n: number }, sections: Set<Section>): Promise<string> {
  const rt = await Runtime.create({ threads });
  const k = rt.kernels, heap = rt.heap, rng = new Rng(1000 + threads);
  const step = (what: string) => progress.update(++done.n, `${threads} thread(s): ${what}`);
  try {
    // Memory read bandwidth.
    const big = heap.f32(BANDWIDTH_BYTES / 4);
    rng.fillUniform(big, 0, 1);
    const bwMs = await time(() => k.sum(big, big.length), null);
    heap.release(big);
    const bandwidth = BANDWIDTH_BYTES / bwMs / 1e6;
    results.bandwidth_gbps[String(threads)] = bandwidth;
    step("bandwidth");

    const flushBuf = heap.f32(FLUSH_BYTES / 4);
    rng.fillUniform(flushBuf, 0, 1);
    const flush = () => { k.sum(flushBuf, flushBuf.length); };

    // Matrix-vector products: dense fp32 (and the peer), dense INT8, row-sparse fp32 and INT8.
    for (const { rows, cols, W: W0 } of sections.has("matvec") ? weights : []) {
      const W = heap.copyF32(W0), x = heap.f32(cols), y = heap.f32(rows);
      rng.fillUniform(x, -1, 1);
      const Wq = heap.i8(rows * cols), scales = heap.f32(rows), xq = heap.i8(cols);
      for (let r = 0; r < rows; r++) {
        scales[r] = k.quantize(Wq.subarray(r * cols, (r + 1) * cols), W.subarray(r * cols, (r + 1) * cols), cols);
      }
      const xScale = k.quantize(xq, x, cols);
      const rowIdx = heap.i32(rows), perm = Int32Array.from({ length: rows }, (_, i) => i);
      const entry = (dtype: "f32" | "i8", rows_fraction: number, ours_ms: number, ort_ms: number | null) =>
        results.matvec.push({ rows, cols, dtype, rows_fraction, threads, ours_ms, ort_ms });

      const dense = await time(() => k.matvec(y, W, x, null, rows, cols), flush);
      await sleep(20);
      const xPlain = Float32Array.from(x);
      const ort = await withPeer(model(`matvec ${rows}x${cols}`, () => matmulModel(rows, cols, W0)), threads, async (peer) => {
        const ms = await time(() => peer.run({ A: xPlain }), flush);
        agree(`matvec ${rows}×${cols}`, y, (await peer.run({ A: xPlain })).Y);
        return ms;
      });
      entry("f32", 1, dense, ort);
      step(`matvec ${rows}×${cols} f32`);
      entry("i8", 1, await time(() => k.matvecI8(y, Wq, scales, xq, xScale, null, rows, cols), flush), null);
      step(`matvec ${rows}×${cols} i8`);

      for (const fraction of ROW_FRACTIONS) {
        const count = Math.round(fraction * rows);
        // A new random subset before every run, sorted as a selection scan would produce it.
        const pick = () => {
          for (let i = 0; i < count; i++) {
            const j = i + rng.int(rows - i);
            const t = perm[i]; perm[i] = perm[j]; perm[j] = t;
          }
          rowIdx.set(perm.subarray(0, count).sort());
        };
        entry("f32", fraction, await time(() => k.matvecRows(y, W, x, null, rowIdx, count, rows, cols), flush, pick), null);
        entry("i8", fraction, await time(() => k.matvecI8Rows(y, Wq, scales, xq, xScale, null, rowIdx, count, rows, cols), flush, pick), null);
        step(`matvecRows ${rows}×${cols} at ${Math.round(fraction * 100)} %`);
      }
      for (const a of [W, x, y, scales]) heap.release(a);
      heap.release(Wq); heap.release(xq); heap.release(rowIdx);
    }

    // GEMM. The constant B of the LSTM shapes is the 6000×3000 matrix above, as W.
    const lstmW = weights.find((w) => w.rows === GATES && w.cols === INPUTS)!.W;
    for (const s of sections.has("gemm") ? GEMM_SHAPES : []) {
      const aLen = s.m * s.k, bLen = s.k * s.n;
      const A = heap.f32(aLen), B = heap.f32(bLen), C = heap.f32(s.m * s.n);
      rng.fillUniform(A, -1, 1);
      if (s.constB) B.set(lstmW); else rng.fillUniform(B, -1, 1);
      const flops = 2 * s.m * s.n * s.k;
      const ours = await time(() => k.gemm(C, A, B, s.m, s.n, s.k, s.transA, s.transB, false), flush);
      await sleep(20);
      const Ap = Float32Array.from(A), Bp = Float32Array.from(B);
      const key = `gemm ${s.label}`;
      const ort = await withPeer(
        model(key, () => gemmModel(s.m, s.n, s.k, { transA: s.transA, transB: s.transB, B: s.constB ? Bp : undefined })),
        threads, async (peer) => {
          const feeds: Record<string, Float32Array> = s.constB ? { A: Ap } : { A: Ap, B: Bp };
          const ms = await time(() => peer.run(feeds), flush);
          agree(key, C, (await peer.run(feeds)).Y);
          return ms;
        });
      results.gemm.push({ m: s.m, n: s.n, k: s.k, threads, gflops: flops / ours / 1e6, ort_gflops: flops / ort / 1e6 });
      heap.release(A); heap.release(B); heap.release(C);
      step(`gemm ${s.label}`);
    }
    heap.release(flushBuf);
    return rt.variant;
  } finally {
    await rt.close();
  }
}

/**
 * What a second thread costs when another process competes for the cores: the dense fp32 product
 * of `w` on 1 and 2 threads, each alone and beside a busy loop in a child process (one core's
 * worth of competition on this 2-core machine), in interleaved rounds.
 */
async function benchContention(w: Weights, results: Results): Promise<void> {
  const rt = await Runtime.create({ threads: 2 });
  const k = rt.kernels, heap = rt.heap, { rows, cols } = w;
  const W = heap.copyF32(w.W), x = heap.f32(cols).fill(0.5), y = heap.f32(rows);
  const flushBuf = heap.f32(FLUSH_BYTES / 4).fill(1);
  const flush = () => { k.sum(flushBuf, flushBuf.length); };
  try {
    for (const competitor of [false, true]) {
      const busy = competitor ? spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" }) : null;
      try {
        if (busy) await sleep(200); // let it start spinning
        for (const threads of THREADS) {
          rt.pool.active = threads;
          const ms = await time(() => k.matvec(y, W, x, null, rows, cols), flush);
          results.contention.push({ rows, cols, threads, competitor, ms });
        }
      } finally {
        busy?.kill();
      }
    }
  } finally {
    await rt.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Report


const fmt = (v: number | null, digits = 2) => (v === null ? "-" : v.toFixed(digits));

function report(results: Results, variant: string): string {
  const out: string[] = [];
  out.push(`dualmodule kernel benchmark: ${variant} SIMD build, onnxruntime-node peer; median of ${REPS} runs after ${WARMUP} warm-up.`);
  out.push(`Every timed run below except the bandwidth sweep is cold: a sum over a separate ${FLUSH_BYTES / 2 ** 20} MiB buffer precedes it.`);
  out.push(`GB = 10^9 bytes. GB/s counts weight bytes read. Peer ("ORT") times include onnxruntime-node's async dispatch and`);
  out.push(`the copy of its output into JavaScript (72 MB for dW).`);
  out.push("");
  out.push("Memory read bandwidth (sum over 256 MiB f32)");
  for (const [t, g] of Object.entries(results.bandwidth_gbps)) {
    // A reference that is not ours: onnxruntime's dense MatMul over the same weights, cold.
    const ort = results.matvec.filter((r) => String(r.threads) === t && r.ort_ms !== null)
      .map((r) => (r.rows * r.cols * 4) / r.ort_ms! / 1e6);
    out.push(`  ${t} thread(s): ${g.toFixed(1)} GB/s` + (ort.length ? `; onnxruntime's MatMul (cold, dense f32) reads ${Math.max(...ort).toFixed(1)} GB/s` : ""));
  }
  out.push("  (a native C++ read of 256 MiB: scripts/stream-read.cpp)");
  out.push("");

  const rows: string[][] = [];
  for (const r of results.matvec) {
    const same = (dtype: string, f: number) =>
      results.matvec.find((q) => q.rows === r.rows && q.cols === r.cols && q.threads === r.threads && q.dtype === dtype && q.rows_fraction === f)!;
    const bytes = Math.round(r.rows_fraction * r.rows) * r.cols * (r.dtype === "f32" ? 4 : 1);
    const gbps = bytes / r.ours_ms / 1e6;
    rows.push([
      String(r.threads), `${r.rows}×${r.cols}`, r.dtype,
      `${Math.round(r.rows_fraction * 100)} %`,
      r.ours_ms.toFixed(3), gbps.toFixed(1), `${Math.round((100 * gbps) / results.bandwidth_gbps[String(r.threads)])} %`,
      r.ort_ms === null ? "-" : r.ort_ms.toFixed(3), r.ort_ms === null ? "-" : (r.ours_ms / r.ort_ms).toFixed(2),
      r.rows_fraction < 1 ? (r.ours_ms / same(r.dtype, 1).ours_ms).toFixed(2) : "-",
      r.dtype === "i8" && r.rows_fraction === 1 ? (r.ours_ms / same("f32", 1).ours_ms).toFixed(2) : "-",
    ]);
  }
  if (rows.length > 0) {
    out.push("Matrix-vector products, batch 1 (ms); /dense = time over dense of the same dtype; i8/f32 = dense INT8 over dense fp32");
    out.push(formatTable(["threads", "shape", "dtype", "rows", "ours ms", "GB/s", "% of bw", "ORT ms", "ours/ORT", "/dense", "i8/f32"], rows));
    out.push("");
  }

  if (results.contention.length > 0) {
    const c = results.contention, at = (t: number, comp: boolean) => c.find((r) => r.threads === t && r.competitor === comp)!.ms;
    out.push(`Under contention: dense f32 ${c[0].rows}×${c[0].cols} (ms), alone and beside a busy loop in another process`);
    out.push(formatTable(["threads", "alone ms", "beside a busy loop ms", "slowdown"],
      THREADS.map((t) => [String(t), at(t, false).toFixed(3), at(t, true).toFixed(3), (at(t, true) / at(t, false)).toFixed(2)])));
    out.push(`2 threads over 1 thread beside the busy loop: ${(at(2, true) / at(1, true)).toFixed(2)} (the pool's calling thread takes over shares no worker has started)`);
    out.push("");
  }

  if (results.gemm.length === 0) return out.join("\n");
  out.push("GEMM, C (m, n) = op(A) (m, k) · op(B) (k, n) (GFLOP/s, 2mnk per product)");
  out.push(formatTable(["threads", "product", "m×n×k", "ours GFLOP/s", "ORT GFLOP/s", "ours/ORT"],
    results.gemm.map((g) => {
      const s = GEMM_SHAPES.find((q) => q.m === g.m && q.n === g.n && q.k === g.k)!;
      return [String(g.threads), s.label, `${g.m}×${g.n}×${g.k}`, g.gflops.toFixed(1), fmt(g.ort_gflops, 1),
        g.ort_gflops === null ? "-" : (g.gflops / g.ort_gflops).toFixed(2)];
    })));
  return out.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Command line

const USAGE = `dmi bench kernels [--only ${SECTIONS.join(",")}] [--json FILE] (or npm run bench:kernels [-- --json FILE])`;

function parseArgs(argv: string[]): { json: string | null; help: boolean; sections: Set<Section> } {
  let json: string | null = null, help = false, sections = new Set(SECTIONS);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--json" && i + 1 < argv.length) json = argv[++i];
    else if (argv[i] === "--only" && i + 1 < argv.length) {
      const names = argv[++i].split(",");
      for (const n of names) if (!SECTIONS.includes(n as Section)) throw new Error(`bench kernels: --only takes ${SECTIONS.join(", ")}, got ${n}`);
      sections = new Set(names as Section[]);
    } else if (argv[i] === "--help") help = true;
    else throw new Error(`bench kernels: unknown argument ${argv[i]}; usage: ${USAGE}`);
  }
  return { json, help, sections };
}

export async function main(argv: string[]): Promise<void> {
  const { json, help, sections } = parseArgs(argv);
  if (help) { console.log(USAGE); return; }
  const rng = new Rng(7);
  const weights: Weights[] = MATVEC_SHAPES.map(([rows, cols]) => {
    const W = new Float32Array(rows * cols);
    rng.fillUniform(W, -1, 1);
    return { rows, cols, W };
  });
  const perThreads = 1 + (sections.has("matvec") ? MATVEC_SHAPES.length * (2 + ROW_FRACTIONS.length) : 0)
    + (sections.has("gemm") ? GEMM_SHAPES.length : 0);
  const progress = new Progress("bench:kernels", THREADS.length * perThreads, "measurements");
  const results: Results = { bandwidth_gbps: {}, matvec: [], gemm: [], contention: [] };
  const done = { n: 0 };
  const variants = new Set<string>();
  for (const t of THREADS) variants.add(await benchThreads(t, weights, results, progress, done, sections));
  if (sections.has("contention")) await benchContention(weights[0], results);
  console.log(report(results, [...variants].join("/")));
  if (json) {
    const tmp = `${json}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(results, null, 2) + "\n");
    renameSync(tmp, json);
    console.log(`\nwrote ${json}`);
  }
}
