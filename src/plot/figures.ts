// The paper's figures as Vega-Lite specifications, from plain data (so that any model can feed them):
//   Figure 1: the insensitive regions of sigmoid and tanh at calibrated thresholds, per gate;
//   Figure 2: which gate neurons of one layer are sensitive, step by step, for two inputs;
//   Figure 3: a convolution layer's pre-activations, exact (big) against estimated (little);
//   Figure 4: feature maps of a convolution layer, per channel, big against little.
import type { TopLevelSpec } from "vega-lite";
import type { Bounds, Region } from "../dual/calibrate.js";

/** One gate block's calibrated sensitive interval (lo, hi) of pre-activations. */
export interface GateBounds { gate: string; region: Region; bounds: Bounds }

const A_RANGE = 8; // pre-activations drawn in [−8, 8]
const CURVE_POINTS = 161;

function activation(region: Region, a: number): number {
  if (region === "sigmoid") return 1 / (1 + Math.exp(-a));
  return region === "tanh" ? Math.tanh(a) : Math.max(0, a);
}

const NAMES: Record<Region, string> = { sigmoid: "σ(a)", tanh: "tanh(a)", relu: "relu(a)" };

/** The insensitive rule in post-activation terms, e.g. "σ(a) ≤ 0.120". */
function ruleText(g: GateBounds): string {
  const { lo, hi } = g.bounds;
  if (g.region === "sigmoid") return `insensitive where σ(a) ≤ ${activation("sigmoid", lo).toFixed(3)}`;
  if (g.region === "relu") return `insensitive where a ≤ ${lo.toFixed(3)}`;
  return `insensitive where tanh a ≤ ${activation("tanh", lo).toFixed(3)} or ≥ ${activation("tanh", hi).toFixed(3)}`;
}

/** Figure 1: per gate, its activation curve over the pre-activation, the insensitive ranges shaded. */
export function insensitiveRegionsSpec(gates: GateBounds[], title: string): TopLevelSpec {
  const panels = gates.map((g) => {
    const curve = Array.from({ length: CURVE_POINTS }, (_, i) => {
      const a = -A_RANGE + (2 * A_RANGE * i) / (CURVE_POINTS - 1);
      return { a, y: activation(g.region, a) };
    });
    const clip = (v: number) => Math.max(-A_RANGE, Math.min(A_RANGE, v));
    const insensitive = [
      { a0: -A_RANGE, a1: clip(g.bounds.lo) },
      { a0: clip(g.bounds.hi), a1: A_RANGE },
    ].filter((r) => r.a1 > r.a0);
    return {
      title: { text: `gate ${g.gate} (${g.region})`, subtitle: ruleText(g) },
      width: 220, height: 160,
      layer: [
        {
          data: { values: insensitive },
          mark: { type: "rect" as const, color: "#f4a261", opacity: 0.35 },
          encoding: {
            x: { field: "a0", type: "quantitative" as const, scale: { domain: [-A_RANGE, A_RANGE] }, title: "pre-activation a" },
            x2: { field: "a1" },
          },
        },
        {
          data: { values: curve },
          mark: { type: "line" as const, color: "#264653" },
          encoding: {
            x: { field: "a", type: "quantitative" as const },
            y: { field: "y", type: "quantitative" as const, title: NAMES[g.region] },
          },
        },
      ],
    };
  });
  return { $schema: "https://vega.github.io/schema/vega-lite/v5.json", title, hconcat: panels } as TopLevelSpec;
}

/** One input's sensitivity mask: mask[t · rows + r] = 1 where row r was sensitive at step t. */
export interface MaskMap { label: string; steps: number; mask: Uint8Array }

/**
 * Figure 2: for each input, a map of steps (x) by gate neuron (y, grouped by gate), sensitive
 * neurons dark. `neurons` per gate are drawn (the first ones), so that the picture stays legible.
 */
