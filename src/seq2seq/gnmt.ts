// The GNMT model (NVIDIA's GNMT v2 topology, Wu et al. 2016 as in DeepLearningExamples' PyTorch GNMT),
// scaled: its configuration, one flat parameter array cut into named views, the initialisation and
// the checkpoint (safetensors, PyTorch-like names, the BPE and the training record in the metadata).
//
// Topology, width H everywhere (embedding E = H):
//   encoder: one bidirectional LSTM layer (H per direction, output 2H), then encoderLayers − 1
//            unidirectional layers (the first reads 2H), residual connections from the third layer on;
//   decoder: decoderLayers LSTM layers; layer 0 reads the target embedding; normalized Bahdanau
//            attention is computed from layer 0's output over the encoder's top outputs; every higher
//            layer reads [output below | attention context]; residual connections from the third on;
//   classifier: logits = W·h + b over the shared vocabulary.
// One embedding table serves source and target (the BPE is shared, src/seq2seq/bpe.ts): as NVIDIA's
// share_embedding; the classifier has its own weights.
// Not here: the training graph (graph.ts), training (train.ts), decoding (translate.ts).
import * as check from "../kernels/check.js";
import { Rng } from "../util/random.js";
import { readFileChecked, writeFileAtomic } from "../io/files.js";
import { decodeSafetensors, encodeSafetensors, floatTensor, parseMetadataJson, readFloat, requireTensor,
  type SafetensorsFile, type TensorData } from "../io/safetensors.js";
import { oneLine } from "../util/one-line.js";
import { BPE_METADATA_KEY, Bpe } from "./bpe.js";
import type { LstmWeights } from "../recurrent/lstm.js";
import { type ParamSpec as LmParamSpec, flatSize, layOut } from "../recurrent/lm.js";

export interface GnmtConfig {
  vocab: number;          // shared BPE vocabulary size
  hidden: number;         // H: embedding, every LSTM layer, attention
  encoderLayers: number;  // ≥ 2: the bidirectional layer counts as one
  decoderLayers: number;  // ≥ 2
}

/** NVIDIA's GNMT v2 depths (4 + 4). */
export const GNMT_LAYERS = { encoderLayers: 4, decoderLayers: 4 };
/** Layers from this index on (in encoder and decoder) add their input to their output. */
export const RESIDUAL_FROM = 2;

export function checkConfig(c: GnmtConfig, where: string): void {
  check.size(where, "vocab", c?.vocab, 4);
  check.size(where, "hidden", c.hidden, 1);
  check.size(where, "encoderLayers", c.encoderLayers, 2);
  check.size(where, "decoderLayers", c.decoderLayers, 2);
}

/** Input size of encoder layer l (l ≥ 1; layer 0 reads the embedding, H) and of decoder layer l. */
export function encoderInput(c: GnmtConfig, l: number): number { return l === 1 ? 2 * c.hidden : c.hidden; }
export function decoderInput(c: GnmtConfig, l: number): number { return l === 0 ? c.hidden : 2 * c.hidden; }

// ---------------------------------------------------------------------------------------------------
// Weights: one flat array, cut into named views by one size table

type Init = "uniform" | "zero" | "scalar";

export type ParamSpec = LmParamSpec<Init>;

function lstmEntries(prefix: string, input: number, H: number, suffix = ""): [string, number[], Init][] {
  return [
    [`${prefix}.weight_ih_l0${suffix}`, [4 * H, input], "uniform"],
    [`${prefix}.weight_hh_l0${suffix}`, [4 * H, H], "uniform"],
    [`${prefix}.bias_ih_l0${suffix}`, [4 * H], "uniform"],
    [`${prefix}.bias_hh_l0${suffix}`, [4 * H], "uniform"],
  ];
}

/** Every parameter in storage order, under the names of NVIDIA's PyTorch GNMT (share_embedding). */
export function paramTable(c: GnmtConfig): ParamSpec[] {
  const H = c.hidden, V = c.vocab;
  const entries: [string, number[], Init][] = [["embedder.weight", [V, H], "uniform"]];
  entries.push(...lstmEntries("encoder.rnn_layers.0", H, H), ...lstmEntries("encoder.rnn_layers.0", H, H, "_reverse"));
  for (let l = 1; l < c.encoderLayers; l++) entries.push(...lstmEntries(`encoder.rnn_layers.${l}`, encoderInput(c, l), H));
  entries.push(...lstmEntries("decoder.att_rnn.rnn", H, H),
    ["decoder.att_rnn.attn.linear_q.weight", [H, H], "uniform"],
    ["decoder.att_rnn.attn.linear_k.weight", [H, H], "uniform"],
    ["decoder.att_rnn.attn.linear_att", [H], "uniform"],
    ["decoder.att_rnn.attn.normalize_scalar", [1], "scalar"],
    ["decoder.att_rnn.attn.normalize_bias", [H], "zero"]);
  for (let l = 1; l < c.decoderLayers; l++) entries.push(...lstmEntries(`decoder.rnn_layers.${l - 1}`, 2 * H, H));
  entries.push(["decoder.classifier.classifier.weight", [V, H], "uniform"], ["decoder.classifier.classifier.bias", [V], "zero"]);
  return layOut(entries);
}

