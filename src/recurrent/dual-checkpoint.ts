// Saving and loading a dual-module model as safetensors. The header metadata holds the stack's
// config, each little module's k, projection kind and precision, and the calibrated sensitive
// intervals; tensors hold the big weights under PyTorch's names (layers.L.weight_ih, ...) and the
// fitted little weights before quantization (little.L.Wx, ...), so a different precision can be
// chosen on load. A random projection is regenerated from its seed; a reduced-rank one is stored
// (little.L.projection.J, one tensor per block, with the blocks' column ranges in the metadata).
import type { Runtime } from "../runtime/runtime.js";
import { Stack, gateCount, layerInput, type StackConfig, type LayerWeights } from "./stack.js";
import { DenseProjector, LittleModule, RandomProjector, type ProjectionBlock } from "./little.js";
import { DualModel, type Thresholds } from "./dual.js";
import { BITS, type Bits } from "../dual/quantize.js";
import { decodeSafetensors, encodeSafetensors, floatTensor, parseMetadataJson, readFloat, type TensorData } from "../io/safetensors.js";
import { readFileChecked, writeFileAtomic } from "../io/files.js";
import { oneLine } from "../util/one-line.js";

const FORMAT = "dualmodule-rnn";
const VERSION = "1";

export interface SaveOptions {
  /** Storage type of the big weights (the little weights are stored like them). Default "F32". */
  dtype?: "F32" | "F16";
}

/** Per layer. Files written before the reduced-rank projection have no `projection`: they are "random". */
interface LittleMeta {
  k: number; bits: Bits;
  projection?: "random" | "rrr";
  seed?: number;                                            // random: the projection's seed
  blocks?: { start: number; cols: number; rows: number }[]; // rrr: what each stored block reads and writes
}

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
    const p = model.littles[l].projector;
    if (p instanceof DenseProjector) p.blocks.forEach((b, j) => { tensors[`little.${l}.projection.${j}`] = store(b.B, [b.rows, b.cols]); });
  });
  const little: LittleMeta[] = model.littles.map(({ k, bits, projector: p }) => p instanceof RandomProjector
    ? { k, bits, projection: "random", seed: p.seed }
    : { k, bits, projection: "rrr", blocks: (p as DenseProjector).blocks.map(({ start, cols, rows }) => ({ start, cols, rows })) });
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

/** `source` is the file's path, or its bytes (in a browser, a fetched ArrayBuffer). */
export async function loadDualModel(rt: Runtime, source: string | ArrayBuffer | Uint8Array, options: LoadOptions = {}): Promise<DualModel> {
  const path = typeof source === "string" ? source : "(bytes)";
  const bytes = typeof source === "string" ? await readFileChecked(source, "dual-module checkpoint") : source instanceof Uint8Array ? source : new Uint8Array(source);
  const file = decodeSafetensors(bytes, path);
  const meta = file.metadata, fail = (msg: string): never => { throw new Error(oneLine(`checkpoint ${path}: ${msg}`)); };
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

  // Every tensor is read and every field checked before anything is allocated in the runtime's heap,
  // so that a file refused part-way leaves the heap as it was.
  if (config.layers > file.tensors.size) fail(`metadata config.layers is ${config.layers}, but the file holds only ${file.tensors.size} tensors`);
  const R = gates * config.hidden;
  const weights: LayerWeights[] = [];
  for (let l = 0; l < config.layers; l++) {
    const E = layerInput(config, l);
    weights.push({
      weight_ih: readFloat(file, `layers.${l}.weight_ih`, [R, E]), weight_hh: readFloat(file, `layers.${l}.weight_hh`, [R, config.hidden]),
      bias_ih: readFloat(file, `layers.${l}.bias_ih`, [R]), bias_hh: readFloat(file, `layers.${l}.bias_hh`, [R]),
    });
  }
  const littleData = littleMeta.map((m, l) => {
    const projection = m?.projection ?? "random";
    if (!Number.isInteger(m?.k) || m.k < 1 || !BITS.includes(m.bits) || (projection !== "random" && projection !== "rrr")) {
      fail(`metadata little[${l}] must be {k ≥ 1, bits: one of ${BITS.join(", ")}, projection: "random" or "rrr"}, got ${JSON.stringify(m)}`);
    }
    if (projection === "random" && !Number.isInteger(m.seed)) fail(`metadata little[${l}].seed must be an integer for a random projection, got ${JSON.stringify(m.seed)}`);
    if (projection === "rrr" && (!Array.isArray(m.blocks) || m.blocks.length === 0)) fail(`metadata little[${l}].blocks must list the reduced-rank projection's blocks`);
    const blocks = projection === "rrr" ? m.blocks!.map((b, j) => ({ ...b, B: readFloat(file, `little.${l}.projection.${j}`, [b?.rows, b?.cols]) })) : [];
    const little = {
      Wx: readFloat(file, `little.${l}.Wx`, [R, m.k]), Wh: readFloat(file, `little.${l}.Wh`, [R, m.k]),
      bx: readFloat(file, `little.${l}.bx`, [R]), bh: readFloat(file, `little.${l}.bh`, [R]),
    };
    return { m, projection, blocks, little };
  });

  let stack!: Stack;
  try { stack = new Stack(rt, config, weights); } catch (e) { fail(`metadata config does not make a stack: ${(e as Error).message}`); }
  const littles = littleData.map(({ m, projection, blocks, little }, l) => {
    const cell = stack.layers[l];
    let projector;
    if (projection === "random") projector = new RandomProjector(rt, cell.input, cell.hidden, m.k, m.seed!);
    else try { projector = new DenseProjector(rt, cell.input, cell.hidden, m.k, blocks as ProjectionBlock[]); } catch (e) { fail(`little[${l}]: ${(e as Error).message}`); }
    try {
      return new LittleModule(rt, R, projector!, options.bits ?? m.bits, little, cell.kind === "lstm");
    } catch (e) {
      return fail(`tensors little.${l}.* do not make a little module: ${(e as Error).message}`);
    }
  });
  const model = new DualModel(rt, stack, littles);
  try { model.setThresholds(thresholds, ratio); } catch (e) { fail(`metadata thresholds: ${(e as Error).message}`); }
  return model;
}
