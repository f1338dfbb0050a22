// A progress bar on stderr for long work: done/total, rate, ETA. Redraws in place on a terminal;
// elsewhere (CI, pipes) prints a line at most every few seconds so logs stay short.

export class Progress {
  private readonly start = performance.now();
  private lastPrint = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(private readonly label: string, private readonly total: number, private readonly unit = "steps") {}

  update(done: number, extra = ""): void {
    const now = performance.now();
    const finished = done >= this.total;
    if (!finished && now - this.lastPrint < (this.tty ? 100 : 5000)) return;
    this.lastPrint = now;
    const secs = (now - this.start) / 1000, rate = done / Math.max(secs, 1e-9);
    const eta = rate > 0 ? (this.total - done) / rate : Infinity;
    const frac = this.total > 0 ? Math.min(done / this.total, 1) : 1;
    const width = 24, fill = Math.round(frac * width);
    const line = `${this.label} [${"#".repeat(fill)}${"-".repeat(width - fill)}] ${done}/${this.total} ` +
      `${formatRate(rate)} ${this.unit}/s, ${finished ? `${secs.toFixed(1)} s` : `ETA ${formatTime(eta)}`}${extra ? `, ${extra}` : ""}`;
    if (this.tty) process.stderr.write(`\r\x1b[K${line}${finished ? "\n" : ""}`);
    else process.stderr.write(`${line}\n`);
  }
}

function formatRate(r: number): string { return r >= 100 ? r.toFixed(0) : r.toPrecision(3); }

export function formatTime(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const whole = Math.round(s); // round once, so 59.6 s is "1 min 0 s", never "0 min 60 s"
  if (whole < 60) return `${whole} s`;
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}
