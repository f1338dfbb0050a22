// A torchvision ResNet-18 from ONNX (test/fixtures, written by scripts/fixtures/make_fixtures.py: a
// narrow network with torchvision's 7×7 stride-2 stem and max pool on 28×28 grayscale input, with
// BatchNormalization nodes kept and folded into the convolutions): loadResNetOnnx maps it onto our
// ResNet, whose logits match onnxruntime-node's on the same file (and PyTorch's) within 1e-4 relative.
// An unsupported operator is refused naming the node and the operator.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { Runtime } from "../src/runtime/runtime.js";
import { runtimeBackend } from "../src/conv/layers.js";
import { ResNet } from "../src/conv/resnet.js";
import { loadResNetOnnx } from "../src/conv/import-onnx.js";

const FIXTURES = fileURLToPath(new URL("../../test/fixtures/", import.meta.url));
const EXPECTED = JSON.parse(await readFile(join(FIXTURES, "resnet-expected.json"), "utf8")) as {
  pixels: number[][]; logits_f32: number[][]; normalisation: { mean: number; std: number }; files: Record<string, unknown>;
  unsupported: { file: string; unsupported_op: string };
};

const rt = await Runtime.create({ simd: "simd", threads: 2 });
after(() => rt.close());

/** The fixture's normalisation, each step a float32 operation. */
function input(pixels: number[]): Float32Array {
  const f = Math.fround, { mean, std } = EXPECTED.normalisation;
  return Float32Array.from(pixels, (p) => f(f(f(p / 255) - f(mean)) / f(std)));
}

for (const file of Object.keys(EXPECTED.files)) {
  test(`ResNet ONNX ${file}: logits as onnxruntime's and PyTorch's`, async () => {
    const path = join(FIXTURES, file);
    const { config, weights, input: inputName, output } = await loadResNetOnnx(path);
    assert.deepEqual(config, { stem: "imagenet", inChannels: 1, imageSize: 28, width: 4, classes: 10 });
    const net = new ResNet(runtimeBackend(rt), config, weights, 1);
    const session = await ort.InferenceSession.create(path);
    let worstOrt = 0, worstElement = 0, worstTorch = 0;
    for (const [i, pixels] of EXPECTED.pixels.entries()) {
      const x = input(pixels);
      const ours = net.forward(x).slice();
      const theirs = (await session.run({ [inputName]: new ort.Tensor("float32", x, [1, 1, 28, 28]) }))[output].data as Float32Array;
      // Relative to the image's largest logit: an element near zero has no meaningful relative error.
      const scale = Math.max(...Array.from(theirs, Math.abs));
      for (let j = 0; j < config.classes; j++) {
        const d = Math.abs(ours[j] - theirs[j]);
        worstOrt = Math.max(worstOrt, d / scale);
        worstElement = Math.max(worstElement, d / Math.abs(theirs[j]));
        worstTorch = Math.max(worstTorch, Math.abs(ours[j] - EXPECTED.logits_f32[i][j]) / scale);
      }
    }
    await session.release();
    console.log(`# ${file}: max |Δ logit| / max |logit| vs onnxruntime ${worstOrt.toExponential(2)} (per element ${worstElement.toExponential(2)}), vs PyTorch ${worstTorch.toExponential(2)}`);
    assert.ok(worstOrt <= 1e-4, `${file}: ${worstOrt} relative to onnxruntime`);
    assert.ok(worstTorch <= 1e-4, `${file}: ${worstTorch} relative to PyTorch`);
  });
}

test("ResNet ONNX: an unsupported operator is refused naming the node and the operator", async () => {
  const { file, unsupported_op: op } = EXPECTED.unsupported;
  await assert.rejects(loadResNetOnnx(join(FIXTURES, file)),
    new RegExp(`${file.replace(".", "\\.")}: node "/relu/HardSwish" \\(${op}\\): operator ${op} is not supported in a ResNet`));
  await assert.rejects(loadResNetOnnx(join(FIXTURES, "lm-gru-1layer-tied.onnx")), /node ".*" \(Gather\): operator Gather is not supported in a ResNet/);
});
