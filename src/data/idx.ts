// The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a 4-byte magic
// number (two zero bytes, a data-type code, the number of dimensions), one big-endian uint32 per
// dimension, then the data, row-major. Files may be gzip-compressed (Debian ships them so).
// We read unsigned-byte files only, which is what both data sets are; every header field is checked.
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

const UNSIGNED_BYTE = 0x08;
const TYPE_NAMES: Record<number, string> = { 0x08: "unsigned byte", 0x09: "signed byte", 0x0b: "int16", 0x0c: "int32", 0x0d: "float32", 0x0e: "float64" };

/**
 * Parses an uncompressed IDX file. `file` names it in errors and `fix` says how to get a good copy.
 */
export function parseIdx(bytes: Uint8Array, file: string, fix = "replace the file with a good copy"): IdxArray {
  const fail = (why: string): never => { throw new Error(`${file}: not a valid IDX file: ${why}; ${fix}`); };
  if (bytes.length < 4) fail(`it has ${bytes.length} bytes, fewer than the 4-byte magic number`);
  if (bytes[0] !== 0 || bytes[1] !== 0) fail(`the magic number must start with two zero bytes, got 0x${hex(bytes[0])}${hex(bytes[1])}`);
  const type = bytes[2], ndims = bytes[3];
  if (type !== UNSIGNED_BYTE) {
    fail(`data type 0x${hex(type)} (${TYPE_NAMES[type] ?? "unknown"}); only unsigned-byte (0x08) files are read`);
  }
  if (ndims < 1) fail("it declares 0 dimensions");
  const header = 4 + 4 * ndims;
  if (bytes.length < header) fail(`it has ${bytes.length} bytes, fewer than its ${header}-byte header for ${ndims} dimensions`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const size = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - header !== size) {
    fail(`its header says ${dims.join("×")} = ${size} bytes of data, but ${bytes.length - header} follow (truncated or corrupt)`);
  }
  return { dims, data: bytes.subarray(header) };
}

/** Reads an IDX file, gunzipping it first if it is gzip-compressed (magic 1f 8b). */
export function readIdx(path: string, fix?: string): IdxArray {
  return decodeIdx(readFileSync(path), path, fix);
}

/** A gzip stream may expand ~1000-fold: a bomb is refused once its output passes this (EMNIST's largest file is 0.55 GB). */
export const MAX_IDX_BYTES = 2 ** 30;

/** The bytes of an IDX file, gunzipped first if they are gzip-compressed (magic 1f 8b); `file` names it in errors. */
export function decodeIdx(bytes: Uint8Array, file: string, fix?: string): IdxArray {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: MAX_IDX_BYTES });
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE" ? `it expands beyond ${MAX_IDX_BYTES} bytes` : (e as Error).message;
      throw new Error(`${file}: the gzip stream is corrupt (${why}); ${fix ?? "replace the file with a good copy"}`, { cause: e });
    }
  }
  return parseIdx(bytes, file, fix);
}

function hex(b: number): string { return b.toString(16).padStart(2, "0"); }
