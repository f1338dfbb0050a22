// The images people bring: a folder in torchvision's ImageFolder layout, DIR/<class>/<image>.png|jpg,
// read as a network's planar float input (channels, size, size), the way a torchvision evaluation
// transform would give it. What each step does, and which torchvision/PIL step it follows:
//   classes:   the sub-folders of DIR sorted by name (code points), label = index (ImageFolder);
//              images found recursively under each, in sorted order; files with other extensions
//              ignored; an image type we cannot decode (.bmp, .webp, …) refused naming the file.
//   decoding:  by content (PNG or JPEG signature): PNG with pngjs (pure JS); JPEG with libjpeg-turbo
//              compiled to WebAssembly (@cornerstonejs/codec-libjpeg-turbo-8bit, no native build),
//              the library PIL decodes with, so pixels are PIL's bit for bit (jpeg-js, pure JS, was
//              up to 25 levels off on a real 4:2:0 photo: it upsamples chroma another way). 16-bit
//              PNGs come down to 8 bits (pngjs); EXIF orientation is not applied (nor is it by PIL).
//   channels:  a 3-channel network gets R, G, B (alpha dropped, grey repeated: PIL's convert("RGB"));
//              a 1-channel network gets PIL's convert("L") luma, (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16,
//              taken before resizing (Grayscale() placed first in the transform).
//   size:      an image of the network's size is taken as it is; any other is refused unless `resize`
//              is given: then Resize(resize) (shorter side to `resize`, PIL's antialiased bilinear
//              filter in its 8-bit fixed point) and CenterCrop(size). Not silent, because the resize
//              a model was trained with is not in its file, and a different one costs accuracy.
//   values:    (pixel / 255 − mean[c]) / std[c] in float32 steps (ToTensor, then Normalize).
// Images are decoded when asked for, so a folder larger than memory can be listed and sampled.
// Not here: MNIST and Fashion-MNIST (./images.ts), augmentation, or any writing of images.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { extname, join } from "node:path";
import { PNG } from "pngjs";
import { Rng } from "../util/random.js";
import { oneLine } from "../util/one-line.js";
import { Progress } from "../util/progress.js";

/** How images become a network's input. */
export interface ImageInputOptions {
  /** The network's input channels: 1 (grey) or 3 (RGB). */
  channels: number;
  /** The network's input height and width. */
  size: number;
  /** torchvision's Resize(resize) then CenterCrop(size); absent, every image must be size×size. */
  resize?: number;
  /** Per channel, or one value for all (torchvision's Normalize); default 0 and 1: pixels in [0, 1]. */
  mean?: readonly number[];
  std?: readonly number[];
}

/** Labelled images in the order a command takes them, decoded on demand. */
export interface ImageSource {
  /** The data set's name or the folder, for messages and rows. */
  name: string;
  count: number;
  /** Class names by label, where the source has them. */
  classes?: string[];
  /** (count) the class of each image. */
  labels: Int32Array;
  /** Images from … from + n − 1 as (channels, size, size) inputs. */
  inputs(from: number, n: number): Promise<Float32Array[]>;
}

/** torchvision's IMG_EXTENSIONS: files ImageFolder takes as images; only PNG and JPEG are decoded here. */
const IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"];
const DECODED_EXTENSIONS = [".jpg", ".jpeg", ".png"];

/** Python's sorted() on str: code-point order, which UTF-8 byte order is. */
const byCodePoint = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

export interface ImageFolderListing {
  dir: string;
  /** The class folders, sorted; a label is an index into this. */
  classes: string[];
  /** Every image's path, class by class, each class's in sorted order (ImageFolder's samples). */
  files: string[];
  labels: Int32Array;
}

/**
 * The classes and image files of an ImageFolder-layout folder, in torchvision's order; one line
 * naming the folder when it has no class folders or a class has no images, or the file when an
 * image is of a type we do not decode.
 */
