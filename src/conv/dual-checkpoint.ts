// A fitted and calibrated dual-module ResNet as one safetensors file, so that serving needs no fit:
// the ResNet's parameters under their PyTorch names (as in checkpoint.ts), every dual layer's little
// weights before quantization (little.<layer>.weight (K, k), little.<layer>.bias (K)), and in the
// metadata the config, the little-module options (projection, k, eps, bits, seed), each layer's
// threshold, the mode and the calibrated ratio. The projections are regenerated from the seed.
import { type ResNetConfig, type ResNetWeights, checkConfig } from "./resnet.js";
import { resnetTensors, readResNetWeights } from "./checkpoint.js";
import { DualResNet, type DualResNetOptions } from "./dual.js";
import type { DualBackend } from "./dual-conv.js";
import { decodeSafetensors, encodeSafetensors, floatTensor, parseMetadataJson, readFloat, type TensorData } from "../io/safetensors.js";
import { readFileChecked, writeFileAtomic } from "../io/files.js";
import { oneLine } from "../util/one-line.js";

const FORMAT = "dualmodule-dual-resnet";
const MAX_ACTIVATION = 2 ** 28;
const VERSION = "1";

/** kOption and eps as given to the constructor (null: the default); k is what they gave each layer. */
interface LittleMeta { projection: "patch" | "channel"; kOption: number | null; eps: number | null; k: number[]; bits: 4 | 8; seed: number }

export interface LoadedDualResNet { net: DualResNet; weights: ResNetWeights; ratio: number; notes: Record<string, string> }

/**
 * Writes `net` (fitted, thresholds set for `ratio`) with the ResNet `weights` it was built from.
 * F16 rounds the big and little weights to half precision.
 */
