// Reading an ONNX model file for import (src/recurrent/import-onnx.ts, src/conv/import-onnx.ts): the
// protobuf is decoded by onnx-proto (generated from ONNX's own onnx.proto, on protobufjs), then this
// file gives the importers what they walk: the nodes in order, the float initializers and Constant
// outputs as float32 or integer arrays, and typed attribute getters whose errors name the node.
// Not a runtime: nothing is executed, and only the data types an importer needs are read.
// (src/onnx/proto.ts writes the peer's graphs and reads a tensor's elements for both.)
import onnxProto from "onnx-proto";
import { readFileChecked } from "../io/files.js";
import { oneLine } from "../util/one-line.js";
import { DataType, int, tensorElements } from "./proto.js";

const { onnx } = onnxProto;

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

const { FLOAT, INT32, INT64, DOUBLE } = DataType;
const TYPE_NAMES: Record<number, string> = { 1: "FLOAT", 2: "UINT8", 3: "INT8", 5: "INT16", 6: "INT32", 7: "INT64", 10: "FLOAT16", 11: "DOUBLE", 16: "BFLOAT16" };

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
  const out: OnnxTensor = { name, dims, dataType };
  const fail = (msg: string): never => { throw new Error(`ONNX model ${source}: tensor "${oneLine(name)}" ${msg}`); };
  // Only the types an importer reads; others are an error where one is read (floatsOf, intsOf).
  const values = dataType === FLOAT || dataType === DOUBLE || dataType === INT32 || dataType === INT64 ? tensorElements(t, fail) : null;
  if (values === null) return out;
  if (dataType === FLOAT || dataType === DOUBLE) out.floats = values instanceof Float32Array ? values : Float32Array.from(values);
  else out.ints = values as number[];
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
