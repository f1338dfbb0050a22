// What a dual-module run read and computed, against the dense model on the same steps: big-module
// rows and bytes, little-module bytes and multiply-adds, projection additions, and the achieved
// insensitive ratio overall, per layer and per gate.
//
// Bytes are every parameter byte a step reads: the big rows it recomputes (weights, their biases,
// an INT8 row's scale), and, on steps where the little module runs, the little module (its
// projection, weights, scales and biases) and the thresholds the selection compares against.
// Activations (the input vector, pre-activations, the list of sensitive rows) are not counted, in
// the dense step either.

export interface LayerCosts {
  rows: number;                       // gate neurons
  gates: number;                      // gate blocks of `rows / gates` neurons
  cols: number;                       // inputs per neuron
  bigBytes: (rows: number) => number; // bytes the big module reads for that many rows (weights and biases)
  littleBytes: number;                // the little module (projection, weights, scales, biases), read when it runs
  thresholdBytes: number;             // the selection's bounds, read when the little module runs
  littleMacs: number;
  projectionOps: number;              // additions of the sparse projection
}

export interface AccountingReport {
  steps: number;
  insensitiveRatio: number;
  layers: { insensitiveRatio: number; gates: number[] }[];
  /** Averages per step (all layers). */
  perStep: {
    bigRows: number; bigBytes: number; bigMacs: number;
    littleBytes: number; littleMacs: number; projectionOps: number; thresholdBytes: number;
    /** Everything a dual step reads: big + little + threshold bytes. */
    bytes: number;
    denseBytes: number; denseMacs: number;
  };
  /** Dense bytes / the dual step's bytes: the memory-access reduction. */
  memoryReduction: number;
}

export class Accounting {
  private steps = 0;
  private readonly rowsRead: number[];
  private readonly littleRuns: number[];
  private readonly gateRows: number[][];

  constructor(private readonly costs: LayerCosts[]) {
    this.rowsRead = costs.map(() => 0);
    this.littleRuns = costs.map(() => 0);
    this.gateRows = costs.map((c) => new Array<number>(c.gates).fill(0));
  }

  reset(): void {
    this.steps = 0;
    this.rowsRead.fill(0);
    this.littleRuns.fill(0);
    for (const g of this.gateRows) g.fill(0);
  }

  /** Layer l read rows rowIdx[0..count), listed in ascending order, after its little module ran (or not). */
  record(l: number, rowIdx: Int32Array, count: number, littleRan = true): void {
    const c = this.costs[l], block = c.rows / c.gates;
    this.rowsRead[l] += count;
    if (littleRan) this.littleRuns[l]++;
    let prev = 0;
    for (let g = 0; g < c.gates; g++) {
      const end = g === c.gates - 1 ? count : lowerBound(rowIdx, count, (g + 1) * block);
      this.gateRows[l][g] += end - prev;
      prev = end;
    }
  }

  endStep(): void { this.steps++; }

  report(): AccountingReport {
    const n = Math.max(this.steps, 1);
    let rows = 0, read = 0, bigBytes = 0, bigMacs = 0, littleBytes = 0, littleMacs = 0, projectionOps = 0, thresholdBytes = 0;
    let denseBytes = 0, denseMacs = 0;
    const layers = this.costs.map((c, l) => {
      rows += c.rows; read += this.rowsRead[l];
      bigBytes += c.bigBytes(this.rowsRead[l]);
      bigMacs += this.rowsRead[l] * c.cols;
      const runs = this.littleRuns[l] / n;
      littleBytes += c.littleBytes * runs; littleMacs += c.littleMacs * runs; projectionOps += c.projectionOps * runs;
      thresholdBytes += c.thresholdBytes * runs;
      denseBytes += c.bigBytes(c.rows); denseMacs += c.rows * c.cols;
      const block = c.rows / c.gates;
      return {
        insensitiveRatio: 1 - this.rowsRead[l] / (n * c.rows),
        gates: this.gateRows[l].map((g) => 1 - g / (n * block)),
      };
    });
    const perStep = {
      bigRows: read / n, bigBytes: bigBytes / n, bigMacs: bigMacs / n,
      littleBytes, littleMacs, projectionOps, thresholdBytes,
      bytes: bigBytes / n + littleBytes + thresholdBytes,
      denseBytes, denseMacs,
    };
    return {
      steps: this.steps,
      insensitiveRatio: 1 - read / (n * rows),
      layers,
      perStep,
      memoryReduction: denseBytes / perStep.bytes,
    };
  }
}

/** First j in [0, count) with a[j] ≥ value (count if none). */
function lowerBound(a: Int32Array, count: number, value: number): number {
  let lo = 0, hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < value) lo = mid + 1; else hi = mid;
  }
  return lo;
}
