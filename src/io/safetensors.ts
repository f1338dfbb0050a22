// The safetensors checkpoint format: encoder, validating decoder, and the lookup model loaders use.
//
// Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON header, then the data section.
//   header = { "__metadata__"?: { string: string },
//              "<name>": { "dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end] }, ... }
// Offsets are bytes relative to the start of the data section; tensors tile it exactly, with no gaps,
// overlaps or trailing bytes. The header is padded with spaces so that the data starts 8-byte aligned.
// A decoded file is untrusted input: every length and offset is checked before it is used, and each
// error names the file, the tensor or field, and what to do about it. Data is stored little-endian.

import { closeSync, readSync } from "node:fs";
import { toF16, widenBF16, widenF16 } from "./fp16.js";
import { openFileChecked } from "./files.js";
import { oneLine } from "../util/one-line.js";

// ---------------------------------------------------------------------------------------------------
// Data types

/** Typed array holding each supported dtype's elements (F16 and BF16 as raw 16-bit patterns, see fp16.ts). */
export interface DataOf {
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I8: Int8Array;
  U8: Uint8Array;
  I32: Int32Array;
}
export type DType = keyof DataOf;
export type TensorOf<D extends DType> = { dtype: D; shape: number[]; data: DataOf[D] };
/** One tensor: its dtype tells which typed array holds the data; shape [] is a scalar. */
export type TensorData = { [D in DType]: TensorOf<D> }[DType];

const DTYPES = {
  F32: { bytes: 4, array: Float32Array },
  F16: { bytes: 2, array: Uint16Array },
  BF16: { bytes: 2, array: Uint16Array },
  I8: { bytes: 1, array: Int8Array },
  U8: { bytes: 1, array: Uint8Array },
  I32: { bytes: 4, array: Int32Array },
} satisfies { [D in DType]: { bytes: number; array: { new(length: number): DataOf[D]; name: string } } };

const SUPPORTED = Object.keys(DTYPES).join(", ");
// Dtypes of the format that this project does not read, told apart from names that are not dtypes.
const UNSUPPORTED = new Set(["BOOL", "U16", "I16", "U32", "I64", "U64", "F64", "C64",
  "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4"]);

/** Headers larger than this are corruption, not checkpoints (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA = "__metadata__";
const FIELDS = ["dtype", "shape", "data_offsets"];

// Typed arrays use the host's byte order and the format is little-endian (as is WebAssembly memory).
const HOST_LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
function requireLittleEndian(where: string): void {
  if (!HOST_LITTLE_ENDIAN) throw new Error(`${where}: this host is big-endian; only little-endian hosts are supported`);
}

function isDType(s: string): s is DType { return Object.hasOwn(DTYPES, s); }

function elementCount(shape: readonly number[]): number {
  // A zero dimension makes the product exactly 0 even when the other dimensions would overflow.
  return shape.includes(0) ? 0 : shape.reduce((a, b) => a * b, 1);
}

const fmtShape = (shape: readonly unknown[]): string => `[${shape.join(", ")}]`;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
// A value quoted in an error, cut short: a corrupt header can hold megabytes in one field.
function describe(v: unknown): string {
  let s: string;
  try {
    s = v === undefined ? "undefined" : JSON.stringify(v);
  } catch {
    s = "a value nested too deeply to print"; // JSON.stringify recurses: thousands of [[[… overflow the stack
  }
  return s.length > 80 ? s.slice(0, 77) + "…" : s;
}

// ---------------------------------------------------------------------------------------------------
// Encoding

/**
 * Serialises tensors (and string metadata) to safetensors bytes. Data is laid out by decreasing
 * element size, then by name, so every tensor is aligned to its element size in the file and the
 * output does not depend on the order of the keys.
 */
export function encodeSafetensors(tensors: Record<string, TensorData>, metadata?: Record<string, string>): Uint8Array {
  const where = "encodeSafetensors";
  requireLittleEndian(where);
  for (const [key, value] of Object.entries(metadata ?? {})) {
    if (typeof value !== "string") throw new TypeError(`${where}: metadata "${key}" must be a string, got ${typeof value}`);
  }
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) checkTensor(where, name, t);
  entries.sort(([na, a], [nb, b]) => DTYPES[b.dtype].bytes - DTYPES[a.dtype].bytes || (na < nb ? -1 : na > nb ? 1 : 0));

  const header: [string, unknown][] = [];
  if (metadata && Object.keys(metadata).length > 0) header.push([METADATA, metadata]);
  let offset = 0;
  for (const [name, t] of entries) {
    header.push([name, { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] }]);
    offset += t.data.byteLength;
  }
  // fromEntries defines own properties, so even a tensor named "__proto__" survives.
  const json = new TextEncoder().encode(JSON.stringify(Object.fromEntries(header)));
  const headerBytes = Math.ceil(json.length / 8) * 8;
  if (headerBytes > MAX_HEADER_BYTES) {
    throw new RangeError(`${where}: header of ${headerBytes} bytes exceeds ${MAX_HEADER_BYTES}; no reader would accept it`);
  }

  const out = new Uint8Array(8 + headerBytes + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerBytes);
  let at = 8 + headerBytes;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