export function sensitivityMapSpec(maps: MaskMap[], gates: string[], hidden: number, neurons: number, title: string): TopLevelSpec {
  const shown = Math.min(neurons, hidden), rows = gates.length * hidden;
  const values: { input: string; step: number; neuron: number; gate: string; state: string }[] = [];
  for (const m of maps) {
    if (m.mask.length !== m.steps * rows) {
      throw new RangeError(`sensitivityMapSpec: ${m.label}: the mask has ${m.mask.length} entries, ${m.steps} steps × ${rows} rows need ${m.steps * rows}`);
    }
    for (let t = 0; t < m.steps; t++) {
      gates.forEach((gate, g) => {
        for (let j = 0; j < shown; j++) {
          values.push({ input: m.label, step: t + 1, neuron: j, gate, state: m.mask[t * rows + g * hidden + j] ? "sensitive" : "insensitive" });
        }
      });
    }
  }
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title,
    data: { values },
    facet: {
      column: { field: "input", type: "nominal", title: null },
      row: { field: "gate", type: "nominal", sort: gates, title: "gate" },
    },
    spec: {
      width: 12 * Math.max(...maps.map((m) => m.steps)), height: 2 * shown,
      mark: "rect",
      encoding: {
        x: { field: "step", type: "ordinal", title: "step", axis: { labelAngle: 0, values: [1, 5, 10, 15, 20, 25, 30, 35] } },
        y: { field: "neuron", type: "ordinal", title: `neuron (first ${shown})`, axis: null },
        color: {
          field: "state", type: "nominal",
          scale: { domain: ["sensitive", "insensitive"], range: ["#264653", "#e9ecef"] }, title: null,
        },
      },
    },
  } as TopLevelSpec;
}

// ---------------------------------------------------------------------------------------------
// CNN figures: one convolution layer's pre-activations (Figure 3) and feature maps (Figure 4).

const SERIES = ["big (exact)", "little (estimate)"];

/** A number as axis labels print it (Unicode minus), e.g. "−0.123". */
const signed = (v: number, digits: number) => v.toFixed(digits).replace("-", "−");

/** One series' histogram over shared edges: counts[k] values fall in [edges[k], edges[k+1]). */
function binCounts(values: Float32Array, edges: number[]): number[] {
  const bins = edges.length - 1, lo = edges[0], span = edges[bins] - lo;
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor(((v - lo) / span) * bins))]++;
  return counts;
}

function checkFinite(name: string, values: Float32Array): void {
  const i = values.findIndex((v) => !Number.isFinite(v));
  if (i >= 0) throw new RangeError(`outputHistogramSpec: ${name}[${i}] is ${values[i]}; pre-activations must be finite`);
}

/**
 * Figure 3: histogram of one layer's pre-activations, exact (big) against estimated (little),
 * over `bins` shared bins of their joint range, with the calibrated threshold drawn: outputs whose
 * estimate is at or below it are insensitive (their ReLU output is skipped). Only the counts go
 * into the spec (datasets.bins: series, bin, x0, x1, count), so it stays small for any layer.
 */
export function outputHistogramSpec(big: Float32Array, little: Float32Array, threshold: number, title: string, bins = 60): TopLevelSpec {
  if (big.length === 0 || big.length !== little.length) {
    throw new RangeError(`outputHistogramSpec: big has ${big.length} values and little ${little.length}; pass the same, nonzero number of outputs from one layer`);
  }
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`outputHistogramSpec: bins is ${bins}; pass a positive integer`);
  if (!Number.isFinite(threshold)) throw new RangeError(`outputHistogramSpec: threshold is ${threshold}; pass a calibrated, finite threshold`);
  checkFinite("big", big);
  checkFinite("little", little);
  let lo = Infinity, hi = -Infinity;
  for (const a of [big, little]) for (const v of a) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (lo === hi) { lo -= 0.5; hi += 0.5; } // one value only: give its bin a width
  const edges = Array.from({ length: bins + 1 }, (_, k) => (k === bins ? hi : lo + ((hi - lo) * k) / bins));
  const rows = [big, little].flatMap((values, s) =>
    binCounts(values, edges).map((count, k) => ({ series: SERIES[s], bin: k, x0: edges[k], x1: edges[k + 1], count })));
  const share = (values: Float32Array) => {
    let n = 0;
    for (const v of values) if (v <= threshold) n++;
    return `${((100 * n) / values.length).toFixed(1)} %`;
  };
  const decades = Array.from({ length: Math.floor(Math.log10(Math.max(...rows.map((r) => r.count)))) + 1 }, (_, d) => 10 ** d);
  const x = { field: "x", type: "quantitative", title: "pre-activation", scale: { domain: [Math.min(lo, threshold), Math.max(hi, threshold)], nice: false } };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: { text: title, subtitle: `at or below the threshold: big ${share(big)}, little ${share(little)} of ${big.length.toLocaleString("en-US")} outputs`, offset: 18 },
    datasets: { bins: rows, threshold: [{ x: threshold, label: `threshold ${signed(threshold, 3)}` }] },
    width: 480, height: 260,
    layer: [
      {
        // Step lines, not bars: two overlaid outlines stay readable where bars would blend.
        // Each bin becomes its two corners (x0, count), (x1, count), drawn in bin order.
        data: { name: "bins" },
        transform: [
          { fold: ["x0", "x1"], as: ["corner", "x"] },
          { calculate: "2 * datum.bin + (datum.corner === 'x1' ? 1 : 0)", as: "order" },
        ],
        mark: { type: "line", strokeWidth: 1.5 },
        encoding: {
          x,
          // Symmetric log: a ReLU layer's pre-activations pile up near 0, and on a linear scale
          // that peak flattens the tails, where big and little disagree most. symlog, unlike log,
          // keeps empty bins (count 0) on the axis.
          y: { field: "count", type: "quantitative", title: "outputs", scale: { type: "symlog" }, axis: { values: [0, ...decades], format: ",d" } },
          order: { field: "order", type: "quantitative" },
          color: { field: "series", type: "nominal", title: null, scale: { domain: SERIES, range: ["#264653", "#e76f51"] } },
        },
      },
      {
        data: { name: "threshold" },
        mark: { type: "rule", color: "#6c757d", strokeDash: [4, 3], strokeWidth: 1.5 },
        encoding: { x },
      },
      {
        // Above the plot, where no line can run through it.
        data: { name: "threshold" },
        mark: { type: "text", baseline: "bottom", y: -3, color: "#495057" },
        encoding: { x, text: { field: "label" } },
      },
    ],
  } as TopLevelSpec;
}

