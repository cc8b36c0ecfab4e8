/**
 * Progress for long CLI work: a bar with rate and ETA redrawn in place on a terminal, or one line
 * every few seconds when stderr is not a terminal (CI logs).
 *   ETA = (total - done) * elapsed / done
 */
export class ProgressBar {
  private readonly start = Date.now();
  private lastLine = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(private readonly label: string, private readonly total: number, private readonly unit = 'step') {}

  update(done: number, detail = ''): void {
    const now = Date.now();
    const final = done >= this.total;
    if (!this.tty && !final && now - this.lastLine < 5000) return;
    if (this.tty && !final && now - this.lastLine < 100) return;
    this.lastLine = now;
    const elapsed = (now - this.start) / 1000;
    const frac = Math.min(1, done / this.total);
    const eta = done > 0 ? ((this.total - done) * elapsed) / done : NaN;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const rate = done > 0 ? `${(done / elapsed).toFixed(1)} ${this.unit}/s` : '';
    const line = `${this.label} ${bar} ${done}/${this.total} ${rate} ETA ${formatSeconds(eta)} ${detail}`.trimEnd();
    if (this.tty) process.stderr.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else process.stderr.write(`${line}\n`);
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return `${m}:${String(sec).padStart(2, '0')}`;
}
