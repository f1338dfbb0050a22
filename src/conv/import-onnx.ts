// A ResNet-18 from ONNX (torch.onnx.export of torchvision's resnet18, any width, input size and
// channel count), as this project's ResNetConfig and weights under torchvision's names, so that the
// ResNet class (src/conv/resnet.ts) and the dual-module code run it unchanged.
// The graph is matched from its output back to its input:
//   Gemm ← Flatten ← GlobalAveragePool ← 8 × [Relu ← Add(conv2 chain, shortcut)] ← [MaxPool] ← Relu ← stem chain
// where a conv chain is Conv (+ BatchNormalization, or a Conv bias when PyTorch folded BN into it) and
// a shortcut is the block's input or a 1×1 Conv chain of it. Ops: Conv, BatchNormalization, Relu,
// MaxPool, Add, GlobalAveragePool, Flatten, Gemm (Constant, Identity pass); any other operator, or
// an attribute value the network cannot express, is an error naming the node.
// A folded Conv bias b becomes a batch norm of γ = 1, β = b, mean 0, var = 1 − ε (the identity that
// ResNet's own folding turns back into b); a BatchNormalization epsilon other than ours moves into var.
import { BN_EPS, type ConvSpec } from "./layers.js";
import { type ResNetConfig, type ResNetWeights, allocateResNetWeights, blockSpecs, checkConfig, resnetParameters, stemSpec } from "./resnet.js";
import { attributes, checkAttributes, floatsOf, nodeName, readOnnxGraph, type AttributeValue, type NodeProto, type OnnxGraph } from "../onnx/model.js";

const OPS = new Set(["Conv", "BatchNormalization", "Relu", "MaxPool", "Add", "GlobalAveragePool", "Flatten", "Gemm", "Constant", "Identity"]);

export interface ResNetOnnxOptions {
  /** Input height and width when the graph's input dims are symbolic. */
  imageSize?: number;
}

/** The ResNet-18 in the ONNX file at `path`, with its config (input size and channels from the graph). */
export async function loadResNetOnnx(path: string, options: ResNetOnnxOptions = {}): Promise<{ config: ResNetConfig; weights: ResNetWeights; input: string; output: string }> {
  return resnetFromOnnx(await readOnnxGraph(path), options);
}

interface Chain { conv: NodeProto; bn: NodeProto | null; input: string }

