// The ONNX messages we write and read through onnx-proto (generated from ONNX's own onnx.proto, on
// protobufjs): single-operator and whole-network models for the onnxruntime peer, and TensorProto
// files (the inputs and expected outputs of ONNX's operator tests). Also the one reading of a
// TensorProto's elements, shared with the model reader (src/onnx/model.ts).
// Not a general ONNX writer: float (and UINT8) tensors, float graph inputs and outputs, and the
// attribute types our graphs use.
import onnxProto from "onnx-proto";
import { oneLine } from "../util/one-line.js";

const { onnx } = onnxProto;
type Long = { toNumber(): number };

/** An int64 field as protobufjs gives it: a number, or a Long when the long package is installed. */
export const int = (x: number | Long | null | undefined): number => (x == null ? 0 : typeof x === "number" ? x : x.toNumber());

// ---------------------------------------------------------------------------------------------
// Writing

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

/** protobufjs would write a fraction or an unsafe integer into an int64 field without a word. */
function integers(vs: readonly number[]): number[] {
  for (const v of vs) if (!Number.isSafeInteger(v)) throw new RangeError(`protobuf: ${v} is not an integer we can encode`);
  return vs.slice();
}

function tensorProto(t: TensorData): onnxProto.onnx.ITensorProto {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (count !== t.data.length) {
    throw new RangeError(`onnx tensor ${t.name}: dims [${t.dims}] hold ${count} elements, data has ${t.data.length}`);
  }
  let raw: Uint8Array;
  if (t.data instanceof Float32Array) {
    // raw_data is little-endian; copy through a DataView so that a big-endian host writes it right too.
    raw = new Uint8Array(t.data.length * 4);
    const dv = new DataView(raw.buffer);
    for (let i = 0; i < t.data.length; i++) dv.setFloat32(i * 4, t.data[i], true);
  } else {
    raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.length);
  }
  return { dims: integers(t.dims), dataType: t.data instanceof Uint8Array ? DataType.UINT8 : DataType.FLOAT, name: t.name, rawData: raw };
}

function valueInfoProto(v: ValueInfo): onnxProto.onnx.IValueInfoProto {
  const dim = v.dims.map((d) => (typeof d === "number" ? { dimValue: integers([d])[0] } : { dimParam: d }));
  return { name: v.name, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim } } } };
}

function attributeProto(a: Attribute): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType, utf8 = (s: string) => new TextEncoder().encode(s);
  if ("int" in a) return { name: a.name, type: T.INT, i: integers([a.int])[0] };
  if ("float" in a) return { name: a.name, type: T.FLOAT, f: a.float };
  if ("string" in a) return { name: a.name, type: T.STRING, s: utf8(a.string) };
  if ("ints" in a) return { name: a.name, type: T.INTS, ints: integers(a.ints) };
  if ("floats" in a) return { name: a.name, type: T.FLOATS, floats: a.floats.slice() };
  return { name: a.name, type: T.STRINGS, strings: a.strings.map(utf8) };
}

/** A serialized TensorProto (float, in raw_data): the format of an ONNX test's .pb files. */
export function encodeTensor(t: TensorData): Uint8Array { return onnx.TensorProto.encode(tensorProto(t)).finish(); }

/** A serialized ModelProto holding one graph, ready for InferenceSession.create. */
export function encodeModel(g: GraphSpec): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: IR_VERSION,
    producerName: "dualmodule",
    graph: {
      node: g.nodes.map((n, i) => ({
        input: n.inputs, output: n.outputs, name: `${n.opType.toLowerCase()}_${i}`, opType: n.opType,
        attribute: (n.attributes ?? []).map(attributeProto),
      })),
      name: g.name,
      initializer: g.initializers.map(tensorProto),
      input: g.inputs.map(valueInfoProto),
      output: g.outputs.map(valueInfoProto),
    },
    opsetImport: [{ domain: "", version: OPSET }],
  }).finish();
}

