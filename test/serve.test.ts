// dmi serve without a browser: the isolation headers on every response, the bundle's files with
// their types, the demos' models and data (the CNN's images, or why there are none), nothing
// outside the bundle's folder. The page itself: browser.e2e.ts.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { defaultModel } from "../src/recurrent/open.js";
import { DEMO_IMAGES, DEMO_TOKENS, startServer } from "../src/cli/serve.js";
import { imageDatasetDir } from "../src/data/images.js";

const started = startServer({ port: 0, host: "127.0.0.1", model: defaultModel() });
after(async () => { const { server } = await started; server.close(); });

test("dmi serve: COOP/COEP on every response, the bundle, the models, the demo's slices and images; nothing else", async () => {
  const { url } = await started;
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const get = async (path: string) => {
    const r = await fetch(new URL(path, url));
    assert.equal(r.headers.get("cross-origin-opener-policy"), "same-origin", path);
    assert.equal(r.headers.get("cross-origin-embedder-policy"), "require-corp", path);
    return r;
  };
  for (const [path, type] of [["/", "text/html"], ["/dualmodule.js", "text/javascript"], ["/dualmodule-worker.js", "text/javascript"],
    ["/kernels-simd.wasm", "application/wasm"], ["/kernels-relaxed.wasm", "application/wasm"], ["/app.js", "text/javascript"],
    ["/cnn.js", "text/javascript"]]) {
    const r = await get(path);
    assert.equal(r.status, 200, path);
    assert.ok(r.headers.get("content-type")!.startsWith(type), `${path}: ${r.headers.get("content-type")}`);
  }
  const bundle = await (await get("/dualmodule.js")).text();
  for (const nodeOnly of ["worker_threads", "availableParallelism", "setFlagsFromString"]) assert.ok(!bundle.includes(nodeOnly), `the bundle holds ${nodeOnly}`);
  const model = new Uint8Array(await (await get("/model.safetensors")).arrayBuffer());
  assert.ok(model.length > 1e6);
  const data = await (await get("/demo-data.json")).json() as { words: string[]; train: number[][]; valid: number[][]; test: number[] };
  assert.equal(data.words.length, 10_000);
  assert.equal(data.train.flat().length, DEMO_TOKENS.train);
  assert.equal(data.test.length, DEMO_TOKENS.test);
  const cnn = new Uint8Array(await (await get("/cnn-model.safetensors")).arrayBuffer());
  assert.ok(cnn.length > 1e6);
  const images = await (await get("/cnn-data.json")).json() as { missing?: string; classes: string[]; fit: string; test: string; testLabels: number[] };
  if (imageDatasetDir("fashion-mnist") === null) assert.match(images.missing!, /fetch-test-data\.mjs fashion-mnist/);
  else {
    assert.equal(images.classes.length, 10);
    assert.equal(Buffer.from(images.fit, "base64").length, DEMO_IMAGES.fit * 784);
    assert.deepEqual(images.testLabels, Array.from({ length: 10 * DEMO_IMAGES.testPerClass }, (_, i) => Math.floor(i / DEMO_IMAGES.testPerClass)));
    assert.equal(Buffer.from(images.test, "base64").length, images.testLabels.length * 784);
  }
  for (const path of ["/../package.json", "/%2e%2e/package.json", "/nothing.js", "/index.ts"]) assert.equal((await get(path)).status, 404, path);
});
