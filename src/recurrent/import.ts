// Language models made elsewhere, as this project's LmConfig and flat parameters: a plain PyTorch
// word_language_model `state_dict` saved as safetensors (F32, F16 or BF16; LSTM or GRU; any number of
// layers; tied or not), and, through src/recurrent/import-onnx.ts, its ONNX export. `loadLanguageModel`
// tells the kinds of file apart by their first bytes and also reads the project's own checkpoints.
// Nothing in a model file is ever executed: a pickle (`torch.save`, `.pt`) is refused with the hint
// to save with safetensors.
//
// The state_dict's names are already ours (src/recurrent/lm.ts paramTable), so importing it is shape
// inference and checking:
//   encoder.weight      (V, E)
//   rnn.weight_ih_l{k}  (G·H, E_k)     G = 4 (LSTM, rows i, f, g, o) or 3 (GRU, rows r, z, n)
//   rnn.weight_hh_l{k}  (G·H, H)       its column count is H, so G = rows / H is never ambiguous
//   rnn.bias_ih_l{k}, rnn.bias_hh_l{k}  (G·H)
//   decoder.weight      (V, H)         absent, or bitwise equal to encoder.weight, when tied (or present
//                                      with encoder.weight absent: what safetensors' save_model keeps)
//   decoder.bias        (V)
import { extname } from "node:path";
import { readFileChecked, readFileStart } from "../io/files.js";
import { readFloatInto, withSafetensors, type SafetensorsFile } from "../io/safetensors.js";
import type { CellKind } from "./stack.js";
import { lmFromOnnx } from "./import-onnx.js";
import { checkConfig, lmFromSafetensors, paramCount, paramTable, LM_FORMAT, type LmConfig, type TrainingInfo } from "./lm.js";
import { oneLine } from "../util/one-line.js";

/** A language model ready for LmInference, whatever file it came from. */
export interface LoadedLm {
  config: LmConfig;
  params: Float32Array;     // (paramCount(config)) flat, in paramTable order
  format: string;           // what the file was: "dualmodule-lm", "PyTorch state_dict (safetensors, F32)", "ONNX"
  training?: TrainingInfo;  // this project's checkpoints only
  vocabDigest?: string;     // this project's checkpoints only
}

export interface LoadLmOptions {
  /** The cell the file must hold; an error if the shapes say otherwise. */
  cell?: CellKind;
}

const SAVE_HINT = "save the state_dict with safetensors instead: `from safetensors.torch import save_model; save_model(model, \"lm.safetensors\")`";

/**
 * The language model in the file at `path`: a dualmodule-lm checkpoint, a PyTorch state_dict in
 * safetensors, or an ONNX export. Throws one line naming the file and what was expected otherwise.
 */
export async function loadLanguageModel(path: string, options: LoadLmOptions = {}): Promise<LoadedLm> {
  const kind = fileKind(readFileStart(path, 9, "language model"), path);
  if (kind === "pickle") {
    throw new Error(`model ${path} is a PyTorch pickle (torch.save), which dualmodule never loads (unpickling runs code from the file); ${SAVE_HINT}`);
  }
  if (kind === "onnx") return checkCell({ ...lmFromOnnx(await readFileChecked(path, "language model"), path), format: "ONNX" }, path, options);
  // Tensors are read from the file as they are converted, so loading needs no copy of the file.
  // Any of this project's formats goes to its own reader, which names the one it found.
  const loaded = withSafetensors(path, "language model", (file): LoadedLm =>
    file.metadata.format?.startsWith("dualmodule") ? { ...lmFromSafetensors(file), format: LM_FORMAT } : lmFromStateDict(file));
  return checkCell(loaded, path, options);
}

function checkCell(loaded: LoadedLm, path: string, options: LoadLmOptions): LoadedLm {
  if (options.cell !== undefined && options.cell !== loaded.config.cell) {
    throw new Error(`model ${path} holds a ${loaded.config.cell.toUpperCase()}, not the ${options.cell.toUpperCase()} that --cell asks for`);
  }
  return loaded;
}

/** What the first bytes say a model file is. */
function fileKind(bytes: Uint8Array, path: string): "pickle" | "onnx" | "safetensors" {
  // torch.save writes a zip (PK\x03\x04) since PyTorch 1.6, a bare pickle (\x80, protocol 2–5) before.
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) return "pickle";
  if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] >= 2 && bytes[1] <= 5) return "pickle";
  // safetensors: an 8-byte header length, then the JSON header's "{". ONNX: a protobuf ModelProto,
  // whose first field is ir_version (field 1, varint: byte 0x08).
  if (bytes.length > 8 && bytes[8] === 0x7b) return "safetensors";
  if (extname(path).toLowerCase() === ".onnx" || bytes[0] === 0x08) return "onnx";
  return "safetensors"; // its decoder says what is wrong with the header
}