function checkTensor(where: string, name: string, t: TensorData): void {
  if (name === METADATA) throw new Error(`${where}: "${METADATA}" is reserved for metadata and cannot name a tensor`);
  const dtype: unknown = t?.dtype;
  if (typeof dtype !== "string" || !isDType(dtype)) {
    throw new TypeError(`${where}: tensor "${name}" has dtype ${describe(dtype)}, which is unsupported; use one of ${SUPPORTED}`);
  }
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new TypeError(`${where}: tensor "${name}" shape ${describe(t.shape)} must be a list of non-negative integers`);
  }
  const { array } = DTYPES[dtype];
  if (!(t.data instanceof array)) {
    const got = (t.data as object | null)?.constructor?.name ?? typeof t.data;
    throw new TypeError(`${where}: tensor "${name}" of dtype ${dtype} needs its data in a ${array.name}, got ${got}`);
  }
  const count = elementCount(t.shape);
  if (t.data.length !== count) {
    throw new RangeError(`${where}: tensor "${name}" has ${t.data.length} elements, but shape ${fmtShape(t.shape)} needs ${count}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Decoding

export interface SafetensorsFile {
  /** Where the bytes came from (a path), used in every error message. */
  source: string;
  metadata: Record<string, string>;
  /**
   * In header order. A tensor's data is read on its first use (and kept): a fresh, aligned array of
   * its own, never a view of the file. Loaders that widen floats use readFloatInto instead, which
   * converts straight from the file into their own arrays and keeps no copy.
   */
  tensors: Map<string, TensorData>;
}

/** A file opened by openSafetensors: its tensors are read from the file until close(). */
export interface OpenSafetensors extends SafetensorsFile { close(): void }

/** Reads `into.length` bytes of the file from byte `position` on. */
type ReadBytes = (position: number, into: Uint8Array) => void;

// Where each decoded tensor's bytes lie in its file, so that readFloatInto can read them directly.
const stored = new WeakMap<TensorData, { position: number; read: ReadBytes }>();

/** Parses and fully validates safetensors bytes; `source` names the file in error messages. Keep the bytes unchanged while the tensors are read. */
export function decodeSafetensors(bytes: Uint8Array, source: string): SafetensorsFile {
  return decode(bytes.length, (position, into) => into.set(bytes.subarray(position, position + into.length)), source);
}

/**
 * The safetensors file at `path`, its header read and fully validated and its tensors read from the
 * file when used, so a loader needs no copy of the whole file; `what` names the kind of file in a
 * read error. Close it (or use withSafetensors) once the tensors are read.
 */
export function openSafetensors(path: string, what: string): OpenSafetensors {
  const { fd, size } = openFileChecked(path, what);
  let open = true;
  const read: ReadBytes = (position, into) => {
    if (!open) throw new Error(`checkpoint ${path}: a tensor was read after the file was closed`);
    for (let done = 0; done < into.length;) {
      const n = readSync(fd, into, done, into.length - done, position + done);
      if (n === 0) throw new Error(oneLine(`checkpoint ${path}: the file ended at byte ${position + done} of ${size}: it was truncated while being read`));
      done += n;
    }
  };
  try {
    const file = decode(size, read, path);
    return { ...file, close: () => { if (open) { open = false; closeSync(fd); } } };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** `read(file)` on the safetensors file at `path` (see openSafetensors), which is closed afterwards. */
export function withSafetensors<T>(path: string, what: string, read: (file: SafetensorsFile) => T): T {
  const file = openSafetensors(path, what);
  try {
    return read(file);
  } finally {
    file.close();
  }
}

function decode(length: number, read: ReadBytes, source: string): SafetensorsFile {
  requireLittleEndian(`checkpoint ${source}`);
  const fail: (message: string) => never = (message) => { throw new Error(oneLine(`checkpoint ${source}: ${message}`)); };
  const NOT_SAFETENSORS = "the file is truncated, corrupted or not a safetensors file";
  const bytesAt = (position: number, count: number): Uint8Array => { const b = new Uint8Array(count); read(position, b); return b; };

  if (length < 8) fail(`file is ${length} bytes, too short for the 8-byte header length; ${NOT_SAFETENSORS}`);
  const view = new DataView(bytesAt(0, 8).buffer);
  const headerBytes = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (headerBytes > MAX_HEADER_BYTES) fail(`header length ${headerBytes} exceeds the ${MAX_HEADER_BYTES}-byte limit; ${NOT_SAFETENSORS}`);
  if (8 + headerBytes > length) {
    fail(`header length ${headerBytes} goes beyond the end of the ${length}-byte file; ${NOT_SAFETENSORS}`);
  }

  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytesAt(8, headerBytes)));
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${(e as Error).message}); ${NOT_SAFETENSORS}`);
  }
  if (!isObject(header)) fail(`header must be a JSON object, got ${Array.isArray(header) ? "an array" : describe(header)}; ${NOT_SAFETENSORS}`);
  const dataStart = 8 + headerBytes, dataBytes = length - dataStart;
  let metadata: Record<string, string> = {};
  const layout: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === METADATA) {
      metadata = parseMetadata(entry, fail);
      continue;
    }
    const bad: (message: string) => never = (message) => fail(`tensor "${name}" ${message}; the header is corrupted or was written by a faulty writer`);
    if (!isObject(entry)) bad(`must be an object with ${FIELDS.join(", ")}, got ${describe(entry)}`);
    for (const field of FIELDS) if (!Object.hasOwn(entry, field)) bad(`has no "${field}" field`);
    for (const field of Object.keys(entry)) if (!FIELDS.includes(field)) bad(`has an unexpected field "${field}"`);

    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== "string") bad(`dtype must be a string, got ${describe(dtype)}`);
    if (!isDType(dtype)) {
      const kind = UNSUPPORTED.has(dtype) ? "unsupported" : "unknown";
      fail(`tensor "${name}" has ${kind} dtype "${dtype}"; supported are ${SUPPORTED}: convert the tensor to one of them when saving`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      bad(`shape ${describe(shape)} must be a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      bad(`data_offsets ${describe(offsets)} must be [begin, end] with non-negative integers`);
    }
    const [begin, end]: number[] = offsets;
    if (begin > end) bad(`data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataBytes) {
      fail(`tensor "${name}" data_offsets [${begin}, ${end}] go beyond the ${dataBytes}-byte data section; ${NOT_SAFETENSORS}`);
    }
    const { bytes: size } = DTYPES[dtype];
    const count = elementCount(shape);
    if (count * size !== end - begin) {
      bad(`has ${end - begin} data bytes, but shape ${fmtShape(shape)} of ${dtype} needs ${count} × ${size} = ${count * size}`);
    }
    layout.push({ name, dtype, shape, begin, end });
  }

  // The tensors must tile the data section: each begins where the previous one (by offset) ends.
  const byOffset = [...layout].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (let i = 0; i < byOffset.length; i++) {
    const t = byOffset[i];
    if (t.begin < covered) {
      const prev = byOffset[i - 1];
      fail(`tensor "${t.name}" [${t.begin}, ${t.end}] overlaps tensor "${prev.name}" [${prev.begin}, ${prev.end}]; the header is corrupted`);
    }
    if (t.begin > covered) fail(`gap of ${t.begin - covered} unused bytes before tensor "${t.name}" at ${t.begin}; the header is corrupted`);
    covered = t.end;
  }
  if (covered !== dataBytes) {
    fail(`${dataBytes - covered} bytes of trailing data after the last tensor; the file was corrupted or appended to`);
  }

  const tensors = new Map<string, TensorData>();
  for (const { name, dtype, shape, begin } of layout) tensors.set(name, lazyTensor(dtype, shape, dataStart + begin, read));
  return { source, metadata, tensors };
}

