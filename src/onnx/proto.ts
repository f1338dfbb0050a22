// The few ONNX protobuf messages we need, written and read by hand (no dependency): enough to
// build single-operator models for the onnxruntime peer, and to read TensorProto files (the inputs
// and expected outputs of ONNX's operator tests). Field numbers are those of onnx/onnx.proto.
// Not a general protobuf library: unknown fields are skipped on reading, never preserved.
import { oneLine } from "../util/one-line.js";

// ---------------------------------------------------------------------------------------------
// Wire format

const VARINT = 0, FIXED64 = 1, BYTES = 2, FIXED32 = 5;

/**
 * Builds one message as a list of byte chunks, so that large payloads (weights in raw_data) are
 * copied once, by finish(), however deeply they are nested.
 */
class ProtoWriter {
  private readonly parts: Uint8Array[] = [];
  private pending: number[] = [];
  length = 0;

  private byte(b: number): void { this.pending.push(b); this.length++; }

  private flush(): void {
    if (this.pending.length === 0) return;
    this.parts.push(Uint8Array.from(this.pending));
    this.pending = [];
  }

  /** Unsigned LEB128; negative integers as 64-bit two's complement (ten bytes), as int64 requires. */
  varint(v: number): void {
    if (!Number.isSafeInteger(v)) throw new RangeError(`protobuf: ${v} is not an integer we can encode`);
    let u = BigInt.asUintN(64, BigInt(v));
    while (u >= 0x80n) { this.byte(Number(u & 0x7fn) | 0x80); u >>= 7n; }
    this.byte(Number(u));
  }

  private tag(field: number, wire: number): void { this.varint(field * 8 + wire); }

  int(field: number, v: number): void { this.tag(field, VARINT); this.varint(v); }

  float(field: number, v: number): void {
    this.tag(field, FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    for (const x of b) this.byte(x);
  }

  bytes(field: number, b: Uint8Array): void {
    this.tag(field, BYTES);
    this.varint(b.length);
    this.flush();
    this.parts.push(b);
    this.length += b.length;
  }

  string(field: number, s: string): void { this.bytes(field, new TextEncoder().encode(s)); }

  message(field: number, m: ProtoWriter): void {
    this.tag(field, BYTES);
    this.varint(m.length);
    this.flush();
    m.flush();
    this.parts.push(...m.parts);
    this.length += m.length;
  }

  packedInts(field: number, vs: readonly number[]): void {
    const m = new ProtoWriter();
    for (const v of vs) m.varint(v);
    this.message(field, m);
  }

  packedFloats(field: number, vs: readonly number[]): void {
    const b = new Uint8Array(vs.length * 4), dv = new DataView(b.buffer);
    vs.forEach((v, i) => dv.setFloat32(i * 4, v, true));
    this.bytes(field, b);
  }

  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) { out.set(p, at); at += p.length; }
    return out;
  }
}

class ProtoReader {
  pos = 0;
  constructor(readonly buf: Uint8Array, readonly what: string) {}

  get done(): boolean { return this.pos >= this.buf.length; }

  private fail(why: string): never { throw new Error(`${this.what}: malformed protobuf at byte ${this.pos}: ${why}`); }

  /** A varint as a signed 64-bit value (int64 fields store negatives in ten bytes). */
  varint(): number {
    let v = 0n, shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) this.fail("truncated varint");
      const b = this.buf[this.pos++];
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) break;
      shift += 7n;
      if (shift > 63n) this.fail("varint longer than 10 bytes");
    }
    return Number(BigInt.asIntN(64, v));
  }

  /** The next field's number and wire type. */
  tag(): [number, number] {
    const t = this.varint();
    return [Math.floor(t / 8), t & 7];
  }

  bytes(): Uint8Array {
    const n = this.varint();
    if (n < 0 || this.pos + n > this.buf.length) this.fail(`length ${n} runs past the end`);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  fixed32(): DataView {
    if (this.pos + 4 > this.buf.length) this.fail("truncated fixed32");
    const dv = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4);
    this.pos += 4;
    return dv;
  }

  fixed64(): DataView {
    if (this.pos + 8 > this.buf.length) this.fail("truncated fixed64");
    const dv = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8);
    this.pos += 8;
    return dv;
  }

  skip(wire: number): void {
    if (wire === VARINT) this.varint();
    else if (wire === FIXED64) this.fixed64();
    else if (wire === BYTES) this.bytes();
    else if (wire === FIXED32) this.fixed32();
    else this.fail(`unsupported wire type ${wire}`);
  }

  /** A repeated varint field, packed or not: appends to `out`. */
  repeatedVarint(wire: number, out: number[]): void {
    if (wire === VARINT) { out.push(this.varint()); return; }
    if (wire !== BYTES) this.fail(`wire type ${wire} for a repeated integer field`);
    const r = new ProtoReader(this.bytes(), this.what);
    while (!r.done) out.push(r.varint());
  }

  /** A repeated float (width 4) or double (width 8) field, packed or not: appends to `out`. */
  repeatedFloat(wire: number, width: 4 | 8, out: number[]): void {
    const get = (dv: DataView, at: number) => width === 4 ? dv.getFloat32(at, true) : dv.getFloat64(at, true);
    if (wire === (width === 4 ? FIXED32 : FIXED64)) { out.push(get(width === 4 ? this.fixed32() : this.fixed64(), 0)); return; }
    if (wire !== BYTES) this.fail(`wire type ${wire} for a repeated floating-point field`);
    const b = this.bytes();
    if (b.length % width !== 0) this.fail(`packed field of ${b.length} bytes is not a multiple of ${width}`);
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    for (let at = 0; at < b.length; at += width) out.push(get(dv, at));
  }
}