/**
 * A PyTorch word_language_model state_dict (the names above) as config and parameters; `file.source`
 * names the file in errors. Every tensor is checked for shape, float dtype and presence.
 */
export function lmFromStateDict(file: SafetensorsFile): LoadedLm {
  const path = file.source;
  const fail = (msg: string): never => { throw new Error(oneLine(`checkpoint ${path}: ${msg}`)); };
  const shapeOf = (name: string, rank: number, expected: string): number[] => {
    const t = file.tensors.get(name);
    if (t === undefined) {
      fail(`tensor "${name}" is missing (expected ${expected}); not a word_language_model RNNModel state_dict? ` +
        `It has ${[...file.tensors.keys()].slice(0, 6).map((n) => `"${n}"`).join(", ")}${file.tensors.size > 6 ? ", …" : ""}`);
    }
    if (t!.shape.length !== rank) fail(`tensor "${name}" has shape [${t!.shape.join(", ")}], expected ${expected}`);
    return t!.shape;
  };

  // safetensors' save_model keeps one name of a shared tensor, the first in sorted order: for tied
  // weights that is decoder.weight, and encoder.weight is the one dropped.
  const onlyDecoder = !file.tensors.has("encoder.weight") && file.tensors.has("decoder.weight");
  const encoderName = onlyDecoder ? "decoder.weight" : "encoder.weight";
  const [V, E] = shapeOf(encoderName, 2, "[vocab, emb]");
  const [rows, H] = shapeOf("rnn.weight_hh_l0", 2, "[gates × hidden, hidden]");
  const G = rows / H;
  if (G !== 4 && G !== 3) {
    fail(`tensor "rnn.weight_hh_l0" has shape [${rows}, ${H}]: ${rows} rows are not 4 × ${H} (LSTM) or 3 × ${H} (GRU)` +
      (G === 1 ? "; a plain RNN_TANH/RNN_RELU model is not supported" : ""));
  }
  const cell: CellKind = G === 4 ? "lstm" : "gru";
  let layers = 1;
  while (file.tensors.has(`rnn.weight_ih_l${layers}`)) layers++;
  const hasDecoder = file.tensors.has("decoder.weight") && !onlyDecoder;
  if (!hasDecoder && E !== H) {
    const [present, absent] = onlyDecoder ? ["decoder.weight", "encoder.weight"] : ["encoder.weight", "decoder.weight"];
    fail(`tensor "${absent}" is missing, and it cannot be "${present}" (tied) since emb ${E} ≠ hidden ${H}`);
  }

  // Tied iff the decoder is absent (safetensors' save_model drops shared tensors) or the encoder's bits.
  let tied = !hasDecoder;
  if (hasDecoder && E === H) {
    const enc = file.tensors.get("encoder.weight")!, dec = file.tensors.get("decoder.weight")!;
    tied = enc.dtype === dec.dtype && enc.shape.join() === dec.shape.join() && sameBytes(enc.data, dec.data);
  }
  const config: LmConfig = { cell, vocab: V, emb: E, hidden: H, layers, tied };
  try { checkConfig(config, "config"); } catch (e) { fail(`the shapes give an unusable model: ${(e as Error).message}`); }

  // Every tensor in the table read with its expected shape (readFloat: F32, F16 or BF16, else an error
  // naming the tensor and the dtype); no tensor left over.
  const params = new Float32Array(paramCount(config));
  const used = new Set<string>(["decoder.weight"]);
  for (const s of paramTable(config)) {
    readFloatInto(file, s.name === "encoder.weight" ? encoderName : s.name, s.shape, params.subarray(s.offset, s.offset + s.size));
    used.add(s.name);
  }
  const extra = [...file.tensors.keys()].filter((n) => !used.has(n));
  if (extra.length > 0) {
    fail(`unexpected tensor "${extra[0]}"${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ""}: a ${layers}-layer ${cell.toUpperCase()} ` +
      `word_language_model has only encoder, rnn.*_l0…l${layers - 1}, decoder tensors`);
  }
  const dtypes = [...new Set([...file.tensors.values()].map((t) => t.dtype))].join("/");
  return { config, params, format: `PyTorch state_dict (safetensors, ${dtypes})` };
}

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.byteLength !== b.byteLength) return false;
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength), y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
