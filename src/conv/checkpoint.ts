// ResNet-18 weights as safetensors: every parameter under its PyTorch (torchvision) name and shape
// (resnetParameters), F32 or F16, and in the metadata the format, its version and the config, plus
// any caller's notes (how the weights were made). Batch norms are stored unfolded, as trained, so a
// checkpoint also loads into PyTorch (strict=False: num_batches_tracked is not stored).
import { type ResNetConfig, type ResNetWeights, allocateResNetWeights, checkConfig, describe, resnetParameters } from "./resnet.js";
import { type SafetensorsFile, decodeSafetensors, encodeSafetensors, floatTensor, parseMetadataJson, readFloatInto, requireFloat, withSafetensors, type TensorData } from "../io/safetensors.js";
import { writeFileAtomic } from "../io/files.js";
import { oneLine } from "../util/one-line.js";

const FORMAT = "dualmodule-resnet";
const VERSION = "1";
const RESERVED = ["format", "version", "config"];

export interface SaveResNetOptions {
  /** Storage type. Default "F32"; "F16" halves the file (weights are then rounded to half precision). */
  dtype?: "F32" | "F16";
  /** Notes kept in the metadata (e.g. the command that made the weights, the test accuracy). */
  notes?: Record<string, string>;
}

/** The parameters as safetensors tensors under their PyTorch names, in F32 or F16. */
export function resnetTensors(config: ResNetConfig, weights: ResNetWeights, dtype: "F32" | "F16" = "F32"): Record<string, TensorData> {
  checkConfig(config);
  const tensors: Record<string, TensorData> = {};
  for (const p of resnetParameters(config)) {
    const a = weights.tensors[p.name];
    if (!(a instanceof Float32Array)) throw new RangeError(`saveResNet: weight ${p.name} is missing for ${describe(config)}`);
    tensors[p.name] = floatTensor(a, p.shape, dtype);
  }
  return tensors;
}

/** The parameters of a ResNet of `config` read from a decoded file (each F32 or F16). */
export function readResNetWeights(file: SafetensorsFile, config: ResNetConfig): ResNetWeights {
  // Every tensor is found and checked before the weights are allocated: the config is metadata.
  const params = resnetParameters(config);
  for (const p of params) requireFloat(file, p.name, p.shape);
  const weights = allocateResNetWeights(config); // read (F16 widened) straight into place
  for (const p of params) {
    const data = weights.tensors[p.name];
    readFloatInto(file, p.name, p.shape, data);
    const bad = p.name.endsWith(".running_var") ? data.findIndex((v) => !(v >= 0 && v < Infinity)) : -1;
    if (bad >= 0) {
      throw new Error(oneLine(`checkpoint ${file.source}: tensor "${p.name}" element ${bad} is ${data[bad]}, ` +
        "but a batch norm's running variance is finite and ≥ 0; the file is corrupted"));
    }
  }
  return weights;
}

export function encodeResNet(config: ResNetConfig, weights: ResNetWeights, options: SaveResNetOptions = {}): Uint8Array {
  const tensors = resnetTensors(config, weights, options.dtype);
  for (const key of Object.keys(options.notes ?? {})) {
    if (RESERVED.includes(key)) throw new RangeError(`saveResNet: note "${key}" is reserved for the checkpoint's own metadata`);
  }
  return encodeSafetensors(tensors, { ...options.notes, format: FORMAT, version: VERSION, config: JSON.stringify(config) });
}

export async function saveResNet(path: string, config: ResNetConfig, weights: ResNetWeights, options: SaveResNetOptions = {}): Promise<void> {
  await writeFileAtomic(path, encodeResNet(config, weights, options));
}

export interface LoadedResNet { config: ResNetConfig; weights: ResNetWeights; notes: Record<string, string> }

/** The config and weights of a checkpoint; `source` names it in errors. */
export function decodeResNet(bytes: Uint8Array, source: string): LoadedResNet {
  return resnetFromSafetensors(decodeSafetensors(bytes, source));
}

function resnetFromSafetensors(file: SafetensorsFile): LoadedResNet {
  const source = file.source, meta = file.metadata, fail = (msg: string): never => { throw new Error(oneLine(`checkpoint ${source}: ${msg}`)); };
  if (meta.format !== FORMAT) fail(`not a ResNet checkpoint (metadata format is ${JSON.stringify(meta.format)}, expected "${FORMAT}")`);
  if (meta.version !== VERSION) fail(`format version ${meta.version} is not supported (this library reads version ${VERSION}); re-create the checkpoint with this version`);
  const config = parseMetadataJson(meta.config, "config", fail) as ResNetConfig;
  try {
    checkConfig(config);
  } catch (e) {
    return fail(`metadata config ${describeText(meta.config)} is not a valid ResNet config (${(e as Error).message})`);
  }
  const weights = readResNetWeights(file, config);
  const extra = [...file.tensors.keys()].filter((n) => !(n in weights.tensors));
  if (extra.length) fail(`tensors ${extra.slice(0, 4).join(", ")}${extra.length > 4 ? ", …" : ""} are not parameters of ${describe(config)}; the checkpoint was written for a different model`);
  const notes = Object.fromEntries(Object.entries(meta).filter(([k]) => !RESERVED.includes(k)));
  return { config, weights, notes };
}

export async function loadResNet(path: string): Promise<LoadedResNet> {
  return withSafetensors(path, "ResNet checkpoint", resnetFromSafetensors);
}

// A metadata text quoted in an error, cut short: a corrupt file can hold megabytes in one field.
function describeText(s: string): string { return JSON.stringify(s.length > 80 ? s.slice(0, 77) + "…" : s); }
