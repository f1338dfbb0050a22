// The fuzzing harness's npm test subset (test/fuzz.ts; the benchmark is `npm run fuzz`): a few
// hundred mutated inputs per parser, then the defects the fuzzing found, each pinned by one input.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { assertTarget, makeTargets, type Targets } from "./fuzz.js";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.js";
import { decodeIdx } from "../src/data/idx.js";
import { lmFromSafetensors } from "../src/recurrent/lm.js";
import { decodeResNet } from "../src/conv/checkpoint.js";
import { decodeDualResNet } from "../src/conv/dual-checkpoint.js";
import { referenceDualBackend } from "../src/conv/dual-conv.js";

let fuzz: Targets;
before(async () => { fuzz = await makeTargets(); });
after(async () => { await fuzz.close(); });

const RUNS = 400;

test(`every parser: ${RUNS} mutated inputs load or fail with a one-line Error naming the file, within the time bound`, async () => {
  for (const t of fuzz.targets) await assertTarget(t, RUNS, 7);
});

/** Safetensors bytes with `header` as the JSON header and `data` after it. */
function withHeader(header: string, data = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const seed = (name: string) => fuzz.targets.find((t) => t.parser === name)!.seeds[0];

test("a header claiming a huge tensor, or a config claiming a huge model, is refused before any allocation", () => {
  const huge = withHeader(`{"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 16]}}`, new Uint8Array(16));
  assert.throws(() => decodeSafetensors(huge, "huge.safetensors"), /^Error: checkpoint huge\.safetensors: tensor "w" has 16 data bytes, but shape/);
  // A language-model checkpoint whose config says 2^30 words: refused by the tensors it lacks, at once.
  const file = decodeSafetensors(seed("lm-checkpoint"), "lm.safetensors");
  file.metadata.config = JSON.stringify({ ...JSON.parse(file.metadata.config), vocab: 2 ** 30 });
  const before = process.memoryUsage().arrayBuffers, t0 = performance.now();
  assert.throws(() => lmFromSafetensors(file), /^Error: checkpoint lm\.safetensors: tensor "encoder\.weight" has shape \[11, 5\], expected \[1073741824, 5\]/);
  assert.ok(performance.now() - t0 < 500 && process.memoryUsage().arrayBuffers - before < 2 ** 24);
  file.metadata.config = JSON.stringify({ ...JSON.parse(file.metadata.config), vocab: 11, layers: 2 ** 30 });
  assert.throws(() => lmFromSafetensors(file), /config\.layers is 1073741824, but the file holds only \d+ tensors/);
});

test("defects the fuzzing found stay fixed", () => {
  // A deeply nested value in a header used to overflow the stack while the error message was written.
  const deep = "[".repeat(100_000) + "]".repeat(100_000);
  assert.throws(() => decodeSafetensors(withHeader(`{"a": ${deep}}`), "deep.safetensors"), /^Error: checkpoint deep\.safetensors: tensor "a" must be an object.*nested too deeply/);
  // Names holding a newline made messages of several lines.
  const named = withHeader(`{"a\\nb": {"dtype": "F64", "shape": [], "data_offsets": [0, 8]}}`, new Uint8Array(8));
  assert.throws(() => decodeSafetensors(named, "nl.safetensors"), (e: Error) => !e.message.includes("\n") && e.message.includes('"a\\u000ab"'));
  // A negative batch-norm variance used to pass the ResNet reader and trap in the dual ResNet's folding.
  const resnet = decodeSafetensors(seed("resnet-checkpoint"), "r.safetensors");
  const tensors = Object.fromEntries(resnet.tensors);
  (tensors["bn1.running_var"].data as Float32Array)[0] = -3;
  assert.throws(() => decodeResNet(encodeSafetensors(tensors, resnet.metadata), "r.safetensors"),
    /^Error: checkpoint r\.safetensors: tensor "bn1\.running_var" element 0 is -3/);
  // A NaN little weight (one flipped F16 exponent) used to escape as a RangeError from the quantizer.
  const dual = decodeSafetensors(seed("dual-resnet-checkpoint"), "d.safetensors"), dualTensors = Object.fromEntries(dual.tensors);
  (dualTensors["little.layer1.0.conv1.weight"].data as Uint16Array)[3] = 0x7e00;
  assert.throws(() => decodeDualResNet(referenceDualBackend, encodeSafetensors(dualTensors, dual.metadata), "d.safetensors"),
    /^Error: checkpoint d\.safetensors: tensors little\.layer1\.0\.conv1\.weight and \.bias do not make a little module: quantizeRows: W\[3\] = NaN must be finite/);
  // A gzip bomb is refused once its output passes the limit, not expanded to gigabytes.
  // (65 gzip members of 16 MiB of zeros: one stream that expands to 1040 MiB.)
  const member = gzipSync(new Uint8Array(2 ** 24), { level: 1 }), bomb = new Uint8Array(member.length * 65);
  for (let i = 0; i < 65; i++) bomb.set(member, i * member.length);
  assert.throws(() => decodeIdx(bomb, "bomb.gz"), /^Error: bomb\.gz: the gzip stream is corrupt \(it expands beyond/);
});