export function listImageFolder(dir: string): ImageFolderListing {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (e) {
    throw new Error(`image folder ${dir}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : `cannot be read (${(e as Error).message})`}`);
  }
  const isDir = (p: string) => { try { return statSync(p).isDirectory(); } catch { return false; } }; // followlinks=True, as ImageFolder
  const classes = entries.filter((e) => isDir(join(dir, e))).sort(byCodePoint);
  if (classes.length === 0) {
    throw new Error(`image folder ${dir}: no class folders; expected the ImageFolder layout ${join(dir, "<class>", "<image>.png")}, one folder per class`);
  }
  const files: string[] = [], labels: number[] = [], empty: string[] = [];
  classes.forEach((name, label) => {
    const found = imagesUnder(join(dir, name));
    if (found.length === 0) empty.push(name);
    for (const f of found) { files.push(f); labels.push(label); }
  });
  if (empty.length > 0) {
    throw new Error(`image folder ${dir}: no images in class folder${empty.length > 1 ? "s" : ""} ${empty.slice(0, 5).map((c) => oneLine(c)).join(", ")}` +
      `${empty.length > 5 ? ", …" : ""} (images are ${DECODED_EXTENSIONS.join(", ")} files); remove the folder or add its images`);
  }
  return { dir, classes, files, labels: Int32Array.from(labels) };
}

/** Image files under `dir`, recursively, ordered as sorted(os.walk(dir)) then sorted(files). */
function imagesUnder(dir: string): string[] {
  const roots: { root: string; files: string[] }[] = [];
  const walk = (root: string) => {
    const files: string[] = [];
    for (const e of readdirSync(root)) {
      const p = join(root, e);
      let st;
      try { st = statSync(p); } catch { continue; } // a broken link: os.walk skips it too
      if (st.isDirectory()) walk(p);
      else if (IMAGE_EXTENSIONS.includes(extname(e).toLowerCase())) files.push(e);
    }
    roots.push({ root, files: files.sort(byCodePoint) });
  };
  walk(dir);
  const out = roots.sort((a, b) => byCodePoint(a.root, b.root)).flatMap(({ root, files }) => files.map((f) => join(root, f)));
  const other = out.find((f) => !DECODED_EXTENSIONS.includes(extname(f).toLowerCase()));
  if (other) throw new Error(`${other}: a ${extname(other)} image; only PNG and JPEG are decoded: convert the folder's images to PNG (e.g. ImageMagick's mogrify -format png)`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// One image

/** Decoded pixels: (height, width, 4) RGBA for a PNG, (height, width, 3) RGB or (height, width) grey for a JPEG. */
export interface Pixels { width: number; height: number; stride: 1 | 3 | 4; data: Uint8Array }

/** The part of the libjpeg-turbo module we call (embind classes; the package ships no types). */
interface LibJpegTurbo {
  JPEGDecoder: new () => {
    getEncodedBuffer(bytes: number): Uint8Array; decode(): void; getDecodedBuffer(): Uint8Array; delete(): void;
    getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number };
  };
}
let libJpegTurbo: Promise<LibJpegTurbo> | undefined;
/** The module, instantiated once per process (Emscripten's factory is asynchronous). */
function loadLibJpegTurbo(): Promise<LibJpegTurbo> {
  const factory = createRequire(import.meta.url)("@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs") as () => Promise<LibJpegTurbo>;
  return (libJpegTurbo ??= factory());
}

/**
 * PIL's Image.MAX_IMAGE_PIXELS (it warns of a decompression bomb above it). Checked from the header
 * before decoding: the 32-bit JPEG module's byte counts of a larger image can wrap around and
 * corrupt its memory, and a PNG's pixels are allocated from its header.
 */
export const MAX_IMAGE_PIXELS = 89_478_485;

function checkPixels(width: number, height: number, path: string, format: string): void {
  if (width * height > MAX_IMAGE_PIXELS) {
    throw new Error(`${path}: a ${format} of ${width}×${height} pixels, more than the ${MAX_IMAGE_PIXELS} PIL opens without a warning; shrink it first`);
  }
}

/** Width, height and components from a JPEG's frame header (SOFn), or null when there is none before the scan. */
function jpegFrame(b: Uint8Array): { width: number; height: number; components: number } | null {
  let at = 2;
  while (at + 4 <= b.length) {
    if (b[at] !== 0xff) return null;
    const marker = b[at + 1];
    if (marker === 0xff) { at++; continue; } // fill byte
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { at += 2; continue; } // no length
    if (marker === 0xda) return null; // the scan, and no frame header before it
    const length = (b[at + 2] << 8) | b[at + 3];
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) return at + 10 > b.length ? null : { height: (b[at + 5] << 8) | b[at + 6], width: (b[at + 7] << 8) | b[at + 8], components: b[at + 9] };
    at += 2 + length;
  }
  return null;
}