/** One channel's map in one row of Figure 4; data is row-major, height × width. */
export interface FeatureMap { row: string; channel: number; height: number; width: number; data: Float32Array }

const MAP_PIXELS = 112; // target drawn size of one map's longer side

/**
 * Figure 4: a grid of feature maps, one row per `row` label (in order of first appearance), one
 * column per channel; all maps have one shape. Rows of real values (big, little) share one colour
 * domain, so that they compare pixel for pixel; a row of 0/1 values (sensitive) gets its own.
 */
export function featureMapsSpec(maps: FeatureMap[], title: string): TopLevelSpec {
  if (maps.length === 0) throw new RangeError("featureMapsSpec: no maps; pass at least one");
  const { height, width } = maps[0];
  const seen = new Set<string>();
  for (const m of maps) {
    const name = `${m.row}, channel ${m.channel}`;
    if (m.height !== height || m.width !== width) {
      throw new RangeError(`featureMapsSpec: ${name} is ${m.height}×${m.width}, the first map ${height}×${width}; pass maps of one layer`);
    }
    if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
      throw new RangeError(`featureMapsSpec: ${name} is ${height}×${width}; height and width must be positive integers`);
    }
    if (m.data.length !== height * width) {
      throw new RangeError(`featureMapsSpec: ${name}: data has ${m.data.length} entries, ${height}×${width} needs ${height * width}`);
    }
    if (seen.has(name)) throw new RangeError(`featureMapsSpec: ${name} is given twice; pass each (row, channel) once`);
    seen.add(name);
  }
  const labels = [...new Set(maps.map((m) => m.row))];
  const ofRow = (label: string) => maps.filter((m) => m.row === label);
  const binary = (label: string) => ofRow(label).every((m) => m.data.every((v) => v === 0 || v === 1));
  let lo = Infinity, hi = -Infinity;
  for (const m of maps.filter((m) => !binary(m.row))) for (const v of m.data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const cell = Math.max(1, Math.round(MAP_PIXELS / Math.max(height, width)));
  const rows = labels.map((label) => {
    const values: { row: string; channel: number; x: number; y: number; v: number }[] = [];
    for (const m of ofRow(label)) {
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) values.push({ row: label, channel: m.channel, x, y, v: m.data[y * width + x] });
      }
    }
    return {
      data: { values },
      facet: {
        row: { field: "row", type: "nominal", title: null },
        column: { field: "channel", type: "ordinal", title: null, header: { labelExpr: "'channel ' + datum.value" } },
      },
      spec: {
        width: cell * width, height: cell * height,
        mark: "rect",
        encoding: {
          x: { field: "x", type: "ordinal", axis: null },
          y: { field: "y", type: "ordinal", axis: null },
          color: {
            field: "v", type: "quantitative", title: label,
            scale: { scheme: "greys", domain: binary(label) ? [0, 1] : [lo, hi] },
            legend: { gradientLength: cell * height },
          },
        },
      },
    };
  });
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title,
    vconcat: rows,
    resolve: { scale: { color: "independent" }, legend: { color: "independent" } },
  } as TopLevelSpec;
}
