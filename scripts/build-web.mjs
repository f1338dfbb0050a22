// Builds the browser bundle into dist/web/: dualmodule.js (src/web/index.ts, ESM), its pool worker
// dualmodule-worker.js (src/runtime/worker.browser.ts), the kernel modules beside them, and the
// demo page (web/). The runtime's platform.ts is swapped for platform.browser.ts. Node modules that
// library files import for Node-only functions (reading files, hashing a vocabulary) become stubs
// that throw when called, naming the function; a Node module not listed here fails the build, so
// nothing Node-only enters the bundle unnoticed.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const OUT = "dist/web";

/** Node-only functions reachable from the browser entry, by module; each stub throws when called. */
const NODE_ONLY = {
  "node:crypto": ["createHash", "randomBytes"],
  "node:fs": ["closeSync", "fstatSync", "openSync", "readFileSync", "readSync"],
  "node:fs/promises": ["open", "readFile", "rename", "unlink"],
  "node:path": ["basename", "dirname", "join"],
};
/** Node functions with a browser equivalent. */
const NODE_EQUIVALENT = {
  "node:timers/promises": "export const setTimeout = (ms, value) => new Promise((resolve) => globalThis.setTimeout(() => resolve(value), ms));",
};

const browserPlatform = {
  name: "browser-platform",
  setup(build) {
    const runtimeDir = resolve("src/runtime");
    build.onResolve({ filter: /^\.\/platform\.js$/ }, (args) =>
      dirname(args.importer) === runtimeDir ? { path: join(runtimeDir, "platform.browser.ts") } : undefined);
    build.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: "node-stub" }));
    build.onLoad({ filter: /.*/, namespace: "node-stub" }, (args) => {
      if (args.path in NODE_EQUIVALENT) return { contents: NODE_EQUIVALENT[args.path], loader: "js" };
      const names = NODE_ONLY[args.path];
      if (!names) return { errors: [{ text: `${args.path} would enter the browser bundle: keep it out of src/web/index.ts's imports, or list it in scripts/build-web.mjs` }] };
      const stub = (n) => `export function ${n}() { throw new Error("${n} (${args.path}) is not available in a browser: pass bytes instead of a path"); }`;
      return { contents: names.map(stub).join("\n"), loader: "js" };
    });
  },
};

mkdirSync(OUT, { recursive: true });
const result = await esbuild.build({
  entryPoints: { "dualmodule": "src/web/index.ts", "dualmodule-worker": "src/runtime/worker.browser.ts" },
  outdir: OUT, bundle: true, format: "esm", platform: "browser", target: "es2022",
  sourcemap: true, minify: false, legalComments: "none", logLevel: "warning", metafile: true,
  plugins: [browserPlatform],
});
for (const f of ["kernels-simd.wasm", "kernels-relaxed.wasm"]) copyFileSync(join("build", f), join(OUT, f));
for (const f of readdirSync("web")) copyFileSync(join("web", f), join(OUT, f));
const bytes = (name) => result.metafile.outputs[`${OUT}/${name}`].bytes;
console.log(`${OUT}: dualmodule.js ${(bytes("dualmodule.js") / 1024).toFixed(0)} KiB, dualmodule-worker.js ${(bytes("dualmodule-worker.js") / 1024).toFixed(0)} KiB, kernels, demo page`);
