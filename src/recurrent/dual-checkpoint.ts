// Saving and loading a dual-module model as safetensors. The header metadata holds the stack's
// config, each little module's k, projection seed and precision, and the calibrated sensitive
// intervals;
// tensors hold the big weights under PyTorch's names (layers.L.weight_ih, ...) and the fitted
// little weights before quantization (little.L.Wx, ...), so a different precision can be chosen
// on load. The projection itself is regenerated from its seed.
import type { Runtime } from "../runtime/runtime.js";
import { Stack, gateCount, layerInput, type StackConfig, type LayerWeights } from "./stack.js";
import { LittleModule } from "./little.js";
import { DualModel, type Thresholds } from "./dual.js";
import { BITS, type Bits } from "../dual/quantize.js";
import { decodeSafetensors, encodeSafetensors, floatTensor, parseMetadataJson, readFloat, type TensorData } from "../io/safetensors.js";
import { readFileChecked, writeFileAtomic } from "../io/files.js";

const FORMAT = "dualmodule-rnn";
const VERSION = "1";

export interface SaveOptions {
  /** Storage type of the big weights (the little weights are stored like them). Default "F32". */
  dtype?: "F32" | "F16";
}

interface LittleMeta { k: number; seed: number; bits: Bits }

export async function saveDualModel(path: string, model: DualModel, options: SaveOptions = {}): Promise<void> {
  const store = (a: Float32Array, shape: number[]): TensorData => floatTensor(a, shape, options.dtype);
  const tensors: Record<string, TensorData> = {};
  model.stack.layers.forEach((cell, l) => {
    const w = cell.weights(), R = cell.rows;
    tensors[`layers.${l}.weight_ih`] = store(w.weight_ih, [R, cell.input]);
    tensors[`layers.${l}.weight_hh`] = store(w.weight_hh, [R, cell.hidden]);
    tensors[`layers.${l}.bias_ih`] = store(w.bias_ih, [R]);
    tensors[`layers.${l}.bias_hh`] = store(w.bias_hh, [R]);
    const lw = model.littles[l].weights, k = model.littles[l].k;
    tensors[`little.${l}.Wx`] = store(lw.Wx, [R, k]);
    tensors[`little.${l}.Wh`] = store(lw.Wh, [R, k]);
    tensors[`little.${l}.bx`] = store(lw.bx, [R]);
    tensors[`little.${l}.bh`] = store(lw.bh, [R]);
  });
  const little: LittleMeta[] = model.littles.map((m) => ({ k: m.k, seed: m.seed, bits: m.bits }));
  const metadata = {
    format: FORMAT, version: VERSION,
    config: JSON.stringify(model.stack.config),
    little: JSON.stringify(little),
    // JSON has no infinities; an unbounded side of an interval is written as a string.
    thresholds: JSON.stringify(model.thresholds, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v)),
    ratio: String(model.targetRatio),
  };
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export interface LoadOptions {
  /** Little-module precision to use instead of the saved one. */
  bits?: Bits;
}

export async function loadDualModel(rt: Runtime, path: string, options: LoadOptions = {}): Promise<DualModel> {
  const file = decodeSafetensors(await readFileChecked(path, "dual-module checkpoint"), path);
  const meta = file.metadata, fail = (msg: string): never => { throw new Error(`checkpoint ${path}: ${msg}`); };
  if (meta.format !== FORMAT) fail(`not a dual-module RNN checkpoint (metadata format is ${JSON.stringify(meta.format)}, expected "${FORMAT}")`);
  if (meta.version !== VERSION) fail(`format version ${meta.version} is not supported (this library reads version ${VERSION}); re-create the checkpoint with this version`);
  const config = parseMetadataJson(meta.config, "config", fail) as StackConfig;
  for (const key of ["input", "hidden", "layers", "context", "residualFrom"] as const) {
    if (!Number.isInteger(config?.[key]) || config[key] < 0) fail(`metadata config.${key} must be a non-negative integer, got ${JSON.stringify(config?.[key])}`);
  }
  if (config.kind !== "lstm" && config.kind !== "gru") fail(`metadata config.kind must be "lstm" or "gru", got ${JSON.stringify(config.kind)}`);
  if (config.bigBits !== undefined && config.bigBits !== 32 && !(config.bigBits === 8 && config.kind === "lstm")) {
    fail(`metadata config.bigBits must be 32, or 8 for an LSTM, got ${JSON.stringify(config.bigBits)}`);
  }
  const littleMeta = parseMetadataJson(meta.little, "little", fail) as LittleMeta[];
  const thresholds = parseMetadataJson(meta.thresholds, "thresholds", fail, (_k, v) => (v === "Infinity" || v === "-Infinity" ? Number(v) : v)) as Thresholds;
  const gates = gateCount(config.kind);
  if (!Array.isArray(littleMeta) || littleMeta.length !== config.layers) fail(`metadata little must list ${config.layers} layers`);
  if (!Array.isArray(thresholds) || thresholds.length !== config.layers ||
      thresholds.some((t) => !Array.isArray(t) || t.length !== gates || t.some((b) => typeof b?.lo !== "number" || typeof b?.hi !== "number"))) {
    fail(`metadata thresholds must be ${config.layers} lists of ${gates} intervals {lo, hi}`);
  }
  const ratio = Number(meta.ratio);
  if (!(ratio >= 0 && ratio < 1)) fail(`metadata ratio must be in [0, 1), got ${JSON.stringify(meta.ratio)}`);

  const R = gates * config.hidden;
  const weights: LayerWeights[] = [];
  for (let l = 0; l < config.layers; l++) {
    const E = layerInput(config, l);
    weights.push({
      weight_ih: readFloat(file, `layers.${l}.weight_ih`, [R, E]), weight_hh: readFloat(file, `layers.${l}.weight_hh`, [R, config.hidden]),
      bias_ih: readFloat(file, `layers.${l}.bias_ih`, [R]), bias_hh: readFloat(file, `layers.${l}.bias_hh`, [R]),
    });
  }
  const stack = new Stack(rt, config, weights);
  const littles = littleMeta.map((m, l) => {
    if (!Number.isInteger(m?.k) || m.k < 1 || !Number.isInteger(m.seed) || !BITS.includes(m.bits)) {
      fail(`metadata little[${l}] must be {k ≥ 1, seed: integer, bits: one of ${BITS.join(", ")}}, got ${JSON.stringify(m)}`);
    }
    const cell = stack.layers[l];
    return new LittleModule(rt, R, cell.input, cell.hidden, m.k, m.seed, options.bits ?? m.bits, {
      Wx: readFloat(file, `little.${l}.Wx`, [R, m.k]), Wh: readFloat(file, `little.${l}.Wh`, [R, m.k]),
      bx: readFloat(file, `little.${l}.bx`, [R]), bh: readFloat(file, `little.${l}.bh`, [R]),
    }, cell.kind === "lstm");
  });
  const model = new DualModel(rt, stack, littles);
  model.setThresholds(thresholds, ratio);
  return model;
}