function decodeJpeg(lib: LibJpegTurbo, bytes: Uint8Array, path: string): Pixels {
  const frame = jpegFrame(bytes);
  if (frame) checkPixels(frame.width, frame.height, path, "JPEG");
  // libjpeg's errors reach JavaScript as a bare C++ exception (a number), without its text; an Error
  // is the module itself failing, and the next image then gets a fresh one.
  const refused = (e: unknown): Error => {
    if (e instanceof Error) libJpegTurbo = undefined;
    return new Error(`${path}: not a decodable JPEG (libjpeg-turbo refused it${e instanceof Error ? `: ${oneLine(e.message)}` : ""}); ` +
      "the file is damaged or truncated: re-save or remove it");
  };
  let decoder: InstanceType<LibJpegTurbo["JPEGDecoder"]>;
  try {
    decoder = new lib.JPEGDecoder();
  } catch (e) {
    throw refused(e);
  }
  try {
    let info;
    try {
      decoder.getEncodedBuffer(bytes.length).set(bytes);
      decoder.decode();
      info = decoder.getFrameInfo();
    } catch (e) {
      throw refused(e);
    }
    const { width, height, componentCount, bitsPerSample } = info;
    if (bitsPerSample !== 8 || (componentCount !== 1 && componentCount !== 3)) {
      throw new Error(`${path}: a JPEG of ${componentCount} components of ${bitsPerSample} bits; only 8-bit grey or colour (YCbCr, RGB) JPEGs are read: re-save it as RGB`);
    }
    // A copy: the decoder's buffer is a view of the module's memory, reused and freed.
    return { width, height, stride: componentCount as 1 | 3, data: decoder.getDecodedBuffer().slice(0, width * height * componentCount) };
  } finally {
    try { decoder.delete(); } catch { libJpegTurbo = undefined; }
  }
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47], JPEG_MAGIC = [0xff, 0xd8, 0xff];
const startsWith = (b: Uint8Array, magic: number[]) => magic.every((m, i) => b[i] === m);

/** The pixels of a PNG or JPEG file's bytes; one line naming `path` when they are neither, or broken. */
export async function decodeImage(bytes: Uint8Array, path: string): Promise<Pixels> {
  const why = (e: unknown) => oneLine(e instanceof Error ? e.message : String(e));
  if (startsWith(bytes, PNG_MAGIC)) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    if (bytes.length >= 24) checkPixels(dv.getUint32(16), dv.getUint32(20), path, "PNG"); // IHDR, which comes first
    try {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
      return { width: png.width, height: png.height, stride: 4, data: png.data };
    } catch (e) {
      throw new Error(`${path}: not a decodable PNG (${why(e)}); the file is damaged or truncated: re-save or remove it`);
    }
  }
  if (startsWith(bytes, JPEG_MAGIC)) return decodeJpeg(await loadLibJpegTurbo(), bytes, path);
  throw new Error(`${path}: not a PNG or JPEG file (it starts with ${Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ") || "nothing"})`);
}

