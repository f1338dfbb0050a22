// `dmi serve`: the browser demo on a small static server (node:http). Serves the browser bundle's
// folder (dist/web/, built by `npm run build`), the model checkpoint as /model.safetensors and, as
// /demo-data.json, the vocabulary and small slices of the corpus the model was trained on (the
// page fits its little modules on them). Every response carries COOP/COEP, so the page is
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
import type { DemoSlices } from "../web/lm-demo.js";
import { integer } from "./args.js";

/** The browser bundle's folder: dist/web/ beside dist/src/. */
export const WEB_DIR = fileURLToPath(new URL("../../web", import.meta.url));

/** Tokens of each slice the page gets: what it fits on, calibrates on and times on. */
export const DEMO_TOKENS = { train: 4000, valid: 2000, test: 1000, piece: 500 };

const USAGE = `dmi serve [options]
  --port N      port (8080; 0 picks a free one)
  --host H      address to listen on (127.0.0.1: this machine only)
  --model FILE  a language-model checkpoint trained on a known corpus (default: the smallest shipped SOTU LSTM)`;

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

export interface ServeOptions { port: number; host: string; model: string; onProgress?: (m: string) => void }

/** Starts the server; resolves once it listens, with its address. */
export async function startServer(o: ServeOptions): Promise<{ url: string; server: Server }> {
  if (!existsSync(join(WEB_DIR, "index.html"))) throw new Error(`the browser bundle is missing from ${WEB_DIR}: run 'npm run build' (npm install does it too)`);
  const files = new Set(await readdir(WEB_DIR));
  const data = Buffer.from(JSON.stringify(await demoSlices(o.model, o.onProgress)));
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
    args: argv, options: { port: { type: "string" }, host: { type: "string" }, model: { type: "string" }, help: { type: "boolean" } },
  });
  if (v.help) { console.log(USAGE); return; }
  const port = integer("port", v.port, 0, 8080);
  if (port > 65535) throw new Error(`--port must be at most 65535, got ${port}`);
  const model = v.model ?? defaultModel();
  const { url } = await startServer({ port, host: v.host ?? "127.0.0.1", model, onProgress: (m) => console.error(m) });
  console.log(`dmi serve: ${url} (model ${model}); Ctrl-C stops`);
}
