// A word-level recurrent language model in PyTorch's word_language_model layout (RNNModel): an
// embedding, one or more LSTM or GRU layers, a linear decoder over the vocabulary. This file is the
// model's definition shared by training (src/recurrent/train.ts) and inference: its config, the size table that
// cuts one flat parameter array into named views, the initialisation, the conversion to the batch-1
// inference layers (a Stack the dual-module code can wrap), and the checkpoint (safetensors).
// It holds no training state and no forward/backward passes over batches: see src/recurrent/train.ts.
import type { Runtime } from "../runtime/runtime.js";
import { Stack, gateCount, type CellKind, type LayerWeights } from "./stack.js";
import * as check from "../kernels/check.js";
import { Rng } from "../util/random.js";
import { decodeSafetensors, encodeSafetensors, floatTensor, parseMetadataJson, readFloatInto, requireFloat, requireTensor, withSafetensors, type SafetensorsFile, type TensorData } from "../io/safetensors.js";
import { writeFileAtomic } from "../io/files.js";
import { oneLine } from "../util/one-line.js";

// ---------------------------------------------------------------------------------------------------
// Config

export interface LmConfig {
  cell: CellKind;  // "lstm" (gates i, f, g, o) or "gru" (gates r, z, n)
  vocab: number;   // V: words, ids 0..V−1
  emb: number;     // E: embedding size, the input of layer 0
  hidden: number;  // H: hidden size of every layer
  layers: number;  // L
  tied: boolean;   // decoder.weight is encoder.weight (Press & Wolf); needs E = H
}

/** Throws unless `c` is a usable config; `where` names the caller or file in the message. */
export function checkConfig(c: LmConfig, where: string): void {
  if (c?.cell !== "lstm" && c?.cell !== "gru") throw new Error(`${where}: cell must be "lstm" or "gru", got ${JSON.stringify(c?.cell)}`);
  for (const key of ["vocab", "emb", "hidden", "layers"] as const) check.size(where, key, c[key], 1);
  if (typeof c.tied !== "boolean") throw new Error(`${where}: tied must be true or false, got ${JSON.stringify(c.tied)}`);
  if (c.tied && c.emb !== c.hidden) throw new Error(`${where}: tied weights need emb = hidden, got emb ${c.emb} and hidden ${c.hidden}`);
}

/** Input size of layer l: E for the first, H above it. */
export function layerInputSize(c: LmConfig, l: number): number { return l === 0 ? c.emb : c.hidden; }

// ---------------------------------------------------------------------------------------------------
// Weights: one flat array, cut into named views by one size table

type Init = "encoder" | "rnn" | "zero";

export interface ParamSpec<I = Init> {
  name: string;      // PyTorch's state_dict name
  shape: number[];
  offset: number;    // in floats, into the flat array
  size: number;
  init: I;           // here: "encoder": uniform ±0.1 (the example's init_weights); "rnn": PyTorch's ±1/√H
}

/** Places named tensors one after another in one flat array, in the order given. */
export function layOut<I>(entries: readonly (readonly [string, number[], I])[]): ParamSpec<I>[] {
  let offset = 0;
  return entries.map(([name, shape, init]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const spec = { name, shape, offset, size, init };
    offset += size;
    return spec;
  });
}

/** Floats a laid-out table takes. */
export function flatSize(table: readonly ParamSpec<unknown>[]): number {
  const last = table[table.length - 1];
  return last.offset + last.size;
}

/** Every parameter in storage order. With tied weights there is no decoder.weight entry. */
export function paramTable(c: LmConfig): ParamSpec[] {
  const G = gateCount(c.cell), V = c.vocab, H = c.hidden;
  const entries: [string, number[], Init][] = [["encoder.weight", [V, c.emb], "encoder"]];
  for (let l = 0; l < c.layers; l++) {
    entries.push(
      [`rnn.weight_ih_l${l}`, [G * H, layerInputSize(c, l)], "rnn"],
      [`rnn.weight_hh_l${l}`, [G * H, H], "rnn"],
      [`rnn.bias_ih_l${l}`, [G * H], "rnn"],
      [`rnn.bias_hh_l${l}`, [G * H], "rnn"]);
  }
  if (!c.tied) entries.push(["decoder.weight", [V, H], "encoder"]);
  entries.push(["decoder.bias", [V], "zero"]);
  return layOut(entries);
}

