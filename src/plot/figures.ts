// The paper's figures as Vega-Lite specifications, from plain data (so that any model can feed them):
//   Figure 1: the insensitive regions of sigmoid and tanh at calibrated thresholds, per gate;
//   Figure 2: which gate neurons of one layer are sensitive, step by step, for two inputs.
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
