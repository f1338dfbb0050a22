// `dmi eval cnn` end to end on MNIST: a tiny ResNet-18 trained on a few hundred digits, then fit →
// calibrate → evaluate through the command, its JSON rows (the schema) and Figures 3–4; and
// its errors for bad options.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resnet18Small } from "../src/conv/resnet.js";
import { CNN_TRAIN_DEFAULTS, trainCnn } from "../src/conv/train.js";
import { type CnnEvalRow, main as evalCnn } from "../src/cli/eval-cnn.js";
import { main as fitCnn } from "../src/cli/fit-cnn.js";
import { DualResNet } from "../src/conv/dual.js";
import { loadDualResNet, saveDualResNet } from "../src/conv/dual-checkpoint.js";
import { saveResNet } from "../src/conv/checkpoint.js";
import { randomResNetWeights } from "../src/conv/resnet.js";
import { runtimeDualBackend } from "../src/conv/dual-conv.js";
import { imagesToFloat } from "../src/data/images.js";
import { loadImageSet } from "../src/data/images.js";
import { PNG_SIGNATURE, testRuntimes } from "./helpers.js";

after(async () => { for (const rt of await testRuntimes()) await rt.close(); });

const tmp = await mkdtemp(join(tmpdir(), "dualmodule-eval-cnn-"));
after(() => rm(tmp, { recursive: true, force: true }));


test("train → fit → calibrate → evaluate on a few hundred MNIST digits: ratio 0 is the dense network, ratios hold, figures are written", async () => {
  const rt = (await testRuntimes())[1], model = join(tmp, "tiny.safetensors");
  const mnist = { train: loadImageSet("mnist", "train"), test: loadImageSet("mnist", "test") };
  await trainCnn(rt, { config: resnet18Small(4), options: { ...CNN_TRAIN_DEFAULTS, batch: 32, lr: 0.2, seed: 3 }, epochs: 3, out: model,
    maxImages: 512, maxTest: 64 }, mnist);
  const json = join(tmp, "rows.json"), figures = join(tmp, "figures");
  await evalCnn(["--checkpoint", model, "--dataset", "mnist", "--ratios", "0,0.5", "--fit", "100", "--calibrate", "100", "--test", "300",
    "--threads", "1", "--timed", "2", "--rounds", "1", "--repeats", "1", "--json", json, "--figures", figures, "--figure-ratio", "0.5"]);
  const rows = JSON.parse(await readFile(json, "utf8")) as CnnEvalRow[];
  assert.deepEqual(rows.map((r) => `${r.mode} ${r.ratio} ${r.threads}`), ["zero 0 1", "zero 0.5 1", "little 0 1", "little 0.5 1"]);
  const schema = ["model", "dataset", "ratio", "achieved_ratio", "top1", "top1_dense", "macs_dense", "macs_big", "macs_little",
    "ops_reduction_fp32eq", "dense_ms", "dual_ms", "ort_ms", "threads"];
  for (const r of rows) {
    for (const key of schema) assert.ok(key in r, `row lacks ${key}`);
    assert.equal(r.model, "tiny");
    assert.equal(r.dataset, "mnist");
    assert.equal(r.test_images, 300);
    assert.ok(r.top1_dense > 0.3, `dense top-1 ${r.top1_dense} (chance 0.1)`);
    assert.ok(r.dense_ms > 0 && r.dual_ms > 0 && r.ort_ms! > 0, `times ${r.dense_ms} ${r.dual_ms} ${r.ort_ms}`);
    assert.equal(r.achieved_per_layer.length, 16);
    if (r.ratio === 0) {
      assert.equal(r.top1, r.top1_dense);
      assert.equal(r.agreement, 1);
      assert.equal(r.achieved_ratio, 0);
      assert.equal(r.macs_big, r.macs_dense);
      assert.equal(r.macs_little, 0);
      assert.equal(r.ops_reduction_fp32eq, 1);
    } else {
      // Calibrated on training digits, measured on test digits.
      assert.ok(Math.abs(r.achieved_ratio - 0.5) < 0.05, `achieved ${r.achieved_ratio} for 0.5`);
      for (const l of r.achieved_per_layer) assert.ok(Math.abs(l.ratio - 0.5) < 0.15, `${l.name}: achieved ${l.ratio} for 0.5`);
      assert.ok(r.macs_big < 0.6 * r.macs_dense, `big ${r.macs_big} of dense ${r.macs_dense}`);
      assert.ok(r.macs_little > 0);
      assert.ok(Math.abs(r.ops_reduction_fp32eq - r.macs_dense / (r.macs_big + r.macs_little * r.bits / 32 + r.projection_adds)) < 1e-9);
    }
  }
  // fit cnn saves the same fit and calibration; eval cnn --dual then reproduces the little 0.5 row.
  const dual = join(tmp, "tiny-dual.safetensors"), dualJson = join(tmp, "dual-rows.json");
  await fitCnn(["--checkpoint", model, "--ratio", "0.5", "--mode", "little", "--fit", "100", "--calibrate", "100", "--threads", "1", "--out", dual]);
  await evalCnn(["--dual", dual, "--test", "300", "--threads", "1", "--timed", "2", "--rounds", "1", "--repeats", "1", "--json", dualJson]);
  const [saved] = JSON.parse(await readFile(dualJson, "utf8")) as CnnEvalRow[];
  const fitted = rows.find((r) => r.mode === "little" && r.ratio === 0.5)!;
  assert.equal(saved.model, "tiny-dual");
  assert.equal(saved.dataset, "mnist", "the dataset comes from the file");
  for (const key of ["mode", "ratio", "achieved_ratio", "top1", "top1_dense", "agreement", "macs_big", "macs_little"] as const) {
    assert.equal(saved[key], fitted[key], key);
  }
  for (const name of ["figure3.png", "figure4.png"]) {
    const png = await readFile(join(figures, name));
    assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE, name);
    assert.ok(png.length > 5000, `${name}: ${png.length} bytes`);
  }
});