export function paramCount(c: LmConfig): number { return flatSize(paramTable(c)); }

/** Named views of a flat parameter (or gradient) array. */
export interface LmParams {
  encoder: Float32Array;       // (V, E)
  layers: LayerWeights[];      // per layer: weight_ih (G·H, E_l), weight_hh (G·H, H), bias_ih (G·H), bias_hh (G·H)
  decoderWeight: Float32Array; // (V, H); the encoder's own array when tied
  decoderBias: Float32Array;   // (V)
}

/** Cuts `flat` (paramCount(c) floats) into the model's views; they alias `flat`. */
export function viewParams(c: LmConfig, flat: Float32Array): LmParams {
  check.f32("viewParams", "flat", flat, paramCount(c));
  const v = new Map(paramTable(c).map((s) => [s.name, flat.subarray(s.offset, s.offset + s.size)]));
  const get = (name: string) => v.get(name)!;
  const encoder = get("encoder.weight");
  return {
    encoder,
    layers: Array.from({ length: c.layers }, (_, l) => ({
      weight_ih: get(`rnn.weight_ih_l${l}`), weight_hh: get(`rnn.weight_hh_l${l}`),
      bias_ih: get(`rnn.bias_ih_l${l}`), bias_hh: get(`rnn.bias_hh_l${l}`),
    })),
    decoderWeight: c.tied ? encoder : get("decoder.weight"),
    decoderBias: get("decoder.bias"),
  };
}

/** The example's initialisation, in table order from one seeded generator. */
export function initParams(c: LmConfig, flat: Float32Array, seed: number): void {
  check.f32("initParams", "flat", flat, paramCount(c));
  const rng = new Rng(seed), rnnBound = 1 / Math.sqrt(c.hidden);
  for (const s of paramTable(c)) {
    const view = flat.subarray(s.offset, s.offset + s.size);
    if (s.init === "zero") view.fill(0);
    else if (s.init === "encoder") rng.fillUniform(view, -0.1, 0.1);
    else rng.fillUniform(view, -rnnBound, rnnBound);
  }
}

// ---------------------------------------------------------------------------------------------------
// Inference at batch 1: the trained weights in the inference layers

/**
 * The model for step-by-step inference: `stack` holds the recurrent layers (wrap it in a DualModel
 * for dual-module inference), the embedding and decoder sit beside it in the heap.
 */
export class LmInference {
  readonly stack: Stack;
  readonly encoder: Float32Array;       // (V, E)
  readonly decoderWeight: Float32Array; // (V, H)
  readonly decoderBias: Float32Array;   // (V)
  readonly logits: Float32Array;        // (V) of the last step
  private readonly x: Float32Array;     // (E) the current step's embedding

  constructor(private readonly rt: Runtime, readonly config: LmConfig, params: LmParams) {
    checkConfig(config, "LmInference");
    const c = config;
    this.stack = new Stack(rt, { kind: c.cell, input: c.emb, hidden: c.hidden, layers: c.layers, context: 0, residualFrom: c.layers },
      params.layers);
    this.encoder = rt.heap.copyF32(params.encoder);
    this.decoderWeight = c.tied ? this.encoder : rt.heap.copyF32(params.decoderWeight);
    this.decoderBias = rt.heap.copyF32(params.decoderBias);
    this.logits = rt.heap.f32(c.vocab);
    this.x = rt.heap.f32(c.emb);
  }

  reset(): void { this.stack.reset(); }

  /** The embedding of `token` (a view that the next call overwrites). */
  embed(token: number): Float32Array {
    const { vocab: V, emb: E } = this.config;
    if (!Number.isInteger(token) || token < 0 || token >= V) throw new RangeError(`LmInference: token ${token} is outside [0, ${V})`);
    this.x.set(this.encoder.subarray(token * E, (token + 1) * E));
    return this.x;
  }

  /** Logits over the vocabulary from a top-layer output h (H). */
  decode(h: Float32Array): Float32Array {
    this.rt.kernels.matvec(this.logits, this.decoderWeight, h, this.decoderBias, this.config.vocab, this.config.hidden);
    return this.logits;
  }

