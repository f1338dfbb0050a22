// Ctrl-C during a long training run: the first asks it to stop after the current step (the run then
// writes a resumable checkpoint); a second one exits at once, without a checkpoint.

export class StopOnCtrlC {
  /** Whether Ctrl-C was pressed: the run checks it after every step. */
  requested = false;

  private readonly onSigint = (): void => {
    if (this.requested) {
      console.error(`\n${this.command}: second Ctrl-C: exiting without a checkpoint`);
      process.exit(130);
    }
    this.requested = true;
    console.error(`\n${this.command}: stopping after the current ${this.step} and writing a checkpoint (Ctrl-C again to abort)`);
  };

  /** `command` names the run in messages ("dmi train lm"); `step` is what it finishes first ("window"). */
  constructor(private readonly command: string, private readonly step: string) {
    process.on("SIGINT", this.onSigint);
  }

  dispose(): void { process.off("SIGINT", this.onSigint); }
}
