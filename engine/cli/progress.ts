/**
 * Progress for long CLI work: a bar with rate and ETA redrawn in place on a terminal, or one line
 * every few seconds when stderr is not a terminal (CI logs).
 *   rate = (done - done0) / elapsed          done0, elapsed: from the first update, so work resumed
 *                                            at step 3000 is not counted as done in this session
 *   ETA  = elapsed * (1 - f) / (f - f0)      f = the fraction of the work done (done / total, or the
 *                                            caller's when another limit may end the work first)
 */
export class ProgressBar {
  private first: { time: number; done: number; fraction: number } | null = null;
  private lastLine = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  /** `sink`: where the formatted line goes instead of stderr (a ProgressGroup's bar). */
  constructor(private readonly label: string, private readonly total: number, private readonly unit = 'step',
    private readonly sink?: (line: string, final: boolean) => void) {}

  /** `fraction`: the share of the work done when it is not done / total (e.g. an input budget may end it first). */
  update(done: number, detail = '', fraction = done / this.total): void {
    const now = Date.now();
    const frac = Math.min(1, Math.max(0, fraction));
    this.first ??= { time: now, done, fraction: frac };
    const final = frac >= 1;
    if (!this.tty && !final && now - this.lastLine < 5000) return;
    if (this.tty && !final && now - this.lastLine < 100) return;
    this.lastLine = now;
    const elapsed = (now - this.first.time) / 1000;
    const progressed = frac - this.first.fraction;
    const eta = progressed > 0 && elapsed > 0 ? (elapsed * (1 - frac)) / progressed : NaN;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const rate = done > this.first.done && elapsed > 0 ? `${((done - this.first.done) / elapsed).toFixed(1)} ${this.unit}/s` : '';
    const line = `${this.label} ${bar} ${done}/${this.total} ${rate} ETA ${formatSeconds(eta)} ${detail}`.trimEnd();
    if (this.sink) this.sink(line, final);
    else if (this.tty) process.stderr.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else process.stderr.write(`${line}\n`);
  }
}

/**
 * Bars of jobs that run at once, drawn as one line (`a ... | b ...`) on a terminal, each bar's own line
 * otherwise; the terminal line ends once every bar is final.
 */
export class ProgressGroup {
  private readonly lines = new Map<string, { line: string; final: boolean }>();
  private readonly tty = Boolean(process.stderr.isTTY);
  private open = false;

  bar(label: string, total: number, unit = 'step'): ProgressBar {
    return new ProgressBar(label, total, unit, (line, final) => {
      this.lines.set(label, { line, final });
      if (!this.tty) return void process.stderr.write(`${line}\n`);
      const all = [...this.lines.values()];
      this.open = !all.every((l) => l.final);
      process.stderr.write(`\r\x1b[2K${all.map((l) => l.line).join(' | ')}${this.open ? '' : '\n'}`);
    });
  }

  /** Ends the terminal line when a job stopped before its bar was final. */
  end(): void {
    if (this.open) process.stderr.write('\n');
    this.open = false;
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return `${m}:${String(sec).padStart(2, '0')}`;
}
