// Parsing of the option values the commands share ("--ratios 0,0.5,0.9", integers, numbers), and
// the checks of a training run's --out and --resume files.
import { existsSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { PROJECTIONS, type ProjectionKind } from "../recurrent/little.js";

/** The items of a comma-separated value, or undefined when the option was not given. */
export function list(value: string | undefined): string[] | undefined {
  return value?.split(",").map((v) => v.trim()).filter(Boolean);
}

/** The numbers of a comma-separated value; a non-number is an error naming the option. */
export function numbers(value: string | undefined, option: string): number[] | undefined {
  return list(value)?.map((v) => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`--${option}: ${JSON.stringify(v)} is not a number`);
    return n;
  });
}

/** An integer option ≥ min, or undefined when absent. */
export function optionalInteger(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}

/** An integer option ≥ min, or `fallback` when absent; absent without a fallback, it is required. */
export function integer(name: string, value: string | undefined, min: number, fallback?: number): number {
  const n = optionalInteger(name, value, min) ?? fallback;
  if (n === undefined) throw new Error(`--${name} is required (see --help)`);
  return n;
}

/** A number option ≥ 0, or `fallback` when absent. */
export function nonNegative(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number ≥ 0, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * A training run's --out FILE: required, in a directory that exists. Checked at the start rather
 * than when the first epoch's checkpoint is written, which may be an hour away.
 */
export function outputFile(out: string | undefined, usage: string): string {
  if (!out) throw new Error(`--out FILE is required\n${usage}`);
  const dir = dirname(out);
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new Error(`--out ${out}: directory ${dir} does not exist; create it (mkdir -p ${dir}) or choose another path`);
  }
  return out;
}

/** The resumable state a --resume continues from, which must exist. */
export function resumeFile(path: string): string {
  if (!existsSync(path)) throw new Error(`--resume: ${path} does not exist; it is written after every epoch and on Ctrl-C`);
  return path;
}

/** --projection random|rrr, or undefined when not given. */
export function optionalProjection(value: string | undefined): ProjectionKind | undefined {
  if (value === undefined) return undefined;
  if (!(PROJECTIONS as string[]).includes(value)) throw new Error(`--projection must be one of ${PROJECTIONS.join(", ")}, got ${JSON.stringify(value)}`);
  return value as ProjectionKind;
}
