// Image folders (src/data/image-folder.ts): the listing and the pixels are torchvision's (ImageFolder's
// order; Resize, CenterCrop, ToTensor, Normalize; PIL's JPEG decoding: test/fixtures/image-folder-expected.json,
// written by scripts/fixtures/make_image_fixtures.py), PNG files written here with pngjs and JPEGs
// with jpeg-js decode to their pixels, channels convert as PIL does, every bad input is one line
// naming the file or folder; then `dmi eval cnn` and `dmi fit cnn` on a folder of the ResNet fixture's Fashion-MNIST images.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import { decodeImage, listImageFolder, openImageFolder, readImageInput } from "../src/data/image-folder.js";
import { type CnnEvalRow, main as evalCnn } from "../src/cli/eval-cnn.js";
import { main as fitCnn } from "../src/cli/fit-cnn.js";

const FIXTURES = fileURLToPath(new URL("../../test/fixtures/", import.meta.url));
const EXPECTED = JSON.parse(await readFile(join(FIXTURES, "image-folder-expected.json"), "utf8")) as {
  listing: { tree: string[]; classes: string[]; samples: [string, number][] };
  cases: { name: string; width: number; height: number; channels: number; resize: number; size: number; mean: number[]; std: number[]; expected: number[] }[];
  jpegs: { name: string; width: number; height: number; channels: number; bytes: string; pixels: number[] }[];
};
const RESNET = JSON.parse(await readFile(join(FIXTURES, "resnet-expected.json"), "utf8")) as {
  pixels: number[][]; labels: number[]; normalisation: { mean: number; std: number };
};

const tmp = await mkdtemp(join(tmpdir(), "dualmodule-image-folder-"));
after(() => rm(tmp, { recursive: true, force: true }));

/** The fixture script's source image, (height, width, 3) RGB. */
function source(width: number, height: number): Uint8Array {
  const px = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const at = (y * width + x) * 3;
    px[at] = (x * 7 + y * 13) % 256;
    px[at + 1] = (x * x + 3 * y) % 256;
    px[at + 2] = (x * y * 5 + 11) % 256;
  }
  return px;
}

/** A PNG of RGB pixels, written as colour type 2 (RGB), 0 (grey: the red channel) or 6 (RGBA, alpha 0–255 varying). */
function png(width: number, height: number, rgb: Uint8Array, colorType: 0 | 2 | 6 = 2): Buffer {
  const image = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) {
    image.data[4 * i] = rgb[3 * i];
    image.data[4 * i + 1] = colorType === 0 ? rgb[3 * i] : rgb[3 * i + 1];
    image.data[4 * i + 2] = colorType === 0 ? rgb[3 * i] : rgb[3 * i + 2];
    image.data[4 * i + 3] = colorType === 6 ? i % 256 : 255;
  }
  return PNG.sync.write(image, { colorType, inputColorType: 6, inputHasAlpha: true });
}

function jpg(width: number, height: number, rgb: Uint8Array): Buffer {
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set([rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 255], 4 * i);
  return jpeg.encode({ width, height, data }, 100).data;
}

async function put(path: string, bytes: Uint8Array | string): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
  return path;
}

test("listing: torchvision ImageFolder's classes and sample order on awkward names; other files ignored", async () => {
  const root = join(tmp, "listing");
  for (const f of EXPECTED.listing.tree) await put(join(root, f), "");
  await put(join(root, "loose.png"), ""); // a file beside the class folders is no sample
  const listing = listImageFolder(root);
  assert.deepEqual(listing.classes, EXPECTED.listing.classes);
  assert.deepEqual(listing.files.map((f, i) => [f.slice(root.length + 1), listing.labels[i]]), EXPECTED.listing.samples);
});

for (const c of EXPECTED.cases) {
  test(`pixels ${c.name}: ${c.width}×${c.height} → Resize(${c.resize}), CenterCrop(${c.size}), Normalize as torchvision, bit for bit`, async () => {
    const path = await put(join(tmp, "cases", `${c.name}.png`), png(c.width, c.height, source(c.width, c.height)));
    const x = await readImageInput(path, { channels: c.channels, size: c.size, resize: c.resize, mean: c.mean, std: c.std });
    assert.equal(x.length, c.expected.length);
    const differ = [...x].flatMap((v, i) => (v === c.expected[i] ? [] : [`${i}: ${v} vs ${c.expected[i]}`]));
    assert.deepEqual(differ, []);
  });
}