// ---------------------------------------------------------------------------------------------
// ONNX messages

/** TensorProto.DataType values we read or write. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, DOUBLE: 11 } as const;

/** A float (or, for quantized weights, UINT8) tensor: row-major data of the given dims. */
export interface TensorData { name: string; dims: number[]; data: Float32Array | Uint8Array }

/** A graph input or output: float elements; a dim may be symbolic (a string). */
export interface ValueInfo { name: string; dims: (number | string)[] }

export type Attribute =
  | { name: string; int: number }
  | { name: string; float: number }
  | { name: string; string: string }
  | { name: string; ints: number[] }
  | { name: string; floats: number[] }
  | { name: string; strings: string[] };

export interface NodeSpec { opType: string; inputs: string[]; outputs: string[]; attributes?: Attribute[] }

export interface GraphSpec {
  name: string;
  nodes: NodeSpec[];
  /** Constant tensors (weights); ORT may prepack them once at session creation. */
  initializers: TensorData[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

/** ONNX IR version 8 with operator set 17: what onnxruntime 1.30 and ONNX 1.12 both read. */
export const IR_VERSION = 8;
export const OPSET = 17;

// AttributeProto.AttributeType
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

function tensorProto(t: TensorData): ProtoWriter {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (count !== t.data.length) {
    throw new RangeError(`onnx tensor ${t.name}: dims [${t.dims}] hold ${count} elements, data has ${t.data.length}`);
  }
  const w = new ProtoWriter();
  w.packedInts(1, t.dims);
  w.int(2, t.data instanceof Uint8Array ? DataType.UINT8 : DataType.FLOAT);
  w.string(8, t.name);
  if (t.data instanceof Float32Array) {
    // raw_data is little-endian; copy through a DataView so that a big-endian host writes it right too.
    const raw = new Uint8Array(t.data.length * 4), dv = new DataView(raw.buffer);
    for (let i = 0; i < t.data.length; i++) dv.setFloat32(i * 4, t.data[i], true);
    w.bytes(9, raw);
  } else {
    w.bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.length));
  }
  return w;
}

function valueInfoProto(v: ValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.dims) {
    const dim = new ProtoWriter();
    if (typeof d === "number") dim.int(1, d); else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter();
  tensorType.int(1, DataType.FLOAT);
  tensorType.message(2, shape);
  const type = new ProtoWriter();
  type.message(1, tensorType);
  const w = new ProtoWriter();
  w.string(1, v.name);
  w.message(2, type);
  return w;
}

function attributeProto(a: Attribute): ProtoWriter {
  const w = new ProtoWriter();
  w.string(1, a.name);
  if ("int" in a) { w.int(20, ATTR.INT); w.int(3, a.int); }
  else if ("float" in a) { w.int(20, ATTR.FLOAT); w.float(2, a.float); }
  else if ("string" in a) { w.int(20, ATTR.STRING); w.string(4, a.string); }
  else if ("ints" in a) { w.int(20, ATTR.INTS); w.packedInts(8, a.ints); }
  else if ("floats" in a) { w.int(20, ATTR.FLOATS); w.packedFloats(7, a.floats); }
  else { w.int(20, ATTR.STRINGS); for (const s of a.strings) w.string(9, s); }
  return w;
}

