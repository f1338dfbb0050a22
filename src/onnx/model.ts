// Reading an ONNX model file for import (src/recurrent/import-onnx.ts, src/conv/import-onnx.ts): the
// protobuf is decoded by onnx-proto (generated from ONNX's own onnx.proto, on protobufjs), then this
// file gives the importers what they walk: the nodes in order, the float initializers and Constant
// outputs as float32 or integer arrays, and typed attribute getters whose errors name the node.
// Not a runtime: nothing is executed, and only the data types an importer needs are read.
// (src/onnx/proto.ts, the hand-written writer, still builds the peer's graphs.)
import onnxProto from "onnx-proto";
import { readFileChecked } from "../io/files.js";
import { oneLine } from "../util/one-line.js";

const { onnx } = onnxProto;
type Long = { toNumber(): number };
type Int = number | Long;

export type NodeProto = onnxProto.onnx.INodeProto;

/** A tensor from an initializer or a Constant node: float data as float32, integer data as numbers. */
export interface OnnxTensor { name: string; dims: number[]; dataType: number; floats?: Float32Array; ints?: number[] }

export interface OnnxGraph {
  source: string;                    // the file, for errors
  nodes: NodeProto[];                // in the graph's (topological) order, Constant nodes included
  tensors: Map<string, OnnxTensor>;  // initializers and Constant outputs, by name
  inputs: { name: string; dims: (number | string)[] }[]; // graph inputs that are not initializers; symbolic dims as names
  outputs: string[];
  opset: number;                     // of the default domain
}

const FLOAT = 1, INT32 = 6, INT64 = 7, DOUBLE = 11;
const TYPE_NAMES: Record<number, string> = { 1: "FLOAT", 2: "UINT8", 3: "INT8", 5: "INT16", 6: "INT32", 7: "INT64", 10: "FLOAT16", 11: "DOUBLE", 16: "BFLOAT16" };

const int = (x: Int | null | undefined): number => (x == null ? 0 : typeof x === "number" ? x : x.toNumber());

/** The model at `path`, decoded and indexed; one line naming the file when it is not an ONNX model. */
export async function readOnnxGraph(path: string): Promise<OnnxGraph> {
  return decodeOnnxGraph(await readFileChecked(path, "ONNX model"), path);
}

export function decodeOnnxGraph(bytes: Uint8Array, source: string): OnnxGraph {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new Error(`ONNX model ${source}: not a valid ONNX protobuf (${(e as Error).message}); the file is truncated or not an ONNX model`);
  }
  const g = model.graph;
  if (!g || !g.node || g.node.length === 0) throw new Error(`ONNX model ${source}: it has no graph nodes; not an ONNX model, or an empty one`);
  const tensors = new Map<string, OnnxTensor>();
  for (const t of g.initializer ?? []) tensors.set(t.name ?? "", tensorOf(t, source));
  for (const n of g.node) {
    if (n.opType !== "Constant") continue;
    const value = n.attribute?.find((a) => a.name === "value")?.t;
    if (!value) throw new Error(`ONNX model ${source}: Constant node ${nodeName(n)} has no tensor "value" attribute (only that form is supported)`);
    tensors.set(n.output?.[0] ?? "", tensorOf({ ...value, name: n.output?.[0] }, source));
  }
  const opset = int(model.opsetImport?.find((o) => !o.domain || o.domain === "ai.onnx")?.version);
  return {
    source, nodes: g.node, tensors, opset,
    inputs: (g.input ?? []).filter((v) => !tensors.has(v.name ?? "")).map((v) => ({
      name: v.name ?? "",
      dims: (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : d.dimValue != null ? int(d.dimValue) : "?")),
    })),
    outputs: (g.output ?? []).map((v) => v.name ?? ""),
  };
}

function tensorOf(t: onnxProto.onnx.ITensorProto, source: string): OnnxTensor {
  const name = t.name ?? "", dims = (t.dims ?? []).map(int), dataType = t.dataType ?? 0;
  const count = dims.reduce((a, b) => a * b, 1);
  const fail = (msg: string): never => { throw new Error(`ONNX model ${source}: tensor "${oneLine(name)}" ${msg}`); };
  if (t.dataLocation === 1) fail("keeps its data in an external file, which is not supported; export with the weights inside the model");
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : null;
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : null;
  const out: OnnxTensor = { name, dims, dataType };
  const need = (bytes: number) => { if (raw && raw.length !== count * bytes) fail(`has ${raw.length} data bytes, but dims [${dims.join(", ")}] need ${count * bytes}`); };
  if (dataType === FLOAT) {
    need(4);
    out.floats = raw ? Float32Array.from({ length: count }, (_, i) => view!.getFloat32(4 * i, true)) : Float32Array.from(t.floatData ?? []);
  } else if (dataType === DOUBLE) {
    need(8);
    out.floats = raw ? Float32Array.from({ length: count }, (_, i) => view!.getFloat64(8 * i, true)) : Float32Array.from(t.doubleData ?? []);
  } else if (dataType === INT64) {
    need(8);
    out.ints = raw ? Array.from({ length: count }, (_, i) => Number(view!.getBigInt64(8 * i, true))) : (t.int64Data ?? []).map(int);
  } else if (dataType === INT32) {
    need(4);
    out.ints = raw ? Array.from({ length: count }, (_, i) => view!.getInt32(4 * i, true)) : (t.int32Data ?? []).slice();
  } else {
    return out; // other types are only an error where an importer reads them (floatsOf, intsOf)
  }
  const got = (out.floats ?? out.ints)!.length;
  if (got !== count) fail(`has ${got} values, but dims [${dims.join(", ")}] need ${count}`);
  return out;
}

