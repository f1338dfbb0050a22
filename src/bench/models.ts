// The recurrent shapes the benchmarks run (the paper's), and their random models: PyTorch's
// initialisation (uniform ±1/√H) and Gaussian step inputs. Benchmarks that use them say so.
import type { StackConfig, LayerWeights } from "../recurrent/stack.js";
import { gateCount, layerInput } from "../recurrent/stack.js";
import { Rng } from "../util/random.js";

export type CellName = "lstm" | "gru" | "gnmt-layer" | "gnmt-stack";

export interface Shape { cell: CellName; config: StackConfig }

/** The paper's shapes: LSTM/GRU LMs (H = E = 750, 1500), GNMT decoder layers and the 4-layer decoder. */
export const SHAPES: Shape[] = [
  ...(["lstm", "gru"] as const).flatMap((kind) => [750, 1500].map((h): Shape => ({
    cell: kind, config: { kind, input: h, hidden: h, layers: 1, context: 0, residualFrom: 1 },
  }))),
  ...[1024, 2048].map((input): Shape => ({
    cell: "gnmt-layer", config: { kind: "lstm", input, hidden: 1024, layers: 1, context: 0, residualFrom: 1 },
  })),
  // GNMT's decoder: every layer reads [below (1024) | attention context (1024)]; residuals from the third layer.
  { cell: "gnmt-stack", config: { kind: "lstm", input: 1024, hidden: 1024, layers: 4, context: 1024, residualFrom: 2 } },
];

/** The input size the tables report: what one layer reads besides h ([x | context] for the stack). */
export function benchInput(s: Shape): number { return s.config.input + s.config.context; }

/** The shapes matching the --cell, --hidden and --input filters (each undefined = any). */
export function selectShapes(cells?: string[], hiddens?: number[], inputs?: number[]): Shape[] {
  for (const c of cells ?? []) {
    if (!SHAPES.some((s) => s.cell === c)) throw new Error(`--cell: unknown cell ${c} (lstm, gru, gnmt-layer, gnmt-stack)`);
  }
  const shapes = SHAPES.filter((s) => (!cells || cells.includes(s.cell)) &&
    (!hiddens || hiddens.includes(s.config.hidden)) && (!inputs || inputs.includes(benchInput(s))));
  if (shapes.length === 0) throw new Error("no shape matches --cell/--hidden/--input");
  return shapes;
}

/** Random weights for every layer and a generator of random step inputs, seeded by the shape. */
export function randomModel(shape: Shape): { weights: LayerWeights[]; sequence: (steps: number) => Float32Array[] } {
  const c = shape.config, rng = new Rng(c.hidden * 7 + c.input + c.layers);
  const weights = Array.from({ length: c.layers }, (_, l) => randomWeights(rng, c, l));
  const sequence = (steps: number) => Array.from({ length: steps }, () => randn(rng, c.input + c.context));
  return { weights, sequence };
}

function randomWeights(rng: Rng, config: StackConfig, l: number): LayerWeights {
  const R = gateCount(config.kind) * config.hidden, E = layerInput(config, l), bound = 1 / Math.sqrt(config.hidden);
  const u = (n: number) => { const a = new Float32Array(n); rng.fillUniform(a, -bound, bound); return a; };
  return { weight_ih: u(R * E), weight_hh: u(R * config.hidden), bias_ih: u(R), bias_hh: u(R) };
}

function randn(rng: Rng, n: number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.normal();
  return x;
}