/** A tensor whose data is read from `position` of its file on first use. */
function lazyTensor(dtype: DType, shape: number[], position: number, read: ReadBytes): TensorData {
  let data: DataOf[DType] | undefined;
  const tensor = {
    dtype, shape,
    get data() {
      if (data === undefined) {
        data = new DTYPES[dtype].array(elementCount(shape));
        read(position, new Uint8Array(data.buffer));
      }
      return data;
    },
  } as TensorData;
  stored.set(tensor, { position, read });
  return tensor;
}

function parseMetadata(entry: unknown, fail: (message: string) => never): Record<string, string> {
  if (!isObject(entry)) fail(`"${METADATA}" must be an object of strings, got ${describe(entry)}; the header is corrupted`);
  const pairs = Object.entries(entry);
  for (const [key, value] of pairs) {
    if (typeof value !== "string") {
      fail(`metadata "${key}" must be a string, got ${describe(value)}; store structured values as JSON text`);
    }
  }
  // fromEntries defines own properties: a "__proto__" key stays data, not a prototype.
  return Object.fromEntries(pairs) as Record<string, string>;
}

// ---------------------------------------------------------------------------------------------------
// Lookup for model loaders

/** The named tensor, checked for dtype and shape; throws a message naming the checkpoint otherwise. */
export function requireTensor<D extends DType>(file: SafetensorsFile, name: string, dtype: D, shape: readonly number[]): TensorOf<D> {
  const t = file.tensors.get(name);
  const hint = "the checkpoint was written for a different model or configuration";
  if (t === undefined) {
    const names = [...file.tensors.keys()];
    const listed = names.slice(0, 8).map((n) => `"${n}"`).join(", ") + (names.length > 8 ? ", …" : "");
    throw new Error(oneLine(`checkpoint ${file.source}: tensor "${name}" is missing (it has ${names.length} tensors${names.length ? ": " + listed : ""}); ${hint}`));
  }
  if (t.dtype !== dtype) throw new Error(oneLine(`checkpoint ${file.source}: tensor "${name}" has dtype ${t.dtype}, expected ${dtype}; ${hint}`));
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(oneLine(`checkpoint ${file.source}: tensor "${name}" has shape ${fmtShape(t.shape)}, expected ${fmtShape(shape)}; ${hint}`));
  }
  return t as TensorOf<D>;
}