test("a saved dual-module ResNet loads to the same network: logits bit for bit, thresholds, mode; bad files are named", async () => {
  const rt = (await testRuntimes())[1], be = runtimeDualBackend(rt), config = resnet18Small(4), weights = randomResNetWeights(config, 5);
  const digits = loadImageSet("mnist", "test");
  const images = Array.from({ length: 12 }, (_, i) => imagesToFloat(new Float32Array(784), digits, [i]));
  const net = new DualResNet(be, config, weights, { k: 20, bits: 4, seed: 9, mode: "little" });
  net.fit(images.slice(0, 6));
  net.calibrate(images.slice(6, 10), 0.6);
  const path = join(tmp, "dual.safetensors");
  await saveDualResNet(path, net, weights, 0.6, { notes: { dataset: "mnist" } });
  const loaded = await loadDualResNet(be, path);
  assert.equal(loaded.ratio, 0.6);
  assert.equal(loaded.notes.dataset, "mnist");
  assert.equal(loaded.net.mode, "little");
  assert.deepEqual(loaded.net.layers.map((l) => l.dual.threshold), net.layers.map((l) => l.dual.threshold));
  assert.deepEqual(loaded.net.layers.map((l) => [l.dual.little.k, l.dual.little.bits]), net.layers.map((l) => [l.dual.little.k, l.dual.little.bits]));
  for (const x of images.slice(10)) assert.deepEqual(loaded.net.forward(x).slice(), net.forward(x).slice());

  const plain = join(tmp, "plain.safetensors");
  await saveResNet(plain, config, weights);
  await assert.rejects(loadDualResNet(be, plain), /not a dual-module ResNet .*it is a plain ResNet: fit one with `dmi fit cnn/);
  await assert.rejects(loadDualResNet(be, join(tmp, "missing.safetensors")), /cannot read dual-module ResNet checkpoint .*does not exist/);
  await assert.rejects(fitCnn(["--checkpoint", plain, "--out", path, "--ratio", "1"]), /--ratio: 1 must be in \[0, 1\)/);
  await assert.rejects(fitCnn(["--out", path]), /--checkpoint FILE and --out FILE are required/);
  await assert.rejects(fitCnn(["--checkpoint", plain, "--out", path, "--threads", "1.5"]), /--threads must be an integer ≥ 1, got "1.5"/);
  await assert.rejects(evalCnn(["--dual", path, "--checkpoint", plain]), /--dual and --checkpoint: give one/);
});

test("dmi eval cnn names bad options", async () => {
  const cases: [string[], RegExp][] = [
    [["--ratios", "0.5,1"], /--ratios, --figure-ratio: 1 must be in \[0, 1\)/],
    [["--figure-layer", "layer5.0.conv1"], /--figure-layer: layer5\.0\.conv1 is not a dual layer/],
    [["--modes", "half"], /--modes: half must be zero or little/],
    [["--dataset", "cifar"], /--dataset: cifar must be one of mnist, fashion-mnist/],
    [["--test", "20000"], /--test 20000 exceeds the 10000 test images/],
    [["--checkpoint", join(tmp, "none.safetensors")], /cannot read ResNet checkpoint .*none\.safetensors: it does not exist/],
    [["--threads", "0"], /--threads: 0 must be a positive integer/],
    [["--predictor", "oracle"], /--predictor: oracle must be projection or seernet/],
    [["--predictor", "seernet", "--bits", "8"], /--bits: 8 must be 4 or 2 with --predictor seernet/],
    [["--bits", "2"], /--bits: 2 must be 8 or 4 with --predictor projection/],
    [["--allocation", "optimal"], /--allocation: optimal must be uniform or greedy/],
  ];
  for (const [args, pattern] of cases) await assert.rejects(evalCnn([...args, "--width", "4"]), pattern, args.join(" "));
});
