export { formatBytes } from '../format/sizes.js';
import { formatBytes } from '../format/sizes.js';
import { processIo, type CliIo } from './io.js';
/**
 * A progress bar on stderr: bytes done / total, rate, ETA. Drawn only when
 * enabled (by default when stderr is a TTY), and only once the work has run
 * for more than a moment, so quick commands print nothing.
 */
/** How long work must run before the bar appears (ms); `XBZRLE_PROGRESS_DELAY` overrides it (tests). */
const DELAY = 700;

export class Progress {
  private readonly enabled: boolean;
  private readonly started = Date.now();
  private lastDraw = 0;
  private drawn = false;
  private done = 0;
  private readonly stream: CliIo['stderr'];
  private readonly delay: number;

  /** Drawn on `io.stderr` (default: the process's). */
  constructor(
    private readonly label: string,
    private total: number | undefined,
    mode: boolean | undefined,
    io: Pick<CliIo, 'stderr' | 'env'> = processIo(),
  ) {
    this.stream = io.stderr;
    this.enabled = mode ?? this.stream.isTTY === true;
    this.delay = Number(io.env['XBZRLE_PROGRESS_DELAY'] ?? DELAY);
  }

  /** Sets the total when it becomes known. */
  setTotal(total: number | undefined): void {
    this.total = total;
  }

  /** Reports `done` bytes so far. Cheap to call often. */
  update(done: number): void {
    this.done = done;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.started < this.delay || (this.drawn && now - this.lastDraw < 100)) return;
    this.lastDraw = now;
    this.draw(now);
  }

  /** Clears the bar (call before printing anything else). */
  finish(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }

  private draw(now: number): void {
    const seconds = (now - this.started) / 1000;
    const rate = this.done / Math.max(seconds, 0.001);
    let line = `${this.label} ${formatBytes(this.done)}`;
    if (this.total !== undefined && this.total > 0) {
      const frac = Math.min(1, this.done / this.total);
      const width = 24;
      const filled = Math.round(frac * width);
      const eta = rate > 0 ? (this.total - this.done) / rate : 0;
      line = `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(this.done)} / ${formatBytes(this.total)}  ${formatBytes(rate)}/s  ETA ${formatDuration(eta)}`;
    } else {
      line += `  ${formatBytes(rate)}/s`;
    }
    this.stream.write(`\r\x1b[K${line}`);
    this.drawn = true;
  }
}

function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${Math.ceil(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