function nodeProto(n: NodeSpec, index: number): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, `${n.opType.toLowerCase()}_${index}`);
  w.string(4, n.opType);
  for (const a of n.attributes ?? []) w.message(5, attributeProto(a));
  return w;
}

/** A serialized TensorProto (float, in raw_data): the format of an ONNX test's .pb files. */
export function encodeTensor(t: TensorData): Uint8Array { return tensorProto(t).finish(); }

/** A serialized ModelProto holding one graph, ready for InferenceSession.create. */
export function encodeModel(g: GraphSpec): Uint8Array {
  const graph = new ProtoWriter();
  g.nodes.forEach((n, i) => graph.message(1, nodeProto(n, i)));
  graph.string(2, g.name);
  for (const t of g.initializers) graph.message(5, tensorProto(t));
  for (const v of g.inputs) graph.message(11, valueInfoProto(v));
  for (const v of g.outputs) graph.message(12, valueInfoProto(v));
  const opset = new ProtoWriter();
  opset.string(1, "");
  opset.int(2, OPSET);
  const model = new ProtoWriter();
  model.int(1, IR_VERSION);
  model.string(2, "dualmodule");
  model.message(7, graph);
  model.message(8, opset);
  return model.finish();
}

const ELEMENT_BYTES: Record<number, number> = {
  [DataType.FLOAT]: 4, [DataType.UINT8]: 1, [DataType.INT8]: 1, [DataType.INT32]: 4, [DataType.INT64]: 8, [DataType.DOUBLE]: 8,
};

/** A TensorProto as read from a file; integer and double tensors are converted to float. */
export interface DecodedTensor extends TensorData { dataType: number; data: Float32Array }

/**
 * Reads a serialized TensorProto (an ONNX test's input_N.pb / output_N.pb). Accepts FLOAT, DOUBLE,
 * UINT8, INT8, INT32 and INT64 tensors, in raw_data or the typed repeated fields; `what` names the source in errors.
 */
export function decodeTensor(bytes: Uint8Array, what = "TensorProto"): DecodedTensor {
  const r = new ProtoReader(bytes, what);
  const dims: number[] = [];
  const ints: number[] = [];
  const floats: number[] = [];
  let dataType = 0, name = "", raw: Uint8Array | null = null;
  while (!r.done) {
    const [field, wire] = r.tag();
    switch (field) {
      case 1: r.repeatedVarint(wire, dims); break;
      case 2: dataType = r.varint(); break;
      case 4: r.repeatedFloat(wire, 4, floats); break; // float_data
      case 5: case 7: r.repeatedVarint(wire, ints); break; // int32_data, int64_data
      case 8: name = new TextDecoder().decode(r.bytes()); break;
      case 9: raw = r.bytes(); break;
      case 10: r.repeatedFloat(wire, 8, floats); break; // double_data
      case 14: if (r.varint() === 1) throw new Error(`${what}: tensor ${oneLine(name)} keeps its data in an external file, which we do not read`); break;
      default: r.skip(wire);
    }
  }
  const count = dims.reduce((a, b) => a * b, 1);
  const width = ELEMENT_BYTES[dataType];
  if (width === undefined) throw new Error(`${what}: tensor ${oneLine(name)} has data type ${dataType}; we read FLOAT, DOUBLE, UINT8, INT8, INT32 and INT64`);
  let data: Float32Array;
  if (raw) {
    if (raw.length !== count * width) throw new Error(`${what}: tensor ${oneLine(name)} has ${raw.length} raw bytes for dims [${dims}] of ${width}-byte elements`);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.length);
    data = new Float32Array(count);
    for (let i = 0; i < count; i++) {
      data[i] = dataType === DataType.FLOAT ? dv.getFloat32(i * 4, true)
        : dataType === DataType.UINT8 ? dv.getUint8(i)
        : dataType === DataType.INT8 ? dv.getInt8(i)
        : dataType === DataType.INT32 ? dv.getInt32(i * 4, true)
        : dataType === DataType.INT64 ? Number(dv.getBigInt64(i * 8, true))
        : dv.getFloat64(i * 8, true);
    }
  } else {
    const values = dataType === DataType.FLOAT || dataType === DataType.DOUBLE ? floats : ints;
    if (values.length !== count) throw new Error(`${what}: tensor ${oneLine(name)} has ${values.length} values for dims [${dims}]`);
    data = Float32Array.from(values);
  }
  return { name, dims, dataType, data };
}
