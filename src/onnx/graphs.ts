// Single-operator ONNX models for the onnxruntime peer: a matrix-vector product and a general matrix
// product, with fixed shapes, so the peer sees exactly the work our kernels do; and the two helpers
// the families' own graphs share. Not here: the recurrent cells' graphs (src/recurrent/onnx.ts) and
// ResNet's (src/conv/onnx.ts).
import { encodeModel, type GraphSpec, type TensorData, type ValueInfo } from "./proto.js";
import type { OnnxModel } from "./peer.js";

/** The model of graph g, with its inputs and outputs for the peer. */
export function model(g: GraphSpec): OnnxModel {
  return { bytes: encodeModel(g), inputs: g.inputs, outputs: g.outputs };
}

export function checkLength(what: string, name: string, a: Float32Array, n: number): void {
  if (a.length !== n) throw new RangeError(`${what}: ${name} must have ${n} elements, got ${a.length}`);
}

// ---------------------------------------------------------------------------------------------
// Matrix products

export interface GemmModelOptions {
  /** A is fed as (k, m) and transposed. */
  transA?: boolean;
  /** B is (n, k) and transposed. */
  transB?: boolean;
  /** A constant B (weights): an initializer, which onnxruntime prepacks once. Default: B is fed. */
  B?: Float32Array;
}

/**
 * Y (m, n) = op(A) (m, k) · op(B) (k, n) as one Gemm node. Inputs "A" (and "B" unless constant),
 * output "Y".
 */
export function gemmModel(m: number, n: number, k: number, opts: GemmModelOptions = {}): OnnxModel {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const aDims = transA ? [k, m] : [m, k], bDims = transB ? [n, k] : [k, n];
  const inputs: ValueInfo[] = [{ name: "A", dims: aDims }];
  const initializers: TensorData[] = [];
  if (opts.B) {
    checkLength("gemmModel", "B", opts.B, n * k);
    initializers.push({ name: "B", dims: bDims, data: opts.B });
  } else {
    inputs.push({ name: "B", dims: bDims });
  }
  return model({
    name: "gemm",
    nodes: [{
      opType: "Gemm", inputs: ["A", "B"], outputs: ["Y"],
      attributes: [{ name: "transA", int: transA ? 1 : 0 }, { name: "transB", int: transB ? 1 : 0 }],
    }],
    initializers, inputs, outputs: [{ name: "Y", dims: [m, n] }],
  });
}

/**
 * y (1, rows) = x (1, cols) · Wᵀ for a row-major W (rows, cols): our matvec. Input "A", output "Y".
 *
 * Layout: Gemm with transB = 1 on W as it is. MatMul on a transposed (cols, rows) copy was timed
 * against it (6000×3000 and 4096×2048, batch 1 and 20, 1 and 2 threads): no difference beyond the
 * noise, and bit-identical outputs, because onnxruntime prepacks a constant B of either node into
 * the same MLAS panel layout at session creation. Gemm then wins by needing no transposed copy.
 */
export function matmulModel(rows: number, cols: number, W: Float32Array): OnnxModel {
  return gemmModel(1, rows, cols, { B: W, transB: true });
}