for (const c of EXPECTED.jpegs) {
  test(`JPEG ${c.name}: PIL's pixels bit for bit (libjpeg-turbo)`, async () => {
    const px = await decodeImage(Buffer.from(c.bytes, "base64"), `${c.name}.jpg`);
    assert.deepEqual([px.width, px.height, px.stride], [c.width, c.height, c.channels]);
    const differ = c.pixels.flatMap((v, i) => (px.data[i] === v ? [] : [`${i}: ${px.data[i]} vs ${v}`]));
    assert.deepEqual(differ.slice(0, 10), [], `${differ.length} of ${c.pixels.length} values differ`);
  });
}

test("decoding: PNG colour types and JPEG give their pixels; grey to RGB repeats, RGB to grey is PIL's luma; alpha is dropped", async () => {
  const sq = source(6, 6), dir = join(tmp, "decode");
  const files = {
    rgb: await put(join(dir, "rgb.png"), png(6, 6, sq, 2)), rgba: await put(join(dir, "rgba.png"), png(6, 6, sq, 6)),
    grey: await put(join(dir, "grey.png"), png(6, 6, sq, 0)), jpg: await put(join(dir, "rgb.jpg"), jpg(6, 6, sq)),
  };
  const n = 36, get = (x: Float32Array, c: number, i: number) => Math.round(x[c * n + i] * 255);
  for (const file of [files.rgb, files.rgba]) {
    const x = await readImageInput(file, { channels: 3, size: 6 });
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) assert.equal(get(x, c, i), sq[3 * i + c], `${file} pixel ${i} channel ${c}`);
    const g = await readImageInput(file, { channels: 1, size: 6 });
    for (let i = 0; i < n; i++) {
      const luma = (sq[3 * i] * 19595 + sq[3 * i + 1] * 38470 + sq[3 * i + 2] * 7471 + 0x8000) >>> 16;
      assert.equal(get(g, 0, i), luma, `${file} grey pixel ${i}`);
    }
  }
  const grey3 = await readImageInput(files.grey, { channels: 3, size: 6 }), grey1 = await readImageInput(files.grey, { channels: 1, size: 6 });
  for (let i = 0; i < n; i++) {
    assert.equal(get(grey1, 0, i), sq[3 * i], `grey pixel ${i}`);
    for (let c = 0; c < 3; c++) assert.equal(get(grey3, c, i), sq[3 * i], `grey as RGB pixel ${i} channel ${c}`);
  }
  // JPEG at quality 100 is lossy (chroma included): within a few levels of the source.
  const j = await readImageInput(files.jpg, { channels: 3, size: 6 });
  let worst = 0;
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(get(j, c, i) - sq[3 * i + c]));
  assert.ok(worst <= 24, `JPEG worst difference ${worst} levels`);
  assert.ok(worst > 0, "a lossy JPEG that decodes to the exact source would mean the PNG path was taken");
});