export async function saveDualResNet(path: string, net: DualResNet, weights: ResNetWeights, ratio: number,
                                     options: { dtype?: "F32" | "F16"; notes?: Record<string, string> } = {}): Promise<void> {
  const tensors: Record<string, TensorData> = resnetTensors(net.config, weights, options.dtype);
  for (const { name, dual } of net.layers) {
    if (dual.little.predictor === "seernet") throw new Error("saveDualResNet: the seernet predictor is the ResNet's own weights quantized; there is nothing to save beside the ResNet (run it with dmi eval cnn --predictor seernet)");
    const w = dual.little.weights;
    if (!w) throw new Error(`saveDualResNet: ${name} has no little weights; fit the network first (DualResNet.fit)`);
    tensors[`little.${name}.weight`] = floatTensor(w.W, [dual.K, dual.little.k], options.dtype);
    tensors[`little.${name}.bias`] = floatTensor(w.b, [dual.K], options.dtype);
  }
  const o = net.options, first = net.layers[0].dual.little;
  const little: LittleMeta = { projection: first.projection, kOption: o.k ?? null, eps: o.eps ?? null, k: net.layers.map((l) => l.dual.little.k),
    bits: first.bits as 8 | 4, seed: o.seed ?? 1 }; // 2 bits is SeerNet's only, refused above
  const metadata = {
    ...options.notes, format: FORMAT, version: VERSION, config: JSON.stringify(net.config), little: JSON.stringify(little),
    // JSON has no infinities: a layer left dense (threshold −∞) is written as a string.
    thresholds: JSON.stringify(net.layers.map((l) => (Number.isFinite(l.dual.threshold) ? l.dual.threshold : String(l.dual.threshold)))),
    mode: net.mode, ratio: String(ratio),
  };
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export async function loadDualResNet(be: DualBackend, path: string): Promise<LoadedDualResNet> {
  return decodeDualResNet(be, await readFileChecked(path, "dual-module ResNet checkpoint"), path);
}

/** The checkpoint in `bytes`; `path` names it in errors. See loadDualResNet. */
export function decodeDualResNet(be: DualBackend, bytes: Uint8Array, path: string): LoadedDualResNet {
  const file = decodeSafetensors(bytes, path);
  const meta = file.metadata, fail = (msg: string): never => { throw new Error(oneLine(`checkpoint ${path}: ${msg}`)); };
  if (meta.format !== FORMAT) {
    fail(`not a dual-module ResNet (metadata format is ${JSON.stringify(meta.format)}, expected "${FORMAT}")`
      + (meta.format === "dualmodule-resnet" ? "; it is a plain ResNet: fit one with `dmi fit cnn --checkpoint FILE --out DUAL`" : ""));
  }
  if (meta.version !== VERSION) fail(`format version ${meta.version} is not supported (this library reads version ${VERSION}); re-create it with \`dmi fit cnn\``);
  const config = parseMetadataJson(meta.config, "config", fail) as ResNetConfig;
  try { checkConfig(config); } catch (e) { fail(`metadata config is not a valid ResNet config (${(e as Error).message})`); }
  const little = parseMetadataJson(meta.little, "little", fail) as LittleMeta;
  if ((little?.projection !== "patch" && little?.projection !== "channel") || (little.bits !== 8 && little.bits !== 4) || !Number.isInteger(little.seed)
      || !Array.isArray(little.k) || (little.eps !== null && !(little.eps > 0)) || (little.kOption !== null && !(Number.isInteger(little.kOption) && little.kOption >= 1))) {
    fail(`metadata little must be {projection: "patch" | "channel", kOption: integer | null, eps: number | null, k: [...], bits: 8 | 4, seed: integer}, got ${meta.little}`);
  }
  const thresholds = (parseMetadataJson(meta.thresholds, "thresholds", fail) as unknown[])?.map?.(Number);
  if (meta.mode !== "zero" && meta.mode !== "little") fail(`metadata mode must be "zero" or "little", got ${JSON.stringify(meta.mode)}`);
  const ratio = Number(meta.ratio);
  if (!(ratio >= 0 && ratio < 1)) fail(`metadata ratio must be in [0, 1), got ${JSON.stringify(meta.ratio)}`);

  // The activations are sized by the config, which the tensors do not bound: at most 1 GiB each.
  if (config.width * config.imageSize ** 2 > MAX_ACTIVATION) {
    fail(`metadata config asks for ${config.width} × ${config.imageSize}² activations, more than ${MAX_ACTIVATION}; the header is corrupted`);
  }
  const weights = readResNetWeights(file, config);
  const options: DualResNetOptions = { projection: little.projection, bits: little.bits, seed: little.seed, mode: meta.mode as "zero" | "little" };
  if (little.kOption !== null) options.k = little.kOption;
  if (little.eps !== null) options.eps = little.eps;
  let net!: DualResNet;
  try { net = new DualResNet(be, config, weights, options); } catch (e) { fail(`the weights and options do not make a dual-module ResNet: ${(e as Error).message}`); }
  if (little.k.length !== net.layers.length || !Array.isArray(thresholds) || thresholds.length !== net.layers.length || thresholds.some(Number.isNaN)) {
    fail(`metadata little.k and thresholds must list the ${net.layers.length} dual layers, with numbers`);
  }
  net.layers.forEach(({ name, dual }, i) => {
    // k follows from the options and the layer's shape; a different one means another configuration.
    if (dual.little.k !== little.k[i]) fail(`${name}: the little module has k = ${dual.little.k} with these options, the file says ${little.k[i]}`);
    const W = readFloat(file, `little.${name}.weight`, [dual.K, dual.little.k]), b = readFloat(file, `little.${name}.bias`, [dual.K]);
    try { dual.little.setWeights(W, b); } catch (e) { fail(`tensors little.${name}.weight and .bias do not make a little module: ${(e as Error).message}`); }
    dual.threshold = thresholds[i];
  });
  const reserved = ["format", "version", "config", "little", "thresholds", "mode", "ratio"];
  return { net, weights, ratio, notes: Object.fromEntries(Object.entries(meta).filter(([key]) => !reserved.includes(key))) };
}