// ---------------------------------------------------------------------------------------------
// Reading

const ELEMENT_BYTES: Record<number, number> = {
  [DataType.FLOAT]: 4, [DataType.UINT8]: 1, [DataType.INT8]: 1, [DataType.INT32]: 4, [DataType.INT64]: 8, [DataType.DOUBLE]: 8,
};
/** The data types tensorElements reads. */
export const READ_TYPES = "FLOAT, DOUBLE, UINT8, INT8, INT32 and INT64";

/**
 * The elements of a decoded TensorProto of a type in ELEMENT_BYTES, from raw_data (little-endian)
 * or the typed field ONNX keeps that type in; null for any other type. `fail` is given what is
 * wrong (e.g. `has 4 data bytes, but dims [2] need 8`) and names the source and the tensor.
 */
export function tensorElements(t: onnxProto.onnx.ITensorProto, fail: (what: string) => never): Float32Array | Float64Array | number[] | null {
  const dims = (t.dims ?? []).map(int), dataType = t.dataType ?? 0, width = ELEMENT_BYTES[dataType];
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) fail("keeps its data in an external file, which we do not read; export with the weights inside the model");
  if (width === undefined) return null;
  const count = dims.reduce((a, b) => a * b, 1);
  // protobufjs sets a field present in the file as the message's own property (absent ones are defaults on its prototype).
  if (Object.hasOwn(t, "rawData")) {
    const raw = t.rawData!;
    if (raw.length !== count * width) fail(`has ${raw.length} data bytes, but dims [${dims.join(", ")}] of ${width}-byte elements need ${count * width}`);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.length);
    switch (dataType) {
      case DataType.FLOAT: return Float32Array.from({ length: count }, (_, i) => dv.getFloat32(i * 4, true));
      case DataType.DOUBLE: return Float64Array.from({ length: count }, (_, i) => dv.getFloat64(i * 8, true));
      case DataType.UINT8: return Array.from(raw);
      case DataType.INT8: return Array.from({ length: count }, (_, i) => dv.getInt8(i));
      case DataType.INT32: return Array.from({ length: count }, (_, i) => dv.getInt32(i * 4, true));
      default: return Array.from({ length: count }, (_, i) => Number(dv.getBigInt64(i * 8, true)));
    }
  }
  const values = dataType === DataType.FLOAT ? t.floatData ?? []
    : dataType === DataType.DOUBLE ? t.doubleData ?? []
    : dataType === DataType.INT64 ? (t.int64Data ?? []).map(int)
    : t.int32Data ?? []; // INT32, INT8 and UINT8 live in int32_data
  if (values.length !== count) fail(`has ${values.length} values, but dims [${dims.join(", ")}] need ${count}`);
  return values.slice();
}

/** A TensorProto as read from a file; integer and double tensors are converted to float. */
export interface DecodedTensor extends TensorData { dataType: number; data: Float32Array }

/**
 * Reads a serialized TensorProto (an ONNX test's input_N.pb / output_N.pb). Accepts FLOAT, DOUBLE,
 * UINT8, INT8, INT32 and INT64 tensors, in raw_data or the typed repeated fields; `what` names the source in errors.
 */
export function decodeTensor(bytes: Uint8Array, what = "TensorProto"): DecodedTensor {
  let t: onnxProto.onnx.TensorProto;
  try {
    t = onnx.TensorProto.decode(bytes);
  } catch (e) {
    throw new Error(`${what}: malformed protobuf: ${oneLine((e as Error).message)}`);
  }
  const name = t.name ?? "", fail = (msg: string): never => { throw new Error(`${what}: tensor "${oneLine(name)}" ${msg}`); };
  const values = tensorElements(t, fail);
  if (values === null) fail(`has data type ${t.dataType}; we read ${READ_TYPES}`);
  const data = values instanceof Float32Array ? values : Float32Array.from(values!);
  return { name, dims: (t.dims ?? []).map(int), dataType: t.dataType ?? 0, data };
}