/** How a node is named in errors: its name and op type. */
export function nodeName(n: NodeProto): string { return oneLine(`"${n.name || n.output?.[0] || "?"}" (${n.opType})`); }

/** The float data of a named initializer or Constant, checked for its dims when `dims` is given. */
export function floatsOf(g: OnnxGraph, name: string, what: string, dims?: readonly number[]): { dims: number[]; data: Float32Array } {
  const t = g.tensors.get(name);
  if (!t) throw new Error(`ONNX model ${g.source}: ${what} "${oneLine(name)}" is not an initializer or a Constant (computed weights are not supported)`);
  if (!t.floats) throw new Error(`ONNX model ${g.source}: ${what} "${oneLine(name)}" has data type ${TYPE_NAMES[t.dataType] ?? t.dataType}, expected FLOAT`);
  if (dims && (dims.length !== t.dims.length || dims.some((d, i) => d !== t.dims[i]))) {
    throw new Error(`ONNX model ${g.source}: ${what} "${oneLine(name)}" has dims [${t.dims.join(", ")}], expected [${dims.join(", ")}]`);
  }
  return { dims: t.dims, data: t.floats };
}

/** The integer data of a named initializer or Constant (shapes, axes). */
export function intsOf(g: OnnxGraph, name: string, what: string): number[] {
  const t = g.tensors.get(name);
  if (!t?.ints) throw new Error(`ONNX model ${g.source}: ${what} "${oneLine(name)}" is not an integer initializer or Constant`);
  return t.ints;
}

export type AttributeValue = number | number[] | string;

/** The node's attributes by name: ints and floats as numbers, lists as arrays, strings decoded. */
export function attributes(n: NodeProto): Map<string, AttributeValue> {
  const out = new Map<string, AttributeValue>();
  for (const a of n.attribute ?? []) {
    const name = a.name ?? "";
    switch (a.type) {
      case onnx.AttributeProto.AttributeType.INT: out.set(name, int(a.i)); break;
      case onnx.AttributeProto.AttributeType.FLOAT: out.set(name, a.f ?? 0); break;
      case onnx.AttributeProto.AttributeType.INTS: out.set(name, (a.ints ?? []).map(int)); break;
      case onnx.AttributeProto.AttributeType.FLOATS: out.set(name, (a.floats ?? []).slice()); break;
      case onnx.AttributeProto.AttributeType.STRING: out.set(name, new TextDecoder().decode(a.s ?? new Uint8Array())); break;
      case onnx.AttributeProto.AttributeType.STRINGS: out.set(name, (a.strings ?? []).map((s) => new TextDecoder().decode(s)).join(",")); break;
      default: out.set(name, `<${onnx.AttributeProto.AttributeType[a.type ?? 0]}>`);
    }
  }
  return out;
}

/**
 * Throws, naming the file, the node and the attribute, unless each attribute of `n` is in `allowed`
 * and, where `allowed` gives a check, passes it (`check` returns what was expected, or null when fine).
 */
export function checkAttributes(g: OnnxGraph, n: NodeProto, allowed: Record<string, ((v: AttributeValue) => string | null) | null>): Map<string, AttributeValue> {
  const attrs = attributes(n);
  for (const [name, value] of attrs) {
    if (!Object.hasOwn(allowed, name)) {
      throw new Error(`ONNX model ${g.source}: node ${nodeName(n)} has attribute ${name} = ${JSON.stringify(value)}, which is not supported ` +
        `(supported: ${Object.keys(allowed).join(", ") || "none"})`);
    }
    const expected = allowed[name]?.(value);
    if (expected) throw new Error(`ONNX model ${g.source}: node ${nodeName(n)} has attribute ${name} = ${JSON.stringify(value)}; only ${expected} is supported`);
  }
  return attrs;
}
