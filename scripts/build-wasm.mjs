// Builds the kernels twice: plain 128-bit SIMD (runs everywhere) and relaxed SIMD (fused multiply-add,
// used after feature detection). Memory is imported and shared so that worker threads see the same weights.
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";

mkdirSync("build", { recursive: true });
const common = [
  "assembly/index.ts", "-O3", "--noAssert", "--runtime", "stub",
  "--importMemory", "--sharedMemory", "--initialMemory", "17", "--maximumMemory", "65536",
  "--enable", "simd", "--enable", "threads", "--use", "abort=",
];
for (const [variant, extra] of [["simd", []], ["relaxed", ["--enable", "relaxed-simd"]]]) {
  execFileSync(process.execPath, ["node_modules/assemblyscript/bin/asc.js", ...common, ...extra,
    "-o", `build/kernels-${variant}.wasm`], { stdio: "inherit" });
}