  /** One dense step: reads `token`, returns the logits of the next word (a view, overwritten next step). */
  step(token: number): Float32Array { return this.decode(this.stack.step(this.embed(token))); }
}

// ---------------------------------------------------------------------------------------------------
// Checkpoint: safetensors with the config and the training record in the header metadata

/** The metadata `format` of this project's language-model checkpoints. */
export const LM_FORMAT = "dualmodule-lm";
const VERSION = "1";

/** How the weights were trained; `epoch` counts completed epochs, `lr` is the one for the next. */
export interface TrainingInfo {
  corpus: string;
  seed: number;
  epoch: number;
  lr: number;
  bestValidLoss: number | null; // mean cross-entropy per token (nats); null before the first evaluation
  dropout: number;
  clip: number;
  bptt: number;
  batch: number;
  epochs?: number;              // the run's planned total, so that --resume needs no --epochs (older files lack it)
}

/** Where an interrupted epoch stands: windows already trained, and the hidden state carried on. */
export interface ResumeState {
  batch: number;         // windows of epoch `epoch` + 1 already trained
  state: Float32Array[]; // per layer (S, B, H): h, then c for LSTM (S = 2) or h alone for GRU (S = 1)
  lossSum?: number;      // Σ loss · tokens over those windows, so that the epoch's training loss covers all of it
  lossTokens?: number;   // Σ tokens over those windows
}

export interface LmCheckpoint {
  config: LmConfig;
  params: Float32Array;  // (paramCount(config)) flat, in paramTable order
  training: TrainingInfo;
  resume?: ResumeState;  // only in resumable checkpoints
  vocabDigest?: string;  // Vocabulary.digest of the words the model was trained on (older files lack it)
}

/** Per layer, the number of (B, H) state blocks a cell carries from window to window. */
export function stateBlocks(cell: CellKind): number { return cell === "lstm" ? 2 : 1; }

/**
 * Writes `ckpt` to `path` atomically. Weights are stored as `dtype` (F16 halves the file; a
 * resumable checkpoint must be F32 so that training continues exactly).
 */
