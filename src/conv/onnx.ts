// ResNet-18 as an ONNX graph, built in memory from the same weights as src/conv/resnet.ts, for the
// onnxruntime peer: the same network run by a mature CPU engine (benchmarks, and an independent
// check of our forward pass). Batch normalization stays a separate node with the unfolded
// parameters: onnxruntime folds it itself, so agreement also checks our folding.
import { encodeModel, type NodeSpec, type TensorData } from "../onnx/proto.js";
import type { OnnxModel, OrtPeer } from "../onnx/peer.js";
import { BN_EPS } from "./layers.js";
import { BLOCKS_PER_STAGE, type ResNetConfig, type ResNetWeights, STAGES, resnetParameters, stemSpec } from "./resnet.js";

/** Input "images" (batch, inChannels, imageSize, imageSize); output "logits" (batch, classes). */
export function resnetModel(c: ResNetConfig, weights: ResNetWeights, batch = 1): OnnxModel {
  const nodes: NodeSpec[] = [];
  const initializers: TensorData[] = resnetParameters(c).map((p) => {
    const data = weights.tensors[p.name];
    if (!data) throw new RangeError(`resnetModel: weight ${p.name} is missing`);
    return { name: p.name, dims: p.shape, data };
  });

  /** Conv (no bias) then BatchNormalization; returns the output's name. */
  const convBn = (x: string, conv: string, bn: string, kernel: number, stride: number, pad: number): string => {
    nodes.push({
      opType: "Conv", inputs: [x, `${conv}.weight`], outputs: [`${conv}.out`],
      attributes: [
        { name: "kernel_shape", ints: [kernel, kernel] }, { name: "strides", ints: [stride, stride] },
        { name: "pads", ints: [pad, pad, pad, pad] },
      ],
    });
    nodes.push({
      opType: "BatchNormalization",
      inputs: [`${conv}.out`, `${bn}.weight`, `${bn}.bias`, `${bn}.running_mean`, `${bn}.running_var`],
      outputs: [`${bn}.out`], attributes: [{ name: "epsilon", float: BN_EPS }],
    });
    return `${bn}.out`;
  };
  const relu = (x: string): string => { nodes.push({ opType: "Relu", inputs: [x], outputs: [`${x}.relu`] }); return `${x}.relu`; };

  const stem = stemSpec(c);
  let x = relu(convBn("images", "conv1", "bn1", stem.kernel, stem.stride, stem.pad));
  if (c.stem === "imagenet") {
    nodes.push({
      opType: "MaxPool", inputs: [x], outputs: ["maxpool.out"],
      attributes: [{ name: "kernel_shape", ints: [3, 3] }, { name: "strides", ints: [2, 2] }, { name: "pads", ints: [1, 1, 1, 1] }],
    });
    x = "maxpool.out";
  }
  for (let s = 0; s < STAGES; s++) {
    for (let b = 0; b < BLOCKS_PER_STAGE; b++) {
      const p = `layer${s + 1}.${b}`, stride = s > 0 && b === 0 ? 2 : 1;
      const shortcut = `${p}.downsample.0.weight` in weights.tensors ? convBn(x, `${p}.downsample.0`, `${p}.downsample.1`, 1, stride, 0) : x;
      const h = relu(convBn(x, `${p}.conv1`, `${p}.bn1`, 3, stride, 1));
      const y = convBn(h, `${p}.conv2`, `${p}.bn2`, 3, 1, 1);
      nodes.push({ opType: "Add", inputs: [y, shortcut], outputs: [`${p}.sum`] });
      x = relu(`${p}.sum`);
    }
  }
  nodes.push(
    { opType: "GlobalAveragePool", inputs: [x], outputs: ["gap"] },
    { opType: "Flatten", inputs: ["gap"], outputs: ["features"], attributes: [{ name: "axis", int: 1 }] },
    { opType: "Gemm", inputs: ["features", "fc.weight", "fc.bias"], outputs: ["logits"], attributes: [{ name: "transB", int: 1 }] },
  );
  const inputs = [{ name: "images", dims: [batch, c.inChannels, c.imageSize, c.imageSize] }];
  const outputs = [{ name: "logits", dims: [batch, c.classes] }];
  return { bytes: encodeModel({ name: "resnet18", nodes, initializers, inputs, outputs }), inputs, outputs };
}

/**
 * max |ours − onnxruntime's| / max |onnxruntime's| over the logits of `images` (a first run of both,
 * which also warms them up).
 */
export async function logitsDifference(peer: OrtPeer, forward: (x: Float32Array) => Float32Array, images: Float32Array[]): Promise<number> {
  let maxDiff = 0, maxRef = 0;
  for (const x of images) {
    const { logits } = await peer.run({ images: x });
    const ours = forward(x);
    for (let i = 0; i < logits.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(ours[i] - logits[i]));
      maxRef = Math.max(maxRef, Math.abs(logits[i]));
    }
  }
  return maxDiff / maxRef;
}