/** (channels, height, width) 8-bit planes: RGB, or PIL's "L" luma for one channel. */
function planes(px: Pixels, channels: number): Uint8Array {
  const n = px.width * px.height, out = new Uint8Array(channels * n), { data, stride } = px;
  for (let i = 0; i < n; i++) {
    const at = i * stride, r = data[at], g = stride === 1 ? r : data[at + 1], b = stride === 1 ? r : data[at + 2];
    if (channels === 1) out[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
    else { out[i] = r; out[n + i] = g; out[2 * n + i] = b; }
  }
  return out;
}

// PIL's 8-bit resampling (libImaging/Resample.c): per output pixel, normalised filter weights over
// the input pixels within the support, in fixed point with 22 fraction bits, rounded and clipped
// after each of the two passes (horizontal, then vertical).
const PRECISION_BITS = 22;

/** Bilinear (triangle) weights for resizing `inSize` samples to `outSize`: PIL's precompute_coeffs and normalize_coeffs_8bpc. */
function resampleWeights(inSize: number, outSize: number): { first: Int32Array; count: Int32Array; weights: Int32Array[] } {
  const scale = inSize / outSize, filterScale = Math.max(scale, 1), support = filterScale; // bilinear support 1, widened when shrinking
  const first = new Int32Array(outSize), count = new Int32Array(outSize), weights: Int32Array[] = [];
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0), hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    const inverse = 1 / filterScale; // multiplied, not divided by: PIL's rounding
    const w = Array.from({ length: hi - lo }, (_, i) => Math.max(0, 1 - Math.abs((i + lo - center + 0.5) * inverse)));
    const total = w.reduce((a, b) => a + b, 0);
    first[o] = lo;
    count[o] = hi - lo;
    weights.push(Int32Array.from(w, (v) => Math.trunc(0.5 + (total !== 0 ? v / total : v) * (1 << PRECISION_BITS))));
  }
  return { first, count, weights };
}

/** One pass over `planes` (c, h, w) along width (`horizontal`) or height, to `outSize`. */
function resamplePass(src: Uint8Array, c: number, h: number, w: number, outSize: number, horizontal: boolean): Uint8Array {
  const inSize = horizontal ? w : h, { first, count, weights } = resampleWeights(inSize, outSize);
  const oh = horizontal ? h : outSize, ow = horizontal ? outSize : w, out = new Uint8Array(c * oh * ow);
  const step = horizontal ? 1 : w;
  for (let ch = 0; ch < c; ch++) for (let y = 0; y < oh; y++) for (let x = 0; x < ow; x++) {
    const o = horizontal ? x : y, k = weights[o];
    let at = ch * h * w + (horizontal ? y * w + first[o] : first[o] * w + x);
    let s = 1 << (PRECISION_BITS - 1);
    for (let i = 0; i < count[o]; i++, at += step) s += src[at] * k[i];
    out[(ch * oh + y) * ow + x] = Math.min(255, Math.max(0, Math.floor(s / (1 << PRECISION_BITS))));
  }
  return out;
}

/** Python's round(): halves to even, as torchvision's CenterCrop offsets use it. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * One image file as a network input (channels, size, size), as described at the top of this file;
 * one line naming the file for anything wrong with it.
 */
export async function readImageInput(path: string, options: ImageInputOptions): Promise<Float32Array> {
  const { channels, size } = options;
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`${path}: cannot be read (${(e as Error).message})`);
  }
  const px = await decodeImage(bytes, path);
  let p = planes(px, channels), h = px.height, w = px.width;
  if (options.resize === undefined) {
    if (w !== size || h !== size) {
      throw new Error(`${path}: ${w}×${h} pixels, but the network takes ${size}×${size}; resize the images to ${size}×${size}, ` +
        `or pass --resize N (torchvision's Resize(N) then CenterCrop(${size}); N = ${Math.round(size * 256 / 224)} is ImageNet's 256 for 224)`);
    }
  } else {
    // torchvision's Resize(int): the shorter side to `resize`, the longer scaled and truncated.
    const r = options.resize, [nw, nh] = w <= h ? [r, Math.trunc(r * h / w)] : [Math.trunc(r * w / h), r];
    if (nw < size || nh < size) throw new Error(`${path}: --resize ${r} makes it ${nw}×${nh}, smaller than the network's ${size}×${size}; use --resize ${size} or more`);
    if (nw !== w) { p = resamplePass(p, channels, h, w, nw, true); w = nw; }
    if (nh !== h) { p = resamplePass(p, channels, h, w, nh, false); h = nh; }
  }
  const top = roundHalfEven((h - size) / 2), left = roundHalfEven((w - size) / 2);
  const out = new Float32Array(channels * size * size);
  for (let c = 0; c < channels; c++) for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
    out[(c * size + y) * size + x] = p[(c * h + y + top) * w + x + left] / 255;
  }
  return normalise(out, options);
}

