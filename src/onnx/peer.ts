// onnxruntime (the npm package onnxruntime-node, an optional peer dependency) as a peer: the same
// operation run by a mature CPU engine in the same process, for side-by-side timing and as an
// independent check of our kernels. Not part of the library's runtime: it is imported only when a
// peer is created, so a user without it loses the peer columns (ORT_MISSING says so in one line),
// not the commands.
import type * as Ort from "onnxruntime-node";
import type { ValueInfo } from "./proto.js";

type OrtModule = typeof Ort;

/** The one-line note a command prints instead of its onnxruntime columns when the package is absent. */
export const ORT_MISSING = "onnxruntime-node is not installed (npm install onnxruntime-node): no onnxruntime column";

/** Thrown by OrtPeer.create when onnxruntime-node cannot be imported; its message is ORT_MISSING. */
export class OrtMissingError extends Error {
  constructor() { super(ORT_MISSING); this.name = "OrtMissingError"; }
}

const loaded = new Map<string, Promise<OrtModule | null>>();

/** onnxruntime-node, or null when it is not installed (any other import failure is thrown). */
export function loadOrt(specifier = "onnxruntime-node"): Promise<OrtModule | null> {
  let m = loaded.get(specifier);
  if (!m) {
    m = (import(specifier) as Promise<OrtModule>).catch((e: { code?: string }) => {
      if (e?.code === "ERR_MODULE_NOT_FOUND") return null;
      throw e;
    });
    loaded.set(specifier, m);
  }
  return m;
}

/** Whether onnxruntime-node can be imported: a command checks this once and prints ORT_MISSING if not. */
export async function ortAvailable(): Promise<boolean> { return (await loadOrt()) !== null; }

/** A serialized model and the shapes of what it reads and writes (no symbolic dims). */
export interface OnnxModel {
  bytes: Uint8Array;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

export class OrtPeer {
  private readonly dims: Map<string, readonly number[]>;

  private constructor(private readonly ort: OrtModule, private readonly session: Ort.InferenceSession, model: OnnxModel) {
    this.dims = new Map(model.inputs.map((v) => [v.name, v.dims.map(Number)]));
  }

  /**
   * One session on `threads` intra-op threads. Nodes run one after another (sequential execution,
   * one inter-op thread): our kernels work the same way, so the comparison is of the operators.
   */
  static async create(model: OnnxModel, threads: number): Promise<OrtPeer> {
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`OrtPeer: threads must be a positive integer, got ${threads}`);
    const ort = await loadOrt();
    if (!ort) throw new OrtMissingError();
    const session = await ort.InferenceSession.create(model.bytes, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
    });
    return new OrtPeer(ort, session, model);
  }

  /**
   * Runs the model once on float32 feeds (one per input, by name) and resolves with every output's
   * data. onnxruntime-node runs asynchronously; a timing must await each call.
   */
  async run(feeds: Record<string, Float32Array>): Promise<Record<string, Float32Array>> {
    const tensors: Record<string, Ort.Tensor> = {};
    for (const [name, dims] of this.dims) {
      const data = feeds[name];
      if (!(data instanceof Float32Array)) throw new TypeError(`OrtPeer.run: feed ${name} must be a Float32Array`);
      tensors[name] = new this.ort.Tensor("float32", data, dims);
    }
    const out = await this.session.run(tensors);
    const result: Record<string, Float32Array> = {};
    for (const [name, t] of Object.entries(out)) result[name] = t.data as Float32Array;
    return result;
  }

  release(): Promise<void> { return this.session.release(); }
}
