// dmi serve without a browser: the isolation headers on every response, the bundle's files with
// their types, the demo's data, nothing outside the bundle's folder. The page itself: browser.e2e.ts.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { defaultModel } from "../src/recurrent/open.js";
import { DEMO_TOKENS, startServer } from "../src/cli/serve.js";

const started = startServer({ port: 0, host: "127.0.0.1", model: defaultModel() });
after(async () => { const { server } = await started; server.close(); });

test("dmi serve: COOP/COEP on every response, the bundle, the model and the demo's slices; nothing else", async () => {
  const { url } = await started;
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const get = async (path: string) => {
    const r = await fetch(new URL(path, url));
    assert.equal(r.headers.get("cross-origin-opener-policy"), "same-origin", path);
    assert.equal(r.headers.get("cross-origin-embedder-policy"), "require-corp", path);
    return r;
  };
  for (const [path, type] of [["/", "text/html"], ["/dualmodule.js", "text/javascript"], ["/dualmodule-worker.js", "text/javascript"],
    ["/kernels-simd.wasm", "application/wasm"], ["/kernels-relaxed.wasm", "application/wasm"], ["/app.js", "text/javascript"]]) {
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
  for (const path of ["/../package.json", "/%2e%2e/package.json", "/nothing.js", "/index.ts"]) assert.equal((await get(path)).status, 404, path);
});