test("bad folders and files are one line naming the folder or the file", async () => {
  const dir = join(tmp, "bad"), small = png(4, 4, source(4, 4));
  await mkdir(join(dir, "empty-root"), { recursive: true });
  assert.throws(() => listImageFolder(join(dir, "empty-root")), /^Error: image folder .*empty-root: no class folders; expected the ImageFolder layout/);
  assert.throws(() => listImageFolder(join(dir, "missing")), /^Error: image folder .*missing: does not exist/);
  await put(join(dir, "no-images", "cat", "a.png"), small);
  await put(join(dir, "no-images", "dog", "readme.txt"), "not an image");
  assert.throws(() => listImageFolder(join(dir, "no-images")), /^Error: image folder .*no-images: no images in class folder dog \(images are \.jpg, \.jpeg, \.png files\)/);
  await put(join(dir, "bmp", "cat", "a.bmp"), "BM");
  assert.throws(() => listImageFolder(join(dir, "bmp")), /a\.bmp: a \.bmp image; only PNG and JPEG are decoded/);

  const options = { channels: 3, size: 4 };
  const text = await put(join(dir, "files", "text.png"), "hello, not a picture");
  await assert.rejects(readImageInput(text, options), /^Error: .*text\.png: not a PNG or JPEG file \(it starts with 68 65 6c 6c\)$/);
  const truncatedPng = await put(join(dir, "files", "cut.png"), small.subarray(0, small.length - 20));
  await assert.rejects(readImageInput(truncatedPng, options), /^Error: .*cut\.png: not a decodable PNG \(.+\); the file is damaged or truncated/);
  const photo = jpg(16, 16, source(16, 16));
  const truncatedJpg = await put(join(dir, "files", "cut.jpg"), photo.subarray(0, photo.length >> 1));
  await assert.rejects(readImageInput(truncatedJpg, { channels: 3, size: 16 }), /^Error: .*cut\.jpg: not a decodable JPEG \(libjpeg-turbo refused it\); the file is damaged or truncated/);
  // Header sizes above PIL's decompression-bomb limit are refused before any pixel is allocated.
  const hugeJpg = Uint8Array.from(photo), sof = hugeJpg.findIndex((b, i) => b === 0xff && hugeJpg[i + 1] === 0xc0);
  hugeJpg.set([0xfd, 0xe8, 0xfd, 0xe8], sof + 5);
  await assert.rejects(readImageInput(await put(join(dir, "files", "huge.jpg"), hugeJpg), options), /huge\.jpg: a JPEG of 65000×65000 pixels, more than the 89478485 PIL opens/);
  const hugePng = Uint8Array.from(small);
  new DataView(hugePng.buffer).setUint32(16, 100_000);
  new DataView(hugePng.buffer).setUint32(20, 100_000);
  await assert.rejects(readImageInput(await put(join(dir, "files", "huge.png"), hugePng), options), /huge\.png: a PNG of 100000×100000 pixels, more than/);
  assert.ok((await readImageInput(await put(join(dir, "files", "fine.jpg"), photo), { channels: 3, size: 16 })).length === 768, "the JPEG module still works");
  const big = await put(join(dir, "files", "big.png"), png(7, 5, source(7, 5)));
  await assert.rejects(readImageInput(big, options), /big\.png: 7×5 pixels, but the network takes 4×4; resize the images to 4×4, or pass --resize N/);
  await assert.rejects(readImageInput(big, { ...options, resize: 4, size: 5 }), /big\.png: --resize 4 makes it 5×4, smaller than the network's 5×5/);
  await assert.rejects(readImageInput(big, { ...options, resize: 5, mean: [0.5, 0.5] }), /--mean: 2 values for a network of 3 input channels; give one value, or one per channel/);
  await assert.rejects(readImageInput(big, { ...options, resize: 5, std: [0] }), /--std: 0 must be a positive finite number/);

  const ok = join(dir, "three-classes");
  for (const c of ["a", "b", "c"]) await put(join(ok, c, "x.png"), small);
  assert.throws(() => openImageFolder(ok, { ...options, classes: 10 }),
    /image folder .*three-classes: 3 class folders \(a, b, c\), but the network's classifier has 10 outputs/);
  assert.throws(() => openImageFolder(ok, { channels: 2, size: 4, classes: 3 }), /the network takes 2 input channels; images give 1 \(grey\) or 3 \(RGB\)/);
  const broken = join(dir, "broken");
  await put(join(broken, "a", "good.png"), small);
  await put(join(broken, "b", "bad.png"), small.subarray(0, 30));
  const source2 = openImageFolder(broken, { ...options, classes: 2 });
  await assert.rejects(source2.inputs(0, 2), /bad\.png: not a decodable PNG/);
});

/** A folder of the fixture's Fashion-MNIST images, ten classes: the four fixture images in their classes, and more from them. */
async function fixtureImageFolder(root: string): Promise<Map<string, number[]>> {
  const pixelsOf = new Map<string, number[]>();
  for (let label = 0; label < 10; label++) {
    for (let k = 0; k < 3; k++) {
      // Each class: fixture images shifted by whole levels (distinct, still images of the same kind).
      const base = RESNET.pixels[(label + k) % RESNET.pixels.length], shift = 7 * label + k;
      const pixels = base.map((p) => Math.min(255, p + shift));
      const rgb = new Uint8Array(784 * 3);
      pixels.forEach((p, i) => rgb.set([p, p, p], 3 * i));
      const path = await put(join(root, `class${label}`, `${k}.png`), png(28, 28, rgb, 0));
      pixelsOf.set(path, pixels);
    }
  }
  return pixelsOf;
}

test("a folder source: shuffled order over classes, labels follow files, inputs are the fixture's normalisation bit for bit", async () => {
  const root = join(tmp, "fashion"), pixelsOf = await fixtureImageFolder(root), { mean, std } = RESNET.normalisation, f = Math.fround;
  const listing = listImageFolder(root);
  const src = openImageFolder(root, { channels: 1, size: 28, mean: [mean], std: [std], classes: 10 });
  assert.equal(src.count, 30);
  assert.deepEqual([...src.labels].sort((a, b) => a - b), [...listing.labels]);
  assert.notDeepEqual([...src.labels], [...listing.labels], "shuffled");
  assert.ok(new Set(src.labels.subarray(0, 10)).size >= 5, `the first 10 images span the classes: ${src.labels.subarray(0, 10)}`);
  const inputs = await src.inputs(0, src.count);
  // Each input is one file's pixels through (p / 255 − mean) / std in float32 steps, and its label is that file's class.
  for (const [i, x] of inputs.entries()) {
    const file = [...pixelsOf.keys()].find((p) => {
      const px = pixelsOf.get(p)!;
      return px.every((v, j) => x[j] === f(f(f(v / 255) - f(mean)) / f(std)));
    });
    assert.ok(file, `input ${i} is one of the files`);
    assert.equal(src.labels[i], Number(/class(\d)/.exec(file!)![1]), `label of ${file}`);
  }
  await assert.rejects(src.inputs(25, 10), /images 25–34 asked for, it has 30/);
});

test("dmi eval cnn and fit cnn on a folder: the ONNX fixture ResNet, --images/--fit-images, --mean/--std saved with the dual file", async () => {
  const root = join(tmp, "eval"), onnx = join(FIXTURES, "resnet18-w4-bn.onnx"), { mean, std } = RESNET.normalisation;
  await fixtureImageFolder(join(root, "test"));
  await fixtureImageFolder(join(root, "train"));
  const json = join(root, "rows.json"), quick = ["--threads", "1", "--timed", "2", "--rounds", "1", "--repeats", "1"];
  const norm = ["--mean", String(mean), "--std", String(std)];
  await evalCnn(["--onnx", onnx, "--images", join(root, "test"), "--fit-images", join(root, "train"), ...norm, "--fit", "12", "--calibrate", "12",
    "--modes", "zero", "--ratios", "0,0.5", ...quick, "--json", json]);
  const rows = JSON.parse(await readFile(json, "utf8")) as CnnEvalRow[];
  assert.deepEqual(rows.map((r) => `${r.mode} ${r.ratio}`), ["zero 0", "zero 0.5"]);
  for (const r of rows) {
    assert.equal(r.dataset, join(root, "test"));
    assert.equal(r.test_images, 30);
    assert.equal(r.model, "resnet18-w4-bn");
  }
  assert.equal(rows[0].top1, rows[0].top1_dense);
  assert.equal(rows[0].agreement, 1);

  // fit cnn on the train folder saves the normalisation; eval --dual then needs only --images.
  const dual = join(root, "dual.safetensors"), dualJson = join(root, "dual.json");
  await fitCnn(["--onnx", onnx, "--fit-images", join(root, "train"), ...norm, "--fit", "12", "--calibrate", "12", "--ratio", "0.5", "--mode", "zero",
    "--threads", "1", "--out", dual]);
  await assert.rejects(evalCnn(["--dual", dual, ...quick]), /the network was fitted on the images in .*train: pass --images DIR/);
  await evalCnn(["--dual", dual, "--images", join(root, "test"), ...quick, "--json", dualJson]);
  const [saved] = JSON.parse(await readFile(dualJson, "utf8")) as CnnEvalRow[];
  assert.equal(saved.top1_dense, rows[0].top1_dense, "same dense top-1: the saved --mean/--std were applied");

  const bad: [string[], RegExp][] = [
    [["--images", join(root, "test"), "--dataset", "mnist"], /--dataset and --images: give one/],
    [["--images", join(root, "test"), "--validation", "5"], /--validation needs --fit-images DIR/],
    [["--images", join(root, "test"), "--mean", "0.1,0.2,0.3"], /--mean: 3 values for a network of 1 input channel; give one value/],
    [["--images", join(root, "test"), "--resize", "20"], /--resize: 20 must be an integer of at least the network's input size 28/],
    [["--dataset", "mnist", "--resize", "32"], /--resize is for image folders/],
  ];
  for (const [args, pattern] of bad) await assert.rejects(evalCnn(["--onnx", onnx, ...args, ...quick]), pattern, args.join(" "));
  // Scored images are held in memory: ImageNet-shaped ones are capped before anything is fitted.
  await assert.rejects(evalCnn(["--size", "224", "--width", "4", "--fit", "1", "--calibrate", "1", ...quick]),
    /--test: 10000 images of 3×224×224 would hold 5\.6 GiB in memory; pass --test N with N ≤ 1783/);
});