/**
 * Normalises an input (channels, size, size) of pixels / 255 in place, as torchvision's Normalize
 * does after ToTensor: (x − mean[c]) / std[c], each step rounded to float32.
 */
export function normalise(x: Float32Array, options: ImageInputOptions): Float32Array {
  const { channels } = options, plane = x.length / channels, f = Math.fround;
  const mean = perChannel(options.mean, 0, channels, "mean"), std = perChannel(options.std, 1, channels, "std");
  for (let c = 0; c < channels; c++) for (let i = c * plane; i < (c + 1) * plane; i++) x[i] = f(f(x[i] - mean[c]) / std[c]);
  return x;
}

/** A --mean or --std list as one float32 per channel; one value stands for every channel. */
function perChannel(values: readonly number[] | undefined, fallback: number, channels: number, name: "mean" | "std"): number[] {
  const v = values ?? [fallback];
  if (v.length !== 1 && v.length !== channels) {
    throw new Error(`--${name}: ${v.length} values for a network of ${channels} input channel${channels > 1 ? "s" : ""}; give one value, or one per channel`);
  }
  for (const x of v) {
    if (!Number.isFinite(x) || (name === "std" && !(x > 0))) throw new Error(`--${name}: ${x} must be a ${name === "std" ? "positive " : ""}finite number`);
  }
  return Array.from({ length: channels }, (_, c) => Math.fround(v.length === 1 ? v[0] : v[c]));
}

/** Checks what options say about themselves before any image is read: channels, sizes, mean and std. */
export function checkImageInputOptions(o: ImageInputOptions): void {
  if (o.channels !== 1 && o.channels !== 3) throw new Error(`the network takes ${o.channels} input channels; images give 1 (grey) or 3 (RGB)`);
  if (!Number.isInteger(o.size) || o.size < 1) throw new RangeError(`image size must be a positive integer, got ${o.size}`);
  if (o.resize !== undefined && !(Number.isInteger(o.resize) && o.resize >= o.size)) {
    throw new Error(`--resize: ${o.resize} must be an integer of at least the network's input size ${o.size}`);
  }
  perChannel(o.mean, 0, o.channels, "mean");
  perChannel(o.std, 1, o.channels, "std");
}

// ---------------------------------------------------------------------------------------------
// A folder as a source

/**
 * The images of an ImageFolder-layout folder as a source for a network of `classes` outputs, in a
 * fixed shuffled order (seed `seed`), so that the first N images span the classes; one line when
 * the folder's class count is not the network's.
 */
export function openImageFolder(dir: string, options: ImageInputOptions & { classes: number; seed?: number }): ImageSource {
  checkImageInputOptions(options);
  const listing = listImageFolder(dir);
  if (listing.classes.length !== options.classes) {
    const shown = listing.classes.slice(0, 6).map((c) => oneLine(c)).join(", ") + (listing.classes.length > 6 ? ", …" : "");
    throw new Error(`image folder ${dir}: ${listing.classes.length} class folders (${shown}), but the network's classifier has ${options.classes} outputs; ` +
      `give one folder per class the network was trained on, named so that their sorted order is its class order`);
  }
  const order = shuffledOrder(listing.files.length, options.seed ?? 1);
  return {
    name: dir, count: order.length, classes: listing.classes,
    labels: Int32Array.from(order, (i) => listing.labels[i]),
    async inputs(from, n) {
      if (!(Number.isInteger(from) && Number.isInteger(n) && from >= 0 && n >= 0 && from + n <= order.length)) {
        throw new RangeError(`image folder ${dir}: images ${from}–${from + n - 1} asked for, it has ${order.length}`);
      }
      const bar = n >= PROGRESS_FROM ? new Progress(`decoding ${dir}`, n, "img") : null;
      const out: Float32Array[] = [];
      for (let i = 0; i < n; i++) {
        out.push(await readImageInput(listing.files[order[from + i]], options));
        bar?.update(i + 1);
      }
      return out;
    },
  };
}

/** Decoding fewer images than this is quick enough to go without a progress bar. */
const PROGRESS_FROM = 100;

/** A Fisher–Yates permutation of 0 … n − 1 from a seed. */
function shuffledOrder(n: number, seed: number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i), rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}