export function paramCount(c: GnmtConfig): number { return flatSize(paramTable(c)); }

export interface Attention {
  linearQ: Float32Array;  // (H, H)
  linearK: Float32Array;  // (H, H)
  linearAtt: Float32Array; // (H) the score vector a; the score uses g·a/‖a‖
  scalar: Float32Array;   // (1) g, initialised to 1/√H
  bias: Float32Array;     // (H) added inside the tanh
}

/** Named views of a flat parameter (or gradient) array; they alias it. */
export interface GnmtParams {
  embedding: Float32Array;   // (V, H), source and target
  encoder: LstmWeights[];    // [layer 0 forward, layer 0 reverse, layer 1, …]: encoderLayers + 1 entries
  decoder: LstmWeights[];    // decoderLayers entries
  attention: Attention;
  classifier: Float32Array;  // (V, H)
  classifierBias: Float32Array; // (V)
}

export function viewParams(c: GnmtConfig, flat: Float32Array): GnmtParams {
  check.f32("viewParams", "flat", flat, paramCount(c));
  const v = new Map(paramTable(c).map((s) => [s.name, flat.subarray(s.offset, s.offset + s.size)]));
  const get = (name: string) => v.get(name)!;
  const lstm = (prefix: string, suffix = ""): LstmWeights => ({
    weight_ih: get(`${prefix}.weight_ih_l0${suffix}`), weight_hh: get(`${prefix}.weight_hh_l0${suffix}`),
    bias_ih: get(`${prefix}.bias_ih_l0${suffix}`), bias_hh: get(`${prefix}.bias_hh_l0${suffix}`),
  });
  const a = "decoder.att_rnn.attn";
  return {
    embedding: get("embedder.weight"),
    encoder: [lstm("encoder.rnn_layers.0"), lstm("encoder.rnn_layers.0", "_reverse"),
      ...Array.from({ length: c.encoderLayers - 1 }, (_, l) => lstm(`encoder.rnn_layers.${l + 1}`))],
    decoder: [lstm("decoder.att_rnn.rnn"), ...Array.from({ length: c.decoderLayers - 1 }, (_, l) => lstm(`decoder.rnn_layers.${l}`))],
    attention: { linearQ: get(`${a}.linear_q.weight`), linearK: get(`${a}.linear_k.weight`), linearAtt: get(`${a}.linear_att`),
      scalar: get(`${a}.normalize_scalar`), bias: get(`${a}.normalize_bias`) },
    classifier: get("decoder.classifier.classifier.weight"),
    classifierBias: get("decoder.classifier.classifier.bias"),
  };
}

/** NVIDIA's initialisation: uniform ±0.1 everywhere, the attention's normalize_scalar 1/√H, its bias and the classifier's 0. */
export function initParams(c: GnmtConfig, flat: Float32Array, seed: number): void {
  check.f32("initParams", "flat", flat, paramCount(c));
  const rng = new Rng(seed);
  for (const s of paramTable(c)) {
    const view = flat.subarray(s.offset, s.offset + s.size);
    if (s.init === "zero") view.fill(0);
    else if (s.init === "scalar") view.fill(1 / Math.sqrt(c.hidden));
    else rng.fillUniform(view, -0.1, 0.1);
  }
}

// ---------------------------------------------------------------------------------------------------
// Checkpoint: safetensors with the config, the BPE and the training record in the metadata

export const NMT_FORMAT = "dualmodule-nmt";
const VERSION = "1";

/** How the weights were trained; `epoch` counts completed epochs. */
export interface NmtTrainingInfo {
  corpus: string;
  seed: number;
  epoch: number;         // completed epochs
  step: number;          // optimiser steps taken
  epochs: number;        // planned in total
  batch: number;         // sentence pairs per batch
  maxLength: number;     // longer training pairs (either side, in tokens) are left out
  lr: number;            // peak learning rate
  schedule: { lr: number; warmup: number; remain: number; decays: number; factor: number };
  clip: number;
  dropout: number;
  smoothing: number;
  bestValidBleu: number | null;
  history: { epoch: number; trainLoss: number; validLoss: number; validBleu: number; seconds: number }[];
}

/** Where an interrupted run stands: the Adam moments and the batches of epoch `epoch` + 1 done. */
export interface NmtResume { batch: number; m: Float32Array; v: Float32Array; lossSum: number; lossTokens: number }