export async function saveLm(path: string, ckpt: LmCheckpoint, dtype: "F32" | "F16" = "F32"): Promise<void> {
  const { config: c, training: t } = ckpt;
  checkConfig(c, `saveLm ${path}`);
  check.f32("saveLm", "params", ckpt.params, paramCount(c));
  if (ckpt.resume && dtype !== "F32") throw new Error(`saveLm ${path}: a resumable checkpoint must be stored as F32`);
  const tensors: Record<string, TensorData> = {};
  for (const s of paramTable(c)) {
    const view = ckpt.params.subarray(s.offset, s.offset + s.size);
    tensors[s.name] = floatTensor(view, s.shape, dtype);
  }
  const metadata: Record<string, string> = {
    format: LM_FORMAT, version: VERSION,
    config: JSON.stringify(c),
    vocab_size: String(c.vocab), corpus: t.corpus, seed: String(t.seed), epoch: String(t.epoch), lr: String(t.lr),
    best_valid_loss: String(t.bestValidLoss),
    training: JSON.stringify(t),
  };
  if (ckpt.vocabDigest !== undefined) metadata.vocab_sha256 = ckpt.vocabDigest;
  if (ckpt.resume) {
    const r = ckpt.resume, S = stateBlocks(c.cell);
    if (r.state.length !== c.layers) throw new Error(`saveLm ${path}: resume state has ${r.state.length} layers, the model ${c.layers}`);
    r.state.forEach((s, l) => { tensors[`resume.state_l${l}`] = { dtype: "F32", shape: [S, t.batch, c.hidden], data: s.slice() }; });
    metadata.resume = JSON.stringify({ batch: r.batch, lossSum: r.lossSum ?? 0, lossTokens: r.lossTokens ?? 0 });
  }
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** `source` is the file's path, or its bytes (in a browser, a fetched ArrayBuffer). */
export async function loadLm(source: string | ArrayBuffer | Uint8Array): Promise<LmCheckpoint> {
  if (typeof source !== "string") return lmFromSafetensors(decodeSafetensors(source instanceof Uint8Array ? source : new Uint8Array(source), "(bytes)"));
  return withSafetensors(source, "language-model checkpoint", lmFromSafetensors);
}

/** The checkpoint in a decoded safetensors file (whose source names it in errors); see loadLm. */
export function lmFromSafetensors(file: SafetensorsFile): LmCheckpoint {
  const path = file.source;
  const meta = file.metadata, fail = (msg: string): never => { throw new Error(oneLine(`checkpoint ${path}: ${msg}`)); };
  const hint = "train one with `dmi train lm ... --out FILE`";
  if (meta.format !== LM_FORMAT) fail(`not a language-model checkpoint (metadata format is ${JSON.stringify(meta.format)}, expected "${LM_FORMAT}"); ${hint}`);
  if (meta.version !== VERSION) fail(`format version ${JSON.stringify(meta.version)} is not supported (this library reads version ${VERSION}); ${hint} with this version`);
  const config = parseMetadataJson(meta.config, "config", fail) as LmConfig;
  try { checkConfig(config, "config"); } catch (e) { fail(`metadata ${(e as Error).message}`); }
  const training = parseMetadataJson(meta.training, "training", fail) as TrainingInfo;
  checkTraining(training, fail);

  // The config is metadata: every tensor it asks for is found and checked before anything is
  // allocated, so a config claiming a huge model is refused by the tensors the file lacks.
  if (config.layers > file.tensors.size) fail(`metadata config.layers is ${config.layers}, but the file holds only ${file.tensors.size} tensors`);
  const table = paramTable(config);
  for (const s of table) requireFloat(file, s.name, s.shape);
  // Read (F16 widened) straight into place: the load needs the parameters and nothing more.
  const params = new Float32Array(paramCount(config));
  for (const s of table) readFloatInto(file, s.name, s.shape, params.subarray(s.offset, s.offset + s.size));
  const ckpt: LmCheckpoint = { config, params, training };
  if (meta.vocab_sha256 !== undefined) {
    if (!/^[0-9a-f]{64}$/.test(meta.vocab_sha256)) fail(`metadata vocab_sha256 must be 64 hex digits, got ${JSON.stringify(meta.vocab_sha256)}`);
    ckpt.vocabDigest = meta.vocab_sha256;
  }
  if (meta.resume !== undefined) {
    const r = parseMetadataJson(meta.resume, "resume", fail) as { batch: number; lossSum?: number; lossTokens?: number };
    if (!Number.isSafeInteger(r?.batch) || r.batch < 0) fail(`metadata resume.batch must be an integer ≥ 0, got ${JSON.stringify(r?.batch)}`);
    for (const key of ["lossSum", "lossTokens"] as const) {
      if (r[key] !== undefined && !(typeof r[key] === "number" && r[key]! >= 0)) fail(`metadata resume.${key} must be a number ≥ 0, got ${JSON.stringify(r[key])}`);
    }
    const S = stateBlocks(config.cell);
    const state = Array.from({ length: config.layers }, (_, l) =>
      requireTensor(file, `resume.state_l${l}`, "F32", [S, training.batch, config.hidden]).data);
    ckpt.resume = { batch: r.batch, state, lossSum: r.lossSum ?? 0, lossTokens: r.lossTokens ?? 0 };
  }
  return ckpt;
}

function checkTraining(t: TrainingInfo, fail: (msg: string) => never): void {
  if (typeof t?.corpus !== "string") fail(`metadata training.corpus must be a string, got ${JSON.stringify(t?.corpus)}`);
  if (t.epochs !== undefined && !(Number.isSafeInteger(t.epochs) && t.epochs >= 1)) fail(`metadata training.epochs must be an integer ≥ 1, got ${JSON.stringify(t.epochs)}`);
  for (const key of ["seed", "epoch", "bptt", "batch"] as const) {
    if (!Number.isSafeInteger(t[key]) || t[key] < 0) fail(`metadata training.${key} must be an integer ≥ 0, got ${JSON.stringify(t[key])}`);
  }
  for (const key of ["lr", "dropout", "clip"] as const) {
    if (typeof t[key] !== "number" || !(t[key] >= 0)) fail(`metadata training.${key} must be a number ≥ 0, got ${JSON.stringify(t[key])}`);
  }
  if (t.bestValidLoss !== null && typeof t.bestValidLoss !== "number") fail(`metadata training.bestValidLoss must be a number or null`);
}