export function resnetFromOnnx(g: OnnxGraph, options: ResNetOnnxOptions = {}): { config: ResNetConfig; weights: ResNetWeights; input: string; output: string } {
  const fail = (msg: string): never => { throw new Error(`ONNX model ${g.source}: ${msg}`); };
  for (const n of g.nodes) {
    if (!OPS.has(n.opType ?? "")) fail(`node ${nodeName(n)}: operator ${n.opType} is not supported in a ResNet (supported: ${[...OPS].join(", ")})`);
  }
  const producer = new Map<string, NodeProto>();
  for (const n of g.nodes) for (const o of n.output ?? []) producer.set(o, n);
  // The node that makes `name`, through Identity nodes.
  const prod = (name: string): NodeProto | undefined => {
    let p = producer.get(name);
    while (p?.opType === "Identity") p = producer.get(p.input![0]);
    return p;
  };
  const expect = (name: string, op: string, where: string): NodeProto => {
    const p = prod(name);
    if (p?.opType !== op) fail(`expected ${op} ${where}, found ${p ? nodeName(p) : `graph input or initializer "${name}"`}; not a torchvision ResNet-18 graph`);
    return p!;
  };
  const chain = (name: string): Chain | null => {
    const p = prod(name);
    if (p?.opType === "Conv") return { conv: p, bn: null, input: p.input![0] };
    if (p?.opType === "BatchNormalization") {
      const c = prod(p.input![0]);
      if (c?.opType !== "Conv") fail(`node ${nodeName(p)} normalises something other than a Conv output`);
      return { conv: c!, bn: p, input: c!.input![0] };
    }
    return null;
  };
  const same = (a: string, b: string) => a === b || prod(a) === prod(b) && prod(a) !== undefined;

  // Head.
  if (g.inputs.length !== 1 || g.outputs.length !== 1) fail(`expected one input and one output, found ${g.inputs.length} and ${g.outputs.length}`);
  const gemm = expect(g.outputs[0], "Gemm", "as the last node (the classifier)");
  const flatten = expect(gemm.input![0], "Flatten", `before ${nodeName(gemm)}`);
  const gap = expect(flatten.input![0], "GlobalAveragePool", `before ${nodeName(flatten)}`);

  // Blocks, from the last back.
  const blocks: { conv1: Chain; conv2: Chain; downsample: Chain | null }[] = [];
  let x = gap.input![0];
  for (;;) {
    const relu = prod(x);
    const add = relu?.opType === "Relu" ? prod(relu.input![0]) : undefined;
    if (add?.opType !== "Add") break;
    const [a, b] = add.input!;
    const isMain = (o: string) => { const c = chain(o); return c !== null && prod(c.input)?.opType === "Relu" && chain(prod(c.input)!.input![0]) !== null; };
    const [main, short] = isMain(a) ? [a, b] : isMain(b) ? [b, a] : fail(`node ${nodeName(add)} does not add a basic block's second convolution to a shortcut`);
    const conv2 = chain(main)!, conv1 = chain(prod(conv2.input)!.input![0])!;
    const downsample = same(short, conv1.input) ? null : chain(short);
    if (downsample && !same(downsample.input, conv1.input)) fail(`the shortcut ${nodeName(downsample.conv)} of ${nodeName(add)} does not start at its block's input`);
    if (!downsample && !same(short, conv1.input)) fail(`node ${nodeName(add)}: the shortcut is neither the block's input nor a Conv of it`);
    blocks.unshift({ conv1, conv2, downsample });
    x = conv1.input;
  }

  // Stem.
  const pool = prod(x)?.opType === "MaxPool" ? prod(x)! : null;
  const stemRelu = expect(pool ? pool.input![0] : x, "Relu", "after the stem convolution");
  const stem = chain(stemRelu.input![0]) ?? fail(`expected the stem Conv before ${nodeName(stemRelu)}`);
  const input = g.inputs[0];
  if (stem!.input !== input.name) fail(`the stem ${nodeName(stem!.conv)} does not read the graph input "${input.name}"`);

  // Config from the shapes.
  const stemW = floatsOf(g, stem!.conv.input![1], `weight of ${nodeName(stem!.conv)}`);
  const fcW = floatsOf(g, gemm.input![1], `weight of ${nodeName(gemm)}`);
  const gemmAttrs = checkAttributes(g, gemm, { alpha: only(1), beta: only(1), transA: only(0), transB: null });
  const transB = gemmAttrs.get("transB") === 1;
  const dims = input.dims, size = typeof dims[2] === "number" ? dims[2] : options.imageSize;
  if (size === undefined) fail(`input "${input.name}" has symbolic height ${JSON.stringify(dims[2])}; pass the image size`);
  if (dims.length !== 4 || (typeof dims[3] === "number" && dims[3] !== size)) fail(`input "${input.name}" has dims [${dims.join(", ")}]; expected [batch, channels, size, size] (square images)`);
  const config: ResNetConfig = {
    stem: pool ? "imagenet" : JSON.stringify(attributes(stem!.conv).get("strides")) === "[2,2]" ? "stride2" : "small", inChannels: stemW.dims[1], imageSize: size!, width: stemW.dims[0],
    classes: transB ? fcW.dims[0] : fcW.dims[1],
  };
  try { checkConfig(config); } catch (e) { fail(`the graph gives an unusable network: ${(e as Error).message}`); }
  const specs = blockSpecs(config);
  if (blocks.length !== specs.length) fail(`it has ${blocks.length} residual blocks; ResNet-18 has ${specs.length} (2 per stage): other depths are not supported`);

  // Weights under torchvision's names; every conv checked against the spec ResNet will run it with.
  const weights = allocateResNetWeights(config);
  const shapes = new Map(resnetParameters(config).map((p) => [p.name, p.shape]));
  const t = weights.tensors;
  const put = (name: string, what: string, source: string, transpose = false) => {
    const shape = shapes.get(name)!;
    const f = floatsOf(g, source, what, transpose ? [shape[1], shape[0]] : shape);
    if (!transpose) t[name].set(f.data);
    else for (let i = 0; i < shape[0]; i++) for (let j = 0; j < shape[1]; j++) t[name][i * shape[1] + j] = f.data[j * shape[0] + i];
  };
  const convInto = (c: Chain, spec: ConvSpec, conv: string, bn: string) => {
    checkConv(g, c.conv, spec);
    put(`${conv}.weight`, `weight of ${nodeName(c.conv)}`, c.conv.input![1]);
    const K = spec.outChannels;
    if (c.bn) {
      if (c.conv.input![2]) fail(`node ${nodeName(c.conv)} has a bias and a BatchNormalization after it; export with one or the other`);
      const attrs = checkAttributes(g, c.bn, { epsilon: null, momentum: null, training_mode: only(0), spatial: only(1) });
      const eps = (attrs.get("epsilon") as number | undefined) ?? 1e-5;
      const [, scale, bias, mean, variance] = c.bn.input!;
      put(`${bn}.weight`, `scale of ${nodeName(c.bn)}`, scale);
      put(`${bn}.bias`, `bias of ${nodeName(c.bn)}`, bias);
      put(`${bn}.running_mean`, `mean of ${nodeName(c.bn)}`, mean);
      put(`${bn}.running_var`, `variance of ${nodeName(c.bn)}`, variance);
      if (Math.fround(eps) !== Math.fround(BN_EPS)) for (let k = 0; k < K; k++) t[`${bn}.running_var`][k] += eps - BN_EPS;
    } else {
      t[`${bn}.weight`].fill(1);
      t[`${bn}.running_mean`].fill(0);
      t[`${bn}.running_var`].fill(1 - BN_EPS);
      if (c.conv.input![2]) put(`${bn}.bias`, `bias of ${nodeName(c.conv)}`, c.conv.input![2]);
      else t[`${bn}.bias`].fill(0);
    }
  };
  convInto(stem!, stemSpec(config), "conv1", "bn1");
  if (pool) checkAttributes(g, pool, { kernel_shape: only([3, 3]), strides: only([2, 2]), pads: only([1, 1, 1, 1]), ceil_mode: only(0), dilations: only([1, 1]), storage_order: only(0) });
  blocks.forEach((b, i) => {
    const s = specs[i];
    convInto(b.conv1, s.conv1, `${s.prefix}.conv1`, `${s.prefix}.bn1`);
    convInto(b.conv2, s.conv2, `${s.prefix}.conv2`, `${s.prefix}.bn2`);
    if (!s.downsample !== !b.downsample) fail(`block ${s.prefix} ${s.downsample ? "needs" : "must not have"} a projection on its shortcut in ResNet-18`);
    if (s.downsample && b.downsample) convInto(b.downsample, s.downsample, `${s.prefix}.downsample.0`, `${s.prefix}.downsample.1`);
  });
  put("fc.weight", `weight of ${nodeName(gemm)}`, gemm.input![1], !transB);
  if (gemm.input![2]) put("fc.bias", `bias of ${nodeName(gemm)}`, gemm.input![2]);
  checkAttributes(g, flatten, { axis: only(1) });
  return { config, weights, input: input.name, output: g.outputs[0] };
}

/** An attribute check that accepts only `value` (a number or a list). */
function only(value: number | number[]): (v: AttributeValue) => string | null {
  return (v) => (JSON.stringify(v) === JSON.stringify(value) ? null : JSON.stringify(value));
}

function checkConv(g: OnnxGraph, n: NodeProto, s: ConvSpec): void {
  const k = s.kernel, p = s.pad;
  checkAttributes(g, n, {
    kernel_shape: only([k, k]), strides: only([s.stride, s.stride]), pads: only([p, p, p, p]),
    dilations: only([1, 1]), group: only(1), auto_pad: (v) => (v === "NOTSET" ? null : `"NOTSET"`),
  });
}