/** float32 data as a tensor to store: as it is (F32), or rounded to half precision (F16). readFloat reads either back. */
export function floatTensor(data: Float32Array, shape: number[], dtype: "F32" | "F16" = "F32"): TensorData {
  return dtype === "F16" ? { dtype: "F16", shape, data: toF16(data) } : { dtype: "F32", shape, data };
}

type FloatTensor = TensorOf<"F32"> | TensorOf<"F16"> | TensorOf<"BF16">;

/** The named float tensor (F32, F16 or BF16), checked like requireTensor; its data is not read. */
export function requireFloat(file: SafetensorsFile, name: string, shape: readonly number[]): FloatTensor {
  const dtype = file.tensors.get(name)?.dtype;
  return requireTensor(file, name, dtype === "F16" || dtype === "BF16" ? dtype : "F32", shape) as FloatTensor;
}

/** A float tensor stored as F32, F16 or BF16 (checked like requireTensor), as a new float32 array (widened exactly). */
export function readFloat(file: SafetensorsFile, name: string, shape: readonly number[]): Float32Array {
  requireFloat(file, name, shape); // before the allocation: the shape comes from the caller's config
  const out = new Float32Array(elementCount(shape));
  readFloatInto(file, name, shape, out);
  return out;
}

// Half-precision tensors are widened through a scratch array of this many elements.
const WIDEN_CHUNK = 1 << 18;

/**
 * readFloat into `dest` (of the tensor's element count): a tensor of a decoded or opened file is read
 * from the file straight into `dest`, F16 and BF16 widened chunk by chunk, so loading needs no copy
 * of the tensor beside its destination.
 */
export function readFloatInto(file: SafetensorsFile, name: string, shape: readonly number[], dest: Float32Array): void {
  const t = requireFloat(file, name, shape), count = elementCount(shape);
  if (dest.length !== count) throw new RangeError(`readFloatInto: tensor "${name}" has ${count} elements, the destination ${dest.length}`);
  const at = stored.get(t);
  if (at === undefined) { // a tensor made in memory, not decoded from a file
    if (t.dtype === "F32") dest.set(t.data);
    else (t.dtype === "F16" ? widenF16 : widenBF16)(t.data, dest);
    return;
  }
  if (t.dtype === "F32") {
    at.read(at.position, new Uint8Array(dest.buffer, dest.byteOffset, dest.byteLength));
    return;
  }
  const scratch = new Uint16Array(Math.min(count, WIDEN_CHUNK));
  for (let i = 0; i < count; i += scratch.length) {
    const part = scratch.subarray(0, Math.min(scratch.length, count - i));
    at.read(at.position + 2 * i, new Uint8Array(part.buffer, 0, part.byteLength));
    (t.dtype === "F16" ? widenF16 : widenBF16)(part, dest.subarray(i, i + part.length));
  }
}

/** A metadata field parsed as JSON; `fail` names the field when it is missing or malformed. */
export function parseMetadataJson(text: string | undefined, field: string, fail: (msg: string) => never,
                                  reviver?: (key: string, value: unknown) => unknown): unknown {
  if (text === undefined) fail(`metadata field ${field} is missing`);
  // Our configs nest a few levels; a deeper value would overflow the stack of whatever walks it
  // recursively (JSON.stringify in an error message), so it is refused here.
  if (jsonDepth(text!) > MAX_METADATA_DEPTH) fail(`metadata field ${field} nests deeper than ${MAX_METADATA_DEPTH} levels`);
  try {
    return JSON.parse(text!, reviver);
  } catch {
    return fail(`metadata field ${field} is not valid JSON`);
  }
}

const MAX_METADATA_DEPTH = 32;

/** The deepest nesting of [ and { in JSON text (brackets inside strings are not counted). */
function jsonDepth(text: string): number {
  let depth = 0, max = 0, inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}
