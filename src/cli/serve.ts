// `dmi serve`: the browser demo on a small static server (node:http). Serves the browser bundle's
// folder (dist/web/, built by `npm run build`), the language model's checkpoint as /model.safetensors
// and, as /demo-data.json, the vocabulary and small slices of the corpus the model was trained on
// (the page fits its little modules on them); the CNN's checkpoint as /cnn-model.safetensors and,
// as /cnn-data.json, a few images of the data set it was trained on, read from the local copy of
// the data set when there is one (fit, calibration and test images to pick; without it the CNN tab
// says how to get it). Every response carries COOP/COEP, so the page is
// cross-origin isolated and its kernels may run on several threads over shared memory. Bound to
// 127.0.0.1 unless --host says otherwise. Not here: the page (web/) or what it runs (src/web/).
import { createServer, type Server } from "node:http";
import { readFile, readdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadLm } from "../recurrent/lm.js";
import { defaultModel, checkVocabulary } from "../recurrent/open.js";
import { spreadPieces } from "../recurrent/eval.js";
import { CORPORA, loadCorpus, type CorpusName } from "../data/corpus.js";
import { IMAGE_DATASETS, type ImageDataset, loadImageSet } from "../data/images.js";
import { loadResNet } from "../conv/checkpoint.js";
import { MODELS_DIR } from "../recurrent/open.js";
import type { DemoSlices } from "../web/lm-demo.js";
import type { CnnDemoImagesJson } from "../web/cnn-demo.js";
import { integer } from "./args.js";

/** The browser bundle's folder: dist/web/ beside dist/src/. */
export const WEB_DIR = fileURLToPath(new URL("../../web", import.meta.url));

/** Tokens of each slice the page gets: what it fits on, calibrates on and times on. */
export const DEMO_TOKENS = { train: 4000, valid: 2000, test: 1000, piece: 500 };

/** Images the CNN tab gets: training images it fits on and calibrates on, test images per class to pick from. */
export const DEMO_IMAGES = { fit: 100, calibrate: 25, testPerClass: 2 };

/** The shipped CNN: ResNet-18 at width 16 on Fashion-MNIST. */
export const DEFAULT_CNN = join(MODELS_DIR, "fashion-resnet18-w16.safetensors");

const CLASS_NAMES: Record<ImageDataset, string[]> = {
  "mnist": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
  "fashion-mnist": ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"],
};

const USAGE = `dmi serve [options]
  --port N      port (8080; 0 picks a free one)
  --host H      address to listen on (127.0.0.1: this machine only)
  --model FILE  a language-model checkpoint trained on a known corpus (default: the smallest shipped SOTU LSTM)
  --cnn FILE    a ResNet checkpoint from \`dmi train cnn\` (default: the shipped Fashion-MNIST ResNet-18)`;

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
  ".json": "application/json", ".wasm": "application/wasm", ".map": "application/json", ".png": "image/png",
  ".safetensors": "application/octet-stream",
};

/** The headers that make a page cross-origin isolated (SharedArrayBuffer, shared WebAssembly memory). */
const ISOLATION = {
  "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
};

/** The vocabulary and slices of the corpus `model` was trained on. */
export async function demoSlices(model: string, onProgress?: (m: string) => void): Promise<DemoSlices> {
  const ckpt = await loadLm(model);
  const name = ckpt.training.corpus;
  if (!(CORPORA as string[]).includes(name)) throw new Error(`model ${model} was trained on corpus ${JSON.stringify(name)}, not one of ${CORPORA.join(", ")}`);
  const corpus = await loadCorpus(name as CorpusName, { onProgress });
  checkVocabulary(ckpt, corpus, model);
  const pieces = (ids: Int32Array, n: number) => spreadPieces(ids, n, DEMO_TOKENS.piece).map((p) => Array.from(p));
  return {
    words: [...corpus.vocab.words], train: pieces(corpus.train, DEMO_TOKENS.train), valid: pieces(corpus.valid, DEMO_TOKENS.valid),
    test: Array.from(corpus.test.subarray(0, DEMO_TOKENS.test)),
  };
}

/**
 * A few images of the data set the ResNet `cnn` was trained on (its notes say which), or why there
 * are none: Fashion-MNIST is read from its local copy, which a fresh clone may not have yet.
 */
