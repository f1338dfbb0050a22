// Parsing of the comma-separated option values the commands share ("--ratios 0,0.5,0.9").

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
