// Step times of the demo page in Chromium against Node's, on 1 and 2 threads (npm run bench:browser,
// after npm run build; run it on a quiet machine): the language model's recurrent step (LmDemo.stepTimes,
// ratio 0.5) and the CNN's time per image (CnnDemo.imageTimes, ratio 0.5, mode little), each
// measured `--repeats` times (median, min–max of the repeats), in the page `dmi serve` serves and in
// Node on the same model, images, kernel build and thread count, alternating between the two. Also
// how long each takes to fit and calibrate, and how many Web Workers the page runs. Prints a
// Markdown table; --json FILE writes the rows.
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { launchChromium } from "./browser-launch.js";
import { Runtime } from "../src/runtime/runtime.js";
import { enableRelaxedSimd, type SimdVariant } from "../src/runtime/wasm.js";
import { LmDemo, type StepTimes } from "../src/web/lm-demo.js";
import { CnnDemo, decodeCnnImages, type ImageTimes } from "../src/web/cnn-demo.js";
import { defaultModel } from "../src/recurrent/open.js";
import { DEFAULT_CNN, cnnImages, demoSlices, startServer } from "../src/cli/serve.js";
import { spread, type Spread } from "../src/util/timing.js";
import { writeFileAtomic } from "../src/io/files.js";

interface Row {
  model: "lstm" | "cnn"; where: "chromium" | "node"; threads: number; variant: SimdVariant;
  dense_ms: Spread; dual_ms: Spread; fit_s: number; calibrate_s: number | null; workers: number | null;
}
/** One side of the comparison, set up (fitted, calibrated to 0.5), ready to time. */
interface Side { lm(): Promise<StepTimes>; cnn(): Promise<ImageTimes>; lmFit: number; cnnFit: number; cnnCalibrate: number; variant: SimdVariant;
  workers: number | null; close(): Promise<unknown> }

const { values } = parseArgs({ options: { repeats: { type: "string", default: "5" }, threads: { type: "string", default: "1,2" }, json: { type: "string" } } });
const repeats = Number(values.repeats), threadCounts = values.threads!.split(",").map(Number);
enableRelaxedSimd();

const model = defaultModel();
const served = await cnnImages(DEFAULT_CNN);
if ("missing" in served) throw new Error(`bench:browser needs the CNN's images: ${served.missing}`);
const images = served;
const slices = await demoSlices(model);
const { url, server } = await startServer({ port: 0, host: "127.0.0.1", model });
const browser = await launchChromium();
const chromiumVersion = browser.version();

async function inChromium(threads: number): Promise<Side> {
  const page = await browser.newPage();
  await page.goto(`${url}?threads=${threads}&tab=cnn`);
  await page.waitForFunction(() => { const d = (window as any).dmi; return (d.ready && d.cnn?.ready) || d.error || d.cnn?.error; }, null, { timeout: 300_000 });
  const m = await page.evaluate(() => {
    const d = (window as any).dmi;
    if (d.error ?? d.cnn.error) throw new Error(`the page failed: ${d.error ?? d.cnn.error}`);
    if (!(globalThis as any).crossOriginIsolated) throw new Error("the page is not cross-origin isolated");
    d.lmDemo.setRatio(0.5);
    return { lmFit: d.info.fitSeconds, cnnFit: d.cnn.info.fitSeconds, cnnCalibrate: d.cnn.info.calibrateSeconds, variant: d.info.variant, threads: d.info.threads };
  });
  if (m.threads !== threads) throw new Error(`the page runs ${m.threads} threads, ${threads} asked for`);
  return {
    ...m, workers: page.workers().length, close: () => page.close(),
    lm: () => page.evaluate(() => (window as any).dmi.lmDemo.stepTimes()),
    cnn: () => page.evaluate(() => (window as any).dmi.cnn.demo.imageTimes()),
  };
}

async function inNode(threads: number, variant: SimdVariant): Promise<Side> {
  const rt = await Runtime.create({ simd: variant, threads });
  let t0 = performance.now();
  const lmDemo = await LmDemo.create(rt, readFileSync(model), slices);
  const lmFit = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const cnnDemo = CnnDemo.create(rt, readFileSync(DEFAULT_CNN), decodeCnnImages(images));
  const cnnFit = (performance.now() - t0) / 1000;
  t0 = performance.now();
  cnnDemo.setRatio(0.5, "little");
  const cnnCalibrate = (performance.now() - t0) / 1000;
  lmDemo.setRatio(0.5);
  return { lm: () => lmDemo.stepTimes(), cnn: () => cnnDemo.imageTimes(), lmFit, cnnFit, cnnCalibrate, variant, workers: null, close: () => rt.close() };
}

// Per thread count, both sides are set up first, then timed in alternation (page, Node, page, …), so
// that a busy spell of the machine falls on both.
const rows: Row[] = [];
const loadBefore = loadavg()[0];
try {
  for (const threads of threadCounts) {
    const page = await inChromium(threads), node = await inNode(threads, page.variant);
    const sides = [["chromium", page], ["node", node]] as const;
    const lm = sides.map((): StepTimes[] => []), cnn = sides.map((): ImageTimes[] => []);
    for (let r = 0; r < repeats; r++) {
      for (const [i, [, side]] of sides.entries()) lm[i].push(await side.lm());
      for (const [i, [, side]] of sides.entries()) cnn[i].push(await side.cnn());
    }
    sides.forEach(([where, m], i) => {
      rows.push({ model: "lstm", where, threads, variant: m.variant, dense_ms: spread(lm[i].map((s) => s.denseMs)), dual_ms: spread(lm[i].map((s) => s.dualMs)),
        fit_s: m.lmFit, calibrate_s: null, workers: m.workers });
      rows.push({ model: "cnn", where, threads, variant: m.variant, dense_ms: spread(cnn[i].map((s) => s.denseMs)), dual_ms: spread(cnn[i].map((s) => s.dualMs)),
        fit_s: m.cnnFit, calibrate_s: m.cnnCalibrate, workers: m.workers });
    });
    for (const [, side] of sides) await side.close();
  }
} finally {
  await browser.close();
  server.close();
}
const time = (s: Spread, unit: "µs" | "ms") => {
  const f = (v: number) => (unit === "µs" ? (v * 1000).toFixed(1) : v.toFixed(2));
  return `${f(s.median)} ${unit} (${f(s.min)}–${f(s.max)})`;
};
console.log("| model | where | threads | dense | dual | dense / dual | fit s | calibrate s | page workers |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
const key = (r: Row) => (r.model === "lstm" ? 0 : 10) + r.threads + (r.where === "chromium" ? 0 : 0.5);
for (const r of rows.sort((a, b) => key(a) - key(b))) {
  const unit = r.model === "lstm" ? "µs" : "ms";
  console.log(`| ${r.model === "lstm" ? "LSTM-128 step" : "ResNet-18 w16 image"} | ${r.where === "chromium" ? "Chromium" : "Node"} | ${r.threads} | ` +
    `${time(r.dense_ms, unit)} | ${time(r.dual_ms, unit)} | ${(r.dense_ms.median / r.dual_ms.median).toFixed(2)} | ${r.fit_s.toFixed(1)} | ` +
    `${r.calibrate_s === null ? "–" : r.calibrate_s.toFixed(1)} | ${r.workers ?? "–"} |`);
}
console.log(`\nload average (1 min) ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after; Node ${process.version}, Chromium ${chromiumVersion}`);
if (values.json) await writeFileAtomic(values.json, new TextEncoder().encode(JSON.stringify(rows, null, 1) + "\n"));
