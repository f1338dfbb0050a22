// onnxruntime (the npm package onnxruntime-node, a development dependency) as a peer: the same
// operation run by a mature CPU engine in the same process, for side-by-side timing and as an
// independent check of our kernels. Not part of the library's runtime.
import * as ort from "onnxruntime-node";
import type { ValueInfo } from "./proto.js";

/** A serialized model and the shapes of what it reads and writes (no symbolic dims). */
export interface OnnxModel {
  bytes: Uint8Array;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

export class OrtPeer {
  private readonly dims: Map<string, readonly number[]>;

  private constructor(private readonly session: ort.InferenceSession, model: OnnxModel) {
    this.dims = new Map(model.inputs.map((v) => [v.name, v.dims.map(Number)]));
  }

  /**
   * One session on `threads` intra-op threads. Nodes run one after another (sequential execution,
   * one inter-op thread): our kernels work the same way, so the comparison is of the operators.
   */
  static async create(model: OnnxModel, threads: number): Promise<OrtPeer> {
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`OrtPeer: threads must be a positive integer, got ${threads}`);
    const session = await ort.InferenceSession.create(model.bytes, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
    });
    return new OrtPeer(session, model);
  }

  /**
   * Runs the model once on float32 feeds (one per input, by name) and resolves with every output's
   * data. onnxruntime-node runs asynchronously; a timing must await each call.
   */
  async run(feeds: Record<string, Float32Array>): Promise<Record<string, Float32Array>> {
    const tensors: Record<string, ort.Tensor> = {};
    for (const [name, dims] of this.dims) {
      const data = feeds[name];
      if (!(data instanceof Float32Array)) throw new TypeError(`OrtPeer.run: feed ${name} must be a Float32Array`);
      tensors[name] = new ort.Tensor("float32", data, dims);
    }
    const out = await this.session.run(tensors);
    const result: Record<string, Float32Array> = {};
    for (const [name, t] of Object.entries(out)) result[name] = t.data as Float32Array;
    return result;
  }

  release(): Promise<void> { return this.session.release(); }
}
