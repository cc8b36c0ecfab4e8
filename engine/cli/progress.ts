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

  constructor(private readonly label: string, private readonly total: number, private readonly unit = 'step') {}

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
    if (this.tty) process.stderr.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else process.stderr.write(`${line}\n`);
  }
}

/**
 * The status of jobs that run at once (the lanes of `memgen reproduce`), one text per job: drawn as one
 * line (`a: ... | b: ...`, each cut to `width` characters) on a terminal at most every 100 ms, else each
 * job's text on its own line when it changes (at most every 5 s a job); the terminal line ends once
 * every job is final.
 */
export class ProgressGroup {
  private readonly texts = new Map<string, { text: string; final: boolean; printed: number }>();
  private readonly tty = Boolean(process.stderr.isTTY);
  private open = false;
  private lastDraw = 0;

  constructor(private readonly width = 70) {}

  show(label: string, text: string, final = false): void {
    const now = Date.now();
    const before = this.texts.get(label);
    const cut = text.length > this.width ? `${text.slice(0, this.width - 1)}…` : text;
    this.texts.set(label, { text: cut, final, printed: before?.printed ?? -Infinity });
    if (!this.tty) {
      const t = this.texts.get(label)!;
      if (before?.text === cut || (!final && now - t.printed < 5000)) return;
      t.printed = now;
      return void process.stderr.write(`${label}: ${cut}\n`);
    }
    const all = [...this.texts.values()];
    this.open = !all.every((t) => t.final);
    if (this.open && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    process.stderr.write(`\r\x1b[2K${[...this.texts.entries()].map(([l, t]) => `${l}: ${t.text}`).join(' | ')}${this.open ? '' : '\n'}`);
  }

  /** Ends the terminal line when a job stopped before it was final. */
  end(): void {
    if (this.open) process.stderr.write('\n');
    this.open = false;
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const whole = Math.round(s); // 59.6 s is 1:00, not 0:60
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}