export interface NmtCheckpoint {
  config: GnmtConfig;
  params: Float32Array;  // (paramCount(config)), paramTable order
  bpe: Bpe;
  training: NmtTrainingInfo;
  resume?: NmtResume;
}

/** Writes `ckpt` atomically; weights as `dtype` (F16 ships; a resumable checkpoint is F32). */
export async function saveNmt(path: string, ckpt: NmtCheckpoint, dtype: "F32" | "F16" = "F32"): Promise<void> {
  const c = ckpt.config;
  checkConfig(c, `saveNmt ${path}`);
  check.f32("saveNmt", "params", ckpt.params, paramCount(c));
  if (ckpt.resume && dtype !== "F32") throw new Error(`saveNmt ${path}: a resumable checkpoint must be stored as F32`);
  const tensors: Record<string, TensorData> = {};
  for (const s of paramTable(c)) tensors[s.name] = floatTensor(ckpt.params.subarray(s.offset, s.offset + s.size), s.shape, dtype);
  const metadata: Record<string, string> = {
    format: NMT_FORMAT, version: VERSION, config: JSON.stringify(c), training: JSON.stringify(ckpt.training),
    [BPE_METADATA_KEY]: JSON.stringify(ckpt.bpe.toJSON()),
  };
  if (ckpt.resume) {
    const r = ckpt.resume;
    tensors["resume.adam_m"] = { dtype: "F32", shape: [r.m.length], data: r.m.slice() };
    tensors["resume.adam_v"] = { dtype: "F32", shape: [r.v.length], data: r.v.slice() };
    metadata.resume = JSON.stringify({ batch: r.batch, lossSum: r.lossSum, lossTokens: r.lossTokens });
  }
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export async function loadNmt(source: string | Uint8Array): Promise<NmtCheckpoint> {
  if (typeof source !== "string") return nmtFromSafetensors(decodeSafetensors(source, "(bytes)"));
  return nmtFromSafetensors(decodeSafetensors(await readFileChecked(source, "translation checkpoint"), source));
}

export function nmtFromSafetensors(file: SafetensorsFile): NmtCheckpoint {
  const meta = file.metadata, fail = (msg: string): never => { throw new Error(oneLine(`checkpoint ${file.source}: ${msg}`)); };
  const hint = "train one with `dmi train nmt --corpus bible --hidden H --out FILE`";
  if (meta.format !== NMT_FORMAT) fail(`not a translation checkpoint (metadata format is ${JSON.stringify(meta.format)}, expected "${NMT_FORMAT}"); ${hint}`);
  if (meta.version !== VERSION) fail(`format version ${JSON.stringify(meta.version)} is not supported (this library reads version ${VERSION}); ${hint}`);
  const config = parseMetadataJson(meta.config, "config", fail) as GnmtConfig;
  try { checkConfig(config, "config"); } catch (e) { fail(`metadata ${(e as Error).message}`); }
  if (config.encoderLayers + config.decoderLayers > file.tensors.size) fail(`metadata config asks for more layers than the file's ${file.tensors.size} tensors hold`);
  const training = parseMetadataJson(meta.training, "training", fail) as NmtTrainingInfo;
  if (typeof training?.corpus !== "string" || !Number.isSafeInteger(training.epoch)) fail("metadata training must name the corpus and the epochs done");
  let bpe: Bpe | undefined;
  try { bpe = Bpe.fromJSON(meta[BPE_METADATA_KEY] ?? "null", `checkpoint ${file.source} metadata ${BPE_METADATA_KEY}`); } catch (e) { fail((e as Error).message); }
  if (bpe!.size !== config.vocab) fail(`its BPE has ${bpe!.size} symbols but config.vocab is ${config.vocab}`);
  const table = paramTable(config);
  const parts = table.map((s) => readFloat(file, s.name, s.shape));
  const params = new Float32Array(paramCount(config));
  table.forEach((s, i) => params.set(parts[i], s.offset));
  const ckpt: NmtCheckpoint = { config, params, bpe: bpe!, training };
  if (meta.resume !== undefined) {
    const r = parseMetadataJson(meta.resume, "resume", fail) as { batch: number; lossSum: number; lossTokens: number };
    if (!Number.isSafeInteger(r?.batch) || r.batch < 0) fail(`metadata resume.batch must be an integer ≥ 0, got ${JSON.stringify(r?.batch)}`);
    const n = params.length;
    ckpt.resume = { batch: r.batch, lossSum: Number(r.lossSum) || 0, lossTokens: Number(r.lossTokens) || 0,
      m: requireTensor(file, "resume.adam_m", "F32", [n]).data, v: requireTensor(file, "resume.adam_v", "F32", [n]).data };
  }
  return ckpt;
}