export async function cnnImages(cnn: string): Promise<CnnDemoImagesJson | { missing: string }> {
  const { notes } = await loadResNet(cnn);
  const dataset = notes.dataset as ImageDataset;
  if (!IMAGE_DATASETS.includes(dataset)) throw new Error(`CNN ${cnn} names no data set it was trained on (notes.dataset is ${JSON.stringify(notes.dataset)}): serve one from \`dmi train cnn\``);
  let train, test;
  try {
    train = loadImageSet(dataset, "train"); test = loadImageSet(dataset, "test");
  } catch (e) {
    return { missing: (e as Error).message };
  }
  const px = 28 * 28, { fit, calibrate, testPerClass } = DEMO_IMAGES;
  const picked: number[] = [];
  for (let c = 0; c < CLASS_NAMES[dataset].length; c++) {
    for (let i = 0, n = 0; i < test.count && n < testPerClass; i++) if (test.labels[i] === c) { picked.push(i); n++; }
  }
  const base64 = (a: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
  return {
    dataset, classes: CLASS_NAMES[dataset],
    fit: base64(train.images.subarray(0, fit * px)), calibrate: base64(train.images.subarray(fit * px, (fit + calibrate) * px)),
    test: base64(Uint8Array.from(picked.flatMap((i) => Array.from(test.images.subarray(i * px, (i + 1) * px))))),
    testLabels: picked.map((i) => test.labels[i]),
  };
}

export interface ServeOptions { port: number; host: string; model: string; cnn?: string; onProgress?: (m: string) => void }

/** Starts the server; resolves once it listens, with its address. */
export async function startServer(o: ServeOptions): Promise<{ url: string; server: Server }> {
  if (!existsSync(join(WEB_DIR, "index.html"))) throw new Error(`the browser bundle is missing from ${WEB_DIR}: run 'npm run build' (npm install does it too)`);
  const files = new Set(await readdir(WEB_DIR));
  const data = Buffer.from(JSON.stringify(await demoSlices(o.model, o.onProgress)));
  const cnn = o.cnn ?? DEFAULT_CNN;
  const images = await cnnImages(cnn);
  if ("missing" in images) o.onProgress?.(`the CNN tab has no images: ${images.missing}`);
  const cnnData = Buffer.from(JSON.stringify(images));
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const send = (status: number, type: string, body: Buffer | string) => {
      res.writeHead(status, { "Content-Type": type, "Cache-Control": "no-cache", ...ISOLATION });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, "text/plain", "GET only\n");
    const name = path === "/" ? "index.html" : path.slice(1);
    let body: Promise<Buffer>;
    if (name === "model.safetensors") body = readFile(o.model);
    else if (name === "demo-data.json") body = Promise.resolve(data);
    else if (name === "cnn-model.safetensors") body = readFile(cnn);
    else if (name === "cnn-data.json") body = Promise.resolve(cnnData);
    else if (files.has(name)) body = readFile(join(WEB_DIR, name)); // names of the folder only: no path escapes it
    else return send(404, "text/plain", `not found: ${path}\n`);
    body.then((b) => send(200, TYPES[extname(name)] ?? "application/octet-stream", b),
      (e: Error) => send(500, "text/plain", `${e.message}\n`));
  });
  await new Promise<void>((resolve, reject) => { server.once("error", reject); server.listen(o.port, o.host, resolve); });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : o.port;
  const host = o.host.includes(":") ? `[${o.host}]` : o.host;
  return { url: `http://${host}:${port}/`, server };
}

export async function main(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv, options: { port: { type: "string" }, host: { type: "string" }, model: { type: "string" }, cnn: { type: "string" }, help: { type: "boolean" } },
  });
  if (v.help) { console.log(USAGE); return; }
  const port = integer("port", v.port, 0, 8080);
  if (port > 65535) throw new Error(`--port must be at most 65535, got ${port}`);
  const model = v.model ?? defaultModel();
  const cnn = v.cnn ?? DEFAULT_CNN;
  const { url } = await startServer({ port, host: v.host ?? "127.0.0.1", model, cnn, onProgress: (m) => console.error(m) });
  console.log(`dmi serve: ${url} (language model ${model}, CNN ${cnn}); Ctrl-C stops`);
}
